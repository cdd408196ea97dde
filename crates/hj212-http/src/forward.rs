//! `GET /api/v1/forward`: each forwarding target with its position, lag and whether it is
//! failing (connection refused, no 9014 in time), from the follower runtime's status.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::AppState;
use crate::error::{ApiQuery, NoParams};

#[derive(Serialize)]
pub(crate) struct TargetView {
    name: String,
    address: String,
    /// The last archive record whose frame the upstream acknowledged (or that needed no answer).
    position: u64,
    /// Durable archive records not forwarded yet.
    lag_records: u64,
    /// Every attempt failing since (RFC 3339 Beijing time) with the last error; null while it works.
    failing_since: Option<String>,
    last_error: Option<String>,
}

pub(crate) async fn targets(
    State(state): State<AppState>,
    ApiQuery(NoParams {}): ApiQuery<NoParams>,
) -> Json<Vec<TargetView>> {
    let durable = *state.shared.archive.durable().borrow();
    let views = state
        .forward
        .iter()
        .map(|(name, address)| {
            let follower = format!("forward:{name}");
            let status = state.readiness.followers.iter().find(|f| f.name == follower).map(|f| f.status.clone());
            let position = status.as_ref().map_or(0, |s| s.position());
            let failing = status.and_then(|s| s.failing());
            TargetView {
                name: name.clone(),
                address: address.clone(),
                position,
                lag_records: durable.saturating_sub(position),
                failing_since: failing.as_ref().map(|f| crate::beijing_time(f.since_ms)),
                last_error: failing.map(|f| f.error),
            }
        })
        .collect();
    Json(views)
}
