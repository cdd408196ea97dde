//! The followers as operators see them: per follower, how many durable records it has not
//! applied yet, for how long it has been behind, and for how long every attempt has failed.
//! Published by this task, not by the followers, so the figures keep moving while a follower
//! is stuck. It also moves the archive's retention floor: retention keeps what the slowest
//! follower has not applied.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use hj212_archive::{Archive, FollowerStatus, now_ms};
use metrics::Gauge;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub const FOLLOWER_LAG: &str = "hj212_follower_lag_records";
pub const FOLLOWER_LAG_SECONDS: &str = "hj212_follower_lag_seconds";
pub const FOLLOWER_FAILING: &str = "hj212_follower_failing_seconds";
/// A forwarding target's lag under the name its dashboards use (the same figure as
/// `hj212_follower_lag_records{follower="forward:NAME"}`).
pub const FORWARD_LAG: &str = "hj212_forward_lag_records";

/// How often the gauges are refreshed.
const INTERVAL: Duration = Duration::from_millis(500);
/// How far back the durable head is remembered: a lag in seconds beyond it reads as this.
const HISTORY: Duration = Duration::from_secs(3600);

pub fn describe() {
    metrics::describe_gauge!(
        FOLLOWER_LAG,
        "Durable archive records a follower (store, alerts, influx) has not applied yet"
    );
    metrics::describe_gauge!(
        FOLLOWER_LAG_SECONDS,
        "Since when the oldest record a follower has not applied is durable (0 when caught up; at most an hour)"
    );
    metrics::describe_gauge!(FORWARD_LAG, "Durable archive records a forwarding target has not acknowledged yet");
    metrics::describe_gauge!(
        FOLLOWER_FAILING,
        "Seconds since a follower's attempts started failing (0 while it works); it retries with backoff meanwhile"
    );
}

/// When the durable head reached which record, sampled at each refresh.
#[derive(Debug, Default)]
struct HeadHistory {
    samples: VecDeque<(u64, i64)>,
}

impl HeadHistory {
    fn record(&mut self, head: u64, now_ms: i64) {
        if self.samples.back().is_none_or(|(last, _)| *last < head) {
            self.samples.push_back((head, now_ms));
        }
        let oldest = now_ms - i64::try_from(HISTORY.as_millis()).unwrap_or(i64::MAX);
        while self.samples.len() > 1 && self.samples.front().is_some_and(|(_, at)| *at < oldest) {
            self.samples.pop_front();
        }
    }

    /// Seconds since record `position + 1` became durable (as sampled), 0 if it is not yet.
    fn lag_seconds(&self, position: u64, now_ms: i64) -> f64 {
        let since = match self.samples.iter().find(|(head, _)| *head > position) {
            Some((_, at)) => *at,
            None => return 0.0,
        };
        (now_ms - since).max(0) as f64 / 1000.0
    }
}

/// A follower as the report sees it.
#[derive(Debug)]
pub struct Reported {
    pub name: &'static str,
    pub status: Arc<FollowerStatus>,
    /// The head of what it follows when that is not this node's archive (the cluster's
    /// stream); such a follower does not hold the archive's retention.
    pub head: Option<watch::Receiver<u64>>,
}

/// One follower's gauges and the history of its head.
struct Gauges {
    status: Arc<FollowerStatus>,
    head: Option<watch::Receiver<u64>>,
    history: HeadHistory,
    lag: Gauge,
    lag_seconds: Gauge,
    failing: Gauge,
    /// `hj212_forward_lag_records` for a forwarding target.
    target_lag: Option<Gauge>,
}

/// Refreshes the gauges of `followers` and the retention floor until `shutdown`.
pub async fn report(followers: Vec<Reported>, archive: Archive, shutdown: CancellationToken) {
    let durable = archive.durable();
    let mut gauges: Vec<_> = followers
        .into_iter()
        .map(|Reported { name, status, head }| {
            let gauge = |metric: &'static str| metrics::gauge!(metric, "follower" => name);
            Gauges {
                status,
                head,
                history: HeadHistory::default(),
                lag: gauge(FOLLOWER_LAG),
                lag_seconds: gauge(FOLLOWER_LAG_SECONDS),
                failing: gauge(FOLLOWER_FAILING),
                target_lag: name
                    .strip_prefix("forward:")
                    .map(|target| metrics::gauge!(FORWARD_LAG, "target" => target)),
            }
        })
        .collect();
    loop {
        let (archived, now) = (*durable.borrow(), now_ms());
        let on_archive = gauges.iter().filter(|g| g.head.is_none());
        let slowest = on_archive.map(|g| g.status.position()).min().unwrap_or(archived);
        archive.set_retention_floor(slowest.saturating_add(1));
        for follower in &mut gauges {
            let head = follower.head.as_ref().map_or(archived, |head| *head.borrow());
            follower.history.record(head, now);
            let position = follower.status.position();
            let lag = head.saturating_sub(position) as f64;
            follower.lag.set(lag);
            if let Some(target_lag) = &follower.target_lag {
                target_lag.set(lag);
            }
            follower.lag_seconds.set(follower.history.lag_seconds(position, now));
            let failing = follower.status.failing().map_or(0.0, |f| (now - f.since_ms).max(0) as f64 / 1000.0);
            follower.failing.set(failing);
        }
        tokio::select! {
            () = tokio::time::sleep(INTERVAL) => {},
            () = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[expect(clippy::float_cmp, reason = "whole seconds from whole milliseconds are exact")]
    fn the_lag_in_seconds_is_how_long_the_oldest_unapplied_record_has_been_durable() {
        let mut history = HeadHistory::default();
        history.record(10, 1_000);
        history.record(10, 1_500);
        history.record(25, 2_000);
        history.record(40, 3_000);
        assert_eq!(history.lag_seconds(40, 3_000), 0.0, "caught up");
        assert_eq!(history.lag_seconds(30, 3_000), 0.0, "record 31 was first seen durable at 3.0 s");
        assert_eq!(history.lag_seconds(12, 3_000), 1.0, "record 13 was durable from 2.0 s");
        assert_eq!(history.lag_seconds(5, 3_000), 2.0, "record 6 was durable from the first sample");
        history.record(41, 3_600_000 + 2_500);
        assert_eq!(history.samples.len(), 2, "samples older than an hour are dropped");
    }
}
