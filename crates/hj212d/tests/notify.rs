//! Notifications end to end: frames over TCP, the alert engine, the outbox and the
//! `[[notify]]` channels, against real local receivers: an HTTP server standing in for the
//! webhook, DingTalk and WeCom endpoints, an SMTP sink that requires STARTTLS (aiosmtpd), and
//! mosquitto for the MQTT publisher sharing the outbox.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{MN, PW, frame, http_get};
use hj212_config::{Config, CrcSetting, FactorLimit, LimitBasis, Mqtt, Notify, NotifyKind, SmtpTls};
use hj212d::{Daemon, Running};
use hmac::Mac as _;
use serde_json::Value;
use test_support::mosquitto::{Mosquitto, Subscriber};
use test_support::receiver::{Answer, Receiver};
use test_support::smtp::SmtpSink;

const MN_B: &str = "010000A8900016F000169DC1";
const DINGTALK_SECRET: &str = "SECc0ffee0123456789abcdef";
const WAIT: Duration = Duration::from_secs(20);

fn so2_limit() -> FactorLimit {
    FactorLimit {
        factor: "a21026".into(),
        max: Some(35.0),
        min: None,
        basis: LimitBasis::Hour,
        reference_o2: None,
        max_step: None,
        range: None,
    }
}

/// The start of the Beijing hour `hours_ago` hours before now, as a DataTime.
fn hour(hours_ago: i64) -> String {
    let start = hj212_compliance::Basis::Hour.period_start(hj212_archive::now_ms()) - hours_ago * 3_600_000;
    hj212_proto::time::BeijingTime::from_unix_millis(start).to_seconds_string()
}

fn hourly(qn: u32, data_time: &str, so2: f64) -> Vec<u8> {
    frame(&format!(
        "QN=20261128000000{qn:03};ST=31;CN=2061;PW={PW};MN={MN};Flag=5;CP=&&DataTime={data_time};a21026-Avg={so2},a21026-Flag=N&&"
    ))
}

/// Hourly SO2 values, oldest first, ending with the last full hour; each frame acknowledged.
async fn send_hours(addr: std::net::SocketAddr, values: &[f64]) {
    let mut client = common::Client::connect(addr).await;
    let n = values.len();
    for (i, so2) in values.iter().enumerate() {
        let hours_ago = i64::try_from(n - i).unwrap();
        client.send(&hourly(u32::try_from(i).unwrap(), &hour(hours_ago), *so2)).await;
        assert_eq!(client.reply().await.cn, 9014, "each hourly frame is acknowledged");
    }
}

fn secret_file(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{text}\n")).unwrap();
    path
}

/// A webhook channel for exceedance messages (the clock's record-missing alerts stay out).
fn webhook(dir: &Path, name: &str, url: &str) -> Notify {
    let mut channel = Notify::new(name, NotifyKind::Webhook);
    channel.url_file = Some(secret_file(dir, &format!("{name}.url"), url));
    channel.kinds = vec!["exceedance".into(), "negative".into()];
    channel.max_backoff_secs = 1;
    channel
}

fn base_config(dir: &Path) -> Config {
    let mut config = common::config(&dir.join("data"));
    config.sites[0].limits = vec![so2_limit()];
    config
}

async fn start(config: &Config) -> Running {
    Daemon::start(config.clone()).await.expect("daemon starts")
}

