//! Downtime marks, service visits and commands from a site's page: the same checks and the same
//! archive records as the API's, with the signed-in operator as the author (a command queued
//! here is also archived with the operator's name, as an `info` event).

use std::time::Duration;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::layout::Nav;
use super::login::forbidden;
use super::{Visitor, csrf_ok};
use crate::AppState;
use crate::error::ApiError;

#[derive(Debug, Deserialize)]
pub(crate) struct MarkForm {
    csrf: String,
    from: String,
    to: String,
    reason: String,
    evidence: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct VisitForm {
    csrf: String,
    arrived: String,
    left: String,
    work: String,
    result: String,
    #[serde(default)]
    alert_id: String,
}

pub(crate) async fn add_mark(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(mn): Path<String>,
    Form(form): Form<MarkForm>,
) -> Response {
    if let Some(refused) = refused(&visitor, &form.csrf) {
        return refused;
    }
    let body = crate::marks::MarkBody {
        from: beijing(&form.from),
        to: beijing(&form.to),
        reason: form.reason,
        evidence: form.evidence,
        author: visitor.user.name.clone(),
        supersedes: None,
    };
    let recorded = crate::marks::record(&state, mn.clone(), body).await.map(|m| m.seq);
    until_stored(&state, &recorded).await;
    answer(&visitor, &mn, "mark", recorded)
}

pub(crate) async fn add_visit(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(mn): Path<String>,
    Form(form): Form<VisitForm>,
) -> Response {
    if let Some(refused) = refused(&visitor, &form.csrf) {
        return refused;
    }
    let alert_id = Some(form.alert_id.trim().to_owned()).filter(|id| !id.is_empty());
    let body = crate::visits::VisitBody {
        alert_id,
        arrived_at: beijing(&form.arrived),
        left_at: beijing(&form.left),
        by: visitor.user.name.clone(),
        work: form.work,
        result: form.result,
        supersedes: None,
    };
    let recorded = crate::visits::record(&state, mn.clone(), body).await.map(|v| v.seq);
    until_stored(&state, &recorded).await;
    answer(&visitor, &mn, "visit", recorded)
}

#[derive(Debug, Deserialize)]
pub(crate) struct CommandForm {
    csrf: String,
    cn: String,
    /// `KEY=VALUE` per line, as in the standard's CP.
    #[serde(default)]
    cp: String,
}

pub(crate) async fn add_command(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(mn): Path<String>,
    Form(form): Form<CommandForm>,
) -> Response {
    if let Some(refused) = refused(&visitor, &form.csrf) {
        return refused;
    }
    let queued = queue_command(&state, &visitor, &mn, &form).await;
    answer(&visitor, &mn, "command", queued)
}

async fn queue_command(state: &AppState, visitor: &Visitor, mn: &str, form: &CommandForm) -> Result<u64, ApiError> {
    let mut cp = std::collections::BTreeMap::new();
    for line in form.cp.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((key, value)) = line.split_once('=') else {
            let problem = format!("CP line {line:?}: write KEY=VALUE, one per line");
            return Err(crate::error::error(StatusCode::BAD_REQUEST, problem));
        };
        cp.insert(key.trim().to_owned(), value.trim().to_owned());
    }
    let body = crate::commands::CommandBody { cn: form.cn.trim().to_owned(), cp, ttl_secs: None };
    let command = crate::commands::queue(state, mn, body).await?;
    let event = serde_json::json!({
        "event": "command_queued",
        "via": "console",
        "by": visitor.user.name,
        "command": command.to_json(),
    });
    let (seq, _) = crate::appended::append(state, hj212_archive::Verdict::Info, "the command's record", &event).await?;
    Ok(seq)
}

/// How long a recorded mark or visit waits for the store to apply it: the site's page the operator
/// is sent back to lists what the store holds (within a tick, unless the store lags far behind).
const SHOWN_WITHIN: Duration = Duration::from_secs(10);

/// Waits (at most [`SHOWN_WITHIN`]) until the store has applied archive record `seq`, so that
/// the page shown next lists it. A store that follows a cluster's stream counts in the stream's
/// numbers, not the archive's: nothing to wait for there.
async fn until_stored(state: &AppState, recorded: &Result<u64, ApiError>) {
    let Ok(seq) = *recorded else { return };
    let Some(store) = state.readiness.followers.iter().find(|f| f.name == "store" && f.head.is_none()) else {
        return;
    };
    let deadline = tokio::time::Instant::now() + SHOWN_WITHIN;
    while store.status.position() < seq && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A form without the session's token, or from a viewer.
fn refused(visitor: &Visitor, csrf: &str) -> Option<Response> {
    if !csrf_ok(&visitor.user, csrf) {
        return Some(forbidden(&visitor.user));
    }
    (!visitor.operates())
        .then(|| (StatusCode::FORBIDDEN, format!("{}\n", visitor.lang.text().not_allowed)).into_response())
}

/// Back to the site's page once archived; else the problem, named, with the way back.
fn answer(visitor: &Visitor, mn: &str, what: &str, recorded: Result<u64, ApiError>) -> Response {
    match recorded {
        Ok(seq) => {
            tracing::info!(user = %visitor.user.name, %mn, seq, "{what} recorded in the console");
            Redirect::to(&format!("/console/sites/{mn}")).into_response()
        }
        Err(error) => {
            let back = format!("/console/sites/{mn}");
            let body = html! {
                p.error role="alert" { (error.message()) }
                p { a href=(back) { "←" } }
            };
            let text = visitor.lang.text();
            let page = super::layout::page(visitor.lang, Some(&visitor.user), Nav::Other, text.title, &back, &body);
            (error.status(), super::html_page(page, visitor.lang, false)).into_response()
        }
    }
}

/// A browser's `datetime-local` value (`2026-12-01T10:00`, Beijing time as the page says) as
/// the API's `YYYYMMDDhhmmss`; anything else is passed on for the API's check to name.
fn beijing(value: &str) -> String {
    let digits: String = value.chars().filter(char::is_ascii_digit).collect();
    match (value.len(), digits.len()) {
        (16, 12) => format!("{digits}00"),
        (19, 14) => digits,
        _ => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn datetime_local_values_become_beijing_times() {
        assert_eq!(super::beijing("2026-12-01T10:05"), "20261201100500");
        assert_eq!(super::beijing("2026-12-01T10:05:30"), "20261201100530");
        assert_eq!(super::beijing("yesterday"), "yesterday");
    }
}
