//! The web console over HTTP as a browser speaks it: sign-in with per-user accounts, the
//! session cookie, pages that show what the daemon knows, acknowledgement with the CSRF token
//! and the operator's name, roles, and the sign-in lockout. (tests/console_browser.rs drives
//! the same pages in a real Chromium.)

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::PasswordHasher;
use common::{MN, PW, TestDaemon, frame};
use hj212_config::{Role, User};

const PASSWORD: &str = "correct horse 1";

fn user(name: &str, role: Role) -> User {
    let hash = Argon2::default().hash_password(PASSWORD.as_bytes()).unwrap().to_string();
    User { name: name.to_owned(), password_hash: hash, role }
}

async fn daemon() -> TestDaemon {
    TestDaemon::start_with(|config| {
        config.users = vec![user("wang", Role::Operator), user("zhao", Role::Viewer)];
        config.console.login_max_failures = 3;
        // The API's reads need a token; a console session opens them too.
        let token = config.server.data_dir.join("read.token");
        std::fs::write(&token, "read-token-of-the-console-test").unwrap();
        config.server.admin_read_token_file = Some(token);
        config.sites[0].factors = vec!["a21026".into()];
        config.sites[0].limits = vec![hj212_config::FactorLimit {
            factor: "a21026".into(),
            max: Some(50.0),
            min: None,
            basis: hj212_config::LimitBasis::Hour,
            reference_o2: None,
            max_step: None,
            range: None,
        }];
    })
    .await
}

/// One HTTP/1.0 exchange: (status, head, body).
fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> (u16, String, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let cookie = cookie.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    let form = form.unwrap_or_default();
    let content = if form.is_empty() {
        String::new()
    } else {
        format!("Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n", form.len())
    };
    write!(stream, "{method} {path} HTTP/1.0\r\nHost: localhost\r\n{cookie}{content}\r\n{form}").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (response[9..12].parse().unwrap(), head.to_owned(), body.to_owned())
}

/// The start of the hour `hours` before this one, Beijing time, as 14 digits.
fn hour_before(hours: i64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let ms = (i64::try_from(now).unwrap() / 3_600_000 - hours) * 3_600_000;
    hj212_proto::time::BeijingTime::from_unix_millis(ms).to_seconds_string()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// Signs in; returns the `Cookie` header value for the session.
fn sign_in(addr: SocketAddr, name: &str) -> String {
    let form = format!("user={name}&password={}&next=%2Fconsole%2F", PASSWORD.replace(' ', "+"));
    let (status, head, _) = exchange(addr, "POST", "/console/login", None, Some(&form));
    assert_eq!(status, 303, "{head}");
    assert_eq!(header(&head, "location"), Some("/console/"));
    let cookie = header(&head, "set-cookie").unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    cookie.split(';').next().unwrap().to_owned()
}

/// The value of `<input type="hidden" name="csrf" value="...">` on a page.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with the CSRF token") + 19;
    page[at..at + 64].to_owned()
}

