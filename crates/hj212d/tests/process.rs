//! The `hj212d` binary as operators run it: exit codes, signals, and a SIGKILL in the
//! middle of a load that must not lose a single acknowledged frame.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_hj212d");

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn write_config(dir: &Path, extra: &str) -> (std::path::PathBuf, SocketAddr, SocketAddr) {
    let (listen, http) = (free_port(), free_port());
    let path = dir.join("hj212d.toml");
    let text = format!(
        "[server]\nlisten = \"{listen}\"\nhttp_listen = \"{http}\"\ndata_dir = \"{}\"\nlog_level = \"warn\"\n{extra}\n[[sites]]\nmn = \"{MN}\"\npassword = \"{PW}\"\n",
        dir.join("data").display()
    );
    std::fs::write(&path, text).unwrap();
    (path, listen, http)
}

fn spawn(config: &Path) -> Child {
    Command::new(BIN).arg("--config").arg(config).stdin(Stdio::null()).spawn().unwrap()
}

fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "daemon did not start listening on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Until the admin API answers: the daemon has started (its listeners are bound, and accept
/// into the backlog, before the archive is open).
fn wait_ready(http: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answered = std::net::TcpStream::connect(http).ok().and_then(|mut stream| {
            stream.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
            stream.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").ok()?;
            let mut buf = [0u8; 16];
            std::io::Read::read(&mut stream, &mut buf).ok().filter(|n| *n > 0)
        });
        if answered.is_some() {
            return;
        }
        assert!(Instant::now() < deadline, "daemon did not start serving on {http}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
}

#[test]
fn check_config_and_print_default_config() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = write_config(dir.path(), "");
    let ok = Command::new(BIN).arg("check-config").arg(&path).output().unwrap();
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));

    std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:1\"\nbogus = 1\n").unwrap();
    let bad = Command::new(BIN).arg("check-config").arg(&path).output().unwrap();
    assert_eq!(bad.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bogus"), "the unknown key is named");

    std::fs::write(&path, "[limits]\nmax_frame_len = 0\nmax_connections = 0\n[[sites]]\nmn = \"\"\npassword = \"p\"\n")
        .unwrap();
    let bad = Command::new(BIN).arg("check-config").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(78));
    for key in ["limits.max_frame_len", "limits.max_connections", "sites[0].mn"] {
        assert!(stderr.contains(key), "{key} reported in: {stderr}");
    }
    // Running with a bad config also exits 78, before touching anything.
    let run = Command::new(BIN).arg("--config").arg(&path).output().unwrap();
    assert_eq!(run.status.code(), Some(78));

    let defaults = Command::new(BIN).arg("print-default-config").output().unwrap();
    assert_eq!(defaults.status.code(), Some(0));
    let text = String::from_utf8(defaults.stdout).unwrap();
    assert_eq!(hj212_config::from_str(&text).unwrap(), hj212_config::Config::default());
}

#[test]
fn sigterm_stops_cleanly_and_sighup_reloads_sites() {
    let dir = tempfile::tempdir().unwrap();
    let sites = dir.path().join("sites.toml");
    std::fs::write(&sites, "").unwrap();
    let (path, listen, _) = write_config(dir.path(), "sites_file = \"sites.toml\"");
    let mut child = spawn(&path);
    wait_listening(listen);
    // The daemon turns transparent huge pages off for itself (README, Performance).
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    assert!(status.contains("THP_enabled:\t0"), "{status}");
    let late_site = |client: &mut std::net::TcpStream| {
        let frame = frame(&format!(
            "QN=20260101120000000;ST=31;CN=2011;PW=777777;MN=LATEMN;Flag=5;CP=&&DataTime={};a21026-Rtd=1&&",
            beijing_in(0)
        ));
        client.write_all(&frame).unwrap();
        client.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let mut buf = [0u8; 256];
        std::io::Read::read(client, &mut buf)
            .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
            .unwrap_or_default()
    };
    let mut client = std::net::TcpStream::connect(listen).unwrap();
    assert_eq!(late_site(&mut client), "", "LATEMN is not configured yet");
    std::fs::write(&sites, "[[sites]]\nmn = \"LATEMN\"\npassword = \"777777\"\n").unwrap();
    signal(&child, "HUP");
    std::thread::sleep(Duration::from_millis(500));
    assert!(late_site(&mut client).contains("CN=9014;"), "SIGHUP added LATEMN without dropping the connection");
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child), Some(0));
}

/// Frame `n`'s QN and DataTime: one second apart from 2026-01-01T08:00:00+08:00.
fn frame_time(n: u64) -> hj212_proto::time::BeijingTime {
    hj212_proto::time::BeijingTime::from_unix_millis(1_767_225_600_000 + i64::try_from(n).unwrap() * 1000)
}

