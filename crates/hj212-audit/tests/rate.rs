//! Transmission rate end to end: hourly frames over TCP into the real daemon, a downtime
//! mark through `hj212-audit mark add`, then the API and `hj212-audit rate` must give the
//! same, expected, exact figures.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use hj212_proto::encode;
use hj212_proto::time::BeijingTime;

const BIN: &str = env!("CARGO_BIN_EXE_hj212-audit");
const MN: &str = "010000A8900016F000169DC0";
const HOUR: i64 = 3_600_000;
const TOKEN: &str = "test-admin-token-0123456789";

fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (response[9..12].parse().unwrap(), body)
}

fn hourly(hour: i64, start: i64, a21026: Option<&str>, a21002: &str) -> Vec<u8> {
    let t = BeijingTime::from_unix_millis(start + hour * HOUR);
    let mut cp = format!("DataTime={}", t.to_seconds_string());
    if let Some(flag) = a21026 {
        let _ = write!(cp, ";a21026-Avg=35.{hour},a21026-Flag={flag}");
    }
    let _ = write!(cp, ";a21002-Avg=48.{hour},a21002-Flag={a21002}");
    let qn = BeijingTime::from_unix_millis(start + hour * HOUR + 3_599_000).to_qn_string();
    encode::frame(format!("QN={qn};ST=31;CN=2061;PW=123456;MN={MN};Flag=5;CP=&&{cp}&&").as_bytes()).unwrap()
}

/// `/api/v1/rates` (summed from the ledger) gives the same counts as the detailed evidence.
fn assert_ledger_agrees(addr: std::net::SocketAddr, detail: &serde_json::Value, from: &str, to: &str) {
    let (status, body) = http_get(addr, &format!("/api/v1/rates?from={from}&to={to}"));
    assert_eq!(status, 200, "{body}");
    let all: serde_json::Value = serde_json::from_str(&body).unwrap();
    let summary = &all["rates"][0];
    assert_eq!(summary["source"], "ledger");
    for key in [
        "due",
        "received",
        "valid",
        "missing_count",
        "late_count",
        "evaluated_to",
        "clamped",
        "transmission_rate",
        "validity_rate",
        "effective_rate",
        "meets_target",
        "config_hash",
    ] {
        assert_eq!(summary[key], detail[key], "{key}: ledger {summary} vs details {detail}");
    }
    let (_, body) = http_get(addr, &format!("/api/v1/rates?from={from}&to={to}&details=true"));
    let with_lists: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(with_lists["rates"][0], *detail, "details=true gives each site's full evidence");
}

/// Today's Beijing midnight, Unix ms.
fn today_midnight() -> i64 {
    let now = hj212_archive::now_ms();
    now - (now + 8 * HOUR).rem_euclid(24 * HOUR)
}

