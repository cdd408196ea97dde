//! Operators' records (downtime marks, service visits) go into the hash-chained archive,
//! append-only like frames: evidence that is never edited (a correction is a new record).

use axum::http::StatusCode;
use hj212_archive::{ArchiveError, Kind, MAX_DATA, NewRecord, Verdict, now_ms};
use serde::Serialize;

use crate::AppState;
use crate::body::too_large;
use crate::error::{ApiError, error};

/// Appends `what` (named in errors, e.g. "the mark") as a `verdict` record; returns its
/// sequence number and time once it is durable.
pub(crate) async fn append(
    state: &AppState,
    verdict: Verdict,
    what: &str,
    value: &impl Serialize,
) -> Result<(u64, i64), ApiError> {
    let data = serde_json::to_vec(value).map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if data.len() > MAX_DATA {
        return Err(too_large(&format!("{what} ({} bytes as archived)", data.len())));
    }
    let created_ms = now_ms();
    let record =
        NewRecord { kind: Kind::Event, verdict, flags: 0, time_ms: created_ms, peer: "admin-api".into(), data };
    match state.shared.archive.append(record).await {
        Ok(seq) => Ok((seq, created_ms)),
        Err(ArchiveError::TooLarge { .. }) => Err(too_large(what)),
        Err(e) => Err(error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    }
}
