//! End-to-end benchmark: the release daemon (fsync on, embedded store, Influx sink to a
//! VictoriaMetrics on loopback) fed by `hj212-sim` stations on the same machine.
//!
//! Reports acknowledged frames/s, the daemon's ack latency (p50/p99 from its histogram),
//! connections held, RSS growth per connection, archive bytes per frame, every follower's lag
//! and catch-up, and the sustained rate (frames applied by every follower ÷ time until then).
//! Run: `scripts/bench-e2e [--stations N] [--hours H] [--window W]` (writes benches/results/e2e.md).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use hj212_benches::followers::{Sampler, catch_up};
use hj212_benches::load::Daemon;
use hj212_sim::{Options, Simulation};

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value = "target/release/hj212d")]
    daemon: PathBuf,
    /// Simulated stations, one connection each.
    #[arg(long, default_value_t = 2000)]
    stations: usize,
    /// Simulated hours, sent as fast as acknowledgements allow.
    #[arg(long, default_value_t = 6)]
    hours: i64,
    /// Frames each station keeps in flight.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Also write the table to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn metric(text: &str, series: &str) -> f64 {
    hj212_benches::followers::metric(text, series).unwrap_or(0.0)
}

fn metrics(daemon: &Daemon) -> String {
    hj212_benches::followers::scrape(daemon.http)
}

/// The upper bound of the histogram bucket holding quantile `q` (Prometheus text format).
fn quantile(text: &str, name: &str, q: f64) -> Option<f64> {
    let prefix = format!("{name}_bucket{{le=\"");
    let buckets: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| {
            let (le, count) = rest.split_once("\"} ")?;
            Some((le.parse().unwrap_or(f64::INFINITY), count.trim().parse().ok()?))
        })
        .collect();
    let total = buckets.last()?.1;
    buckets.iter().find(|(_, count)| *count >= q * total).map(|(le, _)| *le)
}

fn main() {
    let args = Args::parse();
    let vm = test_support::VictoriaMetrics::start();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let options = Options {
        stations: args.stations,
        duration_ms: args.hours * 3_600_000,
        accel: 0.0,
        window: args.window,
        ack_timeout: Duration::from_secs(5),
        ..Options::default()
    };
    let sim = Simulation::new(options).expect("simulation options");
    let sites = sim.sites_toml().expect("sites as TOML");
    let extra = format!(
        "[influx]\nurl = \"{}\"\norg = \"bench\"\nbucket = \"hj212\"\ngzip = false\ndegraded_lag_records = 1000000000\n",
        vm.url()
    );
    runtime.block_on(async {
        let daemon = Daemon::start_config(&args.daemon, args.stations + 64, &extra, &sites).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_before = daemon.rss_bytes();
        let sampler = Sampler::start(daemon.http, daemon.pid());
        let started = Instant::now();
        let summary = hj212_sim::run(&sim, daemon.addr).await;
        let elapsed = started.elapsed();
        let caught = catch_up(daemon.http, Duration::from_secs(300)).await;
        let peaks = sampler.finish().await;
        let text = metrics(&daemon);
        let acked = summary.totals.acked;
        let accepted = metric(&text, r#"hj212_ingest_frames_total{outcome="accepted"}"#);
        let archive_bytes = metric(&text, "hj212_archive_written_bytes_total");
        let (peak_rss, connections) = (peaks.rss, peaks.connections);
        let whole = elapsed + caught.took;
        let sustained = if caught.complete { format!("{:.0} frames/s", acked as f64 / whole.as_secs_f64()) } else { "not reached".into() };
        let ms = |q| {
            quantile(&text, "hj212_ingest_ack_latency_seconds", q)
                .map_or("n/a".to_owned(), |s| format!("≤ {} ms", s * 1000.0))
        };
        let table = format!(
            "| measure | result |\n|---|---|\n\
             | stations (one connection each), simulated hours | {} stations, {} h ({} frames in flight each) |\n\
             | frames acknowledged | {acked} in {:.1} s = **{:.0} frames/s** (resent after a timeout: {}, failed: {}) |\n\
             | ack latency in the daemon, saturated (histogram bucket holding p50 / p99) | {} / {} |\n\
             | connections held at once | {connections} |\n\
             | daemon RSS growth under load ÷ connections (queues and caches included) | {:.1} KB ({} → {} MB) |\n\
             | archive bytes per accepted frame (frame, verdict, hash chain, replies) | {:.0} B |\n\
             | followers' lag in records (peak/at the last frame) | {} |\n\
             | every follower caught up after the last frame | {} |\n\
             | sustained: frames applied by every follower ÷ time until the last was applied | **{sustained}** |\n",
            args.stations,
            args.hours,
            args.window,
            elapsed.as_secs_f64(),
            acked as f64 / elapsed.as_secs_f64(),
            summary.totals.resent,
            summary.totals.failed,
            ms(0.5),
            ms(0.99),
            peak_rss.saturating_sub(rss_before) as f64 / 1000.0 / args.stations.max(1) as f64,
            rss_before / 1_000_000,
            peak_rss / 1_000_000,
            archive_bytes / accepted.max(1.0),
            caught.describe(&peaks),
            if caught.complete { format!("{:.1} s", caught.took.as_secs_f64()) } else { "NOT within 300 s".into() },
        );
        print!("{table}");
        if let Some(out) = &args.out {
            std::fs::write(out, &table).expect("write the table");
        }
        daemon.stop();
    });
}
