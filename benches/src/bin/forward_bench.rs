//! Forwarding: a relay `hj212d` forwards accepted frames to an upstream `hj212d` (both release
//! builds, fsync on, on this machine; gap recovery off in both, so that no history requests
//! cross the link) and waits for each 9014. Two modes:
//!
//! * `throughput`: loggers (64 connections, real-time frames of 100 sites) drive the relay as
//!   fast as it acknowledges for `--seconds`; the target has `--forward-connections`,
//!   `--forward-window` and `catch_up_rate = 0` (no limit). Two figures:
//!   1. **sustained with forwarding**: the upstream is up from the start; frames acknowledged by
//!      the relay divided by the time until the upstream had acknowledged them all (the relay's
//!      every follower, the forwarder included, caught up).
//!   2. **forwarding alone**: a fresh relay forwards to a reserved loopback port where nothing
//!      listens yet (`max_backoff_secs = 1`) under the same load; once its other followers (store,
//!      alerts) have caught up, the upstream starts on that port: frames it acknowledged divided
//!      by the time from its start (when it accepts connections) until the forwarder's lag is 0.
//! * `outage` (the lag after a 1-hour outage of a 1,000-station fleet catches up in under 2
//!   minutes without breaking the catch-up rate limit): the relay has `--stations` sites and
//!   forwards 2011, 2051 and 2061 to a reserved port where no upstream listens. It is fed what
//!   each station sends in `--minutes` that ended at the last full hour (a 2011 every 30 s, a
//!   2051 every minute, a 2061 every clock hour) over `--loggers` connections, as fast as it
//!   acknowledges. Then the upstream (same sites) starts on that port and the relay's acked
//!   counter is sampled every second until the forwarder's lag is 0. Prints the catch-up time,
//!   the mean and peak per-second acked rate, the upstream's accepted frames, and PASS/FAIL for
//!   the catch-up time (`--goal-secs`), the peak (`--catch-up-rate` plus `--tolerance-percent`)
//!   and the delivery (the upstream accepted every frame). The target's `connections` and
//!   `window` are the daemon's defaults unless given; reconnects back off as configured by
//!   default (up to 30 s), which counts in the catch-up time.
//!
//! Run: `cargo build --release --locked -p hj212d -p hj212-benches --bin hj212d --bin forward-bench;
//! ulimit -n 20000; target/release/forward-bench throughput [--seconds 30] [--forward-connections 4]
//! [--forward-window 64]` or `target/release/forward-bench outage [--stations 1000] [--minutes 60]
//! [--catch-up-rate 5000]` (`--daemon PATH` for another hj212d binary).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use hj212_benches::followers::catch_up;
use hj212_benches::forward::{feed, forward_lag, ingest_counts, others_caught_up, outage_start, watch};
use hj212_benches::load::{Daemon, Run, SITES, drive, reserved_port, sites_config};

/// The forwarding target's name (`forward:bench` among the relay's followers).
const TARGET: &str = "bench";
/// Both daemons: no gap recovery sweep (its history requests would cross the forwarding link).
const NO_RECOVERY: &str = "[recovery]\nenabled = false\n";

#[derive(Debug, Parser)]
struct Cli {
    /// The hj212d binary (relay and upstream).
    #[arg(long, global = true, default_value = "target/release/hj212d")]
    daemon: PathBuf,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Frames/s forwarded under load, and by the forwarder alone after the upstream was down.
    Throughput(Throughput),
    /// A fleet's outage: catch-up time and rate against the catch-up limit.
    Outage(Outage),
}

#[derive(Debug, Args)]
struct Throughput {
    /// Logger connections to the relay.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Frames each logger keeps in flight.
    #[arg(long, default_value_t = 16)]
    window: usize,
    /// The target's connections to the upstream (the daemon's default).
    #[arg(long, default_value_t = 16)]
    forward_connections: usize,
    /// The forwarder's window (frames in flight per connection to the upstream).
    #[arg(long, default_value_t = 64)]
    forward_window: usize,
    /// Duration of the load.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// How long the relay's followers may take to catch up afterwards.
    #[arg(long, default_value_t = 600)]
    catch_up_limit: u64,
}

