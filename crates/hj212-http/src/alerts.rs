//! `GET /api/v1/alerts?state=active|all&mn=&from=&to=&limit=` and
//! `POST /api/v1/alerts/{id}/ack` (bearer token), over `data_dir/alerts.sqlite`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hj212_alerts::query::{self, Filter};
use hj212_store::parse_bound;
use serde::Deserialize;

use crate::AppState;
use crate::rates::{ApiError, authorised, blocking, error};

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
    let bound = |value: Option<String>| value.map(|v| parse_bound(&v)).transpose();
    let from_ms = bound(q.from).map_err(|e| error(StatusCode::BAD_REQUEST, format!("from: {e}")))?;
    let to_ms = bound(q.to).map_err(|e| error(StatusCode::BAD_REQUEST, format!("to: {e}")))?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(error(StatusCode::BAD_REQUEST, format!("limit={limit}: use 1 to {MAX_LIMIT}")));
    }
    Ok(Filter { active_only, mn: q.mn, from_ms, to_ms, limit })
}

pub(crate) async fn list(State(state): State<AppState>, Query(q): Query<AlertQuery>) -> Result<Response, ApiError> {
    let filter = filter_of(q)?;
    let path = state.alerts_path.clone();
    let alerts = blocking(move || query::list(&query::open(&path)?, &filter)).await?;
    Ok(Json(serde_json::json!({ "count": alerts.len(), "alerts": alerts })).into_response())
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
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Option<Json<AckBody>>,
) -> Result<Response, ApiError> {
    authorised(&state, &headers)?;
    let Json(body) = body.unwrap_or_default();
    let path = state.alerts_path.clone();
    let alert_id = id.clone();
    let now = hj212_archive::now_ms();
    let acked =
        blocking(move || query::ack(&query::open(&path)?, &alert_id, body.by.trim(), body.note.trim(), now)).await?;
    match acked {
        Some(alert) => Ok(Json(alert).into_response()),
        None => Err(error(StatusCode::NOT_FOUND, format!("no alert with id {id}"))),
    }
}
