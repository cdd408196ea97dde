//! Host command round trip (issue 14): admin API POST to state `completed`, at a fixed rate.
//!
//! Starts `hj212d` (release build, fsync on, `[recovery]` off) with `--sites` sites and an
//! admin token, connects one simulated logger per site that answers every command at once
//! (9011, the 1011 upload, 9012 in one write), then POSTs `{"cn": "1011"}` at `--rate` per
//! second, round robin over the sites. A site whose previous command has not finished is
//! skipped for that tick (counted). Each command has its own kept-alive admin connection.
//!
//! Per command it measures from the instant its POST is written:
//! - `202`: the POST's answer read;
//! - `at logger`: the logger read the command frame;
//! - `9012 written`: the logger's answers written;
//! - `completed`: a `GET /api/v1/commands/{id}` answer showing `completed` read. The polls
//!   start when the 9012 is written and run every `--poll-ms`, so the figure is an upper
//!   bound, at most one poll interval plus one GET late; `completed >=` is the matching lower
//!   bound (the last poll sent that still did not show it, or the 9012 write).
//! - `daemon's own`: `finished - created` from the completed command's JSON (whole ms).
//!
//! It also prints the daemon's `hj212_command_round_trip_seconds` from /metrics.
//!
//! Run: `cargo build --release --locked -p hj212d --bin hj212d -p hj212-benches --bin command-rtt &&
//! ulimit -n 20000; target/release/command-rtt [--sites 100] [--rate 100] [--seconds 30]`

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use hj212_benches::commands::{Admin, Logger, Watch, expect_answer, watch};
use hj212_benches::followers::scrape;
use hj212_benches::load::{Daemon, PASSWORD, mn};
use serde_json::Value;
use tokio::task::JoinSet;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value = "target/release/hj212d")]
    daemon: PathBuf,
    /// Sites in the config, one logger connection each.
    #[arg(long, default_value_t = 100)]
    sites: usize,
    /// Commands offered per second, all sites together.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Interval of the state polls after the logger's 9012, in milliseconds.
    #[arg(long, default_value_t = 2)]
    poll_ms: u64,
}

const TOKEN: &str = "command-rtt-bench-token-0123456789";
/// A command not answered, or not completed after its answer, within this counts as failed.
const TIMEOUT: Duration = Duration::from_secs(15);

/// One completed command's timeline, from the instant its POST was written.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// When the POST was written, from the first tick.
    at: Duration,
    accepted: Duration,
    received: Duration,
    answered: Duration,
    completed_after: Duration,
    completed: Duration,
    /// The daemon's own `created` to `finished` (from the command's JSON, whole milliseconds).
    daemon: Duration,
    polls: u32,
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let token_dir = tempfile::tempdir().expect("temp dir");
        let token_file = token_dir.path().join("admin.token");
        std::fs::write(&token_file, TOKEN).expect("write token");
        let server = format!("admin_token_file = \"{}\"\n", token_file.display());
        let mut sites = String::new();
        for site in 0..args.sites {
            let _ = write!(sites, "[[sites]]\nmn = \"{}\"\npassword = \"{PASSWORD}\"\n", mn(site));
        }
        let extra = "[recovery]\nenabled = false\n";
        let daemon = Daemon::start_full(&args.daemon, args.sites + 64, &server, extra, &sites).await;
        let watch = watch(args.sites);
        for site in 0..args.sites {
            let logger = Logger::connect(daemon.addr, site).await.expect("logger");
            tokio::spawn(logger.serve(watch.clone()));
        }
        println!(
            "hj212d {} (pid {}): {} sites, each with a logger; offering {} commands/s for {} s, polls every {} ms",
            daemon.addr,
            daemon.pid(),
            args.sites,
            args.rate,
            args.seconds,
            args.poll_ms
        );
        let (posted, skipped, results, elapsed) = offer(&daemon, &args, &watch).await;
        report(posted, skipped, &results, elapsed);
        daemon_quantiles(&scrape(daemon.http));
        daemon.stop();
    });
}