#[derive(Debug, Args)]
struct Outage {
    /// Stations (sites) of the fleet.
    #[arg(long, default_value_t = 1000)]
    stations: usize,
    /// Length of the outage.
    #[arg(long, default_value_t = 60)]
    minutes: u32,
    /// The target's catch_up_rate (frames/s; 0: no limit).
    #[arg(long, default_value_t = 5000)]
    catch_up_rate: u32,
    /// Connections feeding the relay (each speaks for every loggers-th station).
    #[arg(long, default_value_t = 100)]
    loggers: usize,
    /// Frames each feeding connection keeps in flight.
    #[arg(long, default_value_t = 16)]
    window: usize,
    /// The target's connections (default: the daemon's).
    #[arg(long)]
    forward_connections: Option<usize>,
    /// The target's window (default: the daemon's).
    #[arg(long)]
    forward_window: Option<usize>,
    /// The goal: caught up within this many seconds of the upstream's start.
    #[arg(long, default_value_t = 120)]
    goal_secs: u64,
    /// The peak per-second rate may exceed catch_up_rate by this much.
    #[arg(long, default_value_t = 5.0)]
    tolerance_percent: f64,
    /// Give up waiting for a catch-up after this long.
    #[arg(long, default_value_t = 600)]
    catch_up_limit: u64,
}

/// The relay's `[[forward]]` table (and [`NO_RECOVERY`]), with `keys` added.
fn forward_table(address: SocketAddr, cns: &str, keys: &str) -> String {
    format!("{NO_RECOVERY}[[forward]]\nname = \"{TARGET}\"\naddress = \"{address}\"\ncns = [{cns}]\n{keys}")
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    match &cli.mode {
        Mode::Throughput(args) => throughput(&cli.daemon, args).await,
        Mode::Outage(args) => outage(&cli.daemon, args).await,
    }
}

async fn throughput(daemon: &Path, args: &Throughput) {
    let max = args.connections + 100;
    let limit = Duration::from_secs(args.catch_up_limit);
    let keys = format!(
        "connections = {}\nwindow = {}\ncatch_up_rate = 0\nmax_backoff_secs = 1\n",
        args.forward_connections, args.forward_window
    );
    let run = Run {
        connections: args.connections,
        window: args.window,
        duration: Duration::from_secs(args.seconds),
        rate: None,
        first_second: 0,
    };

    // 1. The upstream is up from the start.
    let upstream = Daemon::start_with(daemon, max, NO_RECOVERY, "").await;
    let relay = Daemon::start_with(daemon, max, &forward_table(upstream.addr, "\"2011\"", &keys), "").await;
    println!("relay {} -> upstream {}", relay.addr, upstream.addr);
    let outcome = drive(relay.addr, &run).await;
    println!("relay acknowledged: {}", outcome.summary());
    // The forwarder alone, then every follower of the relay (its store and alert engine too).
    let forwarded = watch(relay.http, TARGET, Duration::from_millis(100), limit).await.took;
    let forward_total = outcome.elapsed + forwarded;
    println!(
        "forwarder caught up {:.1} s after the load: {} frames/s forwarded and acknowledged by the upstream",
        forwarded.as_secs_f64(),
        u128::from(outcome.acked) * 1000 / forward_total.as_millis().max(1)
    );
    let caught = catch_up(relay.http, limit).await;
    let lag_at_end = caught.at_end.get(&format!("forward:{TARGET}")).copied().unwrap_or(0);
    let total = forward_total + caught.took;
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
    let (accepted, duplicates) = ingest_counts(upstream.http);
    println!("upstream: {accepted} accepted, {duplicates} duplicates");
    relay.stop();
    upstream.stop();

    // 2. The forwarder alone: the upstream comes up once the relay holds the whole load.
    let port = reserved_port();
    let relay = Daemon::start_with(daemon, max, &forward_table(port, "\"2011\"", &keys), "").await;
    println!("relay {} -> upstream {port} (down until the relay's other followers caught up)", relay.addr);
    let outcome = drive(relay.addr, &run).await;
    println!("relay acknowledged: {}", outcome.summary());
    let others = others_caught_up(relay.http, limit).await;
    let lag = forward_lag(relay.http, TARGET).unwrap_or(0);
    println!("relay's other followers caught up {}; forwarder lag {lag} records", after(others));
    let upstream = Daemon::start_full_at(daemon, max, port, "", NO_RECOVERY, &sites_config(SITES, "")).await;
    let trace = watch(relay.http, TARGET, Duration::from_millis(200), limit).await;
    let took = trace.took.as_secs_f64();
    println!(
        "forwarding alone: {:.0} frames acknowledged by the upstream in {took:.1} s from its start (first after {:.1} s) \
         = {:.0} frames/s{}",
        trace.acked(),
        trace.first_ack().unwrap_or(took),
        trace.acked() / took.max(1e-3),
        if trace.complete { "" } else { " (NOT caught up within the limit)" }
    );
    let (accepted, duplicates) = ingest_counts(upstream.http);
    println!("upstream: {accepted} accepted, {duplicates} duplicates");
    relay.stop();
    upstream.stop();
}

