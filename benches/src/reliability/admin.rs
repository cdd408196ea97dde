//! Trial 5: the admin API against absurd and maximum ranges, unknown parameters, oversized
//! bodies and half-sent requests, and many concurrent maximum-range rate queries while a
//! steady ingest load runs: ingest's ack latency with and without them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use hj212_proto::time::BeijingTime;

use super::daemon::{Config, Daemon, describe_exit};
use super::http;
use super::logger::{self, Control, Spec};
use super::{Ctx, Report, metric, percentile_ms};
use crate::load::mn;

const TOKEN: &str = "reliability-trial-admin-token";
const DAY_MS: i64 = 86_400_000;
/// The largest body the API takes (the archive's largest record, docs/config.md).
const MAX_BODY: usize = 1_048_297;

#[derive(Debug, Clone)]
pub struct Options {
    pub queries: usize,
    /// `http.max_concurrent_queries` for the daemon (`None`: its default).
    pub query_slots: Option<usize>,
    pub connections: usize,
    pub secs: u64,
}

/// A Beijing date `days` days before today's (as `YYYY-MM-DD`).
fn date(days_back: i64) -> String {
    let now = hj212_archive::now_ms();
    let text = BeijingTime::from_unix_millis(now - days_back * DAY_MS).to_seconds_string();
    format!("{}-{}-{}", &text[..4], &text[4..6], &text[6..8])
}

/// (what is asked, method and path, body, expected status).
fn bounds() -> Vec<(&'static str, String, usize, u16)> {
    let site = mn(0);
    let (today, year, year1, month, month1) = (date(0), date(366), date(367), date(31), date(32));
    vec![
        ("a range of 366 days (the maximum)", format!("GET /api/v1/rates?from={year}&to={today}"), 0, 200),
        ("367 days", format!("GET /api/v1/rates?from={year1}&to={today}"), 0, 400),
        ("year 0001 to 9999", "GET /api/v1/rates?from=0001-01-01&to=9999-12-31".into(), 0, 400),
        ("year 0000", "GET /api/v1/rates?from=0000-01-01&to=0000-02-01".into(), 0, 400),
        ("from after to", format!("GET /api/v1/rates?from={today}&to={year}"), 0, 400),
        ("a date that is not one", "GET /api/v1/rates?from=2026-02-30&to=2026-03-01".into(), 0, 400),
        ("one site, 366 days, full evidence", format!("GET /api/v1/sites/{site}/rate?from={year}&to={today}"), 0, 200),
        (
            "minute basis, 31 days",
            format!("GET /api/v1/sites/{site}/rate?from={month}&to={today}&basis=minute"),
            0,
            200,
        ),
        (
            "minute basis, 32 days",
            format!("GET /api/v1/sites/{site}/rate?from={month1}&to={today}&basis=minute"),
            0,
            400,
        ),
        ("an unknown parameter", format!("GET /api/v1/rates?from={month}&to={today}&colour=red"), 0, 400),
        ("limit beyond 10,000", format!("GET /api/v1/rates?from={month}&to={today}&limit=10001"), 0, 400),
        ("limit of 20 digits", format!("GET /api/v1/rates?from={month}&to={today}&limit=99999999999999999999"), 0, 400),
        (
            "details for more than 20 sites",
            format!("GET /api/v1/rates?from={month}&to={today}&details=true&limit=21"),
            0,
            400,
        ),
        ("alerts limit beyond 10,000", "GET /api/v1/alerts?limit=10001".into(), 0, 400),
        ("an unknown route", "GET /api/v1/nothing-here".into(), 0, 404),
        ("a mark body one byte over the limit", format!("POST /api/v1/sites/{site}/marks"), MAX_BODY + 1, 413),
        ("a mark body of 16 MiB", format!("POST /api/v1/sites/{site}/marks"), 16 << 20, 413),
    ]
}

