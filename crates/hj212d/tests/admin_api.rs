//! The admin HTTP API is bounded (issue 12): ranges, bodies and pages have documented limits,
//! every error is JSON, the token is checked before the body is read, reads can need a token,
//! connections are capped and timed out, and a half-sent request cannot hold up a stop.

mod common;

use std::time::{Duration, Instant};

use common::{MN, TestDaemon, beijing_in, realtime};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ADMIN_TOKEN: &str = "admin-test-token-0123456789";
const READ_TOKEN: &str = "reader-test-token-0123456789";

/// One answer: status, header block and body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    /// The `{"error": ...}` message of an error answer (which must be JSON).
    fn error(&self) -> String {
        let json = self.json();
        json["error"].as_str().unwrap_or_else(|| panic!("no error field: {json}")).to_owned()
    }
}

/// Sends one whole HTTP/1.0 request and reads the answer to the end.
fn send(addr: std::net::SocketAddr, request: &[u8]) -> Answer {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    Answer { status: head[9..12].parse().unwrap(), head: head.to_owned(), body: body.to_owned() }
}

fn get(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> Answer {
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    send(addr, format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n{auth}\r\n").as_bytes())
}

fn post(addr: std::net::SocketAddr, path: &str, token: &str, content_type: Option<&str>, body: &str) -> Answer {
    let content_type = content_type.map(|t| format!("Content-Type: {t}\r\n")).unwrap_or_default();
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n{content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    send(addr, request.as_bytes())
}

/// A daemon with the admin token (and, with `read_token`, the read token) configured.
async fn daemon_with_tokens(read_token: bool, adjust: impl FnOnce(&mut hj212_config::Config)) -> TestDaemon {
    TestDaemon::start_with(|config| {
        let dir = config.server.data_dir.clone();
        std::fs::write(dir.join("admin.token"), ADMIN_TOKEN).unwrap();
        config.server.admin_token_file = Some(dir.join("admin.token"));
        if read_token {
            std::fs::write(dir.join("read.token"), READ_TOKEN).unwrap();
            config.server.admin_read_token_file = Some(dir.join("read.token"));
        }
        adjust(config);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_beyond_the_documented_maximum_or_in_year_0000_get_a_json_400() {
    let daemon = TestDaemon::start().await;
    let addr = daemon.running.http_addr;
    let rate = |query: &str| get(addr, &format!("/api/v1/sites/{MN}/rate?{query}"), None);
    let over = rate("from=2025-01-01&to=2026-02-05");
    assert_eq!(over.status, 400, "{}", over.body);
    assert!(over.error().contains("at most 366 days (http.max_range_days)"), "{}", over.body);
    assert_eq!(rate("from=2025-01-01&to=2026-01-02").status, 200, "366 days are allowed");
    let absurd = rate("from=0001-01-01&to=9999-12-31");
    assert_eq!(absurd.status, 400);
    assert!(absurd.error().contains("3652058 days"), "{}", absurd.body);
    let everyone = get(addr, "/api/v1/rates?from=0001-01-01&to=9999-12-31", None);
    assert_eq!(everyone.status, 400);
    assert!(everyone.error().contains("http.max_range_days"), "{}", everyone.body);
    let minute = rate("from=2026-01-01&to=2026-02-05&basis=minute");
    assert_eq!(minute.status, 400);
    assert!(minute.error().contains("at most 31 days (http.max_minute_range_days)"), "{}", minute.body);
    for query in ["from=0000-01-01&to=2026-01-01", "from=2026-01-01&to=0000-12-31"] {
        let zero = rate(query);
        assert_eq!(zero.status, 400);
        assert!(zero.error().contains("year 0000 does not exist"), "{}", zero.body);
    }
    let alerts = get(addr, "/api/v1/alerts?from=0000-01-01", None);
    assert_eq!(alerts.status, 400);
    assert!(alerts.error().contains("year 0000"), "{}", alerts.body);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_parameters_bad_queries_unknown_routes_and_methods_get_json_errors() {
    let daemon = TestDaemon::start().await;
    let addr = daemon.running.http_addr;
    let typo = get(addr, &format!("/api/v1/sites/{MN}/rate?from=2026-01-01&to=2026-01-02&bassis=day"), None);
    assert_eq!(typo.status, 400, "{}", typo.body);
    assert!(typo.error().contains("unknown field `bassis`"), "{}", typo.body);
    let missing = get(addr, &format!("/api/v1/sites/{MN}/rate?to=2026-01-02"), None);
    assert_eq!(missing.status, 400);
    assert!(missing.error().contains("missing field `from`"), "{}", missing.body);
    assert!(missing.head.to_ascii_lowercase().contains("content-type: application/json"), "{}", missing.head);
    for path in [
        "/api/v1/sites?verbose=1",
        &format!("/api/v1/sites/{MN}/marks?all=1"),
        "/api/v1/rates?from=2026-01-01&to=2026-01-02&page=2",
        "/api/v1/alerts?limit=many",
        "/api/v1/alerts?severity=high",
    ] {
        let answer = get(addr, path, None);
        assert_eq!(answer.status, 400, "{path}: {}", answer.body);
        assert!(!answer.error().is_empty());
    }
    let unknown = get(addr, "/api/v1/nothing-here", None);
    assert_eq!(unknown.status, 404);
    assert!(unknown.error().contains("/api/v1/nothing-here"), "{}", unknown.body);
    let wrong_method = post(addr, "/api/v1/rates", ADMIN_TOKEN, None, "");
    assert_eq!(wrong_method.status, 405);
    assert!(wrong_method.error().contains("POST is not allowed"), "{}", wrong_method.body);
    assert!(wrong_method.head.to_ascii_lowercase().contains("allow: get"), "{}", wrong_method.head);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rfc3339_times_the_api_prints_are_accepted_back() {
    let daemon = TestDaemon::start().await;
    let addr = daemon.running.http_addr;
    let first = get(addr, &format!("/api/v1/sites/{MN}/rate?from=2026-11-01&to=2026-11-30"), None);
    assert_eq!(first.status, 200, "{}", first.body);
    let (from, to) =
        (first.json()["from"].as_str().unwrap().to_owned(), first.json()["to"].as_str().unwrap().to_owned());
    assert_eq!((from.as_str(), to.as_str()), ("2026-11-01T00:00:00.000+08:00", "2026-11-30T00:00:00.000+08:00"));
    // Pasted as printed (a raw `+` reads as a space in a query string) and percent-encoded.
    for (f, t) in [(from.clone(), to.clone()), (from.replace('+', "%2B"), to.replace('+', "%2B"))] {
        let again = get(addr, &format!("/api/v1/sites/{MN}/rate?from={f}&to={t}"), None);
        assert_eq!(again.status, 200, "{f}: {}", again.body);
        assert_eq!((again.json()["from"].as_str(), again.json()["to"].as_str()), (Some(&*from), Some(&*to)));
    }
    let utc = get(addr, &format!("/api/v1/sites/{MN}/rate?from=2026-10-31T16:00:00Z&to={to}"), None);
    assert_eq!(utc.json()["from"], from.as_str(), "{}", utc.body);
    let alerts = get(addr, &format!("/api/v1/alerts?state=all&from={from}&to={to}"), None);
    assert_eq!(alerts.status, 200, "{}", alerts.body);
    daemon.stop().await;
}

/// The README's mark example, as written (`curl -d` sends `application/x-www-form-urlencoded`).
fn readme_mark_example() -> (String, String) {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme.find("-d '{\"from\"").expect("README has a mark POST example") + 4;
    let body = readme[start..].split('\'').next().unwrap().to_owned();
    let path = readme[start + body.len()..].split_whitespace().find(|w| w.contains("/marks")).unwrap();
    (body, path.trim_start_matches("127.0.0.1:9213").to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marks_are_posted_as_the_readme_shows_and_shown_in_rfc3339() {
    let daemon = daemon_with_tokens(false, |_| {}).await;
    let addr = daemon.running.http_addr;
    let (body, path) = readme_mark_example();
    assert_eq!(path, format!("/api/v1/sites/{MN}/marks"));
    let created = post(addr, &path, ADMIN_TOKEN, Some("application/x-www-form-urlencoded"), &body);
    assert_eq!(created.status, 201, "{}", created.body);
    let mark = &created.json()["mark"];
    assert_eq!(
        (mark["from"].as_str(), mark["to"].as_str()),
        (Some("2026-11-10T00:00:00.000+08:00"), Some("2026-11-12T00:00:00.000+08:00"))
    );
    assert!(mark["created"].as_str().unwrap().ends_with("+08:00"), "{mark}");
    for content_type in [None, Some("application/json; charset=utf-8")] {
        let rfc3339 = r#"{"from": "2026-11-12T00:00:00+08:00", "to": "2026-11-12T06:00:00.000+08:00", "reason": "停运", "evidence": "e", "author": "a"}"#;
        let answer = post(addr, &path, ADMIN_TOKEN, content_type, rfc3339);
        assert_eq!(answer.status, 201, "{content_type:?}: {}", answer.body);
    }
    // Marks reach the list through the store, which follows the archive: wait for it.
    let mut listed = get(addr, &path, None).json();
    for _ in 0..100 {
        if listed.as_array().unwrap().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        listed = get(addr, &path, None).json();
    }
    assert_eq!(listed.as_array().unwrap().len(), 3);
    assert_eq!(listed[2]["mark"]["to"], "2026-11-12T06:00:00.000+08:00");
    let rate = get(addr, &format!("/api/v1/sites/{MN}/rate?from=2026-11-01&to=2026-12-01"), None);
    assert_eq!(rate.status, 200, "{}", rate.body);
    assert_eq!(rate.json()["marks"][0]["from"], "2026-11-10T00:00:00.000+08:00", "{}", rate.body);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_checked_before_the_body_is_read() {
    let daemon = daemon_with_tokens(false, |_| {}).await;
    let addr = daemon.running.http_addr;
    let path = format!("/api/v1/sites/{MN}/marks");
    let garbage = post(addr, &path, "wrong-token", Some("text/plain"), "not json at all");
    assert_eq!(garbage.status, 401, "{}", garbage.body);
    assert!(garbage.error().contains("bearer token"), "{}", garbage.body);
    assert!(garbage.head.to_ascii_lowercase().contains("www-authenticate: bearer"), "{}", garbage.head);
    // 100 MB announced and never sent: refused at once, unread.
    let started = Instant::now();
    let request =
        format!("POST {path} HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer nope\r\nContent-Length: 100000000\r\n\r\n{{");
    let unread = send(addr, request.as_bytes());
    assert_eq!(unread.status, 401, "{}", unread.body);
    assert!(started.elapsed() < Duration::from_secs(5));
    let bad_json = post(addr, &path, ADMIN_TOKEN, None, "{\"from\": ");
    assert_eq!(bad_json.status, 400);
    assert!(bad_json.error().starts_with("request body:"), "{}", bad_json.body);
    let empty = post(addr, &path, ADMIN_TOKEN, None, "");
    assert_eq!(empty.error(), "request body: a JSON body is required");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mark_larger_than_an_archive_record_gets_413_naming_the_limit() {
    let daemon = daemon_with_tokens(false, |_| {}).await;
    let addr = daemon.running.http_addr;
    let path = format!("/api/v1/sites/{MN}/marks");
    let limit = hj212_archive::MAX_DATA;
    let mark = |evidence_len: usize| {
        format!(
            r#"{{"from": "2026-11-10", "to": "2026-11-12", "reason": "r", "evidence": "{}", "author": "a"}}"#,
            "e".repeat(evidence_len)
        )
    };
    // The body fits exactly, the archived record (with mn and the bounds in ms) does not.
    let body = mark(limit - mark(0).len());
    assert_eq!(body.len(), limit);
    let record_too_large = post(addr, &path, ADMIN_TOKEN, Some("application/json"), &body);
    assert_eq!(record_too_large.status, 413, "{}", &record_too_large.body[..record_too_large.body.len().min(300)]);
    assert!(record_too_large.error().contains(&format!("over {limit} bytes")), "{}", record_too_large.body);
    let body_too_large = post(addr, &path, ADMIN_TOKEN, Some("application/json"), &mark(limit));
    assert_eq!(body_too_large.status, 413);
    assert!(body_too_large.error().contains(&format!("over {limit} bytes")), "{}", body_too_large.body);
    let fits = post(addr, &path, ADMIN_TOKEN, Some("application/json"), &mark(limit - 300));
    assert_eq!(fits.status, 201, "a mark up to the limit is kept");
    let dir = daemon.stop().await;
    let records = hj212_archive::Follower::new(&dir.path().join("archive"), 1).read(u64::MAX, 1000).unwrap();
    let marks = records.iter().filter(|r| r.verdict == hj212_archive::Verdict::Mark).count();
    assert_eq!(marks, 1, "nothing of the refused marks was archived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_read_token_reads_need_it_but_metrics_and_probes_stay_open() {
    let daemon = daemon_with_tokens(true, |_| {}).await;
    let addr = daemon.running.http_addr;
    for path in ["/api/v1/sites", "/api/v1/alerts", "/api/v1/rates?from=2026-01-01&to=2026-01-02"] {
        let refused = get(addr, path, None);
        assert_eq!(refused.status, 401, "{path}");
        assert!(refused.error().contains("server.admin_read_token_file"), "{}", refused.body);
        assert_eq!(get(addr, path, Some("wrong-token-0123456789abc")).status, 401);
        assert_eq!(get(addr, path, Some(READ_TOKEN)).status, 200, "{path}");
        assert_eq!(get(addr, path, Some(ADMIN_TOKEN)).status, 200, "the admin token reads too");
    }
    for path in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(get(addr, path, None).status, 200, "{path} stays open");
    }
    let mark = r#"{"from": "2026-11-10", "to": "2026-11-12", "reason": "r", "evidence": "e", "author": "a"}"#;
    assert_eq!(
        post(addr, &format!("/api/v1/sites/{MN}/marks"), READ_TOKEN, None, mark).status,
        401,
        "reading is not writing"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rates_of_every_site_come_in_pages() {
    let daemon = TestDaemon::start_with(|config| {
        for mn in ["SITE2", "SITE3"] {
            config.sites.push(common::site(mn, "123456", hj212_config::CrcSetting::Hj212));
        }
    })
    .await;
    let addr = daemon.running.http_addr;
    let page = get(addr, "/api/v1/rates?from=2026-01-01&to=2026-01-02&limit=2", None).json();
    assert_eq!(
        (page["total"].as_u64(), page["count"].as_u64(), page["next_offset"].as_u64()),
        (Some(3), Some(2), Some(2))
    );
    assert_eq!(page["rates"][0]["mn"], MN);
    assert_eq!(page["from"], "2026-01-01T00:00:00.000+08:00");
    let last = get(addr, "/api/v1/rates?from=2026-01-01&to=2026-01-02&limit=2&offset=2", None).json();
    assert_eq!((last["count"].as_u64(), last["rates"][0]["mn"].as_str()), (Some(1), Some("SITE3")));
    assert!(last["next_offset"].is_null());
    let all = get(addr, "/api/v1/rates?from=2026-01-01&to=2026-01-02&details=true", None).json();
    assert_eq!(all["count"], 3, "{all}");
    let too_many = get(addr, "/api/v1/rates?from=2026-01-01&to=2026-01-02&details=true&limit=21", None);
    assert_eq!(too_many.status, 400);
    assert!(too_many.error().contains("use 1 to 20 sites per page with details=true"), "{}", too_many.body);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_data_time_is_rfc3339_like_the_other_times() {
    let daemon = TestDaemon::start().await;
    let mut client = daemon.client().await;
    let data_time = beijing_in(-60);
    client.send(&realtime("20260101120000000", &data_time, 5)).await;
    client.reply().await;
    let sites = get(daemon.running.http_addr, "/api/v1/sites", None).json();
    let t = &data_time;
    let expected = format!("{}-{}-{}T{}:{}:{}.000+08:00", &t[..4], &t[4..6], &t[6..8], &t[8..10], &t[10..12], &t[12..]);
    assert_eq!(sites[0]["last_data_time"], expected.as_str(), "{sites}");
    assert!(sites[0]["last_frame_time"].as_str().unwrap().ends_with("+08:00"));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_does_not_hold_up_the_stop() {
    let daemon = daemon_with_tokens(false, |config| {
        config.http.header_read_timeout_secs = 120;
        config.http.request_timeout_secs = 120;
        config.http.shutdown_grace_secs = 1;
    })
    .await;
    let addr = daemon.running.http_addr;
    let mut half_head = TcpStream::connect(addr).await.unwrap();
    half_head.write_all(b"GET /api/v1/sites HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut half_body = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/sites/{MN}/marks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: 100\r\n\r\n{{\"from\""
    );
    half_body.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(15), daemon.stop())
        .await
        .expect("the daemon stops despite half-sent requests");
    assert!(started.elapsed() < Duration::from_secs(5), "stopped within the grace period: {:?}", started.elapsed());
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(1), half_head.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the half-sent request's connection was closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_gets_408_within_the_request_timeout() {
    let daemon = daemon_with_tokens(false, |config| config.http.request_timeout_secs = 1).await;
    let addr = daemon.running.http_addr;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/sites/{MN}/marks HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), slow.read_to_string(&mut answer))
        .await
        .expect("answered in time")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.0 408"), "{answer}");
    assert!(answer.contains("http.request_timeout_secs"), "{answer}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped_and_silent_ones_closed_after_the_header_timeout() {
    let daemon = TestDaemon::start_with(|config| {
        config.http.max_connections = 2;
        config.http.header_read_timeout_secs = 2;
    })
    .await;
    let addr = daemon.running.http_addr;
    let mut silent = [TcpStream::connect(addr).await.unwrap(), TcpStream::connect(addr).await.unwrap()];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(addr).await.unwrap();
    third.write_all(b"GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    let early = tokio::time::timeout(Duration::from_millis(500), third.read_to_string(&mut answer)).await;
    assert!(early.is_err(), "a third connection waits while two are open: {answer}");
    for stream in &mut silent {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "a silent connection is closed after the header timeout");
    }
    tokio::time::timeout(Duration::from_secs(5), third.read_to_string(&mut answer)).await.expect("served").unwrap();
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    let cut = daemon.metric(r#"hj212_http_connections_cut_total{reason="header_timeout"}"#);
    assert!(cut >= 2, "header timeouts counted: {cut}");
    daemon.stop().await;
}

/// A connection that holds its slot (here kept alive and silent, with a long header timeout)
/// is closed at `http.connection_max_secs`, so the next client is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_does_not_hold_its_slot_past_its_lifetime() {
    let daemon = daemon_with_tokens(false, |config| {
        config.http.max_connections = 1;
        config.http.header_read_timeout_secs = 60;
        config.http.connection_max_secs = 1;
    })
    .await;
    let addr = daemon.running.http_addr;
    let mut first = TcpStream::connect(addr).await.unwrap();
    first.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut answer = [0u8; 256];
    let n = first.read(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"), "kept alive after its answer");
    let started = Instant::now();
    let second = tokio::task::spawn_blocking(move || get(addr, "/healthz", None)).await.unwrap();
    assert_eq!(second.status, 200);
    assert!(started.elapsed() < Duration::from_secs(5), "served after {:?}", started.elapsed());
    daemon.stop().await;
}
