//! The alerts page (`/console/alerts`): open alerts and recent ones, and acknowledgement with a
//! note by an operator (recorded with the operator's name).

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use hj212_alerts::query::{self, Filter};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::Visitor;
use super::layout::Nav;
use super::login::forbidden;
use super::text::{Lang, Text};
use crate::AppState;
use crate::alerts::MAX_NOTE_CHARS;
use hj212_compliance::alert::AlertKind;

/// Alerts listed per table.
const MAX_LISTED: usize = 500;

pub(crate) async fn page(State(state): State<AppState>, visitor: Visitor) -> Response {
    let path = state.data_dir.alerts();
    let lists = state
        .queries
        .run(move || {
            let conn = query::open(&path)?;
            let filter = |active_only| Filter { active_only, mn: None, from_ms: None, to_ms: None, limit: MAX_LISTED };
            let open = query::list(&conn, &filter(true))?;
            let recent: Vec<Value> =
                query::list(&conn, &filter(false))?.into_iter().filter(|a| a["state"] != "active").collect();
            Ok::<_, hj212_alerts::AlertsError>((open, recent))
        })
        .await;
    let (open, recent) = match lists {
        Ok(lists) => lists,
        Err(error) => return error.into_response(),
    };
    let text = visitor.lang.text();
    let sites = state.shared.registry.snapshot();
    let site_name =
        |mn: &str| sites.get(mn).map(|s| s.name.clone()).filter(|n| !n.is_empty()).unwrap_or_else(|| mn.to_owned());
    let body = html! {
        h1 { (text.alerts) }
        div #live {
            h2 { (text.active_alerts) " (" (open.len()) ")" }
            (alert_table(&open, &visitor, &site_name))
            h2 { (text.recent_alerts) }
            (alert_table(&recent, &visitor, &site_name))
        }
    };
    let markup =
        super::layout::page(visitor.lang, Some(&visitor.user), Nav::Alerts, text.alerts, "/console/alerts", &body);
    super::html_page(markup, visitor.lang, visitor.lang_asked)
}

/// Alerts as a table, with an acknowledgement form on each unacknowledged one for operators.
pub(crate) fn alert_table(alerts: &[Value], visitor: &Visitor, site_name: &dyn Fn(&str) -> String) -> Markup {
    let text = visitor.lang.text();
    if alerts.is_empty() {
        return html! { p.muted { (text.none) } };
    }
    html! {
        table.alerts {
            thead { tr {
                th { (text.site) } th { (text.kind) } th { (text.factor) } th { (text.value) }
                th.wide { (text.opened) } th { (text.acknowledge) }
            } }
            tbody {
                @for alert in alerts {
                    @let id = alert["alert_id"].as_str().unwrap_or_default();
                    @let mn = alert["mn"].as_str().unwrap_or_default();
                    @let kind = alert["kind"].as_str().unwrap_or_default();
                    tr data-alert=(id) data-kind=(kind) {
                        td { a href={ "/console/sites/" (mn) } { (site_name(mn)) } }
                        td class=(alert["severity"].as_str().unwrap_or_default()) { (kind_title(visitor.lang, kind)) }
                        td { (factor_title(visitor.lang, alert["factor"].as_str())) }
                        td.num { (number(&alert["value"])) @if !alert["limit"].is_null() { " / " (number(&alert["limit"])) } }
                        td.wide.num { (alert["opened_at"].as_str().and_then(|t| t.get(..16)).unwrap_or_default().replacen('T', " ", 1)) }
                        td { (acknowledgement(text, alert, id, visitor)) }
                    }
                }
            }
        }
    }
}

/// An alert kind's name in the page's language (its code if unknown).
fn kind_title(lang: Lang, kind: &str) -> &str {
    match (AlertKind::parse(kind).map(AlertKind::titles), lang) {
        (Some((zh, _)), Lang::Zh) => zh,
        (Some((_, en)), Lang::En) => en,
        (None, _) => kind,
    }
}

/// A factor's name and code in the page's language.
fn factor_title(lang: Lang, code: Option<&str>) -> String {
    let Some(code) = code else { return "–".to_owned() };
    match (hj212_proto::model::Factor::lookup(code, None), lang) {
        (Some(f), Lang::Zh) => format!("{} {code}", f.name_zh),
        (Some(f), Lang::En) => format!("{} {code}", f.name),
        (None, _) => code.to_owned(),
    }
}

fn acknowledgement(text: &Text, alert: &Value, id: &str, visitor: &Visitor) -> Markup {
    if let Some(by) = alert["acked_by"].as_str() {
        let note = alert["ack_note"].as_str().unwrap_or_default();
        return html! { span.muted { (text.acknowledged_by) " · " (by) @if !note.is_empty() { " · " (note) } } };
    }
    if !visitor.operates() {
        return html! { span.muted { "–" } };
    }
    let mn = alert["mn"].as_str().unwrap_or_default();
    html! {
        form.inline.ack method="post" action={ "/console/alerts/" (id) "/ack" } {
            input type="hidden" name="csrf" value=(visitor.user.csrf);
            input type="text" name="note" placeholder=(text.note) aria-label=(text.note) maxlength="500";
            button type="submit" { (text.acknowledge) }
        }
        " " a.visit href={ "/console/sites/" (mn) "?alert=" (id) "#visit-form" } { (text.record_visit) }
    }
}

/// A value as stored (the engine's number), at most three decimals.
fn number(value: &Value) -> String {
    value.as_f64().map_or_else(
        || "–".to_owned(),
        |v| {
            let text = format!("{v:.3}");
            text.trim_end_matches('0').trim_end_matches('.').to_owned()
        },
    )
}

#[derive(Debug, Deserialize)]
pub(crate) struct AckForm {
    csrf: String,
    #[serde(default)]
    note: String,
}

pub(crate) async fn ack(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Form(form): Form<AckForm>,
) -> Response {
    if !super::csrf_ok(&visitor.user, &form.csrf) {
        return forbidden(&visitor.user);
    }
    if !visitor.operates() {
        return (StatusCode::FORBIDDEN, format!("{}\n", visitor.lang.text().not_allowed)).into_response();
    }
    let note: String = form.note.trim().chars().take(MAX_NOTE_CHARS).collect();
    match crate::alerts::acknowledge(&state, &id, &visitor.user.name, &note, "console").await {
        Ok(Some(_)) => {
            tracing::info!(user = %visitor.user.name, alert = %id, "alert acknowledged in the console");
            Redirect::to("/console/alerts").into_response()
        }
        Ok(None) => (StatusCode::NOT_FOUND, format!("no alert with id {id}\n")).into_response(),
        Err(error) => error.into_response(),
    }
}
