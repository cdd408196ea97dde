//! Service visits (issue 16): appended to the archive through the admin API, listed with the
//! time from the alert they answered to the arrival against the site's on-site target, corrected
//! by new records; bad input gets a status naming the problem.

mod common;

use std::time::Duration;

use common::{MN, TestDaemon, frame, http_request};
use hj212_config::ServiceArea;
use serde_json::{Value, json};

const TOKEN: &str = "visit-test-token-0123456789";

async fn daemon() -> TestDaemon {
    let token_dir = tempfile::tempdir().unwrap();
    let token_file = token_dir.path().join("admin.token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let daemon = TestDaemon::start_with(|config| {
        config.server.admin_token_file = Some(token_file.clone());
        config.sites[0].service_area = ServiceArea::Suburban;
    })
    .await;
    drop(token_dir);
    daemon
}

fn call(daemon: &TestDaemon, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let body = body.map(Value::to_string);
    let (status, text) = http_request(daemon.running.http_addr, method, path, Some(TOKEN), body.as_deref());
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {status} {text}")))
}

/// The site's visits once the store has `count` of them.
async fn visits(daemon: &TestDaemon, count: usize) -> Value {
    let path = format!("/api/v1/sites/{MN}/visits");
    for _ in 0..100 {
        let (status, list) = call(daemon, "GET", &path, None);
        assert_eq!(status, 200, "{list}");
        if list["visits"].as_array().unwrap().len() >= count {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{count} visits never listed");
}

/// An alert of the site: a frame with a wrong password raises `auth_failure`.
async fn an_alert(daemon: &TestDaemon) -> String {
    let mut client = daemon.client().await;
    client
        .send(&frame(&format!(
            "QN=20261130000000001;ST=31;CN=2011;PW=999999;MN={MN};Flag=5;CP=&&DataTime={};a21026-Rtd=1&&",
            common::beijing_in(0)
        )))
        .await;
    for _ in 0..100 {
        let (_, alerts) = call(daemon, "GET", "/api/v1/alerts", None);
        if let Some(id) = alerts["alerts"][0]["alert_id"].as_str() {
            return id.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no alert raised");
}

fn visit(alert_id: Option<&str>) -> Value {
    json!({
        "alert_id": alert_id,
        "arrived_at": common::beijing_in(0),
        "left_at": common::beijing_in(0),
        "by": "张工 (duty engineer)",
        "work": "replaced the sample line heater",
        "result": "analyser back in service",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visit_is_archived_listed_against_its_alert_and_corrected_by_a_new_record() {
    let daemon = daemon().await;
    let alert_id = an_alert(&daemon).await;
    let path = format!("/api/v1/sites/{MN}/visits");
    let (status, created) = call(&daemon, "POST", &path, Some(&visit(Some(&alert_id))));
    assert_eq!(status, 201, "{created}");
    let first = created["seq"].as_u64().unwrap();
    assert_eq!(created["visit"]["alert_id"], alert_id.as_str());

    let list = visits(&daemon, 1).await;
    assert_eq!(list["on_site_target_minutes"], 480, "a suburban site: 8 hours");
    let listed = &list["visits"][0];
    assert_eq!(listed["visit"]["by"], "张工 (duty engineer)");
    assert_eq!(
        (listed["on_site"]["met"].as_bool(), listed["on_site"]["target_minutes"].as_u64()),
        (Some(true), Some(480))
    );
    assert!(listed["superseded_by"].is_null());

    let mut correction = visit(Some(&alert_id));
    correction["result"] = json!("analyser back in service; heater to be replaced again next week");
    correction["supersedes"] = json!(first);
    let (status, created) = call(&daemon, "POST", &path, Some(&correction));
    assert_eq!(status, 201, "{created}");
    let second = created["seq"].as_u64().unwrap();
    let list = visits(&daemon, 2).await;
    let superseded: Vec<Option<u64>> =
        list["visits"].as_array().unwrap().iter().map(|v| v["superseded_by"].as_u64()).collect();
    assert_eq!(superseded, vec![Some(second), None], "the first record stands, superseded");

    let dir = daemon.stop().await;
    let archived: Vec<_> = common::records(dir.path())
        .into_iter()
        .filter(|r| r.verdict == hj212_archive::Verdict::Visit)
        .map(|r| r.seq)
        .collect();
    assert_eq!(archived, vec![first, second], "both records in the hash-chained archive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_visits_get_a_status_naming_the_problem() {
    let daemon = daemon().await;
    let path = format!("/api/v1/sites/{MN}/visits");
    let with = |key: &str, value: Value| {
        let mut body = visit(None);
        body[key] = value;
        body
    };
    let cases = [
        (with("by", json!(" ")), "by is required"),
        (with("left_at", json!("2020-01-01")), "left_at is before arrived_at"),
        (
            {
                let mut b = with("arrived_at", json!("2099-01-01"));
                b["left_at"] = json!("2099-01-02");
                b
            },
            "arrived_at is in the future",
        ),
        (with("arrived_at", json!("yesterday")), "arrived_at: "),
        (with("alert_id", json!("no-such-alert")), "alert_id no-such-alert: no alert of"),
        (with("supersedes", json!(999_999)), "supersedes 999999: no visit of"),
    ];
    for (body, message) in cases {
        let (status, answer) = call(&daemon, "POST", &path, Some(&body));
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(message), "{message:?} in {answer}");
    }
    let (status, _) = call(&daemon, "POST", "/api/v1/sites/UNKNOWN/visits", Some(&visit(None)));
    assert_eq!(status, 404);
    let unauthorised = http_request(daemon.running.http_addr, "POST", &path, None, Some(&visit(None).to_string())).0;
    assert_eq!(unauthorised, 401, "mutating endpoints need the token");
    daemon.stop().await;
}
