//! Daily and monthly reports (issue 16) through the daemon: the API answers JSON, CSV and HTML
//! from the data, the daemon writes the newest due daily report into `data_dir/reports/` at
//! start when it is missing, a real browser renders the page with its figures, and bad
//! requests get a status naming the problem.

mod common;

use std::time::Duration;

use common::{MN, PW, TestDaemon, frame};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn beijing_date(ms: i64) -> String {
    let digits = hj212_proto::time::BeijingTime::from_unix_millis(ms).to_seconds_string();
    format!("{}-{}-{}", &digits[..4], &digits[4..6], &digits[6..8])
}

/// Yesterday's Beijing midnight.
fn yesterday() -> i64 {
    hj212_compliance::Basis::Day.period_start(hj212_archive::now_ms()) - DAY
}

async fn daemon_with_yesterdays_hours(hours: i64) -> TestDaemon {
    let daemon = TestDaemon::start_with(|config| config.sites[0].factors = vec!["a21026".into()]).await;
    let mut logger = daemon.client().await;
    for h in 0..hours {
        let time = hj212_proto::time::BeijingTime::from_unix_millis(yesterday() + h * HOUR).to_seconds_string();
        logger
            .send(&frame(&format!(
                "QN={time}000;ST=31;CN=2061;PW={PW};MN={MN};Flag=5;CP=&&DataTime={time};a21026-Avg=12.5,a21026-Cou=0.35,a21026-Flag=N&&"
            )))
            .await;
        assert_eq!(logger.reply().await.cn, 9014);
    }
    daemon
}

