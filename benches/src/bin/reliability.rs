//! The reliability trials of hj212d: the release daemon under SIGKILLs, tampering, hostile
//! TCP, a full disk, admin API abuse, broken configs and a simulated week, each reporting
//! what it tried, its counts, and PASS or FAIL against what the daemon promises.
//!
//! Run: `scripts/reliability` (builds, raises the open-file limit, runs every trial) or
//! `scripts/reliability kill-loop tamper` (some). Exits 1 if any promise failed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use hj212_benches::reliability::{self, Ctx, Report, timed};

const TRIALS: [&str; 8] = ["kill-loop", "tamper", "hostile", "full-disk", "admin", "configs", "week", "cluster"];

#[derive(Debug, Parser)]
#[command(about = "Reliability trials of hj212d (issue 12)")]
struct Args {
    /// Trials to run (default: all): kill-loop, tamper, hostile, full-disk, admin, configs, week, cluster.
    trials: Vec<String>,
    #[arg(long, default_value = "target/release/hj212d")]
    daemon: PathBuf,
    #[arg(long, default_value = "target/release/hj212-audit")]
    audit: PathBuf,
    /// Where trials keep their data (default: a new folder in the temp dir, removed at the end).
    #[arg(long)]
    work: Option<PathBuf>,
    /// Also write the markdown to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seed of every random choice (kill moments, edited bytes).
    #[arg(long, default_value_t = 12)]
    seed: u64,
    /// kill-loop: SIGKILLs.
    #[arg(long, default_value_t = 140)]
    kills: usize,
    /// kill-loop and admin: logger connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// kill-loop: frames in flight per connection.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// kill-loop: frames per second offered by all connections.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// kill-loop: longest run before a kill, seconds.
    #[arg(long, default_value_t = 3.0)]
    cycle_secs: f64,
    /// tamper: random one-byte edits.
    #[arg(long, default_value_t = 200)]
    edits: usize,
    /// hostile: seconds of random-bytes flood.
    #[arg(long, default_value_t = 10)]
    flood_secs: u64,
    /// hostile: connections holding one byte of a frame (slowloris).
    #[arg(long, default_value_t = 4000)]
    slowloris: usize,
    /// hostile: silent connections from 127.0.0.2 and up.
    #[arg(long, default_value_t = 6000)]
    silent: usize,
    /// admin: concurrent maximum-range rate queries.
    #[arg(long, default_value_t = 16)]
    queries: usize,
    /// admin: http.max_concurrent_queries for the daemon (default: the daemon's default).
    #[arg(long)]
    query_slots: Option<usize>,
    /// admin: seconds of each ingest measurement.
    #[arg(long, default_value_t = 10)]
    admin_secs: u64,
    /// week: stations.
    #[arg(long, default_value_t = 50)]
    stations: usize,
    /// week: simulated days.
    #[arg(long, default_value_t = 7)]
    days: i64,
    /// week: simulated seconds per real second.
    #[arg(long, default_value_t = 3600.0)]
    accel: f64,
    /// cluster: SIGKILLs of a node.
    #[arg(long, default_value_t = 20)]
    node_kills: usize,
    /// cluster: SIGKILLs of the stream's leader.
    #[arg(long, default_value_t = 5)]
    leader_kills: usize,
    /// cluster: `[cluster] ack_after` of both nodes ("local" or "cluster").
    #[arg(long, default_value = "local")]
    cluster_ack_after: String,
    /// cluster: both nodes' stores follow the stream, and a forwarding target to a third
    /// daemon runs on one node at a time; checked after the kills.
    #[arg(long)]
    cluster_followers: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let unknown: Vec<&String> = args.trials.iter().filter(|t| !TRIALS.contains(&t.as_str())).collect();
    if !unknown.is_empty() {
        eprintln!("unknown trial {unknown:?}; trials: {}", TRIALS.join(", "));
        return ExitCode::from(64);
    }
    let selected: Vec<&str> =
        TRIALS.into_iter().filter(|t| args.trials.is_empty() || args.trials.iter().any(|a| a == t)).collect();
    let (work, _temp) = match &args.work {
        Some(dir) => (dir.clone(), None),
        None => match tempfile::Builder::new().prefix("hj212-reliability-").tempdir() {
            Ok(temp) => (temp.path().to_path_buf(), Some(temp)),
            Err(e) => {
                eprintln!("cannot make a work folder: {e}");
                return ExitCode::from(73);
            }
        },
    };
    // Absolute: some trials run the binaries from other working directories.
    let absolute = |path: &PathBuf| std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
    let ctx = Ctx { hj212d: absolute(&args.daemon), audit: absolute(&args.audit), work, seed: args.seed };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(70);
        }
    };
    let mut reports = Vec::new();
    for trial in selected {
        eprintln!("== {trial}");
        let report = runtime.block_on(run_trial(&ctx, &args, trial));
        eprintln!("{}", reliability::markdown(std::slice::from_ref(&report)));
        reports.push(report);
    }
    let text = format!(
        "Reliability trials of {} ({} cores), seed {}\n\n{}",
        args.daemon.display(),
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        args.seed,
        reliability::markdown(&reports)
    );
    println!("{text}");
    if let Some(out) = &args.out
        && let Err(e) = std::fs::write(out, &text)
    {
        eprintln!("cannot write {}: {e}", out.display());
    }
    if reports.iter().all(Report::passed) { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

async fn run_trial(ctx: &Ctx, args: &Args, trial: &str) -> Report {
    use reliability::{admin, cluster, configs, full_disk, hostile, kill_loop, tamper, week};
    match trial {
        "kill-loop" => {
            let options = kill_loop::Options {
                kills: args.kills,
                connections: args.connections,
                window: args.window,
                rate: args.rate,
                cycle_secs: args.cycle_secs,
            };
            timed("kill-loop", kill_loop::run(ctx, &options)).await
        }
        "tamper" => timed("tamper", tamper::run(ctx, args.edits)).await,
        "hostile" => {
            let options =
                hostile::Options { flood_secs: args.flood_secs, slowloris: args.slowloris, silent: args.silent };
            timed("hostile", hostile::run(ctx, &options)).await
        }
        "full-disk" => timed("full-disk", full_disk::run(ctx)).await,
        "admin" => {
            let options = admin::Options {
                queries: args.queries,
                query_slots: args.query_slots,
                connections: args.connections,
                secs: args.admin_secs,
            };
            timed("admin", admin::run(ctx, &options)).await
        }
        "configs" => timed("configs", async { configs::run(ctx) }).await,
        "cluster" => {
            let options = cluster::Options {
                node_kills: args.node_kills,
                leader_kills: args.leader_kills,
                connections: args.connections,
                window: args.window,
                rate: args.rate,
                cycle_secs: args.cycle_secs,
                ack_after: args.cluster_ack_after.clone(),
                followers: args.cluster_followers,
            };
            Box::pin(timed("cluster", cluster::run(ctx, &options))).await
        }
        _ => {
            let options = week::Options { stations: args.stations, days: args.days, accel: args.accel };
            timed("week", week::run(ctx, &options)).await
        }
    }
}