async fn page_until(addr: SocketAddr, path: &str, cookie: &str, wanted: &str) -> String {
    for _ in 0..100 {
        let (status, _, body) = exchange(addr, "GET", path, Some(cookie), None);
        assert_eq!(status, 200, "{path}");
        if body.contains(wanted) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never showed {wanted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_in_sees_the_site_and_acknowledges_its_alert_with_a_note() {
    let daemon = daemon().await;
    let addr = daemon.running.http_addr;
    let (status, head, _) = exchange(addr, "GET", "/console/", None, None);
    assert_eq!((status, header(&head, "location")), (303, Some("/console/login?next=/console/")));
    let (status, _, body) = exchange(addr, "POST", "/console/login", None, Some("user=wang&password=nope"));
    assert_eq!(status, 401);
    assert!(body.contains("用户名或密码错误"), "{body}");
    let cookie = sign_in(addr, "wang");

    let (status, head, body) = exchange(addr, "GET", "/console/", Some(&cookie), None);
    assert_eq!(status, 200);
    assert!(header(&head, "content-security-policy").unwrap().contains("frame-ancestors 'none'"));
    assert!(body.contains(&format!("site {MN}")) && body.contains("离线"), "{body}");

    // A frame arrives: the site is online, its values on its page with names and units.
    let mut logger = daemon.client().await;
    logger.send(&common::realtime("20261201000000001", &common::beijing_in(0), 5)).await;
    assert_eq!(logger.reply().await.cn, 9014);
    page_until(addr, "/console/", &cookie, "在线").await;
    let site = page_until(addr, &format!("/console/sites/{MN}"), &cookie, "二氧化硫").await;
    assert!(site.contains("35.2 mg/m3"), "{site}");
    let english = page_until(addr, &format!("/console/sites/{MN}?lang=en"), &cookie, "sulphur dioxide").await;
    assert!(english.contains("Latest values"), "{english}");

    // An hourly record: drawn against its limit; the heat map shows the hour valid; the
    // site's reports open with the session (the API's reads need a token otherwise).
    let hour = hour_before(1);
    logger.send(&frame(&format!(
        "QN=20261201000000003;ST=31;CN=2061;PW={PW};MN={MN};Flag=5;CP=&&DataTime={hour};a21026-Avg=61.5,a21026-Flag=N&&"
    )))
    .await;
    assert_eq!(logger.reply().await.cn, 9014);
    let site = page_until(addr, &format!("/console/sites/{MN}?lang=zh"), &cookie, "<svg").await;
    assert!(site.contains("限值 50") && site.contains("class=\"value over\""), "{site}");
    assert!(site.contains("h-valid") && site.contains("h-missing"), "the heat map: {site}");
    let report = site.split("href=\"").find(|h| h.starts_with("/api/v1/reports/daily")).unwrap();
    let report = report[..report.find('"').unwrap()].replace("&amp;", "&");
    let (status, _, html) = exchange(addr, "GET", &report, Some(&cookie), None);
    assert_eq!(status, 200, "{html}");
    assert_eq!(exchange(addr, "GET", &report, None, None).0, 401, "no session, no token: refused");

    // A wrong password from the site's MN raises an alert; the operator acknowledges it.
    let wrong = frame(&format!(
        "QN=20261201000000002;ST=31;CN=2011;PW=999999;MN={MN};Flag=5;CP=&&DataTime={};a21026-Rtd=1&&",
        common::beijing_in(0)
    ));
    logger.send(&wrong).await;
    let alerts = page_until(addr, "/console/alerts?lang=zh", &cookie, "密码错误").await;
    let at = alerts.find("action=\"/console/alerts/").unwrap() + 24;
    let id = &alerts[at..at + alerts[at..].find('/').unwrap()];
    // The alert links to its site's visit form, which then answers it.
    assert!(alerts.contains(&format!("/console/sites/{MN}?alert={id}#visit-form")), "{alerts}");
    let answering = page_until(addr, &format!("/console/sites/{MN}?alert={id}"), &cookie, "visit-form").await;
    assert!(answering.contains(&format!("name=\"alert_id\" maxlength=\"64\" value=\"{id}\"")), "{answering}");
    let (status, _, _) =
        exchange(addr, "POST", &format!("/console/alerts/{id}/ack"), Some(&cookie), Some("csrf=0&note=x"));
    assert_eq!(status, 403, "a form without the session's token is refused");
    let form = format!("csrf={}&note=called+the+site", csrf_of(&alerts));
    let (status, head, _) = exchange(addr, "POST", &format!("/console/alerts/{id}/ack"), Some(&cookie), Some(&form));
    assert_eq!((status, header(&head, "location")), (303, Some("/console/alerts")));
    let (_, _, listed) = exchange(addr, "GET", "/api/v1/alerts", Some(&cookie), None);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let alert = listed["alerts"].as_array().unwrap().iter().find(|a| a["alert_id"] == id).unwrap();
    assert_eq!((alert["acked_by"].as_str(), alert["ack_note"].as_str()), (Some("wang"), Some("called the site")));

    // A downtime mark and a service visit recorded from the site's page: archived with the
    // operator as author; a mark ending before it starts is refused with the reason.
    let csrf = csrf_of(&alerts);
    let mark =
        format!("csrf={csrf}&from=2026-11-30T08:00&to=2026-11-30T20:00&reason=%E5%81%9C%E4%BA%A7&evidence=TZ-2026-118");
    let (status, head, _) = exchange(addr, "POST", &format!("/console/sites/{MN}/marks"), Some(&cookie), Some(&mark));
    assert_eq!((status, header(&head, "location")), (303, Some(&*format!("/console/sites/{MN}"))));
    let backwards = format!("csrf={csrf}&from=2026-11-30T20:00&to=2026-11-30T08:00&reason=x&evidence=y");
    let (status, _, page) =
        exchange(addr, "POST", &format!("/console/sites/{MN}/marks"), Some(&cookie), Some(&backwards));
    assert_eq!(status, 400);
    assert!(page.contains("to must be after from"), "{page}");
    let visit = format!(
        "csrf={csrf}&arrived=2026-11-30T09:00&left=2026-11-30T11:30&work=replaced+the+SO2+filter&result=ok&alert_id="
    );
    let (status, _, _) = exchange(addr, "POST", &format!("/console/sites/{MN}/visits"), Some(&cookie), Some(&visit));
    assert_eq!(status, 303);
    // Both are shown once the store has applied them.
    page_until(addr, &format!("/console/sites/{MN}"), &cookie, "TZ-2026-118").await;
    page_until(addr, &format!("/console/sites/{MN}"), &cookie, "replaced the SO2 filter").await;
    let (_, _, marks) = exchange(addr, "GET", &format!("/api/v1/sites/{MN}/marks"), Some(&cookie), None);
    let marks: serde_json::Value = serde_json::from_str(&marks).unwrap();
    assert_eq!(marks[0]["mark"]["author"], "wang", "{marks}");
    assert_eq!(marks[0]["mark"]["reason"], "停产");

    // A history request queued from the page; a CN the standard does not have is refused.
    let command = format!("csrf={csrf}&cn=2061&cp=BeginTime%3D{hour}%0D%0AEndTime%3D{hour}");
    let (status, _, _) =
        exchange(addr, "POST", &format!("/console/sites/{MN}/commands"), Some(&cookie), Some(&command));
    assert_eq!(status, 303);
    let unknown = format!("csrf={csrf}&cn=9999&cp=");
    let (status, _, page) =
        exchange(addr, "POST", &format!("/console/sites/{MN}/commands"), Some(&cookie), Some(&unknown));
    assert_eq!(status, 400, "{page}");
    let (_, _, commands) = exchange(addr, "GET", &format!("/api/v1/sites/{MN}/commands"), Some(&cookie), None);
    assert!(commands.contains("\"cn\":\"2061\""), "{commands}");

    // Signed out, the cookie opens nothing.
    let (status, _, _) =
        exchange(addr, "POST", "/console/logout", Some(&cookie), Some(&format!("csrf={}", csrf_of(&alerts))));
    assert_eq!(status, 303);
    assert_eq!(exchange(addr, "GET", "/console/", Some(&cookie), None).0, 303);
    // The acknowledgement and the command are in the archive with the operator's name.
    let dir = daemon.stop().await;
    let events: Vec<String> = common::records(dir.path())
        .into_iter()
        .filter(|r| r.verdict == hj212_archive::Verdict::Info)
        .map(|r| String::from_utf8_lossy(&r.data).into_owned())
        .collect();
    for event in ["alert_acknowledged", "command_queued"] {
        assert!(events.iter().any(|e| e.contains(event) && e.contains("\"by\":\"wang\"")), "{event}: {events:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_reads_but_cannot_acknowledge_and_guessing_locks_the_name_out() {
    let daemon = daemon().await;
    let addr = daemon.running.http_addr;
    let cookie = sign_in(addr, "zhao");
    let (status, _, body) = exchange(addr, "GET", "/console/alerts", Some(&cookie), None);
    assert_eq!(status, 200);
    assert!(!body.contains("/ack\""), "no acknowledgement form for a viewer");
    let form = format!("csrf={}", csrf_of(&body));
    let (status, _, _) = exchange(addr, "POST", "/console/alerts/any/ack", Some(&cookie), Some(&form));
    assert_eq!(status, 403);

    for _ in 0..3 {
        assert_eq!(exchange(addr, "POST", "/console/login", None, Some("user=wang&password=guess")).0, 401);
    }
    let right = format!("user=wang&password={}", PASSWORD.replace(' ', "+"));
    let (status, _, body) = exchange(addr, "POST", "/console/login", None, Some(&right));
    assert_eq!(status, 429, "locked even with the right password");
    assert!(body.contains("尝试次数过多"), "{body}");
    let metrics = daemon.http("/metrics").1;
    assert_eq!(common::metric(&metrics, r#"hj212_console_sign_ins_total{outcome="wrong"}"#), 3);
    assert!(common::metric(&metrics, r#"hj212_console_sign_ins_total{outcome="locked"}"#) >= 1);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_users_the_console_is_off() {
    let daemon = TestDaemon::start().await;
    let (status, body) = daemon.http("/console/");
    assert_eq!(status, 404);
    assert!(body.contains("[[users]]"), "{body}");
    daemon.stop().await;
}

#[test]
fn hash_password_reads_stdin_and_prints_a_hash_that_verifies() {
    use argon2::password_hash::PasswordVerifier;
    let run = |input: &str| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hj212d"))
            .arg("hash-password")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run(&format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(Argon2::default().verify_password(PASSWORD.as_bytes(), hash.trim()).is_ok());
    let short = run("short\n");
    assert_eq!(short.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 10 characters"));
}
