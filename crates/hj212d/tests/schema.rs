//! Schema versions at the daemon's start: a data dir of the first release is migrated (with a
//! log line) and takes new frames; a database of a later release stops the start with exit 78.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_hj212d");

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// A config for `dir/data` at log level info; returns it and the HJ 212 listen address.
fn write_config(dir: &Path) -> (PathBuf, SocketAddr) {
    let (listen, http) = (free_port(), free_port());
    let path = dir.join("hj212d.toml");
    let text = format!(
        "[server]\nlisten = \"{listen}\"\nhttp_listen = \"{http}\"\ndata_dir = \"{}\"\nlog_level = \"info\"\n\
         [[sites]]\nmn = \"{MN}\"\npassword = \"{PW}\"\n",
        dir.join("data").display()
    );
    std::fs::write(&path, text).unwrap();
    (path, listen)
}

/// Starts the daemon with its log in `dir/stderr.log`.
fn spawn(dir: &Path, config: &Path) -> Child {
    let log = std::fs::File::create(dir.join("stderr.log")).unwrap();
    Command::new(BIN).arg("--config").arg(config).stdin(Stdio::null()).stderr(log).spawn().unwrap()
}

fn user_version(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.pragma_query_value(None, "user_version", |row| row.get(0)).unwrap()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/sqlite").join(name)
}

#[test]
fn a_store_of_a_later_release_stops_the_start_with_exit_78() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = write_config(dir.path());
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store = data.join("store.sqlite");
    rusqlite::Connection::open(&store).unwrap().pragma_update(None, "user_version", 999).unwrap();

    let mut child = spawn(dir.path(), &config);
    assert_eq!(wait_exit(&mut child), Some(78), "a person must look: no restart loop");
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    for part in ["store database", store.display().to_string().as_str(), "schema version 999", "supports (7)"] {
        assert!(log.contains(part), "{part:?} in: {log}");
    }
    assert_eq!(user_version(&store), 999, "left as it was");
    assert!(!data.join("archive").exists(), "nothing else written");
}

#[test]
fn alerts_of_a_later_release_stop_the_start_with_exit_78() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = write_config(dir.path());
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let alerts = data.join("alerts.sqlite");
    rusqlite::Connection::open(&alerts).unwrap().pragma_update(None, "user_version", 7).unwrap();

    let mut child = spawn(dir.path(), &config);
    assert_eq!(wait_exit(&mut child), Some(78));
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    for part in ["alerts database", alerts.display().to_string().as_str(), "schema version 7", "supports (5)"] {
        assert!(log.contains(part), "{part:?} in: {log}");
    }
}

#[test]
fn commands_of_a_later_release_stop_the_start_with_exit_78() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = write_config(dir.path());
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let commands = data.join("commands.sqlite");
    rusqlite::Connection::open(&commands).unwrap().pragma_update(None, "user_version", 5).unwrap();

    let mut child = spawn(dir.path(), &config);
    assert_eq!(wait_exit(&mut child), Some(78));
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    for part in ["commands database", commands.display().to_string().as_str(), "schema version 5", "supports (1)"] {
        assert!(log.contains(part), "{part:?} in: {log}");
    }
    assert!(!data.join("archive").exists(), "nothing else written");
}

/// The failure the upgrade used to hit: a data dir of the first release, then new frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_of_the_first_release_is_migrated_at_start_and_takes_new_frames() {
    let dir = tempfile::tempdir().unwrap();
    let (config, listen) = write_config(dir.path());
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (store, alerts) = (data.join("store.sqlite"), data.join("alerts.sqlite"));
    std::fs::copy(fixture("store-v1.sqlite"), &store).unwrap();
    std::fs::copy(fixture("alerts-v1.sqlite"), &alerts).unwrap();
    // The fixtures' archive is not kept: forget their positions (the schema stays the first
    // release's), or the start would rightly refuse followers ahead of the archive.
    rusqlite::Connection::open(&store).unwrap().execute("DELETE FROM store_state", []).unwrap();
    rusqlite::Connection::open(&alerts).unwrap().execute("DELETE FROM alert_progress", []).unwrap();
    assert_eq!((user_version(&store), user_version(&alerts)), (0, 0));

    let mut child = spawn(dir.path(), &config);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(listen).is_err() {
        assert!(Instant::now() < deadline, "the daemon did not start: {:?}", child.try_wait());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut client = Client::connect(listen).await;
    client.send(&realtime("20261130120000001", &beijing_in(0), 5)).await;
    assert_eq!(client.reply().await.cn, 9014);
    drop(client);
    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    assert_eq!(wait_exit(&mut child), Some(0));

    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    let migrated = |path: &Path, to: &str| {
        log.lines().any(|l| l.contains("schema migrated") && l.contains(&path.display().to_string()) && l.contains(to))
    };
    assert!(migrated(&store, "to_version=7"), "{log}");
    assert!(migrated(&alerts, "to_version=4"), "{log}");
    assert_eq!((user_version(&store), user_version(&alerts)), (7, 5));
    let readings = stored(&data, MN);
    assert_eq!(readings.len(), 7, "the first release's 5 readings and the new frame's 2: {readings:?}");
}
