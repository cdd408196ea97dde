//! `hj212-audit` reads a data dir read-only: against a running daemon while frames arrive,
//! and against a stopped one without creating or changing a file.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use hj212_proto::encode;
use hj212_proto::time::BeijingTime;

const BIN: &str = env!("CARGO_BIN_EXE_hj212-audit");
const MN: &str = "010000A8900016F000169DC0";
const HOUR: i64 = 3_600_000;

fn hourly(start: i64, hour: i64) -> Vec<u8> {
    let at = start + hour * HOUR;
    let t = BeijingTime::from_unix_millis(at);
    let qn = BeijingTime::from_unix_millis(at + 1).to_qn_string();
    let flag = if hour % 7 == 3 { "D" } else { "N" };
    let segment = format!(
        "QN={qn};ST=31;CN=2061;PW=123456;MN={MN};Flag=5;CP=&&DataTime={};a21026-Avg=35.1,a21026-Flag={flag}&&",
        t.to_seconds_string()
    );
    encode::frame(segment.as_bytes()).unwrap()
}

/// Sends hourly frames one by one, each acknowledged, until `stop`; returns how many.
fn send_until(addr: std::net::SocketAddr, start: i64, stop: &AtomicBool) -> i64 {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut hour = 0;
    while !stop.load(Ordering::Relaxed) {
        stream.write_all(&hourly(start, hour)).unwrap();
        let mut reply = [0u8; 512];
        let n = stream.read(&mut reply).unwrap();
        assert!(reply[..n].windows(8).any(|w| w == b"CN=9014;"), "acknowledged");
        hour += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    hour
}

/// Every file under `dir` with its size and modification time.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                files.push((entry.path(), meta.len(), meta.modified().unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// verify, export, rate and alerts on `data_dir`; each must succeed. Returns rate's JSON.
fn audit_everything(config: &Path, data_dir: &Path, from: &str, to: &str) -> serde_json::Value {
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let dir = data_dir.to_str().unwrap();
    assert!(run(&["verify", "--data-dir", dir]).starts_with("ok: "));
    let exported = run(&["export", "--data-dir", dir, "--mn", MN]);
    assert!(exported.lines().all(|l| l.contains("\"frame\"") && !l.contains("123456")));
    run(&["alerts", "--data-dir", dir]);
    let rate = run(&["rate", "--config", config.to_str().unwrap(), "--mn", MN, "--from", from, "--to", to]);
    serde_json::from_str(&rate).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audits_a_running_daemon_and_leaves_a_stopped_ones_files_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let config_path = dir.path().join("hj212d.toml");
    std::fs::write(
        &config_path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[time_sync]\nenabled = false\n\
             [[sites]]\nmn = \"{MN}\"\npassword = \"123456\"\nfactors = [\"a21026\"]\n",
            data_dir.display()
        ),
    )
    .unwrap();
    let running = hj212d::Daemon::start(hj212_config::load(&config_path).unwrap()).await.unwrap();
    let now = hj212_archive::now_ms();
    // Five whole days before today: within the 10-day cutoff, wholly in the past.
    let start = now - (now + 8 * HOUR).rem_euclid(24 * HOUR) - 5 * 24 * HOUR;
    let bound = |ms: i64| BeijingTime::from_unix_millis(ms).to_seconds_string();
    let (from, to) = (bound(start), bound(start + 5 * 24 * HOUR));

    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (stop, addr) = (stop.clone(), running.hj212_addr);
        std::thread::spawn(move || send_until(addr, start, &stop))
    };
    // While frames arrive: every command works, and the rate only ever grows.
    let mut received = 0;
    for _ in 0..5 {
        let rate = audit_everything(&config_path, &data_dir, &from, &to);
        let now_received = rate["received"].as_u64().unwrap();
        assert!(now_received >= received, "received went from {received} to {now_received}");
        received = now_received;
    }
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    assert!(sent > 0);
    running.stop().await.unwrap();

    // Stopped: the commands see everything and change nothing in the data dir.
    let before = snapshot(&data_dir);
    assert!(!before.iter().any(|(path, ..)| path.to_string_lossy().ends_with("-wal")), "{before:?}");
    let rate = audit_everything(&config_path, &data_dir, &from, &to);
    assert_eq!(rate["received"].as_i64().unwrap(), sent.min(5 * 24), "every frame sent is counted");
    assert_eq!(snapshot(&data_dir), before, "no file created or changed");
}
