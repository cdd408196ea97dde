//! Schema versions: an alerts database written by the first release (kept in
//! `fixtures/sqlite/`) gets its version recorded at open and is migrated, keeps its alerts,
//! outbox and tamper fingerprints, and the engine goes on writing to it; a newer version than
//! this build knows is refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hj212_alerts::query::{self, Filter};
use hj212_alerts::{AlertSettings, SqliteOutbox};
use hj212_archive::{Archive, FollowerStatus, Kind, NewRecord, NoObserver, Settings, Verdict};
use hj212_compliance::alert::FleetRules;
use hj212_store::SchemaError;
use test_support::logged;
use tokio_util::sync::CancellationToken;

const MN: &str = "010000A8900016F000169DC0";
/// The site the fixture was made with (fixtures/sqlite/make-alerts-v1.rs).
const CONFIG: &str = r#"
[[sites]]
mn = "010000A8900016F000169DC0"
password = "123456"
name = "Plant 1 outlet"
factors = ["a21026", "a21002"]

[[sites.limits]]
factor = "a21026"
max = 35.0
basis = "hour"
"#;

fn first_release_alerts() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("alerts.sqlite");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/sqlite/alerts-v1.sqlite");
    std::fs::copy(fixture, &db).unwrap();
    (dir, db)
}

fn user_version(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.pragma_query_value(None, "user_version", |row| row.get(0)).unwrap()
}

/// (DataTime, MN, CN, factor, fingerprint) of every stored fingerprint.
fn fingerprints(db: &Path) -> Vec<(i64, String, i64, String, i64)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut query = conn
        .prepare(
            "SELECT f.data_time_ms, s.mn, s.cn, c.code, f.fingerprint FROM fingerprints f
             JOIN series s ON s.id = f.series JOIN factors c ON c.id = f.factor ORDER BY 1, 4",
        )
        .unwrap();
    query
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The first 8 bytes of the text's SHA-256 (docs/alerts.md).
fn hash(text: &str) -> i64 {
    use sha2::Digest;
    i64::from_be_bytes(sha2::Sha256::digest(text)[..8].try_into().unwrap())
}

fn all() -> Filter {
    Filter { limit: 100, ..Filter::default() }
}

fn hourly(qn: &str, pw: &str, data_time: &str, so2: &str) -> Vec<u8> {
    let text = format!(
        "QN={qn};ST=31;CN=2061;PW={pw};MN={MN};Flag=5;CP=&&DataTime={data_time};a21026-Avg={so2},a21026-Flag=N;a21002-Avg=40.1,a21002-Flag=N&&"
    );
    hj212_proto::encode::frame(text.as_bytes()).unwrap()
}

fn received(verdict: Verdict, data: Vec<u8>, time_ms: i64) -> NewRecord {
    NewRecord { kind: Kind::Received, verdict, flags: 0, time_ms, peer: "127.0.0.1:40000".into(), data }
}

#[test]
fn alerts_of_the_first_release_get_a_version_and_keep_alerts_acks_and_outbox() {
    let (dir, db) = first_release_alerts();
    assert_eq!(user_version(&db), 0, "the first release recorded no version");
    let (conn, log) = logged(|| query::open(&db).unwrap());
    assert!(log.contains("schema migrated") && log.contains(&db.display().to_string()), "{log}");
    assert!(log.contains("from_version=0 to_version=1"), "{log}");
    assert!(log.contains("from_version=1 to_version=2") && log.contains("compact tamper fingerprints"), "{log}");
    assert!(log.contains("from_version=2 to_version=3") && log.contains("fleet-outage"), "{log}");
    assert!(log.contains("from_version=3 to_version=4") && log.contains("outbox consumers"), "{log}");
    assert_eq!(user_version(&db), 5);
    assert_eq!(hj212_alerts::SCHEMA.version(), 5);
    assert_eq!(
        fingerprints(&db),
        [
            (1_795_737_600_000, MN.to_owned(), 2061, "a21002".to_owned(), hash("a21002-Avg=40.1;a21002-Flag=N")),
            (1_795_737_600_000, MN.to_owned(), 2061, "a21026".to_owned(), hash("a21026-Avg=50;a21026-Flag=N")),
        ],
        "the first copy's fingerprints are kept, hashed from the text the first release stored"
    );

    let alerts = query::list(&conn, &all()).unwrap();
    assert_eq!(alerts.len(), 4, "{alerts:?}");
    let exceedance = alerts.iter().find(|a| a["kind"] == "exceedance").unwrap();
    assert_eq!((exceedance["acked_by"].as_str(), exceedance["value"].as_f64()), (Some("ops"), Some(50.0)));
    let tamper = alerts.iter().find(|a| a["kind"] == "tamper").unwrap()["alert_id"].as_str().unwrap().to_owned();
    let ack =
        query::Acknowledgement { alert_id: &tamper, by: "auditor", note: "resend explained", at_ms: 1_795_750_000_000 };
    assert_eq!(query::ack(&conn, &ack).unwrap().map(|(_, took_effect)| took_effect), Some(true));
    assert_eq!(query::ack(&conn, &ack).unwrap().map(|(_, took_effect)| took_effect), Some(false), "once");
    drop(conn);

    // The MQTT publisher was the only consumer: it starts before the oldest message left.
    let mut outbox = SqliteOutbox::open_for(&db, hj212_alerts::MQTT_CONSUMER).unwrap();
    let pending = outbox.pending(0, 100).unwrap();
    assert_eq!(pending.len(), 5, "the messages the first release queued are still to send");
    assert_eq!(outbox.position(), pending[0].seq - 1);
    outbox.delivered(pending[1].seq).unwrap();
    assert_eq!(outbox.pending(0, 100).unwrap().len(), 3);
    drop(outbox);

    let fresh = dir.path().join("fresh.sqlite");
    drop(query::open(&fresh).unwrap());
    let describe = |path: &Path| hj212_store::schema::describe(&rusqlite::Connection::open(path).unwrap()).unwrap();
    assert_eq!(describe(&db), describe(&fresh), "a recorded file has the layout of a new one");
    let (_, log) = logged(|| query::open(&db).unwrap());
    assert!(log.is_empty(), "nothing to do the second time: {log}");
}

