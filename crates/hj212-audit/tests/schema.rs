//! The auditor's CLI reads the daemon's SQLite files without migrating them: a file of
//! another schema version is refused with what to do, and left as it was.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_hj212-audit");
const MN: &str = "010000A8900016F000169DC0";

/// A data dir holding copies of the first release's store and alerts, and a config for it.
fn first_release_data_dir() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/sqlite");
    std::fs::copy(fixtures.join("store-v1.sqlite"), data.join("store.sqlite")).unwrap();
    std::fs::copy(fixtures.join("alerts-v1.sqlite"), data.join("alerts.sqlite")).unwrap();
    let config = dir.path().join("hj212d.toml");
    let text = format!(
        "[server]\ndata_dir = \"{}\"\n[[sites]]\nmn = \"{MN}\"\npassword = \"123456\"\nfactors = [\"a21026\"]\n",
        data.display()
    );
    std::fs::write(&config, text).unwrap();
    (dir, data, config)
}

fn rate(config: &Path) -> Output {
    Command::new(BIN)
        .args(["rate", "--config"])
        .arg(config)
        .args(["--mn", MN, "--from", "2026-11-27", "--to", "2026-11-28"])
        .output()
        .unwrap()
}

#[test]
fn rate_refuses_a_store_of_another_version_and_says_what_to_do() {
    let (_dir, data, config) = first_release_data_dir();
    let store = data.join("store.sqlite");
    let before = std::fs::read(&store).unwrap();
    let old = rate(&config);
    let stderr = String::from_utf8_lossy(&old.stderr);
    assert_eq!(old.status.code(), Some(66), "{stderr}");
    for part in [store.display().to_string().as_str(), "schema version 1", "reads (7)", "start hj212d"] {
        assert!(stderr.contains(part), "{part:?} in: {stderr}");
    }
    assert_eq!(std::fs::read(&store).unwrap(), before, "the auditor changes nothing");

    rusqlite::Connection::open(&store).unwrap().pragma_update(None, "user_version", 999).unwrap();
    let newer = rate(&config);
    let stderr = String::from_utf8_lossy(&newer.stderr);
    assert_eq!(newer.status.code(), Some(66), "{stderr}");
    assert!(stderr.contains("schema version 999") && stderr.contains("later release"), "{stderr}");
}

#[test]
fn alerts_reads_the_first_releases_alerts_database_as_it_is() {
    let (_dir, data, _) = first_release_data_dir();
    let alerts = data.join("alerts.sqlite");
    let before = std::fs::read(&alerts).unwrap();
    let output = Command::new(BIN).args(["alerts", "--data-dir"]).arg(&data).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8(output.stdout).unwrap().lines().count(), 4);
    assert_eq!(std::fs::read(&alerts).unwrap(), before);

    rusqlite::Connection::open(&alerts).unwrap().pragma_update(None, "user_version", 999).unwrap();
    let newer = Command::new(BIN).args(["alerts", "--data-dir"]).arg(&data).output().unwrap();
    let stderr = String::from_utf8_lossy(&newer.stderr);
    assert_eq!(newer.status.code(), Some(66), "{stderr}");
    assert!(stderr.contains("alerts database") && stderr.contains("schema version 999"), "{stderr}");
}
