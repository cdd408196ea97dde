//! Schema versions: a store written by the first release (kept in `fixtures/sqlite/`) is
//! migrated at open and takes new rows; a newer version than this build knows is refused.

mod common;

use std::path::{Path, PathBuf};

use hj212_archive::Record;
use hj212_store::{SCHEMA, SchemaError, Store, StoreError};
use test_support::logged;

const MN: &str = "010000A8900016F000169DC0";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/sqlite").join(name)
}

/// A copy of the first release's store in a new directory.
fn first_release_store() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.sqlite");
    std::fs::copy(fixture("store-v1.sqlite"), &db).unwrap();
    (dir, db)
}

fn user_version(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.pragma_query_value(None, "user_version", |row| row.get(0)).unwrap()
}

fn describe(db: &Path) -> Vec<String> {
    hj212_store::schema::describe(&rusqlite::Connection::open(db).unwrap()).unwrap()
}

fn hourly(seq: u64, qn: &str, data_time: &str, so2: &str, nox: &str) -> Record {
    let text = format!(
        "QN={qn};ST=31;CN=2061;PW=123456;MN={MN};Flag=5;CP=&&DataTime={data_time};\
         a21026-Min=10.0,a21026-Avg={so2},a21026-Max=30.0,a21026-Flag=N;a21002-Avg={nox},a21002-Flag=N&&"
    );
    common::accepted(seq, 1_795_749_000_000, 0, &text)
}

#[test]
fn a_store_of_the_first_release_is_migrated_keeps_its_data_and_takes_new_rows() {
    let (dir, db) = first_release_store();
    assert_eq!(user_version(&db), 0, "the first release recorded no version");

    let (store, log) = logged(|| Store::open(&db).unwrap());
    assert!(log.contains("schema migrated"), "{log}");
    assert!(log.contains(&db.display().to_string()) && log.contains("from_version=1 to_version=2"), "{log}");
    assert!(log.contains("from_version=2 to_version=3"), "{log}");
    assert!(
        log.contains("from_version=3 to_version=4") && log.contains("visits and config_history tables added"),
        "{log}"
    );
    assert!(log.contains("from_version=4 to_version=5") && log.contains("compact readings"), "{log}");
    assert!(log.contains("from_version=5 to_version=6") && log.contains("rate ledger keyed"), "{log}");
    assert!(log.contains("from_version=6 to_version=7") && log.contains("one readings row per record"), "{log}");
    assert!(
        log.contains("changed_copies") && log.contains("keyed by their instant"),
        "the log says what changed: {log}"
    );
    let mut store = store;
    assert_eq!(user_version(&db), 7);
    assert_eq!(i64::from(SCHEMA.version()), 7);

    // Everything the first release stored is still there.
    assert_eq!(store.count().unwrap(), 5);
    assert_eq!(store.applied_seq().unwrap(), 5);
    let readings = store.readings(MN).unwrap();
    let so2_0800 = readings.iter().find(|r| r.data_time == "20261127080000" && r.factor == "a21026").unwrap();
    assert_eq!(so2_0800.avg.as_deref(), Some("21.5"), "the first copy, as stored by the first release");
    assert_eq!(store.marks_of(MN).unwrap().len(), 1);

    // New rows go in, including the table the migration added.
    let applied = store
        .apply(&hj212_follow::Interpreted::all([
            hourly(6, "20261127110500001", "20261127100000", "23.0", "40.0"),
            // 09:00 again, SO2 changed, NOx as the first release stored it.
            hourly(7, "20261127110600001", "20261127090000", "88.0", "41.0"),
        ]))
        .unwrap();
    assert_eq!((applied.rows, applied.duplicates), (2, 2));
    assert_eq!(store.changed_copies(6, 7).unwrap(), [(7, "a21026".to_owned())]);
    assert_eq!(store.applied_seq().unwrap(), 7);
    drop(store);

    // A migrated file has the layout of a new one.
    let fresh = dir.path().join("fresh.sqlite");
    drop(Store::open(&fresh).unwrap());
    assert_eq!(describe(&db), describe(&fresh));

    // Opened again: nothing to do, nothing logged.
    let (store, log) = logged(|| Store::open(&db).unwrap());
    assert!(log.is_empty(), "{log}");
    assert_eq!(store.count().unwrap(), 7);
}

#[test]
fn a_new_store_starts_at_the_newest_version_without_a_migration() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.sqlite");
    let (_, log) = logged(|| Store::open(&db).unwrap());
    assert!(log.is_empty(), "{log}");
    assert_eq!(user_version(&db), 7);
}

#[test]
fn a_store_of_a_later_release_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.sqlite");
    drop(Store::open(&db).unwrap());
    rusqlite::Connection::open(&db).unwrap().pragma_update(None, "user_version", 999).unwrap();
    let before = std::fs::read(&db).unwrap();

    let error = Store::open(&db).unwrap_err();
    assert!(matches!(error.schema(), Some(SchemaError::TooNew { found: 999, supported: 7, .. })), "{error:?}");
    let message = error.to_string();
    for part in [db.display().to_string().as_str(), "schema version 999", "supports (7)", "later release"] {
        assert!(message.contains(part), "{part:?} in: {message}");
    }
    let error = Store::open_read_only(&db).unwrap_err();
    assert!(matches!(error, StoreError::Schema(SchemaError::TooNew { found: 999, .. })), "{error:?}");
    assert_eq!(std::fs::read(&db).unwrap(), before, "nothing written");
    assert_eq!(user_version(&db), 999);
}

#[test]
fn a_reader_does_not_migrate_and_says_what_to_do() {
    let (_dir, db) = first_release_store();
    let before = std::fs::read(&db).unwrap();
    let error = Store::open_read_only(&db).unwrap_err();
    assert!(matches!(error.schema(), Some(SchemaError::TooOld { found: 1, supported: 7, .. })), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&db.display().to_string()) && message.contains("start hj212d"), "{message}");
    assert_eq!(std::fs::read(&db).unwrap(), before, "a reader changes nothing");

    drop(Store::open(&db).unwrap());
    assert_eq!(Store::open_read_only(&db).unwrap().count().unwrap(), 5, "read once migrated");
}

#[test]
fn a_database_that_is_not_a_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.sqlite");
    rusqlite::Connection::open(&db).unwrap().execute_batch("CREATE TABLE notes (text TEXT)").unwrap();
    let error = Store::open(&db).unwrap_err();
    assert!(matches!(error.schema(), Some(SchemaError::Foreign { .. })), "{error:?}");
    assert!(error.to_string().contains("no table readings"), "{error}");
}
