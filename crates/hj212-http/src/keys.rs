//! `POST /api/v1/sites/{mn}/key` (admin token): schedules an SM4 key rotation (HJ 212-2025
//! CN 1014). The new key goes to the logger with its next frame; the answer names the key by
//! its fingerprint only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hj212_archive::{Kind, NewRecord, Verdict, now_ms};
use hj212_server::keys::{KeyEvent, ScheduleError};

use crate::AppState;
use crate::error::{ApiError, ApiPath, ApiQuery, NoParams, error};

pub(crate) async fn rotate_key(
    State(state): State<AppState>,
    ApiPath(mn): ApiPath<String>,
    ApiQuery(NoParams {}): ApiQuery<NoParams>,
) -> Result<Response, ApiError> {
    if !state.shared.registry.snapshot().contains_key(&mn) {
        return Err(error(StatusCode::NOT_FOUND, format!("no configured site with MN {mn}")));
    }
    let event = state.shared.keys.schedule(&mn, now_ms()).map_err(|e| match e {
        ScheduleError::NotEncrypted(_) | ScheduleError::InProgress { .. } => error(StatusCode::CONFLICT, e.to_string()),
        ScheduleError::Io { .. } => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    })?;
    let KeyEvent::Scheduled { created, fingerprint, .. } = &event else {
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
