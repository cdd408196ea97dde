//! Notification latency benchmark: frame in over TCP to alert out at a local webhook, under load.
//!
//! Starts `hj212d` (release build, fsync on) with a `[[notify]]` webhook channel pointing at a
//! local HTTP receiver (test-support), then drives `--connections` loggers at `--rate`
//! real-time frames per second. Every site has an SO2 limit of 99 with the real-time
//! pre-alert on; each logger sends 0.25, 1.25, ..., 99.25 in turn, so one frame in a hundred
//! raises an `exceedance_warning` (the next one clears it). The channel is routed to raised
//! warnings only and its rate limit set out of the way; each webhook request is matched to the
//! frame that caused it (by MN and DataTime) and timed from when that frame was due.
//!
//! Run: `cargo build --release -p hj212d -p hj212-benches --bin hj212d --bin notify-latency &&
//! target/release/notify-latency [--rate 10000] [--seconds 20] [--connections 64]`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hj212_benches::latency_logger::{Pending, logger};
use hj212_benches::load::Daemon;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value = "target/release/hj212d")]
    daemon: PathBuf,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Offered real-time frames per second, all loggers together.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

fn main() {
    let args = Args::parse();
    let receiver = test_support::receiver::Receiver::start();
    let secrets = tempfile::tempdir().expect("temp dir");
    let url_file = secrets.path().join("webhook.url");
    std::fs::write(&url_file, receiver.url("/hook")).expect("url file");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let extra = format!(
            "[alerts]\nearly_warning = true\n# generated DataTimes run ahead of the clock\nclock_drift_secs = 1000000000\n\
             [[notify]]\nname = \"bench\"\nkind = \"webhook\"\nurl_file = \"{}\"\n\
             kinds = [\"exceedance_warning\"]\nstates = [\"raised\"]\nmax_per_minute = 1000000\n",
            url_file.display()
        );
        let per_site = "[[sites.limits]]\nfactor = \"a21026\"\nmax = 99.0\n";
        let daemon = Daemon::start_with(&args.daemon, args.connections + 64, &extra, per_site).await;
        let pending: Pending = Arc::default();
        let started = Instant::now();
        let stop = started + Duration::from_secs(args.seconds);
        let per_logger = args.rate as f64 / args.connections as f64;
        let loggers: Vec<_> = (0..args.connections)
            .map(|c| tokio::spawn(logger(daemon.addr, c, per_logger, stop, pending.clone())))
            .collect();
        let mut acked = 0u64;
        for logger in loggers {
            acked += logger.await.expect("logger");
        }
        let elapsed = started.elapsed().as_secs_f64();
        // Let the last alerts arrive.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let expected = pending.lock().expect("pending").len();
        let mut measured = latencies(&receiver, &pending);
        measured.sort_unstable();
        let missing = pending.lock().expect("pending").len();
        let pct = |p: usize| measured.get((measured.len().saturating_sub(1)) * p / 100).map_or(0.0, |us| *us as f64 / 1000.0);
        println!(
            "{acked} frames acknowledged in {elapsed:.1} s = {:.0} frames/s offered {}; {expected} alerts due, {} received \
             at the webhook, {missing} missing; frame-to-webhook latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            acked as f64 / elapsed,
            args.rate,
            measured.len(),
            pct(50),
            pct(99),
            pct(100)
        );
        daemon.stop();
    });
}

/// For each webhook request, the time from its frame being due to its arrival (µs); matched
/// requests are taken out of `pending`.
fn latencies(receiver: &test_support::receiver::Receiver, pending: &Pending) -> Vec<u64> {
    let mut pending = pending.lock().expect("pending");
    let mut measured = Vec::new();
    for request in receiver.accepted("/hook") {
        let Ok(message) = serde_json::from_slice::<serde_json::Value>(&request.body) else { continue };
        let key = (
            message["mn"].as_str().unwrap_or_default().to_owned(),
            message["data_time"].as_str().unwrap_or_default().to_owned(),
        );
        if let Some(due) = pending.remove(&key) {
            measured.push(u64::try_from(request.at.saturating_duration_since(due).as_micros()).unwrap_or(u64::MAX));
        }
    }
    measured
}
