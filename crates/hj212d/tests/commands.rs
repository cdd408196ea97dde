//! Host commands to loggers (issue 14): queued through the admin API, delivered on the
//! connection that carries the site, followed through 9011 / data / 9012 with the standard's
//! timeouts, archived, and shown with their states; bad input gets a clear status.

mod common;

use std::time::Duration;

use common::{Client, MN, PW, TestDaemon, frame, http_request, realtime};
use serde_json::Value;

const TOKEN: &str = "admin-test-token-0123456789";

async fn daemon(adjust: impl FnOnce(&mut hj212_config::Config)) -> TestDaemon {
    let token_dir = tempfile::tempdir().unwrap();
    let token_file = token_dir.path().join("admin.token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let daemon = TestDaemon::start_with(|config| {
        config.server.admin_token_file = Some(token_file.clone());
        config.recovery.enabled = false;
        adjust(config);
    })
    .await;
    // The token is read at start.
    drop(token_dir);
    daemon
}

fn call(daemon: &TestDaemon, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let (status, text) = http_request(daemon.running.http_addr, method, path, Some(TOKEN), body);
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {status} {text}")))
}

/// A logger that has sent one real-time frame (so the daemon carries its MN).
async fn logger(daemon: &TestDaemon) -> Client {
    let mut client = daemon.client().await;
    client.send(&realtime("20261130101500001", &common::beijing_in(0), 5)).await;
    assert_eq!(client.reply().await.cn, 9014);
    client
}