/// The engine goes on from where the first release stopped, in the same file.
#[tokio::test]
async fn the_engine_goes_on_writing_to_a_first_release_database() {
    let (dir, db) = first_release_alerts();
    let settings = Settings { segment_max_bytes: 1 << 20, ..Settings::in_dir(dir.path().join("archive")) };
    let (archive, thread, _) = Archive::open(settings.clone(), Arc::new(NoObserver)).unwrap();
    // The records the fixture was made from (seq 1 to 3, applied), then SO2 back under its limit.
    let t0 = 1_795_741_500_000_i64;
    let records = [
        received(Verdict::Accepted, hourly("20261127090500001", "123456", "20261127080000", "50.0"), t0),
        received(Verdict::Accepted, hourly("20261127091000001", "123456", "20261127080000", "20.0"), t0 + 300_000),
        received(Verdict::BadPassword, hourly("20261127100500001", "999999", "20261127090000", "20.0"), t0 + 3_600_000),
        received(Verdict::Accepted, hourly("20261127110500001", "123456", "20261127100000", "20.0"), t0 + 7_200_000),
    ];
    for record in records {
        archive.append(record).await.unwrap();
    }
    let config = hj212_config::from_str(CONFIG).unwrap();
    let (_rules_tx, rules) = tokio::sync::watch::channel(Arc::new(hj212_alerts::rules_map(&config)));
    let (newest, _newest_rx) = tokio::sync::watch::channel(0);
    let alert_settings = AlertSettings {
        db_path: db.clone(),
        mqtt: true,
        checkpoints: true,
        fingerprint_days: 15,
        clock_max_lag: 10_000,
        fleet: FleetRules::default(),
        public_url: None,
    };
    assert_eq!(hj212_alerts::applied_seq(&alert_settings).unwrap(), 3, "the first release's position");
    let status = Arc::new(FollowerStatus::at(3));
    let shutdown = CancellationToken::new();
    let follower = hj212_alerts::AlertsFollower::open(&alert_settings, 3, rules, newest).unwrap();
    let runner = hj212_follow::RunnerSettings {
        archive_dir: settings.dir.clone(),
        batch: 100,
        tick: Duration::from_secs(3600),
        max_backoff: Duration::from_secs(1),
        after: None,
        shared: None,
        nice: 0,
        feed: None,
    };
    let engine =
        hj212_follow::spawn(Box::new(follower), runner, archive.durable(), status.clone(), shutdown.clone()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while status.position() < 4 {
        assert!(Instant::now() < deadline, "the engine did not apply record 4");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    engine.join().unwrap().unwrap();

    let conn = query::open(&db).unwrap();
    let alerts = query::list(&conn, &all()).unwrap();
    let exceedance = alerts.iter().find(|a| a["kind"] == "exceedance").unwrap();
    assert_eq!(exceedance["state"], "cleared", "{exceedance}");
    assert_eq!(exceedance["acked_by"], "ops", "the first release's ack is kept");
    let mut outbox = SqliteOutbox::open(&db).unwrap();
    assert!(outbox.pending(0, 100).unwrap().len() > 5, "the clearance is queued after the old messages");
    drop(archive);
    thread.join();
}

#[test]
fn alerts_of_a_later_release_are_refused_by_every_opener() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("alerts.sqlite");
    drop(query::open(&db).unwrap());
    rusqlite::Connection::open(&db).unwrap().pragma_update(None, "user_version", 999).unwrap();
    let before = std::fs::read(&db).unwrap();

    let error = query::open(&db).unwrap_err();
    assert!(matches!(error.schema(), Some(SchemaError::TooNew { found: 999, supported: 5, .. })), "{error:?}");
    let message = error.to_string();
    for part in ["alerts database", db.display().to_string().as_str(), "schema version 999", "supports (5)"] {
        assert!(message.contains(part), "{part:?} in: {message}");
    }
    assert!(SqliteOutbox::open(&db).unwrap_err().schema().is_some());
    assert!(query::open_read_only(&db).unwrap_err().schema().is_some());
    let settings = AlertSettings {
        db_path: db.clone(),
        mqtt: false,
        checkpoints: true,
        fingerprint_days: 1,
        clock_max_lag: 10_000,
        fleet: FleetRules::default(),
        public_url: None,
    };
    assert!(hj212_alerts::applied_seq(&settings).unwrap_err().schema().is_some());
    assert_eq!(std::fs::read(&db).unwrap(), before, "nothing written");
}

#[test]
fn a_reader_reads_a_first_release_database_without_writing() {
    let (_dir, db) = first_release_alerts();
    let before = std::fs::read(&db).unwrap();
    let conn = query::open_read_only(&db).unwrap();
    assert_eq!(query::list(&conn, &all()).unwrap().len(), 4, "versions 2 to 4 changed nothing a reader queries");
    drop(conn);
    assert_eq!(std::fs::read(&db).unwrap(), before, "a reader changes nothing");
}