/// The value of the series `name` with these labels (in any order), 0 when absent.
fn value(metrics: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

fn ids(requests: &[test_support::receiver::Request]) -> Vec<String> {
    let mut ids: Vec<String> = requests.iter().map(|r| r.json()["id"].as_str().unwrap().to_owned()).collect();
    ids.dedup(); // at least once: a resend right after itself is allowed
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exceedance_reaches_the_webhook_the_robots_and_the_mailbox() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let smtp = SmtpSink::start();
    let d = dir.path();
    let mut config = base_config(d);
    let mut hook = webhook(d, "hook", &receiver.url("/hook"));
    hook.token_file = Some(secret_file(d, "hook.token", "hook-bearer-0123"));
    let mut dingtalk = Notify::new("dingtalk", NotifyKind::Dingtalk);
    dingtalk.url_file = Some(secret_file(d, "dt.url", &receiver.url("/robot/send?access_token=dt-access-token-42")));
    dingtalk.secret_file = Some(secret_file(d, "dt.secret", DINGTALK_SECRET));
    dingtalk.kinds = vec!["exceedance".into()];
    let mut wecom = Notify::new("wecom", NotifyKind::Wecom);
    wecom.url_file = Some(secret_file(d, "wc.url", &receiver.url("/cgi-bin/webhook/send?key=wc-key-77")));
    wecom.kinds = vec!["exceedance".into()];
    wecom.language = hj212_config::NotifyLanguage::Both;
    let mut email = Notify::new("mail", NotifyKind::Email);
    email.smtp_server = Some("127.0.0.1".into());
    email.smtp_port = smtp.addr.port();
    email.tls = SmtpTls::Starttls;
    email.ca_file = Some(smtp.ca_file());
    email.from = Some("hj212d@example.invalid".into());
    email.to = vec!["duty@example.invalid".into(), "lead@example.invalid".into()];
    email.kinds = vec!["exceedance".into()];
    let smtps = SmtpSink::start_implicit_tls();
    let mut smtps_channel = email.clone();
    (smtps_channel.name, smtps_channel.tls, smtps_channel.smtp_port) =
        ("smtps".into(), SmtpTls::Tls, smtps.addr.port());
    smtps_channel.ca_file = Some(smtps.ca_file());
    config.notify = vec![hook, dingtalk, wecom, email, smtps_channel];
    assert_eq!(hj212_config::check(&config), [], "the test config is valid");
    let running = start(&config).await;

    send_hours(running.hj212_addr, &[50.0]).await;

    let hook = &receiver.wait_accepted("/hook", 1, WAIT)[0];
    let alert = hook.json();
    assert_eq!((alert["kind"].as_str(), alert["state"].as_str()), (Some("exceedance"), Some("raised")), "{alert}");
    assert_eq!((alert["mn"].as_str(), alert["channel"].as_str()), (Some(MN), Some("hook")));
    assert_eq!(alert["value"].as_f64(), Some(50.0), "the alert JSON as it is: {alert}");
    assert_eq!(hook.header("authorization"), Some("Bearer hook-bearer-0123"));

    let robot = &receiver.wait_accepted("/robot/send", 1, WAIT)[0];
    let body = robot.json();
    assert_eq!(body["msgtype"], "markdown");
    assert!(body["markdown"]["title"].as_str().unwrap().contains("超标"), "the kind in Chinese: {body}");
    assert!(body["markdown"]["text"].as_str().unwrap().contains(MN), "{body}");
    assert_eq!(robot.query("access_token"), Some("dt-access-token-42"));
    let timestamp: i64 = robot.query("timestamp").unwrap().parse().unwrap();
    assert!((hj212_archive::now_ms() - timestamp).abs() < 60_000, "timestamp in ms, now");
    // DingTalk's recipe, computed here independently of the daemon's code.
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(DINGTALK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}\n{DINGTALK_SECRET}").as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let sign = robot.query("sign").unwrap().replace("%2B", "+").replace("%2F", "/").replace("%3D", "=");
    assert_eq!(sign, expected, "sign = base64(HMAC-SHA256(secret, timestamp\\nsecret)), URL-encoded");

    let wecom = receiver.wait_accepted("/cgi-bin/webhook/send", 1, WAIT)[0].json();
    assert_eq!(wecom["msgtype"], "markdown");
    let content = wecom["markdown"]["content"].as_str().unwrap();
    assert!(content.contains("站点") && content.contains("Site"), "both languages: {content}");

    let mail = &smtp.wait_for(1, WAIT)[0];
    assert!(
        mail.contains("Subject: ") && mail.contains("duty@example.invalid") && mail.contains("lead@example.invalid"),
        "{mail}"
    );
    assert!(mail.contains("X-Peer"), "aiosmtpd records the peer: {mail}");
    assert!(smtps.wait_for(1, WAIT)[0].contains("duty@example.invalid"), "over SMTPS too");

    let (status, channels) = http_get(running.http_addr, "/api/v1/notify");
    assert_eq!(status, 200, "{channels}");
    let channels: Value = serde_json::from_str(&channels).unwrap();
    assert_eq!(channels.as_array().unwrap().len(), 5, "{channels}");
    let text = channels.to_string();
    for secret in ["dt-access-token-42", "wc-key-77", "hook-bearer-0123", DINGTALK_SECRET] {
        assert!(!text.contains(secret), "{secret} in /api/v1/notify: {text}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // counted once the answer is back
    let metrics = http_get(running.http_addr, "/metrics").1;
    for channel in ["hook", "dingtalk", "wecom", "mail", "smtps"] {
        let sent = value(&metrics, "hj212_notify_messages_total", &[("channel", channel), ("outcome", "sent")]);
        assert_eq!(sent, 1, "{channel}: {metrics}");
    }
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_channel_down_holds_its_messages_in_order_across_a_restart_and_holds_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    receiver.answer("/down", Answer::ServerError);
    let broker = Mosquitto::start();
    let subscriber = Subscriber::connect(broker.addr, "hj212/alerts/#");
    let mut config = base_config(dir.path());
    config.mqtt = Some(Mqtt { url: broker.url(), max_backoff_secs: 1, ..Mqtt::default() });
    config.notify =
        vec![webhook(dir.path(), "down", &receiver.url("/down")), webhook(dir.path(), "up", &receiver.url("/up"))];
    let running = start(&config).await;

    // raised, cleared, raised, cleared, raised.
    send_hours(running.hj212_addr, &[50.0, 10.0, 50.0, 10.0, 50.0]).await;
    let up = ids(&receiver.wait_accepted("/up", 5, WAIT));
    let mqtt: Vec<String> = subscriber
        .wait_for(5, WAIT)
        .iter()
        .filter(|m| m.topic.ends_with("/exceedance"))
        .map(|m| serde_json::from_slice::<Value>(&m.payload).unwrap()["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(mqtt, up, "MQTT and the working channel both have every message, in order");
    assert!(receiver.accepted("/down").is_empty());
    // The down channel tries on its own schedule: it may not have failed yet when the others are done.
    receiver.wait_requests("/down", 1, WAIT);
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, ready) = http_get(running.http_addr, "/readyz");
        if ready.contains("degraded: notify down failing") {
            assert!(ready.starts_with("ready\n"), "{ready}");
            break;
        }
        assert!(Instant::now() < deadline, "the failing channel is not shown: {ready}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.stop().await.unwrap();

    // Restarted while the receiver is still down; then it comes back.
    let running = start(&config).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    receiver.answer("/down", Answer::Accept);
    let down = ids(&receiver.wait_accepted("/down", 5, WAIT));
    assert_eq!(down, up, "every message arrived, in order, none lost across the restart");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(ids(&receiver.accepted("/up")), up, "the working channel resent nothing after the restart");
    // Every consumer has everything: the outbox is emptied.
    let db = dir.path().join("data/alerts.sqlite");
    let deadline = Instant::now() + WAIT;
    loop {
        let rows: i64 = rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM outbox WHERE topic LIKE 'alerts/%'", [], |r| r.get(0))
            .unwrap();
        if rows == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{rows} alert messages left in the outbox");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.stop().await.unwrap();
}

/// Beijing time `offset` minutes from now, "HH:MM".
fn beijing_clock(offset: i64) -> String {
    let m = (hj212_archive::now_ms() / 60_000 + 8 * 60 + offset).rem_euclid(1440);
    format!("{:02}:{:02}", m / 60, m % 60)
}

#[tokio::test(flavor = "multi_thread")]
async fn routing_and_the_rate_limit_digest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let receiver = Receiver::start();
    let mut config = base_config(d);
    config.sites.push(common::site(MN_B, PW, CrcSetting::Hj212));
    let mut site_b = webhook(d, "site-b", &receiver.url("/site-b"));
    site_b.sites = vec![MN_B.into()];
    let mut warnings = webhook(d, "warnings", &receiver.url("/warnings"));
    warnings.severities = vec!["warning".into()];
    let mut cleared = webhook(d, "cleared", &receiver.url("/cleared"));
    (cleared.states, cleared.kinds) = (vec!["cleared".into()], vec!["exceedance".into()]);
    let mut limited = webhook(d, "limited", &receiver.url("/limited"));
    limited.max_per_minute = 2;
    config.notify = vec![site_b, warnings, cleared, limited];
    let running = start(&config).await;

    // exceedance raised, cleared, raised, cleared (critical); negative raised, cleared (warning).
    send_hours(running.hj212_addr, &[50.0, 10.0, 50.0, 10.0, -1.0, 10.0]).await;
    let warned = receiver.wait_accepted("/warnings", 2, WAIT);
    assert!(warned.iter().all(|r| r.json()["kind"] == "negative"), "only warnings");
    let cleared = receiver.wait_accepted("/cleared", 2, WAIT);
    assert!(cleared.iter().all(|r| r.json()["state"] == "cleared" && r.json()["kind"] == "exceedance"));
    let limited = receiver.wait_accepted("/limited", 2, WAIT);
    assert!(limited.iter().all(|r| r.json()["id"].is_string()), "the first two on their own");

    // Over 2 a minute: the other four go as one digest when a send is free again.
    let all = receiver.wait_accepted("/limited", 3, Duration::from_secs(75));
    let digest = all[2].json();
    assert_eq!((digest["channel"].as_str(), digest["digest"].as_str()), (Some("limited"), Some("rate_limit")));
    assert_eq!(digest["messages"].as_array().unwrap().len(), 4, "{digest}");
    assert!(receiver.accepted("/site-b").is_empty(), "site B's channel gets nothing of site A");
    assert_eq!(receiver.accepted("/warnings").len(), 2);
    assert_eq!(receiver.accepted("/cleared").len(), 2);
    // Counted once the receiver's answer is back, just after it recorded the request.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let metrics = http_get(running.http_addr, "/metrics").1;
    let messages = |channel: &str, outcome: &str| {
        value(&metrics, "hj212_notify_messages_total", &[("channel", channel), ("outcome", outcome)])
    };
    assert!(messages("site-b", "skipped_route") >= 6, "{metrics}");
    assert_eq!(messages("limited", "digested"), 4, "{metrics}");
    assert_eq!((messages("limited", "sent"), messages("warnings", "sent")), (2, 2), "{metrics}");
    running.stop().await.unwrap();
}

/// The channel's `held` count from `/api/v1/notify`.
fn held(http: std::net::SocketAddr, channel: &str) -> u64 {
    let channels: Value = serde_json::from_str(&http_get(http, "/api/v1/notify").1).unwrap();
    channels.as_array().unwrap().iter().find(|c| c["name"] == channel).unwrap()["held"].as_u64().unwrap()
}

async fn wait_held(http: std::net::SocketAddr, channel: &str, n: u64) {
    let deadline = Instant::now() + WAIT;
    while held(http, channel) != n {
        assert!(Instant::now() < deadline, "{n} held by {channel}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn quiet_hours_hold_warnings_across_a_restart_and_send_them_as_one_digest_at_their_end() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let mut config = base_config(dir.path());
    let mut quiet = webhook(dir.path(), "quiet", &receiver.url("/quiet"));
    // Quiet since an hour ago, for another 1-2 minutes (Beijing time).
    quiet.quiet_hours = Some(format!("{}-{}", beijing_clock(-60), beijing_clock(2)));
    config.notify = vec![quiet];
    let running = start(&config).await;

    // exceedance raised and cleared (critical), negative raised and cleared (warning).
    send_hours(running.hj212_addr, &[50.0, 10.0, -1.0, 10.0]).await;
    let critical = receiver.wait_accepted("/quiet", 2, WAIT);
    assert!(critical.iter().all(|r| r.json()["severity"] == "critical"), "critical ones go at once");
    wait_held(running.http_addr, "quiet", 2).await;
    running.stop().await.unwrap();

    // The held ones are still in the outbox for the channel after a restart.
    let running = start(&config).await;
    wait_held(running.http_addr, "quiet", 2).await;
    assert_eq!(receiver.accepted("/quiet").len(), 2, "nothing else went during quiet hours");
    let all = receiver.wait_accepted("/quiet", 3, Duration::from_secs(150));
    let digest = all[2].json();
    assert_eq!(digest["digest"], "quiet_hours", "{digest}");
    let kinds: Vec<&str> = digest["messages"].as_array().unwrap().iter().map(|m| m["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["negative", "negative"], "{digest}");
    wait_held(running.http_addr, "quiet", 0).await;
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_answers_are_counted_errors_that_stall_no_other_channel() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let receiver = Receiver::start();
    let mut channels = Vec::new();
    for (name, kind, answer) in [
        ("garbage", NotifyKind::Dingtalk, Answer::Garbage),
        ("huge", NotifyKind::Wecom, Answer::Huge),
        ("refused", NotifyKind::Dingtalk, Answer::Errcode(310_000)),
        ("hang", NotifyKind::Webhook, Answer::Hang),
        ("error", NotifyKind::Webhook, Answer::ServerError),
    ] {
        let mut channel = webhook(d, name, &receiver.url(&format!("/{name}")));
        (channel.kind, channel.timeout_secs) = (kind, 1);
        receiver.answer(&format!("/{name}"), answer);
        channels.push(channel);
    }
    channels.push(webhook(d, "good", &receiver.url("/good")));
    // An SMTP server whose certificate this host does not trust (no ca_file): never sent in clear.
    let smtp = SmtpSink::start();
    let mut untrusted = Notify::new("untrusted", NotifyKind::Email);
    (untrusted.smtp_server, untrusted.smtp_port) = (Some("127.0.0.1".into()), smtp.addr.port());
    (untrusted.from, untrusted.to) = (Some("a@example.invalid".into()), vec!["b@example.invalid".into()]);
    (untrusted.timeout_secs, untrusted.max_backoff_secs) = (1, 1);
    channels.push(untrusted);
    let mut config = base_config(d);
    config.notify = channels;
    let running = start(&config).await;

    send_hours(running.hj212_addr, &[50.0]).await;
    let started = Instant::now();
    receiver.wait_accepted("/good", 1, WAIT);
    assert!(started.elapsed() < Duration::from_secs(5), "the good channel is not held up");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let metrics = http_get(running.http_addr, "/metrics").1;
    let errors = |channel: &str, kind: &str, error: &str| {
        value(&metrics, "hj212_notify_attempt_errors_total", &[("channel", channel), ("kind", kind), ("error", error)])
    };
    assert!(errors("garbage", "dingtalk", "answer") >= 1, "{metrics}");
    assert!(errors("huge", "wecom", "answer") >= 1, "{metrics}");
    assert!(errors("refused", "dingtalk", "answer") >= 1, "{metrics}");
    assert!(errors("hang", "webhook", "timeout") >= 1, "{metrics}");
    assert!(errors("error", "webhook", "status") >= 1, "{metrics}");
    assert!(errors("untrusted", "email", "smtp") >= 1, "{metrics}");
    assert!(smtp.messages().is_empty(), "nothing went to the untrusted server");
    let (status, ready) = http_get(running.http_addr, "/readyz");
    assert_eq!(status, 200, "degraded, not unready: {ready}");
    for name in ["garbage", "huge", "refused", "hang", "error", "untrusted"] {
        assert!(ready.contains(&format!("degraded: notify {name} failing")), "{name}: {ready}");
    }
    assert!(ready.contains("errcode 310000") && !ready.contains("access_token"), "{ready}");
    let stopping = Instant::now();
    running.stop().await.unwrap();
    assert!(stopping.elapsed() < Duration::from_secs(10), "a hanging receiver does not hold the stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_channel_down_holds_at_most_max_pending_and_gives_up_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    receiver.answer("/bounded", Answer::ServerError);
    let mut config = base_config(dir.path());
    let mut bounded = webhook(dir.path(), "bounded", &receiver.url("/bounded"));
    bounded.max_pending = 3;
    config.notify = vec![bounded];
    let running = start(&config).await;

    // Seven alert messages (and the site's status messages between them).
    send_hours(running.hj212_addr, &[50.0, 10.0, 50.0, 10.0, 50.0, 10.0, 50.0]).await;
    let given_up = || {
        let metrics = http_get(running.http_addr, "/metrics").1;
        value(&metrics, "hj212_notify_messages_total", &[("channel", "bounded"), ("outcome", "given_up")])
    };
    let deadline = Instant::now() + WAIT;
    while given_up() < 4 {
        assert!(Instant::now() < deadline, "the oldest beyond max_pending are given up: {}", given_up());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rows: i64 = rusqlite::Connection::open(dir.path().join("data/alerts.sqlite"))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))
        .unwrap();
    assert!(rows <= 3, "the outbox holds at most max_pending rows for the channel: {rows}");
    receiver.answer("/bounded", Answer::Accept);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let delivered = receiver.accepted("/bounded");
    assert!(!delivered.is_empty() && delivered.len() <= 3, "{} delivered", delivered.len());
    assert_eq!(delivered.last().unwrap().json()["state"], "raised", "the newest message is among them");
    running.stop().await.unwrap();
}

/// The daemon as a process, logging at debug: failing robots and mail leave their errors in
/// the log, never the URL's token, the signing secret, the bearer token or the password.
#[test]
fn no_secret_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let receiver = Receiver::start();
    receiver.answer("/", Answer::ServerError);
    let (listen, http) = (test_support::free_port(), test_support::free_port());
    std::fs::write(d.join("dt.url"), receiver.url("/robot/send?access_token=TOKEN-IN-URL-1")).unwrap();
    std::fs::write(d.join("dt.secret"), "SEC-SIGNING-SECRET-2").unwrap();
    std::fs::write(d.join("hook.url"), receiver.url("/hook?key=TOKEN-IN-URL-3")).unwrap();
    std::fs::write(d.join("hook.token"), "BEARER-TOKEN-4").unwrap();
    // A mail server that is not there.
    std::fs::write(d.join("smtp.password"), "SMTP-PASSWORD-5").unwrap();
    let mail_port = test_support::free_port().port();
    let config = format!(
        "[server]\nlisten = \"{listen}\"\nhttp_listen = \"{http}\"\ndata_dir = \"data\"\nlog_level = \"debug\"\n\
         [[sites]]\nmn = \"{MN}\"\npassword = \"{PW}\"\n[[sites.limits]]\nfactor = \"a21026\"\nmax = 35.0\n\
         [[notify]]\nname = \"dt\"\nkind = \"dingtalk\"\nurl_file = \"dt.url\"\nsecret_file = \"dt.secret\"\nmax_backoff_secs = 1\n\
         [[notify]]\nname = \"hook\"\nkind = \"webhook\"\nurl_file = \"hook.url\"\ntoken_file = \"hook.token\"\nmax_backoff_secs = 1\n\
         [[notify]]\nname = \"mail\"\nkind = \"email\"\nsmtp_server = \"127.0.0.1\"\nsmtp_port = {mail_port}\ntls = \"none\"\n\
         from = \"a@example.invalid\"\nto = [\"b@example.invalid\"]\nusername = \"hj212d\"\npassword_file = \"smtp.password\"\n\
         max_backoff_secs = 1\n"
    );
    let path = d.join("hj212d.toml");
    std::fs::write(&path, config).unwrap();
    let log = d.join("stderr.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hj212d"))
        .arg("--config")
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(http).is_err() {
        assert!(Instant::now() < deadline, "the daemon listens");
        std::thread::sleep(Duration::from_millis(50));
    }
    runtime.block_on(send_hours(listen, &[50.0]));
    let failures = |text: &str| text.matches("notification not delivered").count();
    while failures(&std::fs::read_to_string(&log).unwrap()) < 6 {
        assert!(Instant::now() < deadline, "every channel fails twice: {}", std::fs::read_to_string(&log).unwrap());
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, ready) = http_get(http, "/readyz");
    let (_, api) = http_get(http, "/api/v1/notify");
    let _ = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    for secret in ["TOKEN-IN-URL-1", "SEC-SIGNING-SECRET-2", "TOKEN-IN-URL-3", "BEARER-TOKEN-4", "SMTP-PASSWORD-5"] {
        for (what, output) in [("log", &text), ("/readyz", &ready), ("/api/v1/notify", &api)] {
            assert!(!output.contains(secret), "{secret} in the {what}:\n{output}");
        }
    }
    assert!(text.contains("HTTP 500"), "the errors are there: {text}");
}

/// A fleet-wide outage reaches people as one message: the sites' own offline messages carry
/// `inhibited_by` and are skipped, also by a channel routed to one of the sites.
#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_outage_is_one_notification() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let mut config = base_config(dir.path());
    (config.alerts.expected_interval_secs, config.alerts.offline_intervals) = (1, 2);
    config.alerts.fleet_outage_sites = 3;
    for mn in ["88888880000001", "88888880000002"] {
        config.sites.push(common::site(mn, PW, CrcSetting::Hj212));
    }
    let mut everyone = webhook(dir.path(), "everyone", &receiver.url("/everyone"));
    everyone.kinds = vec!["offline".into(), "fleet_outage".into()];
    let mut one_site = everyone.clone();
    (one_site.name, one_site.sites) = ("one-site".into(), vec![MN.into()]);
    one_site.url_file = Some(secret_file(dir.path(), "one.url", &receiver.url("/one-site")));
    config.notify = vec![everyone, one_site];
    let running = start(&config).await;

    // Nothing from any site for more than 2 x 1 s: all three go offline together.
    let fleet = receiver.wait_accepted("/everyone", 1, WAIT)[0].json();
    assert_eq!((fleet["kind"].as_str(), fleet["state"].as_str()), (Some("fleet_outage"), Some("raised")), "{fleet}");
    assert_eq!(receiver.wait_accepted("/one-site", 1, WAIT)[0].json()["kind"], "fleet_outage");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.accepted("/everyone").len(), 1, "not the three offline messages");
    assert_eq!(receiver.accepted("/one-site").len(), 1);
    let metrics = http_get(running.http_addr, "/metrics").1;
    let inhibited =
        value(&metrics, "hj212_notify_messages_total", &[("channel", "everyone"), ("outcome", "skipped_inhibited")]);
    assert_eq!(inhibited, 3, "{metrics}");
    running.stop().await.unwrap();
}