/// Sends frames with unique QNs and DataTimes on `connections` connections until `stop`,
/// recording the QN of every frame that got its 9014.
fn load(
    listen: SocketAddr,
    connections: usize,
    stop: Instant,
    acked: &Arc<Mutex<Vec<u64>>>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..connections)
        .map(|c| {
            let acked = acked.clone();
            std::thread::spawn(move || {
                let Ok(mut stream) = std::net::TcpStream::connect(listen) else { return };
                stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut codec = hj212_proto::codec::Hj212Codec::default();
                let mut buf = bytes::BytesMut::new();
                for i in 0.. {
                    if Instant::now() >= stop {
                        return;
                    }
                    let n = c as u64 * 1_000_000 + i;
                    let time = frame_time(n);
                    let qn = time.to_qn_string();
                    let frame = frame(&format!(
                        "QN={qn};ST=31;CN=2011;PW={PW};MN={MN};Flag=5;CP=&&DataTime={};a21026-Rtd={i}.5&&",
                        time.to_seconds_string()
                    ));
                    if stream.write_all(&frame).is_err() {
                        return;
                    }
                    // Wait for this frame's 9014 before counting it as acknowledged.
                    loop {
                        use tokio_util::codec::Decoder;
                        if let Ok(Some(hj212_proto::codec::FrameEvent::Frame(reply))) = codec.decode(&mut buf) {
                            if reply.bytes.windows(qn.len()).any(|w| w == qn.as_bytes())
                                && reply.bytes.windows(8).any(|w| w == b"CN=9014;")
                            {
                                acked.lock().unwrap().push(n);
                                break;
                            }
                            continue;
                        }
                        let mut chunk = [0u8; 1024];
                        match std::io::Read::read(&mut stream, &mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                    }
                }
            })
        })
        .collect()
}

/// Runs the load on `connections` connections, SIGKILLs the daemon after `after`, and returns
/// the frames that were acknowledged before it died.
fn kill_under_load(child: &mut Child, listen: SocketAddr, connections: usize, after: Duration) -> Vec<u64> {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let threads = load(listen, connections, Instant::now() + after + Duration::from_millis(2800), &acked);
    std::thread::sleep(after);
    child.kill().unwrap(); // SIGKILL, mid-load
    child.wait().unwrap();
    for t in threads {
        t.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 100, "the load ran: {} frames acknowledged", acked.len());
    acked
}

#[test]
fn sigkill_under_load_loses_nothing_that_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (path, listen, _) = write_config(dir.path(), "[time_sync]\nenabled = false");
    let mut child = spawn(&path);
    wait_listening(listen);
    let acked = kill_under_load(&mut child, listen, 16, Duration::from_millis(1500));

    // Restart: recovery, then a clean stop so the store catches up.
    let mut child = spawn(&path);
    wait_listening(listen);
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child), Some(0));

    let data = dir.path().join("data");
    let report = hj212_archive::verify(&data.join("archive")).expect("chain intact after the crash");
    assert!(!report.incomplete_tail);
    let qn_of =
        |text: &str| text.split_once("QN=").and_then(|(_, rest)| rest.split_once(';')).map(|(qn, _)| qn.to_owned());
    let archived: std::collections::HashSet<String> = archived(&data)
        .into_iter()
        .filter(|(verdict, _, _)| verdict == "accepted")
        .filter_map(|(_, _, text)| qn_of(&text))
        .collect();
    let stored: std::collections::HashSet<String> = stored(&data, MN).into_iter().map(|r| r.data_time).collect();
    for n in &acked {
        let time = frame_time(*n);
        assert!(archived.contains(&time.to_qn_string()), "acknowledged frame {n} missing from the archive");
        assert!(stored.contains(&time.to_seconds_string()), "acknowledged frame {n} missing from the store");
    }
}

