//! Alerts end to end: frames over TCP, the rule engine, the alerts database and API, and a
//! real mosquitto broker (started by test-support on a free loopback port).

mod common;

use std::time::Duration;

use common::{MN, PW, TestDaemon, frame};
use hj212_config::{FactorLimit, LimitBasis, Mqtt};
use serde_json::Value;
use test_support::mosquitto::{Mosquitto, Received, Subscriber};

const TOKEN: &str = "alert-test-token-0123456789";

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

async fn daemon(broker: &Mosquitto) -> TestDaemon {
    let token_dir = tempfile::tempdir().unwrap();
    let token_file = token_dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let url = broker.url();
    let daemon = TestDaemon::start_with(move |config| {
        config.server.admin_token_file = Some(token_file);
        config.mqtt = Some(Mqtt { url, max_backoff_secs: 1, ..Mqtt::default() });
        config.sites[0].limits = vec![so2_limit()];
    })
    .await;
    // The token was read at start; its folder may go.
    drop(token_dir);
    daemon
}

/// The start of the Beijing hour `hours_ago` hours before now, as a DataTime.
fn hour(hours_ago: i64) -> String {
    let now =
        i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap();
    let start = hj212_compliance::Basis::Hour.period_start(now) - hours_ago * 3_600_000;
    hj212_proto::time::BeijingTime::from_unix_millis(start).to_seconds_string()
}

fn hourly(qn: u32, data_time: &str, so2: f64) -> Vec<u8> {
    frame(&format!(
        "QN=20261128000000{qn:03};ST=31;CN=2061;PW={PW};MN={MN};Flag=5;CP=&&DataTime={data_time};a21026-Avg={so2},a21026-Flag=N&&"
    ))
}

async fn send_acked(daemon: &TestDaemon, frames: &[Vec<u8>]) {
    let mut client = daemon.client().await;
    for bytes in frames {
        client.send(bytes).await;
        assert_eq!(client.reply().await.cn, 9014, "each hourly frame is acknowledged");
    }
}

fn json(message: &Received) -> Value {
    serde_json::from_slice(&message.payload).unwrap_or_else(|e| panic!("{}: {e}", message.payload_str()))
}

