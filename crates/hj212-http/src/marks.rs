//! Downtime marks: `GET /api/v1/sites/{mn}/marks` and `POST /api/v1/sites/{mn}/marks` (admin
//! token). A mark is evidence: it is appended to the hash-chained archive, never edited.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hj212_archive::Verdict;
use hj212_store::{MarkRecord, MarkRequest, Store, parse_bound};
use serde::Deserialize;

use crate::AppState;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiPath, ApiQuery, NoParams, error};
use crate::rates::range_of;

pub(crate) async fn list_marks(
    State(state): State<AppState>,
    ApiPath(mn): ApiPath<String>,
    ApiQuery(NoParams {}): ApiQuery<NoParams>,
) -> Result<Response, ApiError> {
    if !state.shared.registry.snapshot().contains_key(&mn) {
        return Err(error(StatusCode::NOT_FOUND, format!("no configured site with MN {mn}")));
    }
    let path = state.data_dir.store();
    state
        .queries
        .run_json(move || {
            let marks = Store::open(&path)?.marks_of(&mn)?;
            let list: Vec<_> = marks
                .into_iter()
                .map(|(mark, superseded_by)| serde_json::json!({ "mark": mark, "superseded_by": superseded_by }))
                .collect();
            Ok::<_, hj212_store::StoreError>(list)
        })
        .await
}

/// A mark as posted: bounds as `YYYY-MM-DD` or `YYYYMMDDhhmmss` (Beijing time) or RFC 3339.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MarkBody {
    pub from: String,
    pub to: String,
    pub reason: String,
    pub evidence: String,
    pub author: String,
    #[serde(default)]
    pub supersedes: Option<u64>,
}

fn bound(name: &str, value: &str) -> Result<i64, ApiError> {
    parse_bound(value).map_err(|e| error(StatusCode::BAD_REQUEST, format!("{name}: {e}")))
}

pub(crate) async fn add_mark(
    State(state): State<AppState>,
    ApiPath(mn): ApiPath<String>,
    ApiQuery(NoParams {}): ApiQuery<NoParams>,
    JsonBody(body): JsonBody<MarkBody>,
) -> Result<Response, ApiError> {
    let stored = record(&state, mn, body).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "seq": stored.seq, "mark": stored }))).into_response())
}

/// Checks a mark and appends it to the archive (from the API or the console).
pub(crate) async fn record(state: &AppState, mn: String, body: MarkBody) -> Result<MarkRecord, ApiError> {
    if !state.shared.registry.snapshot().contains_key(&mn) {
        return Err(error(StatusCode::NOT_FOUND, format!("no configured site with MN {mn}")));
    }
    let range = range_of(bound("from", &body.from)?, bound("to", &body.to)?)?;
    for (field, value) in [("reason", &body.reason), ("evidence", &body.evidence), ("author", &body.author)] {
        if value.trim().is_empty() {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("{field} is required: a mark without it is not evidence"),
            ));
        }
    }
    if let Some(old) = body.supersedes {
        // A correction replaces a mark of the same site, never another site's.
        let (path, site) = (state.data_dir.store(), mn.clone());
        let marks = state.queries.run(move || Store::open(&path)?.marks_of(&site)).await?;
        if !marks.iter().any(|(m, _)| m.seq == old) {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("supersedes {old}: no mark of {mn} has that sequence number"),
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
    let (seq, created_ms) = crate::appended::append(state, Verdict::Mark, "the mark", &mark).await?;
    Ok(MarkRecord { seq, created_ms, mark })
}
