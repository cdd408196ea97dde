//! Fleet outages through the engine and its database: one `fleet_outage` message, the sites'
//! offline messages marked `inhibited_by` it, and the grouping kept across a restart (the
//! fleet state is saved with the site states; schema 2 -> 3 adds its table).

use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;

use hj212_alerts::{AlertSettings, AlertsFollower, SqliteOutbox};
use hj212_compliance::alert::FleetRules;
use hj212_follow::Follower;
use serde_json::Value;
use tokio::sync::watch;

fn config(sites: usize) -> hj212_config::Config {
    let mut text = String::from("[http]\npublic_url = \"https://hj212.example.cn/\"\n");
    for i in 0..sites {
        let _ = write!(text, "[[sites]]\nmn = \"MN{i:02}\"\npassword = \"123456\"\nname = \"站点{i}\"\n");
    }
    hj212_config::from_str(&text).unwrap()
}

fn settings(db: &Path, config: &hj212_config::Config) -> AlertSettings {
    AlertSettings {
        fleet: FleetRules { min_sites: 3, window_ms: 300_000 },
        ..AlertSettings { db_path: db.to_owned(), mqtt: true, ..AlertSettings::from_config(config) }
    }
}

fn open(db: &Path, sites: usize) -> AlertsFollower {
    let config = config(sites);
    let (_, rules) = watch::channel(Arc::new(hj212_alerts::rules_map(&config)));
    let (newest, _) = watch::channel(0);
    AlertsFollower::open(&settings(db, &config), 0, rules, newest).unwrap()
}

/// Alert payloads queued after `after`.
fn alerts(db: &Path, after: u64) -> (u64, Vec<(String, Value)>) {
    let mut outbox = SqliteOutbox::open(db).unwrap();
    let pending = outbox.pending(after, 1000).unwrap();
    let last = pending.last().map_or(after, |q| q.seq);
    let alerts = pending
        .into_iter()
        .filter(|q| q.topic.starts_with("alerts/"))
        .map(|q| (q.topic, serde_json::from_slice(&q.payload).unwrap()))
        .collect();
    (last, alerts)
}

const T0: i64 = 1_795_737_600_000;
/// Default offline: 3 x 300 s without a frame.
const OFFLINE: i64 = 900_001;

#[test]
fn a_fleet_outage_is_one_message_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("alerts.sqlite");
    let mut engine = open(&db, 4);
    engine.tick(T0, 0).unwrap();
    engine.tick(T0 + OFFLINE, 0).unwrap();
    let (seen, queued) = alerts(&db, 0);
    let fleet: Vec<_> = queued.iter().filter(|(_, p)| p["kind"] == "fleet_outage").collect();
    assert_eq!(fleet.len(), 1, "{queued:?}");
    let (topic, fleet) = fleet[0];
    assert_eq!(topic, "alerts/fleet/fleet_outage");
    let id = fleet["alert_id"].as_str().unwrap().to_owned();
    assert_eq!((fleet["value"].as_f64(), fleet["limit"].as_f64()), (Some(4.0), Some(3.0)));
    assert_eq!(fleet["sites"][0]["site"], "站点0");
    assert_eq!(fleet["link"], "https://hj212.example.cn/console/alerts");
    assert!(
        fleet["message"]["zh"].as_str().unwrap().starts_with("[告警] 大面积掉线（fleet）：4 个站点相继离线"),
        "{fleet}"
    );
    let offline: Vec<_> = queued.iter().filter(|(_, p)| p["kind"] == "offline").collect();
    assert_eq!(offline.len(), 4);
    for (_, p) in &offline {
        assert_eq!(p["inhibited_by"], id.as_str(), "{p}");
        assert!(p["link"].as_str().unwrap().starts_with("https://hj212.example.cn/console/sites/MN0"), "{p}");
    }
    drop(engine);

    // After a restart, a fifth site going offline joins the same outage.
    let mut engine = open(&db, 5);
    engine.tick(T0 + OFFLINE + 1_000, 0).unwrap();
    engine.tick(T0 + OFFLINE + 1_000 + OFFLINE, 0).unwrap();
    let (_, queued) = alerts(&db, seen);
    let kinds: Vec<_> = queued.iter().map(|(_, p)| (p["kind"].as_str().unwrap(), p["mn"].as_str().unwrap())).collect();
    assert_eq!(kinds, [("offline", "MN04")], "no second fleet alert");
    assert_eq!(queued[0].1["inhibited_by"], id.as_str());
}

#[test]
fn a_version_2_database_gets_the_fleet_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("alerts.sqlite");
    drop(hj212_alerts::query::open(&db).unwrap());
    let conn = rusqlite::Connection::open(&db).unwrap();
    // A version 2 layout: without the fleet table (3), the outbox consumers (4) and origins (5).
    conn.execute_batch(
        "DROP TABLE alert_fleet; DROP TABLE outbox_consumers; DROP TABLE alert_source;
         ALTER TABLE outbox DROP COLUMN origin; PRAGMA user_version = 2;",
    )
    .unwrap();
    drop(conn);
    let ((), log) = test_support::logged(|| drop(hj212_alerts::query::open(&db).unwrap()));
    assert!(log.contains("from_version=2 to_version=3"), "{log}");
    let mut engine = open(&db, 3);
    engine.tick(T0, 0).unwrap();
    engine.tick(T0 + OFFLINE, 0).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let state: String = conn.query_row("SELECT state FROM alert_fleet WHERE key = 'fleet'", [], |r| r.get(0)).unwrap();
    assert!(state.contains("MN02"), "{state}");
}