/// A POST with an optional bearer token; returns (status, body).
fn post(addr: std::net::SocketAddr, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (response[9..12].parse().unwrap(), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exceedance_is_raised_once_and_cleared_once_with_a_retained_status() {
    let broker = Mosquitto::start();
    let alerts = Subscriber::connect(broker.addr, "hj212/alerts/#");
    let daemon = daemon(&broker).await;
    send_acked(&daemon, &[hourly(1, &hour(2), 50.0)]).await;
    let raised = alerts.wait_for(1, Duration::from_secs(10));
    assert_eq!(raised.len(), 1, "one raised message");
    assert_eq!(raised[0].topic, format!("hj212/alerts/{MN}/exceedance"));
    let message = json(&raised[0]);
    assert_eq!(message["state"], "raised");
    assert_eq!((message["value"].as_f64(), message["limit"].as_f64()), (Some(50.0), Some(35.0)));
    assert_eq!((message["mn"].as_str(), message["factor"].as_str()), (Some(MN), Some("a21026")));
    assert_eq!(message["severity"], "critical");
    assert_eq!(message["site"], format!("site {MN}"));
    assert!(message["message"]["zh"].as_str().unwrap().contains("超标"), "{message}");
    assert!(message["message"]["en"].as_str().unwrap().contains("exceedance"), "{message}");
    assert!(message["data_time"].as_str().unwrap().ends_with("+08:00"));
    // A second frame still above the limit but not worse: no message.
    send_acked(&daemon, &[hourly(2, &hour(1), 45.0), hourly(3, &hour(0), 10.0)]).await;
    let all = alerts.wait_for(2, Duration::from_secs(10));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = if alerts.received().len() > all.len() { alerts.received() } else { all };
    assert_eq!(all.len(), 2, "raised, then cleared; nothing else: {all:?}");
    let cleared = json(&all[1]);
    assert_eq!((cleared["state"].as_str(), cleared["value"].as_f64()), (Some("cleared"), Some(10.0)));
    assert_eq!(cleared["alert_id"], message["alert_id"]);
    assert_ne!(cleared["id"], message["id"], "each message has its own id");

    // A subscriber arriving later gets the retained status: online, nothing active.
    let status = Subscriber::connect(broker.addr, "hj212/status/#").wait_for(1, Duration::from_secs(10));
    assert_eq!(status.len(), 1);
    assert!(status[0].retain, "status is retained");
    let status = json(&status[0]);
    assert_eq!((status["mn"].as_str(), status["online"].as_bool()), (Some(MN), Some(true)));
    assert_eq!(status["active_alerts"], serde_json::json!([]));

    // Stored, listed and acknowledged through the API.
    let (code, body) = daemon.http("/api/v1/alerts?state=all");
    assert_eq!(code, 200, "{body}");
    let listed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(listed["count"], 1);
    let alert = &listed["alerts"][0];
    assert_eq!((alert["kind"].as_str(), alert["state"].as_str()), (Some("exceedance"), Some("cleared")));
    assert_eq!(alert["messages"], 2);
    assert_eq!(daemon.http("/api/v1/alerts").1, r#"{"alerts":[],"count":0}"#, "state=active by default");
    assert_eq!(daemon.http("/api/v1/alerts?state=open").0, 400);
    let id = alert["alert_id"].as_str().unwrap();
    let addr = daemon.running.http_addr;
    assert_eq!(post(addr, &format!("/api/v1/alerts/{id}/ack"), None, "{}").0, 401, "a token is required");
    let (code, body) = post(addr, &format!("/api/v1/alerts/{id}/ack"), Some(TOKEN), r#"{"by":"duty","note":"seen"}"#);
    assert_eq!(code, 200, "{body}");
    let acked: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((acked["acked_by"].as_str(), acked["ack_note"].as_str()), (Some("duty"), Some("seen")));
    let (code, again) = post(addr, &format!("/api/v1/alerts/{id}/ack"), Some(TOKEN), r#"{"by":"other"}"#);
    assert_eq!((code, serde_json::from_str::<Value>(&again).unwrap()["acked_by"].as_str()), (200, Some("duty")));
    let long = serde_json::json!({ "by": "duty", "note": "x".repeat(501) }).to_string();
    let (code, refused) = post(addr, &format!("/api/v1/alerts/{id}/ack"), Some(TOKEN), &long);
    assert_eq!(code, 400, "{refused}");
    assert!(refused.contains("note: at most 500 characters"), "{refused}");
    assert_eq!(post(addr, "/api/v1/alerts/0000000000000000/ack", Some(TOKEN), "{}").0, 404);
    let metrics = daemon.http("/metrics").1;
    assert_eq!(common::metric(&metrics, r#"hj212_alerts_total{kind="exceedance",state="raised"}"#), 1);
    assert_eq!(common::metric(&metrics, r#"hj212_alerts_total{kind="exceedance",state="cleared"}"#), 1);
    // Who acknowledged is in the archive too, once (the second acknowledgement kept the first).
    let dir = daemon.stop().await;
    let acks: Vec<String> = common::records(dir.path())
        .into_iter()
        .filter(|r| r.verdict == hj212_archive::Verdict::Info)
        .map(|r| String::from_utf8_lossy(&r.data).into_owned())
        .filter(|event| event.contains("alert_acknowledged"))
        .collect();
    assert_eq!(acks.len(), 1, "{acks:?}");
    assert!(acks[0].contains(r#""via":"api""#) && acks[0].contains(r#""by":"duty""#), "{acks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_raised_while_the_broker_is_down_arrive_in_order_when_it_is_back() {
    let mut broker = Mosquitto::start();
    let alerts = Subscriber::connect_persistent(broker.addr, "hj212/alerts/#", "outage-test-subscriber");
    let daemon = daemon(&broker).await;
    broker.stop();
    let values = [50.0, 10.0, 60.0, 70.0, 5.0, 80.0];
    let frames: Vec<Vec<u8>> = values.iter().zip(0u32..).map(|(v, i)| hourly(i, &hour(6 - i64::from(i)), *v)).collect();
    send_acked(&daemon, &frames).await;
    // Stored at once, and waiting for the broker.
    let expected = ["raised", "cleared", "raised", "updated", "cleared", "raised"];
    for _ in 0..50 {
        if daemon.http("/api/v1/alerts?state=all").1.contains(r#""count":3"#) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(daemon.http("/api/v1/alerts?state=all").1.contains(r#""count":3"#), "three incidents stored");
    assert!(daemon.http("/readyz").1.contains("degraded: MQTT broker unreachable"));
    assert!(alerts.received().is_empty(), "nothing can arrive while the broker is down");
    broker.restart();
    let received = alerts.wait_for(expected.len(), Duration::from_secs(20));
    // At least once: a message may repeat, but the first deliveries are complete and in order.
    let mut seen = std::collections::HashSet::new();
    let firsts: Vec<Value> = received.iter().map(json).filter(|m| seen.insert(m["id"].to_string())).collect();
    let states: Vec<&str> = firsts.iter().map(|m| m["state"].as_str().unwrap()).collect();
    assert_eq!(states, expected, "{firsts:?}");
    let reported: Vec<f64> = firsts.iter().map(|m| m["value"].as_f64().unwrap()).collect();
    assert_eq!(reported, values);
    daemon.stop().await;
}

/// The stored alerts (all states) as (kind, state) pairs, oldest first, once they equal
/// `expected` (or after 10 s, for the assertion to show).
async fn stored_alerts(daemon: &TestDaemon, expected: &[(String, String)]) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for _ in 0..100 {
        let listed: Value = serde_json::from_str(&daemon.http("/api/v1/alerts?state=all").1).unwrap();
        pairs = listed["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .map(|a| (a["kind"].as_str().unwrap().to_owned(), a["state"].as_str().unwrap().to_owned()))
            .collect();
        if pairs == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pairs
}

fn pair(kind: &str, state: &str) -> (String, String) {
    (kind.to_owned(), state.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_resends_with_other_values_and_clock_drift_are_alerts() {
    let daemon = TestDaemon::start_with(|config| config.sites[0].limits = vec![so2_limit()]).await;
    let mut client = daemon.client().await;
    // A wrong password for a configured MN: refused, never stored, and an alert.
    let wrong = frame(&format!(
        "QN=20261128000000001;ST=31;CN=2061;PW=999999;MN={MN};Flag=5;CP=&&DataTime={};a21026-Avg=1,a21026-Flag=N&&",
        hour(3)
    ));
    client.send(&wrong).await;
    let expected = [pair("auth_failure", "active")];
    assert_eq!(stored_alerts(&daemon, &expected).await, expected);
    // The logger authenticates again: the incident stays open until an hour without failures
    // (so a spoofer interleaving with the real logger cannot raise one per frame).
    send_acked(&daemon, &[hourly(2, &hour(3), 12.0)]).await;
    // The same hour resent (new QN) with another value: possible tampering.
    send_acked(&daemon, &[hourly(3, &hour(3), 12.0), hourly(4, &hour(3), 13.5)]).await;
    let expected = [pair("auth_failure", "active"), pair("tamper", "active")];
    assert_eq!(stored_alerts(&daemon, &expected).await, expected, "an identical resend is no tamper");
    // Real-time data whose DataTime is 2 minutes behind the receive time, 3 times in a row.
    for i in 0..3 {
        client.send(&common::realtime(&format!("20261128000000{:03}", 10 + i), &common::beijing_in(-120), 5)).await;
        assert_eq!(client.reply().await.cn, 9014);
    }
    let expected = [pair("auth_failure", "active"), pair("tamper", "active"), pair("clock_drift", "active")];
    assert_eq!(stored_alerts(&daemon, &expected).await, expected);
    let metrics = daemon.http("/metrics").1;
    assert_eq!(common::metric(&metrics, r#"hj212_alerts_active{kind="tamper"}"#), 1);
    assert_eq!(common::metric(&metrics, r#"hj212_alerts_total{kind="auth_failure",state="raised"}"#), 1);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_site_goes_offline_and_an_open_incident_survives_a_restart() {
    let adjust = |config: &mut hj212_config::Config| {
        config.sites[0].limits = vec![so2_limit()];
        config.alerts.expected_interval_secs = 1;
        config.alerts.offline_intervals = 2;
    };
    let daemon = TestDaemon::start_with(adjust).await;
    send_acked(&daemon, &[hourly(1, &hour(2), 50.0)]).await;
    let expected = [pair("exceedance", "active")];
    assert_eq!(stored_alerts(&daemon, &expected).await, expected);
    // Nothing for more than 2 x 1 s: offline.
    let expected = [pair("exceedance", "active"), pair("offline", "active")];
    assert_eq!(stored_alerts(&daemon, &expected).await, expected);
    let dir = daemon.stop().await;

    // Same data dir: the engine resumes with the open incidents it had.
    let data_dir = dir.path().to_path_buf();
    let restarted = TestDaemon::start_with(move |config| {
        adjust(config);
        config.server.data_dir = data_dir;
    })
    .await;
    send_acked(&restarted, &[hourly(2, &hour(1), 10.0)]).await;
    let expected = [pair("exceedance", "cleared"), pair("offline", "cleared")];
    assert_eq!(stored_alerts(&restarted, &expected).await, expected, "the incidents opened before the restart close");
    let listed: Value = serde_json::from_str(&restarted.http("/api/v1/alerts?state=all").1).unwrap();
    assert_eq!(listed["count"], 2);
    restarted.stop().await;
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_alerts_database_starts_at_the_archive_head_and_does_not_re_alert_history() {
    let adjust = |config: &mut hj212_config::Config| config.sites[0].limits = vec![so2_limit()];
    let daemon = TestDaemon::start_with(adjust).await;
    send_acked(&daemon, &[hourly(1, &hour(3), 50.0)]).await;
    let expected = [pair("exceedance", "active")];
    assert_eq!(stored_alerts(&daemon, &expected).await, expected);
    let dir = daemon.stop().await;
    // As after an upgrade from a version without alerts: the archive is there, alerts.sqlite is not.
    for file in ["alerts.sqlite", "alerts.sqlite-wal", "alerts.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.path().join(file));
    }
    let data_dir = dir.path().to_path_buf();
    let restarted = TestDaemon::start_with(move |config| {
        adjust(config);
        config.server.data_dir = data_dir;
    })
    .await;
    send_acked(&restarted, &[hourly(2, &hour(2), 60.0)]).await;
    // Only the new frame's alert: the old hour is history, not a new incident.
    let expected = [pair("exceedance", "active")];
    assert_eq!(stored_alerts(&restarted, &expected).await, expected);
    let listed: Value = serde_json::from_str(&restarted.http("/api/v1/alerts?state=all").1).unwrap();
    assert_eq!(listed["alerts"][0]["value"].as_f64(), Some(60.0), "{listed}");
    assert_eq!(listed["alerts"][0]["messages"], 1, "raised by the new frame, not updated from a replayed one");
    restarted.stop().await;
    drop(dir);
}

/// The newest signed checkpoint is published where the operator cannot silently rewrite it:
/// a retained MQTT topic and `GET /api/v1/archive/head`; what is published verifies against
/// the archive with the daemon's public key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signed_head_is_published_on_mqtt_and_the_api() {
    let broker = Mosquitto::start();
    let url = broker.url();
    let daemon = TestDaemon::start_with(move |config| {
        config.mqtt = Some(Mqtt { url, max_backoff_secs: 1, ..Mqtt::default() });
        config.archive.checkpoint_interval_secs = 1;
    })
    .await;
    send_acked(&daemon, &[hourly(1, &hour(2), 10.0)]).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    send_acked(&daemon, &[hourly(2, &hour(1), 10.0)]).await;
    // Once signed (nothing more arrives, so no newer checkpoint), a late subscriber gets it.
    for _ in 0..50 {
        let (_, body) = daemon.http("/api/v1/archive/head");
        if !serde_json::from_str::<Value>(&body).unwrap()["checkpoint"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let retained = Subscriber::connect(broker.addr, "hj212/archive/head").wait_for(1, Duration::from_secs(10));
    assert!(retained[0].retain, "the head is retained");
    let published = json(&retained[0]);
    assert_eq!(daemon.http("/api/v1/archive/head?seq=1").0, 400, "unknown parameters are refused");
    let (code, body) = daemon.http("/api/v1/archive/head");
    assert_eq!(code, 200, "{body}");
    let head: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(head["checkpoint"], published, "the API shows the same checkpoint");
    assert!(head["durable_seq"].as_u64().unwrap() > published["seq"].as_u64().unwrap());
    let expect = published["expect_head"].as_str().unwrap().to_owned();
    let data_dir = daemon.stop().await;
    let checkpoint = hj212_archive::Checkpoint::parse(published["record"].as_str().unwrap()).unwrap();
    let key = hj212_archive::checkpoint::load_public_key(&data_dir.path().join("archive-signing.pub")).unwrap();
    assert!(checkpoint.signed_by(&key), "the published checkpoint is signed by the daemon's key");
    let options = hj212_archive::VerifyOptions {
        trusted_keys: vec![key],
        expect_head: Some(hj212_archive::checkpoint::parse_head(&expect).unwrap()),
    };
    let report = hj212_archive::verify_with(&data_dir.path().join("archive"), &options).expect("the archive holds it");
    assert!(report.last_checkpoint.unwrap().last, "the stop signed the rest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_older_than_the_fingerprint_window_is_not_fingerprinted() {
    let daemon = TestDaemon::start_with(|config| config.sites[0].limits = vec![so2_limit()]).await;
    let window_days = i64::from(hj212_config::Config::default().followers.alerts_fingerprint_days);
    let old = hour((window_days + 1) * 24);
    // An hour older than the window, resent with another value: beyond the window, as after the prune.
    send_acked(&daemon, &[hourly(1, &old, 12.0), hourly(2, &old, 13.5)]).await;
    // A recent hour resent with another value is still caught (and shows the old ones were applied).
    send_acked(&daemon, &[hourly(3, &hour(3), 12.0), hourly(4, &hour(3), 13.5)]).await;
    let expected = [pair("tamper", "active")];
    assert_eq!(stored_alerts(&daemon, &expected).await, expected);
    let db = rusqlite::Connection::open_with_flags(
        daemon.dir.path().join("alerts.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let rows: Vec<String> = db
        .prepare("SELECT datetime(data_time_ms / 1000, 'unixepoch', '+8 hours') FROM fingerprints")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 1, "only the recent hour's factor: {rows:?}");
    daemon.stop().await;
}

/// Issue 18 part 3: a message duty staff can read on a phone, with the site's name, the
/// factor's names and unit, the value as precise as the logger sent it, and a console link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exceedance_message_reads_with_site_factor_unit_sent_precision_and_link() {
    let broker = Mosquitto::start();
    let alerts = Subscriber::connect(broker.addr, "hj212/alerts/#");
    let url = broker.url();
    let daemon = TestDaemon::start_with(move |config| {
        config.mqtt = Some(Mqtt { url, max_backoff_secs: 1, ..Mqtt::default() });
        config.http.public_url = Some("https://hj212.example.cn/".into());
        config.sites[0].name = "1号锅炉出口".into();
        config.sites[0].limits = vec![so2_limit()];
    })
    .await;
    let data_time = hour(1);
    let upload = frame(&format!(
        "QN=20261128000000001;ST=31;CN=2061;PW={PW};MN={MN};Flag=5;CP=&&DataTime={data_time};\
         a21026-Avg=40.50,a21026-Flag=N&&"
    ));
    send_acked(&daemon, &[upload]).await;
    let raised = alerts.wait_for(1, Duration::from_secs(10));
    let message = json(&raised[0]);
    let link = format!("https://hj212.example.cn/console/sites/{MN}");
    assert_eq!(
        message["message"]["zh"],
        format!(
            "[告警] 1号锅炉出口（{MN}）超标，因子 二氧化硫（a21026），实测值 40.50 mg/m3（限值 35 mg/m3），未折算。详情 {link}"
        )
    );
    assert_eq!(
        message["message"]["en"],
        format!(
            "[raised] 1号锅炉出口 ({MN}) exceedance, factor sulphur dioxide (a21026), measured value 40.50 mg/m3 \
             (limit 35 mg/m3), not converted. Details: {link}"
        )
    );
    assert_eq!((message["site"].as_str(), message["link"].as_str()), (Some("1号锅炉出口"), Some(link.as_str())));
    assert_eq!(message["factor_name"], serde_json::json!({ "zh": "二氧化硫", "en": "sulphur dioxide" }));
    assert_eq!((message["unit"].as_str(), message["st"].as_str()), (Some("mg/m3"), Some("31")));
    assert_eq!((message["value_text"].as_str(), message["limit_text"].as_str()), (Some("40.50"), Some("35")));
    assert_eq!(message["compared"], serde_json::json!({ "source": "measured" }));
    assert_eq!(message["inhibited_by"], Value::Null);
    assert_eq!(message["value"].as_f64(), Some(40.5), "the number itself is kept");
    daemon.stop().await;
}

/// A fleet-wide outage: one `fleet_outage` message, and each site's offline message still
/// published for machines, marked `inhibited_by` it so channels to people skip it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_outage_is_one_message_and_the_sites_offline_messages_are_marked_inhibited() {
    let broker = Mosquitto::start();
    let alerts = Subscriber::connect(broker.addr, "hj212/alerts/#");
    let url = broker.url();
    let daemon = TestDaemon::start_with(move |config| {
        config.mqtt = Some(Mqtt { url, max_backoff_secs: 1, ..Mqtt::default() });
        config.http.public_url = Some("https://hj212.example.cn".into());
        config.alerts.expected_interval_secs = 1;
        config.alerts.offline_intervals = 2;
        config.alerts.fleet_outage_sites = 3;
        for (mn, name) in [("88888880000001", "二号站"), ("88888880000002", "三号站")] {
            let mut site = common::site(mn, PW, hj212_config::CrcSetting::Hj212);
            site.name = name.into();
            config.sites.push(site);
        }
    })
    .await;
    // Nothing from any site for more than 2 x 1 s: all three go offline together.
    let received = alerts.wait_for(4, Duration::from_secs(15));
    let messages: Vec<(String, Value)> = received.iter().map(|m| (m.topic.clone(), json(m))).collect();
    let fleet: Vec<_> = messages.iter().filter(|(topic, _)| topic == "hj212/alerts/fleet/fleet_outage").collect();
    assert_eq!(fleet.len(), 1, "one fleet message: {messages:?}");
    let fleet = &fleet[0].1;
    assert_eq!((fleet["kind"].as_str(), fleet["state"].as_str()), (Some("fleet_outage"), Some("raised")));
    assert_eq!((fleet["value"].as_f64(), fleet["limit"].as_f64()), (Some(3.0), Some(3.0)));
    assert_eq!(fleet["sites"].as_array().unwrap().len(), 3);
    assert_eq!(fleet["link"], "https://hj212.example.cn/console/alerts");
    assert!(fleet["message"]["zh"].as_str().unwrap().contains("3 个站点相继离线"), "{fleet}");
    assert!(fleet["message"]["zh"].as_str().unwrap().contains("二号站 (88888880000001)"), "{fleet}");
    let offline: Vec<_> = messages.iter().filter(|(_, m)| m["kind"] == "offline").collect();
    assert_eq!(offline.len(), 3, "{messages:?}");
    for (topic, message) in offline {
        assert_eq!(message["inhibited_by"], fleet["alert_id"], "{topic}: {message}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(alerts.received().len(), 4, "no record-missing or other message beside them");
    daemon.stop().await;
}