/// Runs the trial.
///
/// # Errors
/// If the daemon cannot be started.
pub async fn run(ctx: &Ctx, o: &Options) -> Result<Report> {
    let dir = ctx.dir("admin")?;
    std::fs::write(dir.join("admin.token"), TOKEN)?;
    let mut config = Config::new(&dir.join("data"))?;
    config.server.push("admin_token_file = \"admin.token\"".into());
    if let Some(slots) = o.query_slots {
        config.http_table.push(format!("max_concurrent_queries = {slots}"));
    }
    let mut daemon = Daemon::start(&ctx.hj212d, &dir, &config).await?;
    let mut report = Report::new(
        "admin",
        format!(
            "the admin API with the {} [http] bounds and 100 sites of 3 assessed factors: {} requests beyond or \
             at its bounds; 100 half-sent requests (more than http.max_connections) while /healthz is asked; {} clients \
             asking maximum-range (366-day) rate queries without pause while {} loggers send 2000 frames/s, against the \
             same load without queries ({} s each); a stop with half-sent requests open",
            o.query_slots.map_or("default".to_owned(), |n| format!("default (but max_concurrent_queries = {n})")),
            bounds().len(),
            o.queries,
            o.connections,
            o.secs
        ),
    );
    let http_addr = daemon.http;
    let answers = tokio::task::spawn_blocking(move || ask_bounds(http_addr)).await?;
    let wrong: Vec<&String> = answers.iter().filter(|(_, ok)| !ok).map(|(line, _)| line).collect();
    for (line, _) in &answers {
        report.figure("bound", line);
    }
    report.check(
        "every request beyond a bound gets its 4xx with a JSON error, the maximum ranges 200",
        wrong.is_empty(),
        format!(
            "{} / {} as documented{}",
            answers.len() - wrong.len(),
            answers.len(),
            wrong.first().map(|w| format!("; first wrong: {w}")).unwrap_or_default()
        ),
    );
    half_sent(&daemon, &mut report).await;
    contention(&daemon, o, &mut report).await;
    let held = tokio::task::spawn_blocking(move || open_half_sent(http_addr, 100)).await?;
    let stopping = Instant::now();
    let stop = daemon.terminate(Duration::from_secs(60)).map(describe_exit);
    let took = stopping.elapsed();
    drop(held);
    report.check(
        "SIGTERM exits 0 within http.shutdown_grace_secs (5 s) + 2 s while 100 half-sent requests are open",
        stop.as_ref().is_ok_and(|s| s == "exit 0") && took < Duration::from_secs(7),
        format!("{} after {:.1} s", stop.unwrap_or_else(|e| format!("{e:#}")), took.as_secs_f64()),
    );
    Ok(report)
}

fn ask_bounds(addr: SocketAddr) -> Vec<(String, bool)> {
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    bounds()
        .into_iter()
        .map(|(what, line, body, expected)| {
            let body = "x".repeat(body);
            let answer = http::request_with(addr, &line, &auth, &body, Duration::from_secs(60));
            let (status, ok) = match &answer {
                Ok(a) => {
                    let json = a.status == 200
                        || serde_json::from_str::<serde_json::Value>(&a.body).is_ok_and(|v| v["error"].is_string());
                    (
                        format!("{} {}", a.status, a.body.chars().take(110).collect::<String>().replace('\n', " ")),
                        a.status == expected && json,
                    )
                }
                Err(e) => (format!("{e:#}"), false),
            };
            (format!("{what}: expected {expected}, got {status}"), ok)
        })
        .collect()
}

/// Opens `count` admin connections that send half a request and stop.
fn open_half_sent(addr: SocketAddr, count: usize) -> Vec<std::net::TcpStream> {
    use std::io::Write as _;
    (0..count)
        .filter_map(|_| {
            let mut stream = std::net::TcpStream::connect(addr).ok()?;
            stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").ok()?;
            Some(stream)
        })
        .collect()
}

async fn half_sent(daemon: &Daemon, report: &mut Report) {
    let addr = daemon.http;
    let before = http::metrics(addr);
    let held = tokio::task::spawn_blocking(move || open_half_sent(addr, 100)).await.unwrap_or_default();
    let started = Instant::now();
    let healthz =
        tokio::task::spawn_blocking(move || http::request(addr, "GET", "/healthz", "", Duration::from_secs(60)))
            .await
            .map_err(anyhow::Error::from)
            .and_then(|a| a);
    let waited = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cut = metric(&http::metrics(addr), "hj212_http_connections_cut_total{reason=\"header_timeout\"}")
        - metric(&before, "hj212_http_connections_cut_total{reason=\"header_timeout\"}");
    drop(held);
    report.figure("half-sent: connections cut at the header timeout", format!("{cut:.0} of 100"));
    report.check(
        "/healthz is answered while 100 half-sent requests hold the admin listener (within the 10 s header timeout + 2 s)",
        healthz.as_ref().is_ok_and(|a| a.status == 200) && waited < Duration::from_secs(12),
        format!(
            "{} after {:.1} s",
            healthz.map_or_else(|e| format!("{e:#}"), |a| a.status.to_string()),
            waited.as_secs_f64()
        ),
    );
}

/// What one ingest phase measured.
struct Phase {
    /// Sorted ack latencies at the logger, µs.
    latencies: Vec<u32>,
    sent: u64,
    acked: usize,
    /// The daemon's own p99 (its histogram's bucket bound), ms.
    daemon_p99: Option<f64>,
}

