//! The followers as operators see them: per follower, how many durable records it has not
//! applied yet and for how long every attempt has failed. Published by this task, not by the
//! followers, so the figures keep moving while a follower is stuck. It also moves the
//! archive's retention floor: retention keeps what the slowest follower has not applied.

use std::sync::Arc;
use std::time::Duration;

use hj212_archive::{Archive, FollowerStatus, now_ms};
use tokio_util::sync::CancellationToken;

pub const FOLLOWER_LAG: &str = "hj212_follower_lag_records";
pub const FOLLOWER_FAILING: &str = "hj212_follower_failing_seconds";

/// How often the gauges are refreshed.
const INTERVAL: Duration = Duration::from_millis(500);

pub fn describe() {
    metrics::describe_gauge!(
        FOLLOWER_LAG,
        "Durable archive records a follower (store, alerts, influx) has not applied yet"
    );
    metrics::describe_gauge!(
        FOLLOWER_FAILING,
        "Seconds since a follower's attempts started failing (0 while it works); it retries with backoff meanwhile"
    );
}

/// Refreshes the gauges of `followers` and the retention floor until `shutdown`.
pub async fn report(
    followers: Vec<(&'static str, Arc<FollowerStatus>)>,
    archive: Archive,
    shutdown: CancellationToken,
) {
    let durable = archive.durable();
    let gauges: Vec<_> = followers
        .into_iter()
        .map(|(name, status)| {
            (
                status,
                metrics::gauge!(FOLLOWER_LAG, "follower" => name),
                metrics::gauge!(FOLLOWER_FAILING, "follower" => name),
            )
        })
        .collect();
    loop {
        let head = *durable.borrow();
        let slowest = gauges.iter().map(|(status, _, _)| status.position()).min().unwrap_or(head);
        archive.set_retention_floor(slowest.saturating_add(1));
        for (status, lag, failing) in &gauges {
            lag.set(head.saturating_sub(status.position()) as f64);
            let since = status.failing().map_or(0.0, |f| (now_ms() - f.since_ms).max(0) as f64 / 1000.0);
            failing.set(since);
        }
        tokio::select! {
            () = tokio::time::sleep(INTERVAL) => {},
            () = shutdown.cancelled() => return,
        }
    }
}
