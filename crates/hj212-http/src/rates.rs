//! Transmission-rate evidence and downtime marks.
//!
//! `GET /api/v1/sites/{mn}/rate?from=&to=[&basis=]`, `GET /api/v1/rates?from=&to=` and
//! `POST /api/v1/sites/{mn}/marks` (bearer token). Figures come from the same
//! `Store::site_rate` that `hj212-audit rate` uses.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hj212_archive::{Kind, NewRecord, Verdict, now_ms};
use hj212_compliance::{Basis, Range};
use hj212_store::{MarkRequest, Store, parse_bound, rules_for};
use serde::Deserialize;

use crate::AppState;

/// An error answer: a status and a message naming the problem.
pub(crate) struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

/// Runs blocking store or database work off the async workers; a failure is a 500 naming it.
pub(crate) async fn blocking<T, E>(work: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let internal = |message: String| error(StatusCode::INTERNAL_SERVER_ERROR, message);
    tokio::task::spawn_blocking(work).await.map_err(|e| internal(e.to_string()))?.map_err(|e| internal(e.to_string()))
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError(status, message.into())
}

#[derive(Debug, Deserialize)]
pub(crate) struct RateQuery {
    from: String,
    to: String,
    basis: Option<String>,
    /// `/api/v1/rates?details=true`: every site's full evidence (with the lists), slower.
    details: Option<bool>,
}

fn range_of(query: &RateQuery) -> Result<Range, ApiError> {
    let from_ms = parse_bound(&query.from).map_err(|e| error(StatusCode::BAD_REQUEST, format!("from: {e}")))?;
    let to_ms = parse_bound(&query.to).map_err(|e| error(StatusCode::BAD_REQUEST, format!("to: {e}")))?;
    if to_ms <= from_ms {
        return Err(error(StatusCode::BAD_REQUEST, "to must be after from"));
    }
    Ok(Range { from_ms, to_ms })
}

fn rules_with_basis(site: &hj212_config::Site, basis: Option<&str>) -> Result<hj212_compliance::Rules, ApiError> {
    let mut rules = rules_for(site);
    rules.basis = match basis {
        None => rules.basis,
        Some("hour") => Basis::Hour,
        Some("day") => Basis::Day,
        Some("minute") => Basis::Minute { interval: site.rate.minute_interval },
        Some(other) => {
            return Err(error(StatusCode::BAD_REQUEST, format!("basis {other:?} is not hour, day or minute")));
        }
    };
    Ok(rules)
}

pub(crate) async fn site_rate(
    State(state): State<AppState>,
    Path(mn): Path<String>,
    Query(query): Query<RateQuery>,
) -> Result<Response, ApiError> {
    let Some(entry) = state.shared.registry.snapshot().get(&mn).cloned() else {
        return Err(error(StatusCode::NOT_FOUND, format!("no configured site with MN {mn}")));
    };
    let range = range_of(&query)?;
    let rules = rules_with_basis(&entry.config, query.basis.as_deref())?;
    let path = state.store_path.clone();
    let json = blocking(move || {
        let store = Store::open(&path)?;
        let mut evidence = store.site_rate(&entry.config, &rules, range, now_ms())?;
        let archive = path.parent().map(|dir| dir.join("archive")).unwrap_or_default();
        evidence.attach_archive_hashes(&archive)?;
        Ok::<_, hj212_store::StoreError>(evidence.to_json(&entry.mn))
    })
    .await?;
    Ok(Json(json).into_response())
}

pub(crate) async fn all_rates(
    State(state): State<AppState>,
    Query(query): Query<RateQuery>,
) -> Result<Response, ApiError> {
    let range = range_of(&query)?;
    let mut sites: Vec<_> = state.shared.registry.snapshot().values().cloned().collect();
    sites.sort_by(|a, b| a.mn.cmp(&b.mn));
    let mut plan = Vec::with_capacity(sites.len());
    for entry in sites {
        let rules = rules_with_basis(&entry.config, query.basis.as_deref())?;
        plan.push((entry, rules));
    }
    let path = state.store_path.clone();
    let details = query.details.unwrap_or(false);
    let all = blocking(move || {
        let store = Store::open(&path)?;
        plan.iter()
            .map(|(entry, rules)| {
                if details {
                    let mut evidence = store.site_rate(&entry.config, rules, range, now_ms())?;
                    let archive = path.parent().map(|dir| dir.join("archive")).unwrap_or_default();
                    evidence.attach_archive_hashes(&archive)?;
                    return Ok(evidence.to_json(&entry.mn));
                }
                // The ledger answers whole-day hourly and daily ranges; the details the rest.
                let (report, source) = match store.site_summary(&entry.config, rules, range, now_ms())? {
                    Some(report) => (report, "ledger"),
                    None => (store.site_rate(&entry.config, rules, range, now_ms())?.report, "details"),
                };
                Ok(hj212_store::summary_json(&entry.mn, rules, &entry.config.factors, range, &report, source))
            })
            .collect::<Result<Vec<_>, hj212_store::StoreError>>()
    })
    .await?;
    Ok(Json(all).into_response())
}