async fn wait_state(daemon: &TestDaemon, id: &str, wanted: &str) -> Value {
    for _ in 0..150 {
        let (status, view) = call(daemon, "GET", &format!("/api/v1/commands/{id}"), None);
        assert_eq!(status, 200, "{view}");
        if view["state"] == wanted {
            return view;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("command {id} never reached {wanted}");
}

fn answer(qn: &str, cn: u16, cp: &str) -> Vec<u8> {
    frame(&format!("QN={qn};ST=91;CN={cn};PW={PW};MN={MN};Flag=4;CP=&&{cp}&&"))
}

fn hourly(qn: &str, data_time: &str) -> Vec<u8> {
    frame(&format!(
        "QN={qn};ST=31;CN=2061;PW={PW};MN={MN};Flag=5;CP=&&DataTime={data_time};a21026-Avg=35.2,a21026-Flag=N&&"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_request_goes_through_9011_data_and_9012() {
    let daemon = daemon(|_| {}).await;
    let mut logger = logger(&daemon).await;
    let body = r#"{"cn": "2061", "cp": {"BeginTime": "20261101030000", "EndTime": "20261101040000"}}"#;
    let (status, queued) = call(&daemon, "POST", &format!("/api/v1/sites/{MN}/commands"), Some(body));
    assert_eq!(status, 202, "{queued}");
    assert_eq!(queued["state"], "queued");
    let id = queued["id"].as_str().unwrap().to_owned();

    let request = logger.reply().await;
    assert_eq!((request.cn, request.st.as_deref(), request.flag), (2061, Some("31"), Some(5)), "the site's ST, A=1");
    assert_eq!(request.cp, "BeginTime=20261101030000;EndTime=20261101040000");
    let qn = request.qn.clone().unwrap();
    logger.send(&answer(&qn, 9011, "QnRtn=1")).await;
    wait_state(&daemon, &id, "accepted").await;
    for hour in ["20261101030000", "20261101040000"] {
        logger.send(&hourly(&qn, hour)).await;
        assert_eq!(logger.reply().await.cn, 9014, "history answers are acknowledged as usual");
    }
    logger.send(&answer(&qn, 9012, "ExeRtn=1")).await;
    let done = wait_state(&daemon, &id, "completed").await;
    assert_eq!(
        (done["qn"].as_str(), done["qn_rtn"].as_u64(), done["exe_rtn"].as_u64()),
        (Some(&*qn), Some(1), Some(1))
    );
    assert_eq!((done["records"].as_u64(), done["sends"].as_u64()), (Some(2), Some(1)));

    let (status, list) = call(&daemon, "GET", &format!("/api/v1/sites/{MN}/commands"), None);
    assert_eq!((status, list[0]["id"].as_str()), (200, Some(&*id)));
    let dir = daemon.stop().await;
    let archived: Vec<(hj212_archive::Verdict, String)> = common::records(dir.path())
        .into_iter()
        .map(|r| (r.verdict, String::from_utf8_lossy(&r.data).into_owned()))
        .collect();
    let position = |verdict, cn: &str| archived.iter().position(|(v, text)| *v == verdict && text.contains(cn));
    let sent = position(hj212_archive::Verdict::Command, "CN=2061");
    let accepted = position(hj212_archive::Verdict::Accepted, "CN=9011");
    assert!(sent.is_some() && sent < accepted, "the command is archived before its answer: {archived:?}");
    assert!(position(hj212_archive::Verdict::Accepted, "CN=9012").is_some());
    let stored = common::stored(dir.path(), MN);
    assert_eq!(stored.iter().filter(|r| r.cn == 2061).count(), 2, "the answered records are stored once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_is_resent_then_fails_and_refusals_end_the_exchange() {
    let daemon = daemon(|config| {
        config.commands.request_timeout_secs = 1;
        config.commands.sends = 2;
    })
    .await;
    let mut logger = logger(&daemon).await;
    let path = format!("/api/v1/sites/{MN}/commands");
    let (_, first) = call(&daemon, "POST", &path, Some(r#"{"cn": "1011"}"#));
    let id = first["id"].as_str().unwrap().to_owned();
    let sent = logger.reply().await;
    let resent = logger.reply_within(Duration::from_secs(3)).await.expect("a resend after the request timeout");
    assert_eq!((resent.cn, &resent.qn), (1011, &sent.qn), "resent with the same QN");
    let failed = wait_state(&daemon, &id, "failed").await;
    assert!(failed["reason"].as_str().unwrap().contains("no 9011 after 2 sends"), "{failed}");

    // An answer to a QN never sent moves nothing.
    logger.send(&answer("20200101000000000", 9011, "QnRtn=1")).await;
    let (_, second) = call(&daemon, "POST", &path, Some(r#"{"cn": "1062", "cp": {"RtdInterval": "60"}}"#));
    let id = second["id"].as_str().unwrap().to_owned();
    let request = logger.reply().await;
    assert_eq!((request.cn, request.cp.as_str()), (1062, "RtdInterval=60"));
    logger.send(&answer(request.qn.as_deref().unwrap(), 9011, "QnRtn=2")).await;
    let rejected = wait_state(&daemon, &id, "rejected").await;
    assert_eq!(rejected["qn_rtn"].as_u64(), Some(2));
    assert!(rejected["reason"].as_str().unwrap().contains("refused"), "{rejected}");
    let metrics = daemon.http("/metrics").1;
    assert!(common::metric(&metrics, r#"hj212_command_replies_total{cn="9011",outcome="unknown_qn"}"#) >= 1);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_commands_get_clear_statuses_and_queued_ones_survive_a_restart() {
    let daemon = daemon(|config| config.commands.queue_per_site = 2).await;
    let path = format!("/api/v1/sites/{MN}/commands");
    let error = |(status, body): (u16, Value)| (status, body["error"].as_str().unwrap_or_default().to_owned());
    let (status, message) = error(call(&daemon, "POST", &path, Some(r#"{"cn": "1062", "cp": {"RtdInterval": "5"}}"#)));
    assert_eq!(status, 400);
    assert!(message.starts_with("cp.RtdInterval"), "{message}");
    let (status, message) = error(call(&daemon, "POST", &path, Some(r#"{"cn": "4242"}"#)));
    assert_eq!(status, 400, "{message}");
    let (status, _) = call(&daemon, "POST", "/api/v1/sites/NOSUCHMN/commands", Some(r#"{"cn": "1011"}"#));
    assert_eq!(status, 404);
    let (status, _) =
        http_request(daemon.running.http_addr, "POST", &path, Some("wrong-token-0123456789"), Some(r#"{"cn":"1011"}"#));
    assert!(status == 401 || status == 403, "{status}");

    // No logger connected: commands wait in the queue, bounded per site.
    let (status, kept) = call(&daemon, "POST", &path, Some(r#"{"cn": "1011"}"#));
    assert_eq!(status, 202);
    let (_, cancelled) = call(&daemon, "POST", &path, Some(r#"{"cn": "1061"}"#));
    let (status, message) = error(call(&daemon, "POST", &path, Some(r#"{"cn": "1063"}"#)));
    assert_eq!(status, 429, "{message}");
    let cancel_path = format!("/api/v1/commands/{}", cancelled["id"].as_str().unwrap());
    let (status, view) = call(&daemon, "DELETE", &cancel_path, None);
    assert_eq!((status, view["state"].as_str()), (200, Some("cancelled")));
    assert_eq!(call(&daemon, "DELETE", &cancel_path, None).0, 409, "only a queued command can be cancelled");

    // Across a restart the queued command is still queued, then delivered.
    let dir = daemon.stop().await;
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let mut config = common::config(dir.path());
    config.server.admin_token_file = Some(token_file);
    config.recovery.enabled = false;
    let running = hj212d::Daemon::start(config).await.unwrap();
    let daemon = TestDaemon { running, dir };
    let id = kept["id"].as_str().unwrap();
    assert_eq!(call(&daemon, "GET", &format!("/api/v1/commands/{id}"), None).1["state"], "queued");
    let mut logger = logger(&daemon).await;
    assert_eq!(logger.reply().await.cn, 1011, "delivered on the site's next connection");
    wait_state(&daemon, id, "sent").await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logger_that_reconnects_mid_command_gets_the_resend_and_a_9012_alone_ends_it() {
    let daemon = daemon(|config| config.commands.request_timeout_secs = 1).await;
    let mut first = logger(&daemon).await;
    let (_, queued) = call(&daemon, "POST", &format!("/api/v1/sites/{MN}/commands"), Some(r#"{"cn": "3012"}"#));
    let id = queued["id"].as_str().unwrap().to_owned();
    let sent = first.reply().await;
    drop(first);
    // The site's next connection carries the resend (same QN).
    let mut second = logger(&daemon).await;
    let resent = second.reply_within(Duration::from_secs(5)).await.expect("the resend on the new connection");
    assert_eq!((resent.cn, &resent.qn), (3012, &sent.qn));
    // Some loggers skip the 9011: the 9012 still ends the exchange.
    second.send(&answer(resent.qn.as_deref().unwrap(), 9012, "ExeRtn=1")).await;
    let done = wait_state(&daemon, &id, "completed").await;
    assert_eq!((done["sends"].as_u64(), done["qn_rtn"].as_u64()), (Some(2), None));
    let metrics = daemon.http("/metrics").1;
    assert_eq!(common::metric(&metrics, r#"hj212_command_replies_total{cn="9012",outcome="before_9011"}"#), 1);
    daemon.stop().await;
}
