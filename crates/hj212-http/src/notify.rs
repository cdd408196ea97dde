//! `GET /api/v1/notify`: each `[[notify]]` channel with its outbox position, what waits for
//! it and whether it is failing. Never its URL, token or password (they are secrets).

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::error::{ApiQuery, NoParams};
use crate::{AppState, beijing};

#[derive(Serialize)]
pub(crate) struct ChannelView {
    name: String,
    kind: &'static str,
    /// The last attempt succeeded (or none was needed yet).
    up: bool,
    /// The outbox position recorded for the channel: every message up to it is delivered,
    /// skipped or given up.
    position: u64,
    /// Outbox messages after it.
    pending: u64,
    /// Non-critical messages held for the end of quiet hours.
    held: usize,
    /// Every attempt failing since (RFC 3339 Beijing time) with the last error; null while it works.
    failing_since: Option<String>,
    last_error: Option<String>,
}

pub(crate) async fn channels(
    State(state): State<AppState>,
    ApiQuery(NoParams {}): ApiQuery<NoParams>,
) -> Json<Vec<ChannelView>> {
    let views = state
        .readiness
        .notify
        .iter()
        .map(|channel| {
            let status = channel.borrow();
            ChannelView {
                name: status.name.clone(),
                kind: status.kind,
                up: status.up,
                position: status.position,
                pending: status.pending,
                held: status.held,
                failing_since: beijing(status.failing_since_ms),
                last_error: status.last_error.clone(),
            }
        })
        .collect();
    Json(views)
}