/// Offers the commands; returns those posted, the ticks skipped, every outcome and the time
/// from the first POST until the last command finished.
async fn offer(daemon: &Daemon, args: &Args, watch: &Watch) -> (u64, u64, Vec<Result<Sample, String>>, Duration) {
    let token: Arc<str> = Arc::from(TOKEN);
    let busy: Arc<Vec<AtomicBool>> = Arc::new((0..args.sites).map(|_| AtomicBool::new(false)).collect());
    let poll = Duration::from_millis(args.poll_ms);
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    let period = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    // Burst (the default): a late tick is caught up, so the offered rate holds.
    let mut ticker = tokio::time::interval(period);
    let mut tasks = JoinSet::new();
    let (mut posted, mut skipped) = (0u64, 0u64);
    let started = Instant::now();
    for tick in 0..args.rate * args.seconds {
        ticker.tick().await;
        let site = usize::try_from(tick).unwrap_or(0) % args.sites;
        if busy[site].swap(true, Ordering::SeqCst) {
            skipped += 1;
            continue;
        }
        posted += 1;
        let (http, token, watch, busy) = (daemon.http, token.clone(), watch.clone(), busy.clone());
        tasks.spawn(async move {
            let outcome = command(http, token, site, &watch, (started, poll)).await;
            busy[site].store(false, Ordering::SeqCst);
            outcome
        });
    }
    let mut results = Vec::new();
    while let Some(outcome) = tasks.join_next().await {
        results.push(outcome.unwrap_or_else(|e| Err(format!("task: {e}"))));
    }
    (posted, skipped, results, started.elapsed())
}

