//! Forwarding throughput: a relay `hj212d` forwards every accepted real-time frame to an
//! upstream `hj212d` (both release builds, fsync on, on this machine) and waits for each 9014.
//! Loggers drive the relay as fast as it acknowledges; the figure is **sustained**: frames
//! acknowledged by the relay divided by the time until the upstream had acknowledged them all
//! (the relay's every follower, the forwarder included, caught up).
//!
//! Run: `cargo build --release --locked -p hj212d -p hj212-benches --bin hj212d --bin forward-bench;
//! ulimit -n 20000; target/release/forward-bench [--seconds 30] [--window 64]`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use hj212_benches::followers::{catch_up, lags, metric, scrape};
use hj212_benches::load::{Daemon, Run, drive};

#[derive(Debug, Parser)]
struct Args {
    /// The hj212d binary (relay and upstream).
    #[arg(long, default_value = "target/release/hj212d")]
    daemon: PathBuf,
    /// Logger connections to the relay.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Frames each logger keeps in flight.
    #[arg(long, default_value_t = 16)]
    window: usize,
    /// The forwarder's window (frames sent to the upstream and not yet acknowledged).
    #[arg(long, default_value_t = 64)]
    forward_window: usize,
    /// Duration of the load.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// How long the relay's followers may take to catch up afterwards.
    #[arg(long, default_value_t = 600)]
    catch_up_limit: u64,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let max = args.connections + 100;
    let upstream = Daemon::start(&args.daemon, max).await;
    let forward = format!(
        "[[forward]]\nname = \"bench\"\naddress = \"{}\"\ncns = [\"2011\"]\nwindow = {}\n",
        upstream.addr, args.forward_window
    );
    let relay = Daemon::start_with(&args.daemon, max, &forward, "").await;
    println!("relay {} -> upstream {}", relay.addr, upstream.addr);
    let run = Run {
        connections: args.connections,
        window: args.window,
        duration: Duration::from_secs(args.seconds),
        rate: None,
        first_second: 0,
    };
    let outcome = drive(relay.addr, &run).await;
    println!("relay acknowledged: {}", outcome.summary());
    // The forwarder alone, then every follower of the relay (its store and alert engine too).
    let forwarded = forwarder_caught_up(relay.http, Duration::from_secs(args.catch_up_limit)).await;
    let forward_total = outcome.elapsed + forwarded;
    println!(
        "forwarder caught up {:.1} s after the load: {} frames/s forwarded and acknowledged by the upstream",
        forwarded.as_secs_f64(),
        u128::from(outcome.acked) * 1000 / forward_total.as_millis().max(1)
    );
    let caught = catch_up(relay.http, Duration::from_secs(args.catch_up_limit)).await;
    let lag_at_end = caught.at_end.get("forward:bench").copied().unwrap_or(0);
    let total = outcome.elapsed + forwarded + caught.took;
    let sustained = u128::from(outcome.acked) * 1000 / total.as_millis().max(1);
    println!(
        "forwarder lag after it: {lag_at_end} records; every other relay follower caught up {:.1} s later{}",
        caught.took.as_secs_f64(),
        if caught.complete { "" } else { " (NOT complete within the limit)" }
    );
    println!(
        "sustained with forwarding: {} frames acknowledged by the upstream in {:.1} s = {sustained} frames/s",
        outcome.acked,
        total.as_secs_f64()
    );
    let page = scrape(upstream.http);
    let accepted = metric(&page, "hj212_ingest_frames_total{outcome=\"accepted\"}").unwrap_or(0.0);
    let duplicates = metric(&page, "hj212_ingest_frames_total{outcome=\"duplicate\"}").unwrap_or(0.0);
    println!("upstream: {accepted} accepted, {duplicates} duplicates");
    relay.stop();
    upstream.stop();
}

/// How long until the forwarder's lag is 0 (or `limit`).
async fn forwarder_caught_up(http: std::net::SocketAddr, limit: Duration) -> Duration {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if lags(&scrape(http)).get("forward:bench") == Some(&0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}