async fn outage(daemon: &Path, args: &Outage) {
    let limit = Duration::from_secs(args.catch_up_limit);
    let port = reserved_port();
    let sites = sites_config(args.stations, "");
    let mut keys = format!("catch_up_rate = {}\n", args.catch_up_rate);
    if let Some(connections) = args.forward_connections {
        let _ = writeln!(keys, "connections = {connections}");
    }
    if let Some(window) = args.forward_window {
        let _ = writeln!(keys, "window = {window}");
    }
    let forward = forward_table(port, "\"2011\", \"2051\", \"2061\"", &keys);
    let relay = Daemon::start_config(daemon, args.loggers + 100, &forward, &sites).await;
    println!("relay {} ({} sites) -> upstream {port} (down: the outage)", relay.addr, args.stations);

    let fed =
        feed(relay.addr, args.stations, args.loggers, args.window, outage_start(args.minutes), args.minutes).await;
    let (accepted, duplicates) = ingest_counts(relay.http);
    println!(
        "outage: {} stations x {} min = {} frames ({} per station), relay acknowledged {} in {:.1} s ({:.0} frames/s); \
         relay accepted {accepted}, duplicates {duplicates}",
        args.stations,
        args.minutes,
        fed.frames,
        fed.frames / args.stations.max(1) as u64,
        fed.acked,
        fed.elapsed.as_secs_f64(),
        fed.acked as f64 / fed.elapsed.as_secs_f64().max(1e-3)
    );
    let others = others_caught_up(relay.http, limit).await;
    let lag = forward_lag(relay.http, TARGET).unwrap_or(0);
    println!("relay's other followers caught up {}; forwarder lag {lag} records", after(others));

    let upstream = Daemon::start_full_at(daemon, 200, port, "", NO_RECOVERY, &sites).await;
    println!("upstream up on {port}: sampling the relay every second");
    let trace = watch(relay.http, TARGET, Duration::from_secs(1), limit).await;
    let (acked, took) = (trace.acked(), trace.took.as_secs_f64());
    let first = trace.first_ack().unwrap_or(took);
    let rates = trace.rates(false);
    let peak = rates.iter().copied().fold(0.0, f64::max);
    let peak_sent = trace.rates(true).into_iter().fold(0.0, f64::max);
    println!(
        "catch-up: {acked:.0} frames acknowledged by the upstream in {took:.1} s from its start (first after {first:.1} s){}",
        if trace.complete { "" } else { " (NOT caught up within the limit)" }
    );
    println!(
        "acked frames/s: mean {:.0} from the upstream's start, {:.0} from the first acknowledgement; peak {peak:.0} \
         in one second (sent: peak {peak_sent:.0}); catch_up_rate {}",
        acked / took.max(1e-3),
        acked / (took - first).max(1e-3),
        args.catch_up_rate
    );
    let per_second: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
    println!("acked per second: {}", per_second.join(" "));
    let (accepted, duplicates) = ingest_counts(upstream.http);
    println!("upstream: {accepted} accepted, {duplicates} duplicates");

    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    let in_time = trace.complete && trace.took < Duration::from_secs(args.goal_secs);
    println!("{} caught up in {took:.1} s (goal < {} s)", verdict(in_time), args.goal_secs);
    if args.catch_up_rate == 0 {
        println!("---- catch_up_rate = 0 (no limit): peak {peak:.0} frames/s not judged");
    } else {
        let allowed = f64::from(args.catch_up_rate) * (1.0 + args.tolerance_percent / 100.0);
        println!(
            "{} peak {peak:.0} acked frames/s <= {allowed:.0} (catch_up_rate {} + {} %)",
            verdict(peak <= allowed),
            args.catch_up_rate,
            args.tolerance_percent
        );
    }
    let delivered = (accepted - fed.frames as f64).abs() < 0.5;
    println!("{} upstream accepted {accepted} of the outage's {} frames", verdict(delivered), fed.frames);
    relay.stop();
    upstream.stop();
}

/// "3.2 s later", or that the limit passed first.
fn after(took: Option<Duration>) -> String {
    took.map_or_else(|| "NOT within the limit".to_owned(), |t| format!("{:.1} s later", t.as_secs_f64()))
}
