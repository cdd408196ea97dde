//! End-to-end load benchmark: starts `hj212d` (release build, fsync on, embedded store, the
//! alert engine with limits on every site, optionally the Influx sink to a VictoriaMetrics on
//! loopback and the cluster publisher to a NATS JetStream cluster on loopback) and drives it with data-logger connections that wait for every 9014.
//!
//! It reports **sustained** throughput: frames acknowledged divided by the time until every
//! follower (store, alert engine, sink) had applied them all, with each follower's peak lag,
//! its lag when the load stopped, the catch-up time, the daemon's peak memory and the CPU time it
//! spent per frame over the load and the catch-up.
//!
//! Run: `scripts/bench-load` (builds, raises the open-file limit, runs every part), or
//! `target/release/load --daemon target/release/hj212d [--connections N] [--seconds S] [--influx] [--cluster [publish|stream] [--nodes N]] ...`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use hj212_benches::followers::{Peaks, Sampler, catch_up_all, named};
use hj212_benches::load::{Daemon, Outcome, Run, cpu_seconds_of, drive, hold_idle};

#[derive(Debug, Parser)]
struct Args {
    /// The hj212d binary to benchmark.
    #[arg(long, default_value = "target/release/hj212d")]
    daemon: PathBuf,
    /// Concurrent logger connections for the throughput and latency runs.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Frames each connection keeps in flight (sent, not yet acknowledged).
    #[arg(long, default_value_t = 16)]
    window: usize,
    /// Duration of the sustained run, as fast as acknowledgements allow (0 skips it).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// How long the followers may take to catch up after it before the run counts as not sustained.
    #[arg(long, default_value_t = 300)]
    catch_up_limit: u64,
    /// Duration of the paced latency run (0 skips it).
    #[arg(long, default_value_t = 10)]
    latency_seconds: u64,
    /// Offered rate (frames/s) of the latency run; default half the sustained rate.
    #[arg(long)]
    rate: Option<u64>,
    /// Idle connections for the memory run; 0 skips it.
    #[arg(long, default_value_t = 10_000)]
    idle: usize,
    /// Also run the Influx sink, writing to a VictoriaMetrics started on loopback.
    #[arg(long)]
    influx: bool,
    /// Also publish to a NATS JetStream stream ([cluster], R3): three nats-servers started on
    /// loopback share the machine. `--cluster stream`: the store and the alert engine follow
    /// the stream (`store_from`, `alerts_from`), so every record goes out to the stream and back.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "publish")]
    cluster: Option<ClusterRun>,
    /// With `--cluster`: this many nodes (`bench-1`, `bench-2`, ...) publish to the stream, and
    /// the connections are split among them (each logger sends to one node). The sustained run
    /// ends when every follower of every node has applied every node's frames; the paced and
    /// idle runs use the first node.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=8))]
    nodes: u16,
    /// Leave sealed archive segments plain (`[archive] compress = false`), to compare with the default.
    #[arg(long)]
    archive_plain: bool,
}

/// What the cluster run's followers read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ClusterRun {
    /// The records are published; every follower reads the archive.
    Publish,
    /// The store and the alert engine follow the stream.
    Stream,
}

/// Limits on every site, far above the values sent: the alert engine checks each reading.
const SITE_LIMITS: &str = "[[sites.limits]]\nfactor = \"a21026\"\nmax = 1000.0\n\
                           [[sites.limits]]\nfactor = \"a21002\"\nmax = 1000.0\n";

/// Seconds of DataTime between the sustained runs' first frames on two nodes, far more than a
/// connection sends in a run: no node's frame is another's (which the stream would keep once).
const NODE_SPACING_SECONDS: u64 = 3_000_000;

