//! The rules in force are archived (issue 16): one `config` record per site at the first start,
//! none at a restart with the same rules, one for a site whose rules a reload changed; an
//! auditor with only the data dir computes the site's rate with them (`hj212-audit rate`
//! without `--config`).

use std::path::Path;
use std::process::Command;

use hj212_archive::Verdict;

const BIN: &str = env!("CARGO_BIN_EXE_hj212-audit");
const MN: &str = "010000A8900016F000169DC0";

fn write_config(dir: &Path, factors: &str) -> std::path::PathBuf {
    let path = dir.join("hj212d.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\n[time_sync]\nenabled = false\n\
         [[sites]]\nmn = \"{MN}\"\npassword = \"site-secret-1\"\nfactors = [{factors}]\n\
         [[sites]]\nmn = \"OTHER-SITE-0001\"\npassword = \"other-secret\"\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

async fn start(path: &Path) -> hj212d::Running {
    hj212d::Daemon::start(hj212_config::load(path).unwrap()).await.unwrap()
}

/// The archived config records: (MN, the record's JSON).
fn config_records(data: &Path) -> Vec<(String, serde_json::Value)> {
    let mut follower = hj212_archive::Follower::new(&data.join("archive"), 1);
    let mut out = Vec::new();
    loop {
        let records = follower.read(u64::MAX, 1000).unwrap();
        if records.is_empty() {
            return out;
        }
        for record in records.into_iter().filter(|r| r.verdict == Verdict::Config) {
            let value: serde_json::Value = serde_json::from_slice(&record.data).unwrap();
            out.push((value["mn"].as_str().unwrap().to_owned(), value));
        }
    }
}

fn audit_rate(data: &Path, mn: &str) -> std::process::Output {
    let this_year = &hj212_proto::time::BeijingTime::from_unix_millis(hj212_archive::now_ms()).to_seconds_string()[..4];
    Command::new(BIN)
        .args(["rate", "--data-dir"])
        .arg(data)
        .args(["--mn", mn, "--from", &format!("{this_year}-01-01"), "--to", "2099-01-01"])
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_are_archived_when_they_change_and_an_auditor_needs_only_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let path = write_config(dir.path(), "\"a21026\"");
    start(&path).await.stop().await.unwrap();
    let first = config_records(&data);
    assert_eq!(first.iter().map(|(mn, _)| mn.as_str()).collect::<Vec<_>>(), vec![MN, "OTHER-SITE-0001"]);
    let text = serde_json::to_string(&first).unwrap();
    assert!(!text.contains("site-secret-1") && !text.contains("other-secret"), "no password archived: {text}");

    start(&path).await.stop().await.unwrap();
    assert_eq!(config_records(&data).len(), 2, "the same rules are not archived again");

    let running = start(&path).await;
    write_config(dir.path(), "\"a21026\", \"a21002\"");
    running.reload_sites();
    // The reload archives in the background; the stop waits for everything appended.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    running.stop().await.unwrap();
    let changed_by = hj212_archive::now_ms();
    let records = config_records(&data);
    assert_eq!(records.len(), 3, "one more record, for the site whose rules changed: {records:?}");
    assert_eq!(records[2].0, MN);
    assert_eq!(records[2].1["site"]["factors"], serde_json::json!(["a21026", "a21002"]));

    let output = audit_rate(&data, MN);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout} {}", String::from_utf8_lossy(&output.stderr));
    let evidence: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        evidence["factors"],
        serde_json::json!(["a21026", "a21002"]),
        "the rules in force at the end: {evidence}"
    );
    assert!(!evidence["config_history"].as_array().unwrap().is_empty(), "the stretches and their records: {evidence}");

    // The report of the day the new rules take effect, from the data dir alone: a change takes
    // effect at the first hour starting after it, which is tomorrow in the day's last hour.
    let hour = 3_600_000;
    let in_force_from = (changed_by / hour + 1) * hour;
    let day = hj212_proto::time::BeijingTime::from_unix_millis(in_force_from).to_seconds_string();
    let report_date = format!("{}-{}-{}", &day[..4], &day[4..6], &day[6..8]);
    let report = Command::new(BIN)
        .args(["report", "--data-dir"])
        .arg(&data)
        .args(["--date", &report_date, "--mn", MN])
        .output()
        .unwrap();
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!((report["kind"].as_str(), report["mn"].as_str()), (Some("daily"), Some(MN)), "{report}");
    assert_eq!(report["rate"]["factors"], serde_json::json!(["a21026", "a21002"]));
    let fleet = Command::new(BIN)
        .args(["report", "--data-dir"])
        .arg(&data)
        .args(["--date", &report_date, "--format", "csv"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&fleet.stdout).lines().count(), 3, "a BOM header and both sites");
    let bad =
        Command::new(BIN).args(["report", "--data-dir"]).arg(&data).args(["--date", "2026-02-30"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a date YYYY-MM-DD"));

    let unknown = audit_rate(&data, "NO-SUCH-SITE");
    assert_eq!(unknown.status.code(), Some(64), "{}", String::from_utf8_lossy(&unknown.stderr));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("in the data dir's config history"));
}