#[test]
fn sigkill_mid_batch_loses_nothing_in_victoria_metrics() {
    let vm = test_support::VictoriaMetrics::start();
    let dir = tempfile::tempdir().unwrap();
    let influx = format!(
        "[time_sync]\nenabled = false\n[influx]\nurl = \"{}\"\norg = \"ops\"\nbucket = \"hj212\"\nbatch_points = 500\nbatch_interval_ms = 200",
        vm.url()
    );
    let (path, listen, _) = write_config(dir.path(), &influx);
    let mut child = spawn(&path);
    wait_listening(listen);
    let acked = kill_under_load(&mut child, listen, 8, Duration::from_millis(1200));

    let mut child = spawn(&path);
    wait_listening(listen);
    let wanted: std::collections::HashSet<i64> = acked.iter().map(|n| frame_time(*n).unix_millis()).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let missing = loop {
        let series = vm.export(&format!(r#"{{__name__="hj212_rtd",mn="{MN}"}}"#));
        let mut stamps: Vec<i64> = series
            .iter()
            .flat_map(|s| s["timestamps"].as_array().unwrap().iter().map(|t| t.as_i64().unwrap()))
            .collect();
        let total = stamps.len();
        stamps.sort_unstable();
        stamps.dedup();
        assert_eq!(total, stamps.len(), "a replay after the crash must not duplicate a reading");
        let have: std::collections::HashSet<i64> = stamps.into_iter().collect();
        let missing = wanted.difference(&have).count();
        if missing == 0 || Instant::now() > deadline {
            break missing;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child), Some(0));
    assert_eq!(missing, 0, "acknowledged readings missing from VictoriaMetrics after kill -9 and restart");
}

/// A second `hj212d` on the same data_dir (same config, or other ports) exits 75 naming the
/// running daemon's PID and writes nothing: the running daemon's chain stays intact.
#[test]
fn a_second_daemon_on_the_same_data_dir_exits_75_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (path, listen, http) = write_config(dir.path(), "");
    let mut first = spawn(&path);
    wait_ready(http);
    let archive = dir.path().join("data").join("archive");
    let before = hj212_archive::verify(&archive).unwrap();
    let other_ports = dir.path().join("other-ports.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text
        .replace(&listen.to_string(), &free_port().to_string())
        .replace(&http.to_string(), &free_port().to_string());
    std::fs::write(&other_ports, text).unwrap();
    for config in [&path, &other_ports] {
        let second = Command::new(BIN).arg("--config").arg(config).stdin(Stdio::null()).output().unwrap();
        let stderr = String::from_utf8_lossy(&second.stderr);
        assert_eq!(second.status.code(), Some(75), "{stderr}");
        assert!(stderr.contains(&format!("PID {}", first.id())), "the holder is named: {stderr}");
    }
    let after = hj212_archive::verify(&archive).unwrap();
    assert_eq!((after.last_seq, after.head), (before.last_seq, before.head), "nothing was appended");

    let mut client = std::net::TcpStream::connect(listen).unwrap();
    client.write_all(&realtime("20260101120000000", &beijing_in(0), 5)).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 256];
    let n = std::io::Read::read(&mut client, &mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("CN=9014;"), "the first daemon still acknowledges");
    signal(&first, "TERM");
    assert_eq!(wait_exit(&mut first), Some(0));
    assert!(hj212_archive::verify(&archive).is_ok());
    // Once the first has stopped, the lock is free again.
    let mut again = spawn(&path);
    wait_listening(listen);
    signal(&again, "TERM");
    assert_eq!(wait_exit(&mut again), Some(0));
}

/// More connections than file descriptors allow is a configuration error, named at start.
#[test]
fn max_connections_beyond_the_descriptor_limit_exits_78() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = write_config(dir.path(), "[limits]\nmax_connections = 100000000");
    let run = Command::new(BIN).arg("--config").arg(&path).stdin(Stdio::null()).output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("limits.max_connections") && stderr.contains("RLIMIT_NOFILE"), "{stderr}");
    assert!(!dir.path().join("data").join("archive").exists(), "nothing was written");
}

/// The checkpoint signing key: a bad key file is a configuration error named by its key, in
/// check-config and at start (exit 78, which the unit does not restart on); a missing one is
/// made by `generate-signing-key`, which never replaces an existing key.
#[test]
fn a_bad_signing_key_is_a_config_error_and_generate_signing_key_makes_one() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("keys").join("archive-signing.key");
    let (path, _, _) = write_config(dir.path(), &format!("[archive]\nsigning_key_file = \"{}\"", key.display()));
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    std::fs::write(&key, "not a key\n").unwrap();
    let check = Command::new(BIN).arg("check-config").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("archive.signing_key_file") && stderr.contains("64 hex digits"), "{stderr}");
    let run = Command::new(BIN).arg("--config").arg(&path).stdin(Stdio::null()).output().unwrap();
    assert_eq!(run.status.code(), Some(78), "{}", String::from_utf8_lossy(&run.stderr));

    std::fs::remove_file(&key).unwrap();
    let made = Command::new(BIN).arg("generate-signing-key").arg(&key).output().unwrap();
    assert_eq!(made.status.code(), Some(0), "{}", String::from_utf8_lossy(&made.stderr));
    let public = String::from_utf8(made.stdout).unwrap();
    assert_eq!(std::fs::read_to_string(key.with_extension("pub")).unwrap().trim(), public.lines().next().unwrap());
    let again = Command::new(BIN).arg("generate-signing-key").arg(&key).output().unwrap();
    assert_ne!(again.status.code(), Some(0), "an existing key is never replaced");
    let check = Command::new(BIN).arg("check-config").arg(&path).output().unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", String::from_utf8_lossy(&check.stderr));
}
