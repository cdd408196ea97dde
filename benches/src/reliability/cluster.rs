//! Trial: a cluster (issue 19). Three Debian `nats-server` processes as a JetStream cluster
//! (R3) and two release daemons with `[cluster]`; multi-centre loggers send every frame to
//! both nodes, some loggers to one node only. The nodes are SIGKILLed and restarted in turn
//! (one of them kept down for a while), the stream's leader is SIGKILLed and restarted; then
//! every frame either node acknowledged must be in the stream, once.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt as _;
use hj212_sim::rng::Rng;
use test_support::nats::NatsCluster;

use super::daemon::{Config, Daemon};
use super::logger::{self, Control, Spec, Tally};
use super::{Ctx, Report, http, metric};
use super::{cluster_alerts, cluster_followers};

#[derive(Debug, Clone)]
pub struct Options {
    /// SIGKILLs of a node (alternating), each followed by a restart.
    pub node_kills: usize,
    /// SIGKILLs of the stream's leader, spread over the node kills.
    pub leader_kills: usize,
    /// Multi-centre loggers (each frame to both nodes); as many again send to one node only.
    pub connections: usize,
    pub window: usize,
    /// Frames per second offered by all loggers together.
    pub rate: f64,
    /// Longest run between two kills, seconds.
    pub cycle_secs: f64,
    /// `[cluster] ack_after`: "local" or "cluster".
    pub ack_after: String,
    /// Stores and a forwarding target that follow the stream (see `cluster_followers`).
    pub followers: bool,
}

/// Where each logger sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Both,
    OnlyA,
    OnlyB,
}

/// Runs the trial.
///
/// # Errors
/// If the trial cannot be set up; what the nodes do wrong is a failed check instead.
pub async fn run(ctx: &Ctx, o: &Options) -> Result<Report> {
    let dir = ctx.dir("cluster")?;
    let mut nats = NatsCluster::start(3);
    nats.wait_healthy(Duration::from_secs(30));
    let mut nodes = [node_config(&dir, "a", &nats, &o.ack_after)?, node_config(&dir, "b", &nats, &o.ack_after)?];
    let (mut upstream, mut alerts) = (None, None);
    if o.followers {
        let platform = cluster_followers::start_upstream(ctx, &dir).await?;
        let broker = cluster_alerts::Alerts::start();
        for node in &mut nodes {
            cluster_followers::configure(node, &platform);
            broker.configure(node);
        }
        (upstream, alerts) = (Some(platform), Some(broker));
    }
    let mut daemons = [start(ctx, &dir, "a", &nodes[0]).await?, start(ctx, &dir, "b", &nodes[1]).await?];

    let base = logger::base_ms();
    let control = Arc::new(Control::default());
    let per_logger = o.rate / (o.connections * 2).max(1) as f64;
    // Connection numbers: 0..n multi-centre (one logger to each node, the same frames),
    // n..2n to one node only (alternately a and b).
    let mut routes = Vec::new();
    let mut tasks = Vec::new();
    for c in 0..o.connections * 2 {
        let route = if c < o.connections {
            Route::Both
        } else if c % 2 == 0 {
            Route::OnlyA
        } else {
            Route::OnlyB
        };
        for (index, node) in nodes.iter().enumerate() {
            let sends = matches!((route, index), (Route::Both, _) | (Route::OnlyA, 0) | (Route::OnlyB, 1));
            if sends {
                let spec = Spec {
                    addr: node.addr,
                    c,
                    base,
                    window: o.window,
                    per_second: Some(per_logger),
                    ack_timeout: Some(Duration::from_secs(10)),
                    bind: None,
                };
                routes.push((c, route));
                tasks.push(tokio::spawn(logger::run(spec, control.clone())));
            }
        }
    }

    let started = Instant::now();
    let kills = kill_cycles(ctx, &dir, &nodes, &mut daemons, &mut nats, o).await;
    let load_secs = started.elapsed().as_secs_f64();
    control.stop_new.store(true, Ordering::Relaxed);
    let drain = Instant::now();
    while drain.elapsed() < Duration::from_secs(60) && tasks.iter().any(|t| !t.is_finished()) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    control.give_up.store(true, Ordering::Relaxed);
    let tallies = logger::join_all(tasks).await;
    let caught_up = wait_published(&nodes, Duration::from_secs(120)).await;
    let stream = read_stream(&nats.urls()).await?;
    let duplicates: f64 = nodes.iter().map(|n| metric(&http::metrics(n.http), "hj212_cluster_duplicates_total")).sum();
    let followers_caught_up = match &upstream {
        Some(_) => cluster_followers::wait_caught_up(&nodes, Duration::from_secs(180)).await,
        None => true,
    };
    if let Some(alerts) = &alerts {
        alerts.wait_delivered(&nodes, Duration::from_secs(60));
    }
    for daemon in &mut daemons {
        let _ = daemon.terminate(Duration::from_secs(60));
    }
    if let Some(upstream) = &mut upstream {
        let _ = upstream.terminate(Duration::from_secs(60));
    }

    let mut report = Report::new(
        "cluster",
        format!(
            "two release daemons with [cluster] (ack_after = \"{}\") and a three-server JetStream cluster (R3) on \
             loopback; {} multi-centre loggers send every frame to both nodes and {} send to one node only ({} frames \
             in flight each, {} frames/s offered in all, unacknowledged frames resent); {} SIGKILLs of a node \
             (alternating, each restarted; one kept down 10 s) and {} SIGKILLs of the stream's leader (restarted 5 s \
             later); then every acknowledged frame looked up in the stream",
            o.ack_after, o.connections, o.connections, o.window, o.rate, kills.nodes, kills.leaders
        ),
    );
    report.figure("load time (kill cycles)", format!("{load_secs:.0} s"));
    judge(&mut report, base, &routes, &tallies, &stream, &kills, caught_up, duplicates);
    if let Some(upstream) = &upstream {
        let mut acknowledged: Vec<(usize, u64)> =
            routes.iter().zip(&tallies).flat_map(|((c, _), tally)| tally.acked.iter().map(|n| (*c, *n))).collect();
        acknowledged.sort_unstable();
        acknowledged.dedup();
        let frames: Vec<Vec<u8>> = acknowledged.iter().map(|&(c, n)| logger::frame(base, c, n).1).collect();
        cluster_followers::judge(&mut report, &nodes, &upstream.data_dir, &frames, followers_caught_up);
    }
    if let Some(alerts) = &alerts {
        alerts.judge(&mut report, &nodes);
    }
    Ok(report)
}