fn main() {
    let args = Args::parse();
    if args.nodes > 1 && args.cluster.is_none() {
        eprintln!("load: --nodes {} needs --cluster: nodes share records only through the stream", args.nodes);
        std::process::exit(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let vm = args.influx.then(test_support::VictoriaMetrics::start);
    let mut extra = vm.as_ref().map_or_else(String::new, |vm| {
        format!("[influx]\nurl = \"{}\"\norg = \"bench\"\nbucket = \"hj212\"\ngzip = false\n", vm.url())
    });
    if args.archive_plain {
        extra.push_str("[archive]\ncompress = false\n");
    }
    let nats = args.cluster.map(|_| {
        let nats = test_support::nats::NatsCluster::start(3);
        nats.wait_healthy(Duration::from_secs(30));
        nats
    });
    let cluster_table = |node: &str| {
        let Some(nats) = &nats else { return String::new() };
        let urls: Vec<String> = nats.urls().iter().map(|url| format!("\"{url}\"")).collect();
        let mut table = format!("[cluster]\nnats_url = [{}]\nnode = \"{node}\"\n", urls.join(", "));
        if args.cluster == Some(ClusterRun::Stream) {
            table.push_str("store_from = \"stream\"\nalerts_from = \"stream\"\n");
        }
        table
    };
    runtime.block_on(async {
        let max_connections = args.connections.max(args.idle) + 64;
        let mut daemons = Vec::new();
        for node in 1..=args.nodes {
            let name = if args.nodes == 1 { "bench".to_owned() } else { format!("bench-{node}") };
            let config = format!("{extra}{}", cluster_table(&name));
            daemons.push(Daemon::start_with(&args.daemon, max_connections, &config, SITE_LIMITS).await);
        }
        let mut followers = match args.cluster {
            Some(ClusterRun::Stream) => vec!["store and alert engine (from the stream)"],
            _ => vec!["store", "alert engine"],
        };
        followers.extend(args.influx.then_some("Influx sink"));
        followers.extend(args.cluster.map(|_| "cluster publisher (JetStream R3 on loopback)"));
        let followers = followers.join(", ");
        for daemon in &daemons {
            println!("hj212d {} (pid {}), followers: {followers}", daemon.addr, daemon.pid());
        }
        let nats_pids = nats.as_ref().map(test_support::nats::NatsCluster::pids).unwrap_or_default();
        let mut rate = args.rate.unwrap_or(0);
        if args.seconds > 0 {
            let sustained = sustained(&daemons, &args, &nats_pids).await;
            // The paced run loads the first node only: half of its share of the sustained rate.
            rate = args.rate.unwrap_or(sustained / (2 * u64::from(args.nodes)));
        }
        let daemon = &daemons[0];
        if rate > 0 && args.latency_seconds > 0 {
            let run = Run {
                connections: args.connections,
                window: args.window,
                duration: Duration::from_secs(args.latency_seconds),
                rate: Some(rate),
                first_second: 10_000_000,
            };
            let paced = drive(daemon.addr, &run).await;
            println!("at {rate} frames/s offered: {}", paced.summary());
        }
        if args.idle > 0 {
            idle_memory(daemon, daemon.addr, args.idle).await;
        }
        daemons.into_iter().for_each(Daemon::stop);
    });
}

/// The sustained run on every node at once; returns its sustained rate (0 when the followers
/// did not catch up). `nats` are the NATS servers' pids, whose CPU time is reported beside.
async fn sustained(daemons: &[Daemon], args: &Args, nats: &[u32]) -> u64 {
    let samplers: Vec<Sampler> = daemons.iter().map(|d| Sampler::start(d.http, d.pid())).collect();
    let daemon_pids: Vec<u32> = daemons.iter().map(Daemon::pid).collect();
    let cpu_of = |pids: &[u32]| pids.iter().map(|&pid| cpu_seconds_of(pid)).sum::<f64>();
    let cpu_before = (cpu_of(&daemon_pids), cpu_of(nats));
    let acked = drive_all(daemons, args).await;
    let https: Vec<SocketAddr> = daemons.iter().map(|d| d.http).collect();
    let confirm = args.cluster.is_some();
    let caught = catch_up_all(&https, Duration::from_secs(args.catch_up_limit), confirm).await;
    let cpu = cpu_of(&daemon_pids) - cpu_before.0;
    let nats_cpu = cpu_of(nats) - cpu_before.1;
    let mut node_peaks = Vec::new();
    for sampler in samplers {
        node_peaks.push(sampler.finish().await);
    }
    let node_lags: Vec<_> = node_peaks.iter().map(|p| p.lags.clone()).collect();
    let peaks = Peaks { lags: named(&node_lags), ..Peaks::default() };
    println!("acknowledged: {}", acked.summary());
    println!(
        "followers (lag in records, peak/at the end of the load): {}; caught up {} after the load",
        caught.describe(&peaks),
        if caught.complete { format!("{:.1} s", caught.took.as_secs_f64()) } else { "NOT within the limit".into() },
    );
    let whole = acked.elapsed + caught.took;
    let rate = if caught.complete {
        u64::try_from(u128::from(acked.acked) * 1000 / whole.as_millis().max(1)).unwrap_or(u64::MAX)
    } else {
        0
    };
    let rss: Vec<String> = node_peaks.iter().map(|p| (p.rss >> 20).to_string()).collect();
    println!(
        "sustained: {} frames applied by every follower in {:.1} s = {rate} frames/s; daemon peak RSS {} MiB",
        acked.acked,
        whole.as_secs_f64(),
        rss.join(" and ")
    );
    // What the daemons spent per frame, ingest and every follower: steadier than the rates when
    // other work shares the machine.
    #[expect(clippy::cast_precision_loss, reason = "a frame count")]
    let per_frame_us = |seconds: f64| seconds * 1e6 / acked.acked.max(1) as f64;
    let who = if daemons.len() > 1 { "daemons'" } else { "daemon" };
    println!("{who} CPU over load and catch-up: {cpu:.1} s = {:.2} µs per frame", per_frame_us(cpu));
    if !nats.is_empty() {
        println!("NATS servers' CPU over the same time: {nats_cpu:.1} s = {:.2} µs per frame", per_frame_us(nats_cpu));
    }
    rate
}

/// Drives every node at once with its share of the connections, each node's frames dated apart.
async fn drive_all(daemons: &[Daemon], args: &Args) -> Outcome {
    let connections = (args.connections / daemons.len()).max(1);
    let drives: Vec<_> = (0u64..)
        .zip(daemons)
        .map(|(node, daemon)| {
            let run = Run {
                connections,
                window: args.window,
                duration: Duration::from_secs(args.seconds),
                rate: None,
                first_second: node * NODE_SPACING_SECONDS,
            };
            let addr = daemon.addr;
            tokio::spawn(async move { drive(addr, &run).await })
        })
        .collect();
    let mut all = Outcome::default();
    for drive in drives {
        let outcome = drive.await.expect("a node's loggers");
        all.acked += outcome.acked;
        all.elapsed = all.elapsed.max(outcome.elapsed);
        all.latencies.extend(outcome.latencies);
    }
    all.latencies.sort_unstable();
    all
}

async fn idle_memory(daemon: &Daemon, addr: SocketAddr, count: usize) {
    let before = daemon.rss_bytes();
    let started = Instant::now();
    let held = hold_idle(addr, count).await;
    // Let the daemon settle (buffers released, allocator caches trimmed by use).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = daemon.rss_bytes();
    let per = after.saturating_sub(before) / held.len().max(1) as u64;
    println!(
        "idle: {} connections (each authenticated by one frame) opened in {:.1} s; daemon RSS {} -> {} KiB: {per} bytes per connection",
        held.len(),
        started.elapsed().as_secs_f64(),
        before / 1024,
        after / 1024
    );
    drop(held);
}