/// One command: POST, wait for the logger's 9012, then poll until `completed`.
async fn command(
    http: std::net::SocketAddr,
    token: Arc<str>,
    site: usize,
    watch: &Watch,
    (started, poll): (Instant, Duration),
) -> Result<Sample, String> {
    let mut admin = Admin::connect(http, token).await.map_err(|e| format!("connect: {e}"))?;
    let answer = expect_answer(watch, site);
    let path = format!("/api/v1/sites/{}/commands", mn(site));
    let posted = Instant::now();
    let (status, body) =
        admin.request("POST", &path, Some(r#"{"cn": "1011"}"#)).await.map_err(|e| format!("POST: {e}"))?;
    let accepted = posted.elapsed();
    let view: Value = serde_json::from_slice(&body).map_err(|e| format!("POST answered {status}, not JSON: {e}"))?;
    let Some(id) = view["id"].as_str().filter(|_| status == 202) else {
        return Err(format!("POST answered {status}: {view}"));
    };
    let seen = tokio::time::timeout(TIMEOUT, answer)
        .await
        .map_err(|_| "no command answered by the logger within 15 s".to_owned())?
        .map_err(|_| "the logger is gone".to_owned())?;
    let path = format!("/api/v1/commands/{id}");
    let mut not_yet = seen.answered;
    let mut polls = 0;
    loop {
        let sent = Instant::now();
        let (status, body) = admin.request("GET", &path, None).await.map_err(|e| format!("GET: {e}"))?;
        polls += 1;
        let view: Value = serde_json::from_slice(&body).map_err(|e| format!("GET answered {status}, not JSON: {e}"))?;
        match view["state"].as_str() {
            Some("completed") => {
                return Ok(Sample {
                    at: posted - started,
                    accepted,
                    received: seen.received - posted,
                    answered: seen.answered - posted,
                    completed_after: not_yet - posted,
                    completed: posted.elapsed(),
                    daemon: daemon_span(&view),
                    polls,
                });
            }
            Some("queued" | "sent" | "accepted") => {}
            _ => return Err(format!("GET answered {status}: {view}")),
        }
        not_yet = sent;
        if sent > seen.answered + TIMEOUT {
            return Err("not completed within 15 s of the 9012".to_owned());
        }
        tokio::time::sleep_until((sent + poll).into()).await;
    }
}

/// `finished` minus `created` of a command's JSON (RFC 3339 times with milliseconds, +08:00).
fn daemon_span(view: &Value) -> Duration {
    let of_day = |key: &str| -> Option<i64> {
        let time = view[key].as_str()?.get(11..23)?;
        let (h, m, s, ms) = (time.get(0..2)?, time.get(3..5)?, time.get(6..8)?, time.get(9..12)?);
        let n = |t: &str| t.parse::<i64>().ok();
        Some(((n(h)? * 60 + n(m)?) * 60 + n(s)?) * 1000 + n(ms)?)
    };
    let (Some(created), Some(finished)) = (of_day("created"), of_day("finished")) else { return Duration::ZERO };
    // Across midnight, the finish is on the next day.
    let span = (finished - created).rem_euclid(86_400_000);
    Duration::from_millis(u64::try_from(span).unwrap_or(0))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `percent`-th percentile (nearest rank) of sorted `values`, in milliseconds.
fn percentile(values: &[Duration], percent: usize) -> f64 {
    let Some(last) = values.len().checked_sub(1) else { return 0.0 };
    values[(last * percent).div_ceil(100)].as_secs_f64() * 1000.0
}

fn quantiles(name: &str, samples: &[Sample], of: impl Fn(&Sample) -> Duration) {
    let mut values: Vec<Duration> = samples.iter().map(of).collect();
    values.sort_unstable();
    println!(
        "  {name:<13} p50 {:7.2}  p90 {:7.2}  p99 {:7.2}  max {:7.2} ms",
        percentile(&values, 50),
        percentile(&values, 90),
        percentile(&values, 99),
        percentile(&values, 100)
    );
}

fn report(posted: u64, skipped: u64, results: &[Result<Sample, String>], elapsed: Duration) {
    let samples: Vec<Sample> = results.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    #[expect(clippy::cast_precision_loss, reason = "counts")]
    let (achieved, polls) = (
        samples.len() as f64 / elapsed.as_secs_f64(),
        samples.iter().map(|s| f64::from(s.polls)).sum::<f64>() / samples.len().max(1) as f64,
    );
    println!(
        "{posted} commands posted ({skipped} ticks skipped: site still busy), {} completed, {} failed, in {:.1} s \
         (first POST to last completion) = {achieved:.1} completed/s; {polls:.1} polls per command",
        samples.len(),
        failed.len(),
        elapsed.as_secs_f64()
    );
    for (n, why) in failed.iter().enumerate().take(5) {
        println!("  failed #{n}: {why}");
    }
    println!("from the POST written, per completed command:");
    quantiles("202", &samples, |s| s.accepted);
    quantiles("at logger", &samples, |s| s.received);
    quantiles("9012 written", &samples, |s| s.answered);
    quantiles("completed >=", &samples, |s| s.completed_after);
    quantiles("completed", &samples, |s| s.completed);
    quantiles("daemon's own", &samples, |s| s.daemon);
    let mut slowest = samples;
    slowest.sort_unstable_by_key(|s| std::cmp::Reverse(s.completed));
    for s in slowest.iter().take(5) {
        println!(
            "  slow: posted at {:6.3} s: 202 {:.1}, at logger {:.1}, 9012 written {:.1}, completed {:.1} ms; daemon's own {:.0} ms",
            s.at.as_secs_f64(),
            ms(s.accepted),
            ms(s.received),
            ms(s.answered),
            ms(s.completed),
            ms(s.daemon)
        );
    }
}

/// The daemon's own `hj212_command_round_trip_seconds` (queued to completed, whole
/// milliseconds): the exporter's summary quantiles as rendered, and the mean from sum and count.
fn daemon_quantiles(page: &str) {
    const NAME: &str = "hj212_command_round_trip_seconds";
    let value = |suffix: &str| {
        page.lines().find_map(|l| l.strip_prefix(NAME)?.strip_prefix(suffix)?.trim().parse::<f64>().ok())
    };
    let mut shown = String::new();
    for q in ["0.5", "0.9", "0.99", "1"] {
        if let Some(v) = value(&format!("{{quantile=\"{q}\"}}")) {
            let _ = write!(shown, " q{q} {:.1} ms,", v * 1000.0);
        }
    }
    match (value("_sum"), value("_count")) {
        (Some(sum), Some(count)) if count > 0.0 => {
            println!("daemon {NAME}:{shown} count {count}, mean {:.2} ms", sum * 1000.0 / count);
        }
        _ => println!("daemon: no {NAME} in /metrics"),
    }
}
