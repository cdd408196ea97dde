//! `GET /api/v1/alerts?state=active|all&mn=&from=&to=&limit=` and
//! `POST /api/v1/alerts/{id}/ack` (admin token), over `data_dir/alerts.sqlite`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hj212_alerts::query::{self, Filter};
use serde::Deserialize;

use crate::AppState;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiPath, ApiQuery, NoParams, error};
use crate::rates::query_bound;

/// Alerts listed per request, by default and at most.
const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlertQuery {
    state: Option<String>,
    mn: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
}

fn filter_of(q: AlertQuery) -> Result<Filter, ApiError> {
    let active_only = match q.state.as_deref() {
        None | Some("active") => true,
        Some("all") => false,
        Some(other) => return Err(error(StatusCode::BAD_REQUEST, format!("state={other:?}: use active or all"))),
    };
    let from_ms = q.from.map(|v| query_bound("from", &v)).transpose()?;
    let to_ms = q.to.map(|v| query_bound("to", &v)).transpose()?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(error(StatusCode::BAD_REQUEST, format!("limit={limit}: use 1 to {MAX_LIMIT}")));
    }
    Ok(Filter { active_only, mn: q.mn, from_ms, to_ms, limit })
}

pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AlertQuery>,
) -> Result<Response, ApiError> {
    let filter = filter_of(q)?;
    let path = state.data_dir.alerts();
    state
        .queries
        .run_json(move || {
            let alerts = query::list(&query::open(&path)?, &filter)?;
            Ok::<_, hj212_alerts::AlertsError>(serde_json::json!({ "count": alerts.len(), "alerts": alerts }))
        })
        .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AckBody {
    #[serde(default)]
    by: String,
    #[serde(default)]
    note: String,
}

pub(crate) async fn ack(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(NoParams {}): ApiQuery<NoParams>,
    JsonBody(body): JsonBody<Option<AckBody>>,
) -> Result<Response, ApiError> {
    let body = body.unwrap_or_default();
    let note = body.note.trim();
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(error(StatusCode::BAD_REQUEST, format!("note: at most {MAX_NOTE_CHARS} characters")));
    }
    match acknowledge(&state, &id, body.by.trim(), note, "api").await? {
        Some(alert) => Ok(Json(alert).into_response()),
        None => Err(error(StatusCode::NOT_FOUND, format!("no alert with id {id}"))),
    }
}

/// Longest acknowledgement note kept.
pub(crate) const MAX_NOTE_CHARS: usize = 500;

/// Acknowledges an alert and, when this acknowledgement took effect, archives who made it (an
/// `info` event `alert_acknowledged`: traceable, and carried to the other nodes of a cluster,
/// whose engines apply it). `None` when there is no such alert.
pub(crate) async fn acknowledge(
    state: &AppState,
    alert_id: &str,
    by: &str,
    note: &str,
    via: &str,
) -> Result<Option<serde_json::Value>, ApiError> {
    let path = state.data_dir.alerts();
    let (id, who, why, at_ms) = (alert_id.to_owned(), by.to_owned(), note.to_owned(), hj212_archive::now_ms());
    let acked = state
        .queries
        .run(move || {
            let ack = query::Acknowledgement { alert_id: &id, by: &who, note: &why, at_ms };
            query::ack(&query::open(&path)?, &ack)
        })
        .await?;
    let Some((alert, took_effect)) = acked else { return Ok(None) };
    if took_effect {
        let text = |field: &str| alert[field].as_str().unwrap_or_default().to_owned();
        let ack = hj212_follow::AlertAck {
            alert_id: alert_id.to_owned(),
            mn: text("mn"),
            kind: text("kind"),
            by: by.to_owned(),
            note: note.to_owned(),
            via: via.to_owned(),
        };
        let what = "the acknowledgement's record";
        crate::appended::append(state, hj212_archive::Verdict::Info, what, &ack.event()).await?;
    }
    Ok(Some(alert))
}
