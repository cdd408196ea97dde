//! A site's page (`/console/sites/{mn}`): online state, its latest values with factor names,
//! units and flags, its rates today and this month, open alerts and downtime marks.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hj212_alerts::query::{self, Filter};
use hj212_proto::model::Factor;
use hj212_store::{MarkRecord, Reading, Store};
use maud::{Markup, html};

use super::Visitor;
use super::layout::{Nav, percent, time};
use super::text::{Lang, Text};
use crate::AppState;

/// Open alerts and marks shown on a site's page, newest first.
const MAX_LISTED: usize = 200;

/// What a site's page shows, read on a query thread.
struct SiteData {
    latest: Vec<Reading>,
    alerts: Vec<serde_json::Value>,
    marks: Vec<MarkRecord>,
}

pub(crate) async fn page(State(state): State<AppState>, visitor: Visitor, Path(mn): Path<String>) -> Response {
    let Some(site) = state.shared.registry.snapshot().get(&mn).cloned() else {
        return (StatusCode::NOT_FOUND, format!("no configured site with MN {mn}\n")).into_response();
    };
    let data_dir = state.data_dir.clone();
    let query_mn = mn.clone();
    let data = state
        .queries
        .run(move || {
            let store = Store::open(&data_dir.store()).map_err(|e| e.to_string())?;
            let latest = store.latest_readings(&query_mn).map_err(|e| e.to_string())?;
            let mut marks: Vec<MarkRecord> =
                store.marks_of(&query_mn).map_err(|e| e.to_string())?.into_iter().map(|(m, _)| m).collect();
            marks.reverse();
            marks.truncate(MAX_LISTED);
            let filter =
                Filter { active_only: true, mn: Some(query_mn), from_ms: None, to_ms: None, limit: MAX_LISTED };
            let alerts = query::open(&data_dir.alerts())
                .and_then(|conn| query::list(&conn, &filter))
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(SiteData { latest, alerts, marks })
        })
        .await;
    let data = match data {
        Ok(data) => data,
        Err(error) => return error.into_response(),
    };
    let live = state.shared.states.get(&mn).unwrap_or_default();
    let rates = state.console.as_ref().and_then(|c| c.rates.get(&state).by_mn.get(&mn).copied());
    let text = visitor.lang.text();
    let title = if site.name.is_empty() { mn.clone() } else { site.name.clone() };
    let body = html! {
        h1 { (title) " " span.muted { (mn) } }
        div #live {
            p {
                @if live.connections > 0 { span.online { (text.online) } } @else { span.offline { (text.offline) } }
                " · " (text.rate_today) " " (percent(rates.and_then(|r| r.today)))
                " · " (text.rate_month) " " (percent(rates.and_then(|r| r.month)))
            }
            h2 { (text.latest_values) }
            (latest_table(visitor.lang, &data.latest))
            h2 { (text.active_alerts) }
            (super::alerts_page::alert_table(text, &data.alerts, &visitor))
        }
        h2 { (text.marks) }
        (marks_table(text, &data.marks))
    };
    let path = format!("/console/sites/{mn}");
    let markup = super::layout::page(visitor.lang, Some(&visitor.user), Nav::Other, &title, &path, &body);
    super::html_page(markup, visitor.lang, visitor.lang_asked)
}

fn latest_table(lang: Lang, latest: &[Reading]) -> Markup {
    let text = lang.text();
    let Some(first) = latest.first() else {
        return html! { p.muted { (text.no_data) } };
    };
    html! {
        p.muted { (text.data_time) " " (time(first.data_time_ms)) " · CN " (first.cn) }
        table #latest {
            thead { tr { th { (text.factor) } th { (text.value) } th { (text.flag) } } }
            tbody {
                @for reading in latest {
                    @let known = Factor::lookup(&reading.factor, None);
                    tr data-factor=(reading.factor) {
                        td {
                            @match known {
                                Some(f) => { (factor_name(lang, f)) " " span.muted { (reading.factor) } },
                                None => { (reading.factor) },
                            }
                        }
                        td.num {
                            (reading.rtd.as_deref().or(reading.avg.as_deref()).unwrap_or("–"))
                            @if let Some(f) = known { " " (f.unit) }
                        }
                        td { (reading.flag.as_deref().unwrap_or("–")) }
                    }
                }
            }
        }
    }
}

/// A factor's name in the page's language.
fn factor_name(lang: Lang, factor: &Factor) -> &'static str {
    match lang {
        Lang::Zh => factor.name_zh,
        Lang::En => factor.name,
    }
}

fn marks_table(text: &Text, marks: &[MarkRecord]) -> Markup {
    if marks.is_empty() {
        return html! { p.muted { (text.none) } };
    }
    html! {
        table #marks {
            tbody {
                @for record in marks {
                    tr {
                        td.num { (time(record.mark.from_ms)) " – " (time(record.mark.to_ms)) }
                        td { (record.mark.reason) }
                        td.muted { (record.mark.author) }
                    }
                }
            }
        }
    }
}