impl Phase {
    fn line(&self) -> String {
        format!(
            "{} of {} acknowledged; at the logger p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms; in the daemon p99 ≤ {}",
            self.acked,
            self.sent,
            percentile_ms(&self.latencies, 50),
            percentile_ms(&self.latencies, 99),
            percentile_ms(&self.latencies, 100),
            self.daemon_p99.map_or("n/a".into(), |ms| format!("{ms} ms"))
        )
    }
}

/// Ingest at a steady rate for `secs`.
async fn ingest(daemon: &Daemon, o: &Options, first: usize) -> Phase {
    let before = http::metrics(daemon.http);
    let addr = daemon.addr;
    let control = Arc::new(Control::default());
    let base = logger::base_ms();
    let spec = |c: usize| Spec {
        addr,
        c: first + c,
        base,
        window: 8,
        per_second: Some(2000.0 / o.connections.max(1) as f64),
        ack_timeout: None,
        bind: None,
    };
    let tasks = logger::spawn_all(o.connections, spec, &control);
    tokio::time::sleep(Duration::from_secs(o.secs)).await;
    control.stop_new.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(3)).await;
    control.give_up.store(true, Ordering::Relaxed);
    let tallies = logger::join_all(tasks).await;
    let mut latencies: Vec<u32> = tallies.iter().flat_map(|t| t.latencies_us.iter().copied()).collect();
    latencies.sort_unstable();
    let sent = tallies.iter().map(|t| t.sent).sum();
    let acked = tallies.iter().map(|t| t.acked.len()).sum();
    let after = http::metrics(daemon.http);
    let daemon_p99 = super::histogram_quantile_ms(&before, &after, "hj212_ingest_ack_latency_seconds", 0.99);
    Phase { latencies, sent, acked, daemon_p99 }
}

/// One query client: asks maximum-range queries until `stop`; (status, Retry-After given, seconds).
fn query_loop(addr: SocketAddr, client: usize, stop: &AtomicBool) -> Vec<(u16, bool, f64)> {
    let (today, year) = (date(0), date(366));
    let paths = [
        format!("/api/v1/rates?from={year}&to={today}"),
        format!("/api/v1/rates?from={year}&to={today}&details=true&limit=20"),
        format!("/api/v1/sites/{}/rate?from={year}&to={today}", mn(client % 100)),
    ];
    let mut out = Vec::new();
    let mut i = client;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let answer = http::get_discarding(addr, &paths[i % paths.len()], Duration::from_secs(120));
        let seconds = started.elapsed().as_secs_f64();
        let (status, retry_after, _) = answer.unwrap_or((0, false, 0));
        out.push((status, retry_after, seconds));
        i += 1;
    }
    out
}

async fn contention(daemon: &Daemon, o: &Options, report: &mut Report) {
    let quiet = ingest(daemon, o, 0).await;
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..o.queries)
        .map(|client| {
            let (stop, addr) = (stop.clone(), daemon.http);
            std::thread::spawn(move || query_loop(addr, client, &stop))
        })
        .collect();
    let busy = ingest(daemon, o, 1000).await;
    stop.store(true, Ordering::Relaxed);
    let answers: Vec<(u16, bool, f64)> = clients.into_iter().flat_map(|c| c.join().unwrap_or_default()).collect();
    let count = |f: &dyn Fn(&(u16, bool, f64)) -> bool| answers.iter().filter(|a| f(a)).count();
    let ok = count(&|a| a.0 == 200);
    let busy_503 = count(&|a| a.0 == 503 && a.1);
    let other = answers.len() - ok - busy_503;
    let slowest = answers.iter().map(|a| a.2).fold(0.0, f64::max);
    report.figure("ingest without queries", quiet.line());
    report.figure(format!("ingest with {} query clients", o.queries), busy.line());
    report.figure(
        "queries answered: 200 / 503 with Retry-After / other; slowest",
        format!("{ok} / {busy_503} / {other}; {slowest:.1} s"),
    );
    report.check(
        "every query is answered 200, or 503 with Retry-After when the pool is busy, within http.request_timeout_secs (30 s)",
        other == 0 && ok > 0 && slowest < 31.0,
        format!("{} answers, {other} other", answers.len()),
    );
    let (p99_quiet, p99_busy) = (percentile_ms(&quiet.latencies, 99), percentile_ms(&busy.latencies, 99));
    report.check(
        "ingest keeps up under the queries: every frame acknowledged, ack p99 below 20 ms (the README's latency target)",
        busy.acked as u64 == busy.sent && quiet.acked as u64 == quiet.sent && p99_busy < 20.0,
        format!("p99 {p99_quiet:.2} ms without queries, {p99_busy:.2} ms with them"),
    );
}
