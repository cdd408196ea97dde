//! What a load leaves behind: each follower's lag and the daemon's memory, sampled from its
//! `/metrics` and `/proc` while the load runs, and the followers' catch-up after it. A run is
//! sustained only when every follower has caught up: acknowledged frames are not enough.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::load::rss_of;

const LAG_SERIES: &str = "hj212_follower_lag_records{follower=\"";

/// The value of `series` (name and labels exactly as exposed) in a Prometheus text page.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

/// Every follower's lag in archive records, by name.
pub fn lags(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix(LAG_SERIES))
        .filter_map(|rest| {
            let (name, value) = rest.split_once("\"} ")?;
            let value: f64 = value.trim().parse().ok()?;
            #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a gauge of record counts")]
            Some((name.to_owned(), value as u64))
        })
        .collect()
}

/// The daemon's `/metrics` page ("" when it cannot be read: a busy daemon is sampled again).
pub fn scrape(http: SocketAddr) -> String {
    use std::io::{Read as _, Write as _};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&http, Duration::from_secs(5)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut page = String::new();
    let asked = stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n");
    if asked.is_err() || stream.read_to_string(&mut page).is_err() {
        return String::new();
    }
    page.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default()
}

/// The most seen while a load ran.
#[derive(Debug, Default, Clone)]
pub struct Peaks {
    pub rss: u64,
    pub connections: u64,
    /// Each follower's largest lag, in archive records.
    pub lags: BTreeMap<String, u64>,
}

/// Samples the daemon every 200 ms until finished.
#[derive(Debug)]
pub struct Sampler {
    done: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Peaks>,
}

impl Sampler {
    pub fn start(http: SocketAddr, pid: u32) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let stop = done.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut peaks = Peaks::default();
            while !stop.load(Ordering::Relaxed) {
                let text = scrape(http);
                #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a gauge of a count")]
                let connections = metric(&text, "hj212_connections_active").unwrap_or(0.0) as u64;
                peaks.connections = peaks.connections.max(connections);
                for (name, lag) in lags(&text) {
                    let peak = peaks.lags.entry(name).or_default();
                    *peak = (*peak).max(lag);
                }
                peaks.rss = peaks.rss.max(rss_of(pid));
                std::thread::sleep(Duration::from_millis(200));
            }
            peaks
        });
        Self { done, task }
    }

    /// # Panics
    /// If the sampling thread panicked.
    pub async fn finish(self) -> Peaks {
        self.done.store(true, Ordering::Relaxed);
        self.task.await.expect("sampler")
    }
}

/// The followers after the last frame was acknowledged.
#[derive(Debug, Clone)]
pub struct CatchUp {
    /// Each follower's lag when the load stopped.
    pub at_end: BTreeMap<String, u64>,
    /// From the end of the load until every follower's lag was 0 (gauges move every 0.5 s).
    pub took: Duration,
    /// Every follower reached lag 0 within the limit.
    pub complete: bool,
}

/// Waits (at most `limit`) until every follower has applied everything acknowledged.
pub async fn catch_up(http: SocketAddr, limit: Duration) -> CatchUp {
    catch_up_all(&[http], limit, false).await
}

/// As [`catch_up`] for the nodes of a cluster, whose followers are named `node/follower`
/// (1-based) when there are several. A stream reader learns of records from the stream's head,
/// which trails what the nodes publish, and the gauges move every 0.5 s: so with `confirm`
/// every lag of every node must read 0 twice, 600 ms apart (`took` ends at the first of the two).
pub async fn catch_up_all(nodes: &[SocketAddr], limit: Duration, confirm: bool) -> CatchUp {
    let started = Instant::now();
    let at_end = node_lags(nodes);
    let polls_needed = if confirm { 2 } else { 1 };
    let mut zero_since = None;
    let mut zero_polls = 0;
    loop {
        let now = node_lags(nodes);
        let caught_up = now.iter().all(|lags| !lags.is_empty() && lags.values().all(|&lag| lag == 0));
        zero_polls = if caught_up { zero_polls + 1 } else { 0 };
        if zero_polls == 1 {
            zero_since = Some(started.elapsed());
        }
        if zero_polls >= polls_needed || started.elapsed() >= limit {
            let complete = zero_polls >= polls_needed;
            let took = if complete { zero_since.unwrap_or_default() } else { started.elapsed() };
            return CatchUp { at_end: named(&at_end), took, complete };
        }
        tokio::time::sleep(Duration::from_millis(if zero_polls > 0 { 600 } else { 100 })).await;
    }
}

/// Each node's followers' lags, in the order of `nodes`.
fn node_lags(nodes: &[SocketAddr]) -> Vec<BTreeMap<String, u64>> {
    nodes.iter().map(|http| lags(&scrape(*http))).collect()
}

/// One map of every node's followers: `follower` for a single node, `node/follower` otherwise.
pub fn named(per_node: &[BTreeMap<String, u64>]) -> BTreeMap<String, u64> {
    if let [only] = per_node {
        return only.clone();
    }
    let prefixed = per_node
        .iter()
        .enumerate()
        .flat_map(|(i, lags)| lags.iter().map(move |(name, &lag)| (format!("{}/{name}", i + 1), lag)));
    prefixed.collect()
}

impl CatchUp {
    /// `follower peak/at end` for each follower, e.g. `store 120000/80000`.
    pub fn describe(&self, peaks: &Peaks) -> String {
        let mut names: Vec<&String> = self.at_end.keys().chain(peaks.lags.keys()).collect();
        names.sort();
        names.dedup();
        names
            .iter()
            .map(|name| {
                let (peak, end) = (peaks.lags.get(*name).copied(), self.at_end.get(*name).copied());
                format!("{name} {}/{}", peak.unwrap_or(0), end.unwrap_or(0))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lags_are_read_by_follower() {
        let text = "# TYPE hj212_follower_lag_records gauge\n\
                    hj212_follower_lag_records{follower=\"alerts\"} 12\n\
                    hj212_follower_lag_records{follower=\"store\"} 0\n\
                    hj212_follower_lag_seconds{follower=\"store\"} 3\n";
        let lags = lags(text);
        assert_eq!(lags.into_iter().collect::<Vec<_>>(), [("alerts".to_owned(), 12), ("store".to_owned(), 0)]);
        assert_eq!(metric(text, "hj212_follower_lag_seconds{follower=\"store\"}"), Some(3.0));
        assert_eq!(metric(text, "hj212_missing"), None);
    }
}
