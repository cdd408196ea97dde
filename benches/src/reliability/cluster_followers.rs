//! The cluster trial's followers (`reliability cluster --cluster-followers`): both nodes' stores
//! and alert engines follow the stream (`store_from`, `alerts_from = "stream"`; the alerts are
//! judged in `cluster_alerts`) and a forwarding target to a third release daemon (the upstream
//! platform) runs on one node at a time (`sinks_from = "stream"`). After
//! the kills, both stores must hold the same readings, with every acknowledged frame, and the
//! upstream must have received every acknowledged frame (resends after a takeover counted).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::daemon::{Config, Daemon};
use super::{Ctx, Report, http, metric};

/// `lease_secs` of the nodes: a killed holder is replaced within this.
const LEASE_SECS: u64 = 6;

/// The upstream platform: a release daemon with the load generator's sites.
pub(super) async fn start_upstream(ctx: &Ctx, dir: &Path) -> Result<Daemon> {
    let config = Config::new(&dir.join("upstream").join("data"))?;
    std::fs::create_dir_all(dir.join("upstream"))?;
    Daemon::start(&ctx.hj212d, &dir.join("upstream"), &config).await.context("the upstream platform")
}

/// The `[cluster]` lines and the `[[forward]]` table that make a node's followers read the stream.
pub(super) fn configure(config: &mut Config, upstream: &Daemon) {
    let _ = write!(
        config.tables,
        "store_from = \"stream\"\nsinks_from = \"stream\"\nalerts_from = \"stream\"\nlease_secs = {LEASE_SECS}\n\
         [[forward]]\nname = \"upstream\"\naddress = \"{}\"\ncns = [\"2011\"]\nmax_backoff_secs = 2\n",
        upstream.addr
    );
}

/// Waits until both nodes' stores and the forwarder have caught up with the stream.
pub(super) async fn wait_caught_up(nodes: &[Config; 2], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let lags =
        ["store", "alerts", "forward:upstream"].map(|f| format!("hj212_follower_lag_records{{follower=\"{f}\"}}"));
    let caught_up = || nodes.iter().all(|n| lags.iter().all(|series| metric(&http::metrics(n.http), series) == 0.0));
    while Instant::now() < deadline {
        if caught_up() {
            tokio::time::sleep(Duration::from_millis(600)).await;
            if caught_up() {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

/// Judges the stores (after the nodes stopped) and what the upstream received (after it stopped).
pub(super) fn judge(
    report: &mut Report,
    nodes: &[Config; 2],
    upstream: &Path,
    acknowledged: &[Vec<u8>],
    caught_up: bool,
) {
    report.check(
        "both nodes' stores and alert engines and the forwarder catch up with the stream (lag 0 within 180 s)",
        caught_up,
        if caught_up { "caught up".to_owned() } else { "still behind after 180 s".to_owned() },
    );
    match (readings(&nodes[0].data_dir), readings(&nodes[1].data_dir)) {
        (Ok(a), Ok(b)) => {
            report.figure("readings in each node's store (a / b)", format!("{} / {}", a.len(), b.len()));
            report.check(
                "both nodes' stores hold the same readings",
                a == b,
                format!("{} and {} readings", a.len(), b.len()),
            );
            // Each frame is one DataTime of its site (logger::frame).
            let frames: std::collections::HashSet<_> = a.iter().map(|r| (&r.mn, r.data_time_ms)).collect();
            report.check(
                "the stores hold every frame acknowledged by either node",
                frames.len() == acknowledged.len(),
                format!("{} frames in the store, {} acknowledged", frames.len(), acknowledged.len()),
            );
        }
        (a, b) => report.check("both nodes' stores can be read", false, format!("{:?} / {:?}", a.err(), b.err())),
    }
    match received_upstream(upstream) {
        Ok(upstream) => {
            let missing =
                acknowledged.iter().filter(|frame| !key(frame).is_some_and(|k| upstream.contains_key(&k))).count();
            let again: u32 = upstream.values().map(|copies| copies.saturating_sub(1)).sum();
            report.figure("frames the upstream received again (after takeovers)", again);
            report.check(
                "every frame acknowledged by either node reached the upstream",
                missing == 0,
                format!("{} acknowledged, {missing} missing upstream", acknowledged.len()),
            );
        }
        Err(e) => report.check("the upstream's archive can be read", false, format!("{e:#}")),
    }
}

/// Every reading of every site in a node's store, without what differs between nodes.
fn readings(data_dir: &Path) -> Result<Vec<hj212_store::Reading>> {
    let store = hj212_store::Store::open_read_only(&data_dir.join("store.sqlite"))?;
    let mut all = Vec::new();
    for site in 0..crate::load::SITES {
        for mut reading in store.readings(&crate::load::mn(site))? {
            reading.archive_seq = 0;
            reading.received_ms = 0;
            all.push(reading);
        }
    }
    Ok(all)
}

/// A frame's site and QN (the upstream may receive it re-encoded).
fn key(frame: &[u8]) -> Option<(String, String)> {
    let text = String::from_utf8_lossy(frame);
    let field = |name: &str| {
        let start = text.find(name)? + name.len();
        let end = text[start..].find(';')? + start;
        Some(text[start..end].to_owned())
    };
    Some((field("MN=")?, field("QN=")?))
}

/// The upstream's received frames (accepted or resent): (MN, QN) -> copies.
fn received_upstream(data_dir: &Path) -> Result<HashMap<(String, String), u32>> {
    let mut reader = hj212_archive::Follower::new(&data_dir.join("archive"), 1);
    let mut frames: HashMap<(String, String), u32> = HashMap::new();
    loop {
        let records = reader.read(u64::MAX, 10_000)?;
        if records.is_empty() {
            return Ok(frames);
        }
        for record in records {
            let kept = matches!(record.verdict, hj212_archive::Verdict::Accepted | hj212_archive::Verdict::Duplicate);
            if let Some(key) = key(&record.data).filter(|_| record.kind == hj212_archive::Kind::Received && kept) {
                *frames.entry(key).or_default() += 1;
            }
        }
    }
}