/// A daemon on 127.0.0.1:0 for one site `MN` with `factors`, an admin token, and `rate` lines
/// for `[sites.rate]`; returns it and its config file (for the CLI).
async fn start_daemon(dir: &std::path::Path, factors: &str, rate: &str) -> (hj212d::Running, std::path::PathBuf) {
    std::fs::write(dir.join("admin.token"), TOKEN).unwrap();
    let config_path = dir.join("hj212d.toml");
    std::fs::write(
        &config_path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nadmin_token_file = \"admin.token\"\n\
             [time_sync]\nenabled = false\n[[sites]]\nmn = \"{MN}\"\npassword = \"123456\"\nfactors = {factors}\n[sites.rate]\n{rate}\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let running = hj212d::Daemon::start(hj212_config::load(&config_path).unwrap()).await.unwrap();
    (running, config_path)
}

/// Sends `frames` on one connection and returns once each has its 9014.
fn send_and_wait_acks(addr: std::net::SocketAddr, frames: &[Vec<u8>]) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    for frame in frames {
        stream.write_all(frame).unwrap();
    }
    let mut buf = Vec::new();
    while buf.windows(8).filter(|w| w == b"CN=9014;").count() < frames.len() {
        let mut chunk = [0u8; 16384];
        let n = stream.read(&mut chunk).expect("acks arrive");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `hj212-audit rate --config CONFIG ARGS...`
fn rate_cli(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    let output = Command::new(BIN).arg("rate").arg("--config").arg(config).args(args).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    output
}

/// 48 hours of hourly frames for two factors: hours 5 and 6 of a21026 never arrive, hour 10
/// of a21002 is flagged D, hours 30-35 are a (marked) shutdown with F flags, hour 20 is sent
/// twice, and one frame has tomorrow's DataTime. Returns once every frame is acknowledged.
fn send_scenario(addr: std::net::SocketAddr, start: i64) {
    let mut frames = Vec::new();
    for hour in 0..48 {
        let a21026 = match hour {
            5 | 6 => None,       // never arrived: 2 missing
            30..36 => Some("F"), // the shutdown (marked below): not due
            _ => Some("N"),
        };
        let a21002 = match hour {
            10 => "D", // fault: received, invalid
            30..36 => "F",
            _ => "N",
        };
        frames.push(hourly(hour, start, a21026, a21002));
    }
    frames.push(hourly(20, start, Some("N"), "N")); // a resend: counts once
    frames.push(hourly(48 + 24, start, Some("N"), "N")); // DataTime tomorrow: outside the range
    send_and_wait_acks(addr, &frames);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_and_cli_agree_on_exact_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (running, config_path) = start_daemon(dir.path(), r#"["a21026", "a21002"]"#, "").await;

    // Two whole Beijing days ending at today's midnight, so every record is inside the cutoff.
    let today = today_midnight();
    let start = today - 48 * HOUR;
    // Per-site gauges exist for configured sites (computed at start, then every minute).
    let series = format!("hj212_site_effective_rate_ratio{{mn=\"{MN}\",period=\"month\"}}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !http_get(running.http_addr, "/metrics").1.contains(&series) {
        assert!(Instant::now() < deadline, "{series} missing from /metrics");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    send_scenario(running.hj212_addr, start);

    let from = BeijingTime::from_unix_millis(start).to_seconds_string();
    let to = BeijingTime::from_unix_millis(start + 48 * HOUR).to_seconds_string();
    let mark_from = BeijingTime::from_unix_millis(start + 30 * HOUR).to_seconds_string();
    let mark_to = BeijingTime::from_unix_millis(start + 36 * HOUR).to_seconds_string();
    let token_file = dir.path().join("admin.token");
    let mark = Command::new(BIN)
        .args(["mark", "add", "--url", &format!("http://{}", running.http_addr), "--mn", MN])
        .args(["--from", &mark_from, "--to", &mark_to, "--reason", "停产 planned shutdown"])
        .args(["--evidence", "notice 2026-117", "--author", "ops on duty", "--token-file"])
        .arg(&token_file)
        .output()
        .unwrap();
    assert!(mark.status.success(), "{}", String::from_utf8_lossy(&mark.stderr));
    let first_mark: serde_json::Value = serde_json::from_slice(&mark.stdout).unwrap();

    let path = format!("/api/v1/sites/{MN}/rate?from={from}&to={to}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let api = loop {
        let (status, body) = http_get(running.http_addr, &path);
        assert_eq!(status, 200, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        if (json["received"] == 82 && json["marks"].as_array().unwrap().len() == 1) || Instant::now() > deadline {
            break json;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((&api["due"], &api["received"], &api["valid"]), (&84.into(), &82.into(), &81.into()), "{api}");
    assert_eq!(api["transmission_rate"], "97.62");
    assert_eq!(api["validity_rate"], "98.78");
    assert_eq!(api["effective_rate"], "96.43");
    assert_eq!((&api["target"], &api["meets_target"]), (&"95.00".into(), &true.into()));
    assert_eq!(api["missing"].as_array().unwrap().len(), 2);
    assert_eq!(api["invalid"][0]["reason"], "flag D");
    assert_eq!(api["marks"][0]["reason"], "停产 planned shutdown");

    // The auditor's offline figures are the daemon's figures.
    let cli = rate_cli(&config_path, &["--mn", MN, "--from", &from, "--to", &to]);
    let cli: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(cli, api);

    // The ledger rebuilt from the archive alone gives the same figures.
    let rebuilt = dir.path().join("rebuilt.sqlite");
    let rebuilt_run = Command::new(BIN)
        .args(["rebuild-ledger", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--out")
        .arg(&rebuilt)
        .output()
        .unwrap();
    assert!(rebuilt_run.status.success(), "{}", String::from_utf8_lossy(&rebuilt_run.stderr));
    let rebuilt_store = rebuilt.to_string_lossy().into_owned();
    let again = rate_cli(&config_path, &["--store", &rebuilt_store, "--mn", MN, "--from", &from, "--to", &to]);
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again, api);
    assert_eq!(api["config_hash"].as_str().unwrap().len(), 64);
    assert_eq!(api["archive"]["first_hash"].as_str().unwrap().len(), 64);

    // The HTML report: the same figures, self-contained.
    let html = rate_cli(&config_path, &["--mn", MN, "--from", &from, "--to", &to, "--format", "html"]);
    let html = String::from_utf8(html.stdout).unwrap();
    for needle in ["<b>96.43 %</b>", "97.62 %", "98.78 %", "meets the target", "停产 planned shutdown", "flag D"] {
        assert!(html.contains(needle), "report lacks {needle}");
    }
    assert!(!html.contains("src=") && !html.contains("href=") && !html.contains("http"), "no external resources");
    if let Some(path) = std::env::var_os("HJ212_KEEP_REPORT") {
        std::fs::write(path, &html).unwrap();
    }

    // Marks need the token.
    let wrong = dir.path().join("wrong.token");
    std::fs::write(&wrong, "not-the-admin-token-at-all").unwrap();
    let unauthorised = Command::new(BIN)
        .args(["mark", "add", "--url", &format!("http://{}", running.http_addr), "--mn", MN, "--from", &from])
        .args(["--to", &to, "--reason", "x", "--evidence", "y", "--author", "z", "--token-file"])
        .arg(&wrong)
        .output()
        .unwrap();
    assert!(!unauthorised.status.success());
    assert!(String::from_utf8_lossy(&unauthorised.stderr).contains("401"));
    assert_ledger_agrees(running.http_addr, &api, &from, &to);
    correct_the_mark(&running, &token_file, first_mark["seq"].as_u64().unwrap(), start, &path).await;
    running.stop().await.unwrap();
}

/// A correction is a new mark that supersedes the old one: the shutdown really lasted 3 hours.
async fn correct_the_mark(
    running: &hj212d::Running,
    token_file: &std::path::Path,
    old_seq: u64,
    start: i64,
    rate_path: &str,
) {
    let from = BeijingTime::from_unix_millis(start + 30 * HOUR).to_seconds_string();
    let to = BeijingTime::from_unix_millis(start + 33 * HOUR).to_seconds_string();
    let corrected = Command::new(BIN)
        .args(["mark", "add", "--url", &format!("http://{}", running.http_addr), "--mn", MN, "--from", &from])
        .args(["--to", &to, "--reason", "停产, corrected", "--evidence", "notice 2026-118", "--author", "ops lead"])
        .args(["--supersedes", &old_seq.to_string(), "--token-file"])
        .arg(token_file)
        .output()
        .unwrap();
    assert!(corrected.status.success(), "{}", String::from_utf8_lossy(&corrected.stderr));
    let stray = Command::new(BIN)
        .args(["mark", "add", "--url", &format!("http://{}", running.http_addr), "--mn", MN, "--from", &from])
        .args([
            "--to",
            &to,
            "--reason",
            "r",
            "--evidence",
            "e",
            "--author",
            "a",
            "--supersedes",
            "999999",
            "--token-file",
        ])
        .arg(token_file)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&stray.stderr).contains("400"), "superseding an unknown mark is refused");
    let deadline = Instant::now() + Duration::from_secs(10);
    let rate = loop {
        let json: serde_json::Value = serde_json::from_str(&http_get(running.http_addr, rate_path).1).unwrap();
        if json["due"] == 90 || Instant::now() > deadline {
            break json;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Hours 33-35 are due again; their F-flagged records count as received but invalid.
    assert_eq!((&rate["due"], &rate["received"], &rate["valid"]), (&90.into(), &88.into(), &81.into()), "{rate}");
    assert_eq!(rate["effective_rate"], "90.00");
    assert!(!rate["meets_target"].as_bool().unwrap());
    assert_eq!(rate["marks"][0]["reason"], "停产, corrected");
    let (status, marks) = http_get(running.http_addr, &format!("/api/v1/sites/{MN}/marks"));
    assert_eq!(status, 200);
    let marks: serde_json::Value = serde_json::from_str(&marks).unwrap();
    assert_eq!(marks.as_array().unwrap().len(), 2, "the old mark is kept, never edited");
    assert_eq!(marks[0]["superseded_by"], marks[1]["mark"]["seq"]);
    let range = rate_path.split_once("from=").unwrap().1;
    let (from, to) = range.split_once("&to=").unwrap();
    assert_ledger_agrees(running.http_addr, &rate, from, to);
}

/// Daily (CN 2031) and minute (CN 2051, 10-minute interval) bases: API and CLI agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn day_and_minute_bases() {
    let dir = tempfile::tempdir().unwrap();
    let (running, config_path) = start_daemon(dir.path(), r#"["w01018", "w21003"]"#, "minute_interval = 10").await;
    let today = today_midnight();
    let mut frames = Vec::new();
    let frame = |cn: u16, at: i64, cod_flag: Option<&str>, qn_offset: i64| {
        let t = BeijingTime::from_unix_millis(at);
        let mut cp = format!("DataTime={}", t.to_seconds_string());
        if let Some(flag) = cod_flag {
            let _ = write!(cp, ";w01018-Avg=40.1,w01018-Flag={flag}");
        }
        cp.push_str(";w21003-Avg=1.2,w21003-Flag=N");
        let qn = BeijingTime::from_unix_millis(at + qn_offset).to_qn_string();
        encode::frame(format!("QN={qn};ST=32;CN={cn};PW=123456;MN={MN};Flag=5;CP=&&{cp}&&").as_bytes()).unwrap()
    };
    // Two days of daily values: day 1 COD flagged M (maintenance).
    frames.push(frame(2031, today - 48 * HOUR, Some("M"), 1));
    frames.push(frame(2031, today - 24 * HOUR, Some("N"), 1));
    // Two hours of 10-minute values: the 08:20 COD value never arrived.
    for i in 0..12 {
        let at = today - 24 * HOUR + 8 * HOUR + i * 600_000;
        frames.push(frame(2051, at, (i != 2).then_some("N"), 2));
    }
    send_and_wait_acks(running.hj212_addr, &frames);
    let cases = [
        ("day", today - 48 * HOUR, today, (4, 4, 3)),
        ("minute", today - 24 * HOUR + 8 * HOUR, today - 24 * HOUR + 10 * HOUR, (24, 23, 23)),
    ];
    for (basis, from, to, (due, received, valid)) in cases {
        let (from, to) = (
            BeijingTime::from_unix_millis(from).to_seconds_string(),
            BeijingTime::from_unix_millis(to).to_seconds_string(),
        );
        let path = format!("/api/v1/sites/{MN}/rate?from={from}&to={to}&basis={basis}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let api = loop {
            let json: serde_json::Value = serde_json::from_str(&http_get(running.http_addr, &path).1).unwrap();
            if json["received"] == received || Instant::now() > deadline {
                break json;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(
            (&api["due"], &api["received"], &api["valid"]),
            (&due.into(), &received.into(), &valid.into()),
            "{basis}: {api}"
        );
        assert_eq!(api["basis"], basis);
        let cli = rate_cli(&config_path, &["--mn", MN, "--from", &from, "--to", &to, "--basis", basis]);
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&cli.stdout).unwrap(), api, "{basis}");
    }
    running.stop().await.unwrap();
}

/// One upload of `cn` for the period starting at `at`: a21026 (when sent) and a21002.
fn upload(cn: u16, at: i64, a21026: Option<&str>, a21002: &str) -> Vec<u8> {
    let t = BeijingTime::from_unix_millis(at);
    let mut cp = format!("DataTime={}", t.to_seconds_string());
    if let Some(flag) = a21026 {
        let _ = write!(cp, ";a21026-Avg=35.2,a21026-Flag={flag}");
    }
    let _ = write!(cp, ";a21002-Avg=48.1,a21002-Flag={a21002}");
    let qn = BeijingTime::from_unix_millis(at + 1).to_qn_string();
    encode::frame(format!("QN={qn};ST=31;CN={cn};PW=123456;MN={MN};Flag=5;CP=&&{cp}&&").as_bytes()).unwrap()
}

/// The rule applied to the archive directly: first copy per (factor, period) received before
/// period end + 10 days, periods wholly inside `marked` excluded; returns (due, received, valid).
fn expected(archive: &std::path::Path, range: (i64, i64), step: i64, marked: (i64, i64)) -> (u64, u64, u64) {
    let period_of = |ms: i64| ms - (ms + 8 * HOUR).rem_euclid(step);
    let is_marked = |p: i64| marked.0 <= p && p + step <= marked.1;
    let mut follower = hj212_archive::Follower::new(archive, 1);
    let mut first: std::collections::BTreeMap<(String, i64), (i64, String)> = std::collections::BTreeMap::new();
    loop {
        let records = follower.read(u64::MAX, 2000).unwrap();
        if records.is_empty() {
            break;
        }
        for record in records.iter().filter(|r| r.kind == hj212_archive::Kind::Received) {
            let text = String::from_utf8_lossy(&record.data);
            let Some((_, cp)) = text.split_once("CP=&&") else { continue };
            let cp = cp.trim_end_matches(|c: char| c != '&').trim_end_matches('&');
            let mut items = cp.split(';');
            let data_time = items.next().unwrap().trim_start_matches("DataTime=");
            let period = period_of(BeijingTime::parse(data_time).unwrap().unix_millis());
            if period < range.0 || period + step > range.1 || is_marked(period) {
                continue;
            }
            for item in items {
                let factor = item.split('-').next().unwrap().to_owned();
                first.entry((factor, period)).or_insert((record.time_ms, item.rsplit('=').next().unwrap().to_owned()));
            }
        }
    }
    let periods = (range.0..range.1).step_by(usize::try_from(step).unwrap()).filter(|p| !is_marked(*p)).count();
    let on_time: Vec<&String> =
        first.iter().filter(|((_, p), (got, _))| *got < p + step + 10 * 24 * HOUR).map(|(_, (_, flag))| flag).collect();
    let valid = on_time.iter().filter(|f| f.as_str() == "N").count();
    (2 * periods as u64, on_time.len() as u64, valid as u64)
}

/// 30 days for each basis through the daemon: gaps, resends, M flags, a downtime mark, a
/// future DataTime, and everything older than the 10-day cutoff late (it is all sent now).
/// The API, the CLI and the rebuilt ledger give the figures the rule gives on the archive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_days_per_basis() {
    for (basis, cn, step) in [("hour", 2061, HOUR), ("day", 2031, 24 * HOUR), ("minute", 2051, 600_000)] {
        let dir = tempfile::tempdir().unwrap();
        let rate = format!("basis = \"{basis}\"\nminute_interval = 10");
        let (running, config_path) = start_daemon(dir.path(), r#"["a21026", "a21002"]"#, &rate).await;
        let today = today_midnight();
        let start = today - 30 * 24 * HOUR;
        let periods = 30 * 24 * HOUR / step;
        let mut frames = Vec::new();
        for k in 0..periods {
            let at = start + k * step;
            frames.push(upload(cn, at, (k % 50 != 7).then_some("N"), if k % 70 == 3 { "M" } else { "N" }));
            if k % 97 == 5 {
                frames.push(upload(cn, at, Some("N"), "N")); // a resend of the same frame
            }
        }
        frames.push(upload(cn, today + 24 * HOUR, Some("N"), "N")); // DataTime tomorrow
        send_and_wait_acks(running.hj212_addr, &frames);
        // Day 12 was a reported stop.
        let marked = (start + 12 * 24 * HOUR, start + 13 * 24 * HOUR);
        let bound = |ms: i64| BeijingTime::from_unix_millis(ms).to_seconds_string();
        let mark = Command::new(BIN)
            .args(["mark", "add", "--url", &format!("http://{}", running.http_addr), "--mn", MN])
            .args(["--from", &bound(marked.0), "--to", &bound(marked.1), "--reason", "停运", "--evidence", "ticket 9"])
            .args(["--author", "ops", "--token-file"])
            .arg(dir.path().join("admin.token"))
            .output()
            .unwrap();
        assert!(mark.status.success(), "{}", String::from_utf8_lossy(&mark.stderr));
        let (from, to) = (bound(start), bound(today));
        let (due, received, valid) = expected(&dir.path().join("data").join("archive"), (start, today), step, marked);
        let path = format!("/api/v1/sites/{MN}/rate?from={from}&to={to}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let api = loop {
            let api: serde_json::Value = serde_json::from_str(&http_get(running.http_addr, &path).1).unwrap();
            if (api["received"] == received && api["due"] == due) || Instant::now() > deadline {
                break api;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(
            (&api["due"], &api["received"], &api["valid"]),
            (&due.into(), &received.into(), &valid.into()),
            "{basis}"
        );
        assert!(received > 0 && received < due, "{basis}: some on time, some late ({received} of {due})");
        let cli = rate_cli(&config_path, &["--mn", MN, "--from", &from, "--to", &to]);
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&cli.stdout).unwrap(), api, "{basis}: CLI");
        if basis != "minute" {
            assert_ledger_agrees(running.http_addr, &api, &from, &to);
        }
        running.stop().await.unwrap();
        let rebuilt = dir.path().join("rebuilt.sqlite");
        let status = Command::new(BIN)
            .arg("rebuild-ledger")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--out")
            .arg(&rebuilt)
            .status()
            .unwrap();
        assert!(status.success());
        let store = rebuilt.to_string_lossy().into_owned();
        let again = rate_cli(&config_path, &["--store", &store, "--mn", MN, "--from", &from, "--to", &to]);
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&again.stdout).unwrap(), api, "{basis}: rebuilt ledger");
    }
}

/// `hj212-audit alerts` lists what the daemon raised, read-only, with the API's filters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_cli_lists_the_daemons_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let (running, _) = start_daemon(dir.path(), "[\"a21026\", \"a21002\"]", "").await;
    let start = today_midnight() - 2 * 24 * HOUR;
    // a21002 flagged D in hour 1: an abnormal_flag alert, cleared by hour 2.
    let frames: Vec<Vec<u8>> = (0..3).map(|h| hourly(h, start, Some("N"), if h == 1 { "D" } else { "N" })).collect();
    send_and_wait_acks(running.hj212_addr, &frames);
    running.stop().await.unwrap();
    let data_dir = dir.path().join("data");
    let alerts = |args: &[&str]| {
        let output = Command::new(BIN).arg("alerts").arg("--data-dir").arg(&data_dir).args(args).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect::<Vec<serde_json::Value>>()
    };
    let all = alerts(&[]);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!((all[0]["kind"].as_str(), all[0]["factor"].as_str()), (Some("abnormal_flag"), Some("a21002")));
    assert_eq!((all[0]["state"].as_str(), all[0]["messages"].as_i64()), (Some("cleared"), Some(2)));
    assert!(alerts(&["--state", "active"]).is_empty());
    assert!(alerts(&["--mn", "OTHER"]).is_empty());
    let bad =
        Command::new(BIN).args(["alerts", "--data-dir"]).arg(&data_dir).args(["--state", "open"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(64));
}

/// `hj212-audit key rotate` schedules an SM4 key rotation through the daemon; a second one
/// while the first is in progress is refused, and a site without encryption cannot rotate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotate_cli_schedules_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("site.key"), "0000000000000000").unwrap();
    std::fs::write(dir.path().join("admin.token"), TOKEN).unwrap();
    let config_path = dir.path().join("hj212d.toml");
    std::fs::write(
        &config_path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nadmin_token_file = \"admin.token\"\n\
             [[sites]]\nmn = \"{MN}\"\npassword = \"123456\"\nencryption = \"required\"\nkey_file = \"site.key\"\n\
             [[sites]]\nmn = \"PLAIN01\"\npassword = \"123456\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let running = hj212d::Daemon::start(hj212_config::load(&config_path).unwrap()).await.unwrap();
    let url = format!("http://{}", running.http_addr);
    let rotate = |mn: &str| {
        Command::new(BIN)
            .args(["key", "rotate", "--url", &url, "--token-file"])
            .arg(dir.path().join("admin.token"))
            .args(["--mn", mn])
            .output()
            .unwrap()
    };
    let first = rotate(MN);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert!(answer["key"].as_str().unwrap().starts_with("sha256:"), "a fingerprint, never the key: {answer}");
    let second = rotate(MN);
    assert_eq!(second.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&second.stderr).contains("409"), "{}", String::from_utf8_lossy(&second.stderr));
    let plain = rotate("PLAIN01");
    assert!(String::from_utf8_lossy(&plain.stderr).contains("does not use encryption"));
    running.stop().await.unwrap();
}

/// Records received after the cutoff are late: kept and listed with their receive time, apart
/// from the missing ones, in JSON, CSV and HTML; the ledger counts them the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_records_are_listed_apart_from_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (running, config_path) = start_daemon(dir.path(), r#"["a21026", "a21002"]"#, "").await;
    // Two days that ended more than 10 days ago; the first day's frames are sent now (late),
    // without a21026 at hour 5; the second day nothing arrives (missing).
    let start = today_midnight() - 15 * 24 * HOUR;
    let frames: Vec<Vec<u8>> = (0..24).map(|h| hourly(h, start, (h != 5).then_some("N"), "N")).collect();
    send_and_wait_acks(running.hj212_addr, &frames);
    let bound = |ms: i64| BeijingTime::from_unix_millis(ms).to_seconds_string();
    let (from, to) = (bound(start), bound(start + 48 * HOUR));
    let path = format!("/api/v1/sites/{MN}/rate?from={from}&to={to}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let api = loop {
        let json: serde_json::Value = serde_json::from_str(&http_get(running.http_addr, &path).1).unwrap();
        if json["late_count"] == 47 || Instant::now() > deadline {
            break json;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let counts = ["due", "received", "valid", "late_count", "missing_count"].map(|k| api[k].as_u64().unwrap());
    assert_eq!(counts, [96, 0, 0, 47, 49]);
    assert_eq!((api["late"].as_array().unwrap().len(), api["missing"].as_array().unwrap().len()), (47, 49));
    let first_late = &api["late"][0];
    assert_eq!(
        (&first_late["factor"], &first_late["period"]),
        (&"a21026".into(), &BeijingTime::from_unix_millis(start).to_rfc3339().into())
    );
    let received_at =
        BeijingTime::parse(&first_late["received_at"].as_str().unwrap().replace(['-', 'T', ':'], "")[..14])
            .unwrap()
            .unix_millis();
    assert!((hj212_archive::now_ms() - received_at).abs() < 60_000, "the receive time of the late copy: {first_late}");
    assert!(
        !api["missing"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["period"] == first_late["period"] && m["factor"] == "a21026")
    );
    assert_eq!(api["clamped"], false);
    let cli = rate_cli(&config_path, &["--mn", MN, "--from", &from, "--to", &to]);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&cli.stdout).unwrap(), api);
    assert_ledger_agrees(running.http_addr, &api, &from, &to);

    let csv = rate_cli(&config_path, &["--mn", MN, "--from", &from, "--to", &to, "--format", "csv"]);
    let csv = String::from_utf8(csv.stdout).unwrap();
    let (header, row) = csv.trim_end().split_once('\n').unwrap();
    let column =
        |name: &str| row.split(',').nth(header.split(',').position(|h| h == name).unwrap()).unwrap().to_owned();
    assert_eq!([column("missing"), column("late"), column("clamped")], ["49", "47", "false"]);
    let html = rate_cli(&config_path, &["--mn", MN, "--from", &from, "--to", &to, "--format", "html"]);
    let html = String::from_utf8(html.stdout).unwrap();
    assert!(html.contains("<h2>Late (47)") && html.contains("<h2>Missing (49)</h2>"), "late and missing apart");
    running.stop().await.unwrap();
}

/// A range reaching into the future is evaluated up to the last period that has ended, and
/// says so; the ledger agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_reaching_into_the_future_is_evaluated_up_to_now() {
    let dir = tempfile::tempdir().unwrap();
    let (running, config_path) = start_daemon(dir.path(), r#"["a21026", "a21002"]"#, "").await;
    let today = today_midnight();
    let ended = (hj212_archive::now_ms() - today) / HOUR;
    let frames: Vec<Vec<u8>> = (0..ended).map(|h| hourly(h, today, Some("N"), "N")).collect();
    send_and_wait_acks(running.hj212_addr, &frames);
    let bound = |ms: i64| BeijingTime::from_unix_millis(ms).to_seconds_string();
    let (from, to) = (bound(today), bound(today + 48 * HOUR));
    // Acks follow the archive; the store follower applies the frames a moment later.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = http_get(running.http_addr, &format!("/api/v1/sites/{MN}/rate?from={from}&to={to}")).1;
        let applied = serde_json::from_str::<serde_json::Value>(&body).unwrap()["received"].as_i64();
        if applied == Some(2 * ended) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for attempt in 0.. {
        let cli = rate_cli(&config_path, &["--mn", MN, "--from", &from, "--to", &to]);
        let cli: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
        let (_, body) = http_get(running.http_addr, &format!("/api/v1/rates?from={from}&to={to}"));
        let summary = serde_json::from_str::<serde_json::Value>(&body).unwrap()["rates"][0].clone();
        let evaluated_to = cli["evaluated_to"].as_str().unwrap();
        if summary["evaluated_to"] != evaluated_to && attempt < 3 {
            continue; // an hour ended between the two calls
        }
        let hours = (BeijingTime::parse(&evaluated_to.replace(['-', 'T', ':'], "")[..14]).unwrap().unix_millis()
            - today)
            / HOUR;
        assert!(hours == ended || hours == ended + 1, "evaluated up to the last hour ended: {evaluated_to}");
        assert_eq!(cli["clamped"], true);
        let due = u64::try_from(2 * hours).unwrap();
        let received = u64::try_from(2 * ended).unwrap();
        assert_eq!(
            (cli["due"].as_u64(), cli["received"].as_u64()),
            (Some(due), Some(received)),
            "periods not ended are not due"
        );
        assert_eq!(cli["to"], BeijingTime::from_unix_millis(today + 48 * HOUR).to_rfc3339(), "the range asked for");
        for key in
            ["due", "received", "valid", "late_count", "missing_count", "evaluated_to", "clamped", "effective_rate"]
        {
            assert_eq!(summary[key], cli[key], "{key}");
        }
        assert_eq!(summary["source"], "ledger");
        let html = rate_cli(&config_path, &["--mn", MN, "--from", &from, "--to", &to, "--format", "html"]);
        assert!(String::from_utf8(html.stdout).unwrap().contains("later periods were not due yet"));
        break;
    }
    running.stop().await.unwrap();
}

/// `hj212-audit rate` of one node's data dir
/// and of several (`--data-dir A --data-dir B`, a cluster's nodes): the `received` count.
fn received(data_dirs: &[std::path::PathBuf], from: &str, to: &str) -> u64 {
    let mut command = Command::new(BIN);
    command.arg("rate");
    for data_dir in data_dirs {
        command.arg("--data-dir").arg(data_dir);
    }
    let output = command.args(["--mn", MN, "--from", from, "--to", to]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let evidence: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    evidence["received"].as_u64().unwrap_or_else(|| panic!("no received count in {evidence}"))
}

/// Each record of a data dir's archive as (seq, time_ms, verdict), to explain a merge order.
fn archive_times(data_dir: &std::path::Path) -> Vec<(u64, i64, &'static str)> {
    let mut reader = hj212_archive::Follower::new(&data_dir.join("archive"), 1);
    let records = reader.read(u64::MAX, usize::MAX).unwrap();
    records.iter().map(|r| (r.seq, r.time_ms, r.verdict.as_str())).collect()
}

/// Two daemons for the site, as a cluster's nodes (their data in `a_dir` and `b_dir`).
async fn two_nodes(a_dir: &std::path::Path, b_dir: &std::path::Path) -> (hj212d::Running, hj212d::Running) {
    std::fs::create_dir_all(a_dir).unwrap();
    std::fs::create_dir_all(b_dir).unwrap();
    let (a, _) = start_daemon(a_dir, r#"["a21026"]"#, "").await;
    let (b, _) = start_daemon(b_dir, r#"["a21026"]"#, "").await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_union_of_two_nodes_counts_an_hour_both_received_once() {
    let dir = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let (a, b) = two_nodes(&a_dir, &b_dir).await;
    // Yesterday's hours 0-3 reached node a, hours 2-5 node b (2 and 3 reached both).
    let start = today_midnight() - 24 * HOUR;
    let hours = |range: std::ops::Range<i64>| range.map(|h| hourly(h, start, Some("N"), "N")).collect::<Vec<_>>();
    send_and_wait_acks(a.hj212_addr, &hours(0..4));
    send_and_wait_acks(b.hj212_addr, &hours(2..6));
    a.stop().await.unwrap();
    b.stop().await.unwrap();

    let from = BeijingTime::from_unix_millis(start).to_seconds_string();
    let to = BeijingTime::from_unix_millis(start + 24 * HOUR).to_seconds_string();
    let (a_data, b_data) = (a_dir.join("data"), b_dir.join("data"));
    assert_eq!(received(std::slice::from_ref(&a_data), &from, &to), 4);
    assert_eq!(received(std::slice::from_ref(&b_data), &from, &to), 4);
    assert_eq!(received(&[a_data, b_data], &from, &to), 6, "hours 2 and 3 count once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_name_the_nodes_that_received_each_frame() {
    let dir = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let (a, b) = two_nodes(&a_dir, &b_dir).await;
    // Hours 0-3 to node a, 2-5 to node b, and hour 2 to node a again (a resend).
    let start = today_midnight() - 24 * HOUR;
    let hours = |range: std::ops::Range<i64>| range.map(|h| hourly(h, start, Some("N"), "N")).collect::<Vec<_>>();
    // Archive times have millisecond resolution and copies stamped in the same millisecond on two
    // nodes have no order between them, so each send starts in a later millisecond.
    let next_millisecond = || std::thread::sleep(Duration::from_millis(5));
    send_and_wait_acks(a.hj212_addr, &hours(0..4));
    next_millisecond();
    send_and_wait_acks(b.hj212_addr, &hours(2..6));
    next_millisecond();
    send_and_wait_acks(a.hj212_addr, &hours(2..3));
    a.stop().await.unwrap();
    b.stop().await.unwrap();

    let (a_data, b_data) = (a_dir.join("data"), b_dir.join("data"));
    let output = Command::new(BIN)
        .arg("receipts")
        .arg("--data-dir")
        .arg(&a_data)
        .arg("--data-dir")
        .arg(&b_data)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&output.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let (summary, frames) = lines.split_last().expect("a summary line");
    let (a_name, b_name) = (a_data.display().to_string(), b_data.display().to_string());
    assert_eq!(frames.len(), 6, "six distinct frames: {frames:?}");
    let nodes = |frame: &serde_json::Value| -> Vec<String> {
        frame["nodes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_owned()).collect()
    };
    let both: Vec<_> = frames.iter().filter(|f| nodes(f).len() == 2).collect();
    assert_eq!(both.len(), 2, "hours 2 and 3 reached both nodes");
    let resent = both.iter().find(|f| f["copies"].as_array().unwrap().len() == 3).expect("hour 2: three copies");
    let verdicts: Vec<_> = resent["copies"].as_array().unwrap().iter().map(|c| c["verdict"].clone()).collect();
    assert_eq!(
        verdicts,
        ["accepted", "accepted", "duplicate"],
        "{resent}\nnode a: {:?}\nnode b: {:?}",
        archive_times(&a_data),
        archive_times(&b_data)
    );
    assert_eq!(summary["summary"]["frames"], 6);
    assert_eq!(summary["summary"]["on_every_node"], 2);
    assert_eq!(summary["summary"]["only_on"][&a_name], 2, "{summary}");
    assert_eq!(summary["summary"]["only_on"][&b_name], 2, "{summary}");
}