fn node_config(dir: &Path, name: &str, nats: &NatsCluster, ack_after: &str) -> Result<Config> {
    let mut config = Config::new(&dir.join(name).join("data"))?;
    // Resends are budgeted like refused traffic; every one is kept here.
    config.limits.extend(["refused_bytes_per_peer = 1073741824".into(), "refused_bytes_total = 1073741824".into()]);
    let urls: Vec<String> = nats.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let _ = write!(
        config.tables,
        "[cluster]\nnats_url = [{}]\nnode = \"{name}\"\nack_after = \"{ack_after}\"\nmax_backoff_secs = 2\n",
        urls.join(", ")
    );
    std::fs::create_dir_all(dir.join(name))?;
    Ok(config)
}

async fn start(ctx: &Ctx, dir: &Path, name: &str, config: &Config) -> Result<Daemon> {
    Daemon::start(&ctx.hj212d, &dir.join(name), config).await.with_context(|| format!("node {name}"))
}

/// What the kill cycles did.
#[derive(Debug, Default)]
struct Kills {
    nodes: usize,
    leaders: usize,
    /// Starts that failed, leaders not found.
    failures: Vec<String>,
}

async fn kill_cycles(
    ctx: &Ctx,
    dir: &Path,
    nodes: &[Config; 2],
    daemons: &mut [Daemon; 2],
    nats: &mut NatsCluster,
    o: &Options,
) -> Kills {
    let mut rng = Rng::new(ctx.seed);
    let mut kills = Kills::default();
    let leader_every = (o.node_kills / o.leader_kills.max(1)).max(1);
    for i in 0..o.node_kills {
        let run = 0.5 + rng.unit() * (o.cycle_secs - 0.5).max(0.0);
        tokio::time::sleep(Duration::from_secs_f64(run)).await;
        let index = i % 2;
        if daemons[index].kill().is_ok() {
            kills.nodes += 1;
        }
        if i == o.node_kills / 2 {
            // One node stays down a while: its single-homed loggers wait, the others go on.
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        let name = if index == 0 { "a" } else { "b" };
        match start(ctx, dir, name, &nodes[index]).await {
            Ok(daemon) => daemons[index] = daemon,
            Err(e) => kills.failures.push(format!("restart of {name}: {e:#}")),
        }
        if kills.leaders < o.leader_kills && i % leader_every == leader_every - 1 {
            match stream_leader(&nats.urls()).await.and_then(|leader| nats.index_of(&leader).context("unknown leader"))
            {
                Ok(server) => {
                    nats.kill(server);
                    kills.leaders += 1;
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    nats.restart(server);
                }
                Err(e) => kills.failures.push(format!("leader kill: {e:#}")),
            }
        }
    }
    kills
}

/// The server name of the stream's leader.
async fn stream_leader(urls: &[String]) -> Result<String> {
    let client = async_nats::connect(urls.to_vec()).await?;
    let mut stream = jetstream::new(client).get_stream("HJ212").await?;
    let info = stream.info().await?;
    info.cluster.as_ref().and_then(|c| c.leader.clone()).context("the stream has no leader")
}

/// Waits until both nodes' publishers have nothing left to publish; true if they did in time.
async fn wait_published(nodes: &[Config; 2], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let series = "hj212_follower_lag_records{follower=\"cluster\"}";
    while Instant::now() < deadline {
        // The gauge is published every 0.5 s: two readings of 0 in a row.
        let lag = |n: &Config| metric(&http::metrics(n.http), series);
        if nodes.iter().all(|n| lag(n) == 0.0) {
            tokio::time::sleep(Duration::from_millis(600)).await;
            if nodes.iter().all(|n| lag(n) == 0.0) {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// The stream's frames from sites: frame bytes -> copies.
async fn read_stream(urls: &[String]) -> Result<HashMap<Vec<u8>, u32>> {
    let client = async_nats::connect(urls.to_vec()).await?;
    let mut stream = jetstream::new(client).get_stream("HJ212").await?;
    let total = stream.info().await?.state.messages;
    let reader = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: "hj212.records.>".to_owned(),
            ..consumer::pull::OrderedConfig::default()
        })
        .await?;
    let mut messages = reader.messages().await?;
    let mut frames: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut seen = 0u64;
    while seen < total {
        let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(5), messages.next()).await else { break };
        let message = message?;
        seen += 1;
        let received =
            message.headers.as_ref().and_then(|h| h.get("Hj212-Kind")).is_some_and(|k| k.as_str() == "received");
        if received {
            *frames.entry(message.payload.to_vec()).or_default() += 1;
        }
        if message.info().is_ok_and(|info| info.pending == 0) {
            break;
        }
    }
    Ok(frames)
}

#[expect(clippy::too_many_arguments, reason = "the trial's findings, judged together")]
fn judge(
    report: &mut Report,
    base: i64,
    routes: &[(usize, Route)],
    tallies: &[Tally],
    stream: &HashMap<Vec<u8>, u32>,
    kills: &Kills,
    caught_up: bool,
    duplicates: f64,
) {
    // Every frame some node acknowledged, once, with how many nodes acknowledged it.
    let mut acknowledged: HashMap<(usize, u64), u32> = HashMap::new();
    for ((c, _), tally) in routes.iter().zip(tallies) {
        for &n in &tally.acked {
            *acknowledged.entry((*c, n)).or_default() += 1;
        }
    }
    let by_both = acknowledged.values().filter(|&&nodes| nodes == 2).count();
    let (mut missing, mut twice) = (Vec::new(), 0);
    for &(c, n) in acknowledged.keys() {
        match stream.get(&logger::frame(base, c, n).1).copied().unwrap_or(0) {
            0 => missing.push((c, n)),
            1 => {}
            _ => twice += 1,
        }
    }
    let sent: u64 = tallies.iter().map(|t| t.sent).sum();
    report.figure("node SIGKILLs / leader SIGKILLs", format!("{} / {}", kills.nodes, kills.leaders));
    report.figure("frames sent by all loggers (first sendings, both copies counted)", sent);
    report.figure("distinct frames acknowledged / by both nodes", format!("{} / {by_both}", acknowledged.len()));
    report.figure("frames in the stream", stream.len());
    report.figure("copies the stream dropped as duplicates (both nodes' counters since their last start)", duplicates);
    report.check(
        "both nodes' publishers catch up after the kills (lag 0 within 120 s)",
        caught_up,
        if caught_up { "caught up".to_owned() } else { "still behind after 120 s".to_owned() },
    );
    report.check(
        "every frame acknowledged by either node is in the stream",
        missing.is_empty(),
        format!(
            "{} acknowledged, {} missing{}",
            acknowledged.len(),
            missing.len(),
            missing.first().map(|(c, n)| format!(" (first: logger {c} frame {n})")).unwrap_or_default()
        ),
    );
    report.check(
        "each frame is in the stream once",
        twice == 0,
        format!("{twice} acknowledged frames stored more than once"),
    );
    report.check(
        "every node restart and leader kill went as planned",
        kills.failures.is_empty(),
        kills.failures.first().cloned().unwrap_or_else(|| "no failures".to_owned()),
    );
}
