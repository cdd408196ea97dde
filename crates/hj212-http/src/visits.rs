//! Service visits (certification spec 4.3.3.2: every service request and visit recorded):
//! `POST /api/v1/sites/{mn}/visits` (admin token) appends one to the hash-chained archive
//! (a correction supersedes, never edits); `GET` lists them with the time from the alert they
//! answered to the arrival, against the site's on-site target (`[service]`, 4.3.3.1).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hj212_alerts::query as alerts;
use hj212_archive::{Verdict, now_ms};
use hj212_store::{Store, VisitRecord, VisitRequest};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiPath, ApiQuery, error};
use crate::rates::{query_bound, range_of};

/// An arrival this far ahead of the clock is a typo, not a plan.
const FUTURE_SLACK_MS: i64 = 5 * 60 * 1000;
/// Listed by default: the last 31 days.
const DEFAULT_DAYS_MS: i64 = 31 * 86_400_000;

/// A visit as posted: times as `YYYY-MM-DD`, `YYYYMMDDhhmmss` (Beijing time) or RFC 3339.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VisitBody {
    #[serde(default)]
    pub alert_id: Option<String>,
    pub arrived_at: String,
    pub left_at: String,
    pub by: String,
    pub work: String,
    pub result: String,
    #[serde(default)]
    pub supersedes: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

fn not_found(mn: &str) -> ApiError {
    error(StatusCode::NOT_FOUND, format!("no configured site with MN {mn}"))
}

pub(crate) async fn add(
    State(state): State<AppState>,
    ApiPath(mn): ApiPath<String>,
    ApiQuery(crate::error::NoParams {}): ApiQuery<crate::error::NoParams>,
    JsonBody(body): JsonBody<VisitBody>,
) -> Result<Response, ApiError> {
    let stored = record(&state, mn, body).await?;
    Ok((StatusCode::CREATED, Json(json!({ "seq": stored.seq, "visit": stored }))).into_response())
}

/// Checks a visit and appends it to the archive (from the API or the console).
pub(crate) async fn record(state: &AppState, mn: String, body: VisitBody) -> Result<VisitRecord, ApiError> {
    if !state.shared.registry.snapshot().contains_key(&mn) {
        return Err(not_found(&mn));
    }
    let arrived_ms = query_bound("arrived_at", &body.arrived_at)?;
    let left_ms = query_bound("left_at", &body.left_at)?;
    if left_ms < arrived_ms {
        return Err(error(StatusCode::BAD_REQUEST, "left_at is before arrived_at"));
    }
    if arrived_ms > now_ms() + FUTURE_SLACK_MS {
        return Err(error(StatusCode::BAD_REQUEST, "arrived_at is in the future: record a visit once it happened"));
    }
    for (field, value) in [("by", &body.by), ("work", &body.work), ("result", &body.result)] {
        if value.trim().is_empty() {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("{field} is required: a visit without it is no record"),
            ));
        }
    }
    check_references(state, &mn, body.alert_id.as_deref(), body.supersedes).await?;
    let visit = VisitRequest {
        mn,
        alert_id: body.alert_id,
        arrived_ms,
        left_ms,
        by: body.by,
        work: body.work,
        result: body.result,
        supersedes: body.supersedes,
    };
    let (seq, created_ms) = crate::appended::append(state, Verdict::Visit, "the visit", &visit).await?;
    Ok(VisitRecord { seq, created_ms, visit })
}

/// The alert a visit answers is one of the site's; a correction replaces a visit of the same site.
async fn check_references(
    state: &AppState,
    mn: &str,
    alert_id: Option<&str>,
    supersedes: Option<u64>,
) -> Result<(), ApiError> {
    if let Some(id) = alert_id {
        let (path, alert) = (state.data_dir.alerts(), id.to_owned());
        let times = state.queries.run(move || alerts::times(&alerts::open_read_only(&path)?, &alert)).await?;
        if times.is_none_or(|t| t.mn != mn) {
            return Err(error(StatusCode::BAD_REQUEST, format!("alert_id {id}: no alert of {mn} has that id")));
        }
    }
    if let Some(old) = supersedes {
        let (path, site) = (state.data_dir.store(), mn.to_owned());
        if !state.queries.run(move || Store::open_read_only(&path)?.is_visit_of(&site, old)).await? {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("supersedes {old}: no visit of {mn} has that sequence number"),
            ));
        }
    }
    Ok(())
}

pub(crate) async fn list(
    State(state): State<AppState>,
    ApiPath(mn): ApiPath<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Response, ApiError> {
    let Some(site) = state.shared.registry.snapshot().get(&mn).cloned() else { return Err(not_found(&mn)) };
    let to_ms = params.to.map(|v| query_bound("to", &v)).transpose()?.unwrap_or_else(|| now_ms() + 1);
    let from_ms = params.from.map(|v| query_bound("from", &v)).transpose()?.unwrap_or(to_ms - DEFAULT_DAYS_MS);
    let range = range_of(from_ms, to_ms)?;
    let target_minutes = state.service.on_site_minutes(site.config.service_area);
    let (store, alerts_db) = (state.data_dir.store(), state.data_dir.alerts());
    state
        .queries
        .run_json(move || {
            let read = Store::open_read_only(&store).and_then(|s| s.visits_of(&mn, range.from_ms, range.to_ms));
            let visits = read.map_err(|e| e.to_string())?;
            // No alert has been raised yet on a new data dir: the visits stand without times.
            let alerts_conn = alerts::open_read_only(&alerts_db).ok();
            let mut list = Vec::with_capacity(visits.len());
            for (visit, superseded_by) in visits {
                let opened = match (&alerts_conn, &visit.visit.alert_id) {
                    (Some(conn), Some(id)) => alerts::times(conn, id).map_err(|e| e.to_string())?.map(|t| t.opened_ms),
                    _ => None,
                };
                let on_site = opened.map(|opened_ms| on_site(opened_ms, visit.visit.arrived_ms, target_minutes));
                list.push(json!({ "visit": visit, "superseded_by": superseded_by, "on_site": on_site }));
            }
            Ok::<_, String>(json!({ "mn": mn, "on_site_target_minutes": target_minutes, "visits": list }))
        })
        .await
}

/// From the alert to the arrival, against the target (certification spec 4.3.3.1).
fn on_site(opened_ms: i64, arrived_ms: i64, target_minutes: u32) -> Value {
    let minutes = (arrived_ms - opened_ms).max(0) / 60_000;
    json!({
        "alert_opened_at": hj212_proto::time::BeijingTime::from_unix_millis(opened_ms).to_rfc3339(),
        "minutes": minutes,
        "target_minutes": target_minutes,
        "met": minutes <= i64::from(target_minutes),
    })
}