/// A GET with its status, content type and body.
fn get(daemon: &TestDaemon, path: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(daemon.running.http_addr).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let content_type = head.lines().find_map(|l| l.strip_prefix("content-type: ")).unwrap_or_default().to_owned();
    (head[9..12].parse().unwrap(), content_type, body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_a_sites_daily_report_in_three_forms_and_refuses_bad_requests() {
    let daemon = daemon_with_yesterdays_hours(20).await;
    let date = beijing_date(yesterday());
    let path = format!("/api/v1/reports/daily?date={date}&mn={MN}");
    let mut report = serde_json::Value::Null;
    for _ in 0..100 {
        let (status, _, body) = get(&daemon, &path);
        assert_eq!(status, 200, "{body}");
        report = serde_json::from_str(&body).unwrap();
        if report["rate"]["received"] == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!((report["rate"]["due"].as_u64(), report["rate"]["received"].as_u64()), (Some(24), Some(20)), "{report}");
    assert_eq!(report["emissions"][0]["total"], "7.00", "20 x 0.35 exactly");
    assert_eq!(report["emissions"][0]["records_missing"], 4);
    let first_hash = report["evidence"]["archive"]["first_hash"].as_str().unwrap_or_default();
    assert_eq!(first_hash.len(), 64, "a site's report names the archive records it rests on: {}", report["evidence"]);
    let head = &report["evidence"]["archive_head"];
    assert!(head["seq"].as_u64().unwrap() >= 20 && head["hash"].as_str().unwrap().len() == 64, "{head}");

    let (status, content_type, csv) = get(&daemon, &format!("{path}&format=csv"));
    assert_eq!((status, content_type.as_str()), (200, "text/csv; charset=utf-8"));
    assert!(csv.starts_with('\u{feff}') && csv.contains("有效传输率 effective rate"), "{csv}");
    let (status, content_type, html) = get(&daemon, &format!("{path}&format=html"));
    assert_eq!((status, content_type.as_str()), (200, "text/html; charset=utf-8"));
    assert!(html.contains("83.33"), "20 of 24 hours: {html}");

    let (status, _, fleet) = get(&daemon, &format!("/api/v1/reports/monthly?month={}", &date[..7]));
    assert_eq!(status, 200, "{fleet}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&fleet).unwrap()["sites"], 1);

    for (bad, status, message) in [
        ("/api/v1/reports/daily?date=2026-13-40", 400, "is not a date"),
        ("/api/v1/reports/monthly?month=2026-1", 400, "is not a month"),
        ("/api/v1/reports/daily?date=2026-11-29&mn=NOPE", 404, "no configured site"),
        ("/api/v1/reports/daily?date=2026-11-29&format=xml", 400, "use json, csv or html"),
        ("/api/v1/reports/daily", 400, "date"),
    ] {
        let (got, _, body) = get(&daemon, bad);
        assert_eq!(got, status, "{bad}: {body}");
        assert!(body.contains(message), "{bad}: {message:?} in {body}");
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_writes_the_newest_due_daily_report_and_a_browser_shows_its_figures() {
    let daemon = daemon_with_yesterdays_hours(24).await;
    let reports = daemon.dir.path().join("reports");
    // Written at start when missing: yesterday's (after 00:30) or the day before's.
    let mut written = Vec::new();
    for _ in 0..100 {
        written = std::fs::read_dir(&reports)
            .map(|d| d.flatten().map(|e| e.file_name().into_string().unwrap()).collect())
            .unwrap_or_default();
        if written.iter().any(|n: &String| n.starts_with("daily-") && n.contains(".json")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    written.sort();
    let stem =
        written.iter().find_map(|n| n.strip_prefix("daily-")?.strip_suffix(".json")).expect("a daily report written");
    let stem = format!("daily-{stem}");
    for extension in ["csv", "html", "json"] {
        assert!(written.contains(&format!("{stem}.{extension}")), "{written:?}");
    }
    // The day ended a month: the month's report too (at 00:30 on the 1st), written after the day's.
    let month_ended = beijing_date(hj212_store::parse_bound(&stem["daily-".len()..]).unwrap() + DAY).ends_with("-01");
    for _ in 0..if month_ended { 200 } else { 0 } {
        if written.iter().any(|n| n.starts_with("monthly-") && n.contains(".json")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        written =
            std::fs::read_dir(&reports).unwrap().flatten().map(|e| e.file_name().into_string().unwrap()).collect();
    }
    assert_eq!(written.iter().any(|n| n.starts_with("monthly-")), month_ended, "{written:?}");
    let _data_dir = daemon.stop().await;

    // The page as written, rendered by a real browser.
    let page = reports.join(format!("{stem}.html"));
    let shots = tempfile::tempdir().unwrap();
    let dom = chromium(&page, shots.path());
    assert!(dom.contains("有效传输率") && dom.contains(MN), "the figures in the rendered page: {dom}");
    assert!(shots.path().join("report.png").metadata().unwrap().len() > 1000, "a screenshot for the docs");
}

/// Headless Debian chromium: the rendered DOM of `page`, and a screenshot in `out`.
fn chromium(page: &std::path::Path, out: &std::path::Path) -> String {
    let common = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=420,900"];
    let profile = format!("--user-data-dir={}", out.join("profile").display());
    let url = format!("file://{}", page.display());
    let dom = std::process::Command::new("chromium")
        .args(common)
        .arg(&profile)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("chromium is installed (scripts/install-test-deps)");
    assert!(dom.status.success(), "{}", String::from_utf8_lossy(&dom.stderr));
    let shot = format!("--screenshot={}", out.join("report.png").display());
    let status =
        std::process::Command::new("chromium").args(common).arg(&profile).arg(shot).arg(&url).output().unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    String::from_utf8_lossy(&dom.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_written_report_is_announced_on_mqtt_with_its_files_and_summary() {
    let broker = test_support::mosquitto::Mosquitto::start();
    let reports = test_support::mosquitto::Subscriber::connect(broker.addr, "hj212/reports/#");
    let url = broker.url();
    let daemon = TestDaemon::start_with(move |config| {
        config.mqtt = Some(hj212_config::Mqtt { url, max_backoff_secs: 1, ..hj212_config::Mqtt::default() });
    })
    .await;
    let got = reports.wait_for(1, Duration::from_secs(20));
    let daily = got.iter().find(|m| m.topic == "hj212/reports/daily").expect("the daily report announced");
    let summary: serde_json::Value = serde_json::from_str(daily.payload_str()).unwrap();
    assert_eq!((summary["kind"].as_str(), summary["sites"].as_u64()), (Some("daily"), Some(1)), "{summary}");
    let json_file = summary["files"][0].as_str().unwrap();
    assert!(std::path::Path::new(json_file).is_file(), "the announced file is there: {json_file}");
    daemon.stop().await;
}