pub(crate) async fn list_marks(State(state): State<AppState>, Path(mn): Path<String>) -> Result<Response, ApiError> {
    if !state.shared.registry.snapshot().contains_key(&mn) {
        return Err(error(StatusCode::NOT_FOUND, format!("no configured site with MN {mn}")));
    }
    let path = state.store_path.clone();
    let marks = blocking(move || Store::open(&path)?.marks_of(&mn)).await?;
    let list: Vec<_> = marks
        .into_iter()
        .map(|(mark, superseded_by)| serde_json::json!({ "mark": mark, "superseded_by": superseded_by }))
        .collect();
    Ok(Json(list).into_response())
}

/// A mark as posted: bounds as `YYYY-MM-DD` or `YYYYMMDDhhmmss`, Beijing time.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MarkBody {
    from: String,
    to: String,
    reason: String,
    evidence: String,
    author: String,
    #[serde(default)]
    supersedes: Option<u64>,
}

pub(crate) fn authorised(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &state.admin_token else {
        return Err(error(StatusCode::FORBIDDEN, "mutating endpoints are off: set server.admin_token_file"));
    };
    let given = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    // Compared without an early exit, like site passwords.
    let matches = given.is_some_and(|g| {
        g.len() == expected.len() && g.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    });
    if matches { Ok(()) } else { Err(error(StatusCode::UNAUTHORIZED, "a valid bearer token is required")) }
}

pub(crate) async fn add_mark(
    State(state): State<AppState>,
    Path(mn): Path<String>,
    headers: HeaderMap,
    Json(body): Json<MarkBody>,
) -> Result<Response, ApiError> {
    authorised(&state, &headers)?;
    if !state.shared.registry.snapshot().contains_key(&mn) {
        return Err(error(StatusCode::NOT_FOUND, format!("no configured site with MN {mn}")));
    }
    let range = range_of(&RateQuery { from: body.from, to: body.to, basis: None, details: None })?;
    if let Some(old) = body.supersedes {
        // A correction replaces a mark of the same site, never another site's.
        let (path, site) = (state.store_path.clone(), mn.clone());
        let marks = blocking(move || Store::open(&path)?.marks_of(&site)).await?;
        if !marks.iter().any(|(m, _)| m.seq == old) {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("supersedes {old}: no mark of {mn} has that sequence number"),
            ));
        }
    }
    for (field, value) in [("reason", &body.reason), ("evidence", &body.evidence), ("author", &body.author)] {
        if value.trim().is_empty() {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("{field} is required: a mark without it is not evidence"),
            ));
        }
    }
    let mark = MarkRequest {
        mn,
        from_ms: range.from_ms,
        to_ms: range.to_ms,
        reason: body.reason,
        evidence: body.evidence,
        author: body.author,
        supersedes: body.supersedes,
    };
    let record = NewRecord {
        kind: Kind::Event,
        verdict: Verdict::Mark,
        flags: 0,
        time_ms: now_ms(),
        peer: "admin-api".into(),
        data: serde_json::to_vec(&mark).unwrap_or_default(),
    };
    // Marks are evidence: they go into the hash-chained archive, append-only, like frames.
    match state.shared.archive.append(record).await {
        Ok(seq) => Ok((StatusCode::CREATED, Json(serde_json::json!({ "seq": seq, "mark": mark }))).into_response()),
        Err(e) => Err(error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    }
}

/// `POST /api/v1/sites/{mn}/key` (bearer token): schedules an SM4 key rotation (HJ 212-2025
/// CN 1014). The new key goes to the logger with its next frame; the answer names the key by
/// its fingerprint only.
pub(crate) async fn rotate_key(
    State(state): State<AppState>,
    Path(mn): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorised(&state, &headers)?;
    if !state.shared.registry.snapshot().contains_key(&mn) {
        return Err(error(StatusCode::NOT_FOUND, format!("no configured site with MN {mn}")));
    }
    let event = state.shared.keys.schedule(&mn, now_ms()).map_err(|e| match e {
        hj212_server::keys::ScheduleError::NotEncrypted(_) | hj212_server::keys::ScheduleError::InProgress { .. } => {
            error(StatusCode::CONFLICT, e.to_string())
        }
        hj212_server::keys::ScheduleError::Io { .. } => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    })?;
    let hj212_server::keys::KeyEvent::Scheduled { created, fingerprint, .. } = &event else {
        return Err(error(StatusCode::INTERNAL_SERVER_ERROR, "unexpected key event"));
    };
    let body = serde_json::json!({ "mn": mn, "sk_create_time": created, "key": fingerprint });
    let record = NewRecord {
        kind: Kind::Event,
        verdict: Verdict::Info,
        flags: 0,
        time_ms: now_ms(),
        peer: "admin-api".into(),
        data: event.to_string().into_bytes(),
    };
    // Key changes are evidence: recorded in the hash-chained archive (never the key itself).
    if let Err(e) = state.shared.archive.append(record).await {
        // Not recorded, so not done: the key is never sent.
        state.shared.keys.cancel(&mn);
        return Err(error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()));
    }
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}
