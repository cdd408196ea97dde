//! The binary as an operator meets it: config problems exit 78 naming the key (at check-config
//! and at start, not 73 later), log lines, the first scrape of /metrics, reload metrics.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{MN, PW, http_get, metric};

const BIN: &str = env!("CARGO_BIN_EXE_hj212d");

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// A config in `dir` on free loopback ports; `server` and `rest` are added to its tables.
fn write_config(dir: &Path, server: &str, rest: &str) -> (PathBuf, SocketAddr, SocketAddr) {
    let (listen, http) = (free_port(), free_port());
    let path = dir.join("hj212d.toml");
    let text = format!(
        "[server]\nlisten = \"{listen}\"\nhttp_listen = \"{http}\"\ndata_dir = \"data\"\n{server}\n{rest}\n\
         [[sites]]\nmn = \"{MN}\"\npassword = \"{PW}\"\n"
    );
    std::fs::write(&path, text).unwrap();
    (path, listen, http)
}

fn check_config(path: &Path) -> Output {
    Command::new(BIN).arg("check-config").arg(path).output().unwrap()
}

/// Runs the daemon until it exits by itself (a start failure) or 20 s pass.
fn run_until_exit(path: &Path) -> Output {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the daemon started although its config cannot work");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// check-config and the daemon both exit 78 and name `key`.
fn assert_config_error(path: &Path, key: &str) {
    let checked = check_config(path);
    assert_eq!(checked.status.code(), Some(78), "check-config: {}", stderr(&checked));
    assert!(stderr(&checked).contains(&format!("Error: {key}: ")), "check-config names {key}: {}", stderr(&checked));
    let run = run_until_exit(path);
    assert_eq!(run.status.code(), Some(78), "the daemon: {}", stderr(&run));
    assert!(stderr(&run).contains(key), "the daemon names {key}: {}", stderr(&run));
}

#[test]
fn an_address_not_on_this_host_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, http) = write_config(dir.path(), "", "");
    // 192.0.2.1 (TEST-NET-1, RFC 5737) is on no host; binding it sends nothing.
    let text = std::fs::read_to_string(&path).unwrap().replace(&format!("\"{http}\""), "\"192.0.2.1:9213\"");
    std::fs::write(&path, text).unwrap();
    assert_config_error(&path, "server.http_listen");
}

#[test]
fn an_impossible_data_dir_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = write_config(dir.path(), "", "");
    let text = std::fs::read_to_string(&path).unwrap().replace("data_dir = \"data\"", "data_dir = \"/proc/hj212d\"");
    std::fs::write(&path, text).unwrap();
    assert_config_error(&path, "server.data_dir");
}

#[test]
fn mqtts_needs_the_tls_build() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = write_config(dir.path(), "", "[mqtt]\nurl = \"mqtts://127.0.0.1:8883\"");
    if cfg!(feature = "mqtt-tls") {
        let checked = check_config(&path);
        assert_eq!(checked.status.code(), Some(0), "{}", stderr(&checked));
    } else {
        assert_config_error(&path, "mqtt.url");
        assert!(stderr(&check_config(&path)).contains("mqtt-tls feature"));
    }
}

#[test]
fn the_publishers_own_checks_are_config_errors_too() {
    let dir = tempfile::tempdir().unwrap();
    // `$` topics are the broker's own ($SYS): the publisher refuses them at start.
    let (path, _, _) = write_config(dir.path(), "", "[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\ntopic_prefix = \"$SYS\"");
    assert_config_error(&path, "mqtt.topic_prefix");
}

#[test]
fn a_port_in_use_exits_78_naming_the_key_and_check_config_warns() {
    let dir = tempfile::tempdir().unwrap();
    let (path, listen, http) = write_config(dir.path(), "", "");
    for (key, addr) in [("server.listen", listen), ("server.http_listen", http)] {
        let _held = TcpListener::bind(addr).unwrap();
        let checked = check_config(&path);
        assert_eq!(checked.status.code(), Some(0), "in use is a warning only: {}", stderr(&checked));
        assert!(stderr(&checked).contains(&format!("warning: {key}: {addr} is in use")), "{}", stderr(&checked));
        let run = run_until_exit(&path);
        assert_eq!(run.status.code(), Some(78), "{}", stderr(&run));
        assert!(stderr(&run).contains(&format!("({key})")), "{}", stderr(&run));
        // The listeners are bound before the archive is opened: nothing was written.
        assert!(!dir.path().join("data").join("archive").exists(), "an archive was started");
    }
}

#[test]
fn every_toml_error_is_printed_by_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hj212d.toml");
    std::fs::write(&path, "[server]\nlisten = 9212\n[limits]\nmax_conections = 1\n[time_sync]\nenabled = \"yes\"\n")
        .unwrap();
    let checked = check_config(&path);
    assert_eq!(checked.status.code(), Some(78));
    for needle in ["3 errors", "listen = 9212", "max_conections", "enabled = \"yes\""] {
        assert!(stderr(&checked).contains(needle), "{needle}: {}", stderr(&checked));
    }
}

/// Files and data_dir are checked as the user running check-config: as the service user, a
/// root-only token file and an unwritable data_dir are problems. Root can read anything, so
/// when the tests run as root the check runs as `nobody` (setpriv, util-linux).
#[test]
fn check_config_as_the_service_user_sees_its_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let token = dir.path().join("admin.token");
    std::fs::write(&token, "0123456789abcdef0123").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::set_permissions(dir.path().join("data"), std::fs::Permissions::from_mode(0o555)).unwrap();
    let (path, _, _) = write_config(dir.path(), "admin_token_file = \"admin.token\"", "");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let as_root = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m)).unwrap() == 0;
    let mut command = if as_root {
        // A copy nobody may run, wherever the checkout is (CI's may be in a private folder).
        let bin = dir.path().join("hj212d");
        std::fs::copy(BIN, &bin).unwrap();
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(&bin);
        c
    } else {
        Command::new(BIN)
    };
    let checked = command.arg("check-config").arg(&path).output().unwrap();
    let text = stderr(&checked);
    assert_eq!(checked.status.code(), Some(78), "{text}");
    assert!(
        text.contains("Error: server.admin_token_file: cannot read ") && text.contains("Permission denied"),
        "{text}"
    );
    assert!(text.contains("Error: server.data_dir: cannot create files in "), "{text}");
}

fn spawn_logging_to(path: &Path, log: &Path) -> Child {
    Command::new(BIN)
        .arg("--config")
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn wait_http(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "daemon did not start listening on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
}

fn stop(mut child: Child) {
    signal(&child, "TERM");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// Writes a sites file with a TOML error (its message spans several lines), sends SIGHUP and
/// waits for the failed reload to be counted.
fn failed_reload(child: &Child, sites: &Path, http: SocketAddr) -> String {
    std::fs::write(sites, "[[sites]]\nmn = \"LATE\"\npassword = \n").unwrap();
    signal(child, "HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = http_get(http, "/metrics").1;
        if metric(&body, "hj212_config_reloads_total{result=\"failure\"}") == 1 {
            return body;
        }
        assert!(Instant::now() < deadline, "the failed reload was not counted");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn text_logs_are_one_line_per_event_without_colour_and_reloads_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let sites = dir.path().join("sites.toml");
    std::fs::write(&sites, "").unwrap();
    let (path, _, http) = write_config(dir.path(), "sites_file = \"sites.toml\"\nlog_level = \"info\"", "");
    let log = dir.path().join("stderr.log");
    let child = spawn_logging_to(&path, &log);
    wait_http(http);
    let first = http_get(http, "/metrics").1;
    assert_eq!(metric(&first, "hj212_config_reloads_total{result=\"failure\"}"), 0);
    assert!(first.contains("hj212_config_last_reload_successful 1"), "{first}");
    let after = failed_reload(&child, &sites, http);
    assert!(after.contains("hj212_config_last_reload_successful 0"), "{after}");
    std::fs::write(&sites, "[[sites]]\nmn = \"LATE\"\npassword = \"1\"\n").unwrap();
    signal(&child, "HUP");
    std::thread::sleep(Duration::from_millis(500));
    let fixed = http_get(http, "/metrics").1;
    assert_eq!(metric(&fixed, "hj212_config_reloads_total{result=\"success\"}"), 1);
    assert!(fixed.contains("hj212_config_last_reload_successful 1"), "{fixed}");
    stop(child);

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains('\u{1b}'), "no ANSI escape codes when stderr is not a terminal:\n{text}");
    assert!(text.contains("site registry not reloaded") && text.contains("TOML parse error"), "{text}");
    for line in text.lines() {
        // 2026-01-01T08:00:00.000+08:00: every line is an event that starts with its time.
        let offset = line.get(23..29).unwrap_or_default();
        assert!(line.as_bytes().get(10) == Some(&b'T') && offset == "+08:00", "not one event per line: {line:?}");
    }
}

#[test]
fn json_logs_are_one_object_per_line_with_the_chosen_offset() {
    let dir = tempfile::tempdir().unwrap();
    let sites = dir.path().join("sites.toml");
    std::fs::write(&sites, "").unwrap();
    let server = "sites_file = \"sites.toml\"\nlog_format = \"json\"\nlog_utc_offset = \"-05:30\"";
    let (path, _, http) = write_config(dir.path(), server, "");
    let log = dir.path().join("stderr.log");
    let child = spawn_logging_to(&path, &log);
    wait_http(http);
    failed_reload(&child, &sites, http);
    stop(child);

    let text = std::fs::read_to_string(&log).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON object ({e}): {line:?}")))
        .collect();
    assert!(events.len() >= 3, "{text}");
    for event in &events {
        let time = event["timestamp"].as_str().unwrap();
        assert!(time.ends_with("-05:30") && time.len() == 29, "{time}");
        assert!(event["level"].is_string() && event["message"].is_string() && event["target"].is_string(), "{event}");
    }
    let refused = events.iter().find(|e| e["message"] == "site registry not reloaded").expect("the failed reload");
    assert!(refused["problem"].as_str().unwrap().contains("TOML parse error"), "{refused}");
}

/// The label values a docs/metrics.md row lists for a single-label counter
/// (`` `outcome`: accepted, duplicate (...) ``), or none.
fn documented_values(labels: &str) -> Option<(String, Vec<String>)> {
    let (label, values) = labels.split_once("`: ")?;
    let label = label.strip_prefix('`')?;
    if label.contains('`') {
        return None;
    }
    let mut plain = String::new();
    let mut depth = 0;
    for c in values.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    Some((label.to_owned(), plain.split(',').map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect()))
}

#[test]
fn the_first_scrape_lists_every_documented_counter_and_the_process_metrics() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("site.key"), "0123456789abcdef").unwrap();
    let (path, _, http) = write_config(dir.path(), "", "");
    let encrypting =
        "\n[[sites]]\nmn = \"ENC1\"\npassword = \"1\"\nencryption = \"optional\"\nkey_file = \"site.key\"\n";
    // A forwarding target (its upstream never answers: port 9 on loopback) lists its counters too.
    let forward = "\n[[forward]]\nname = \"up\"\naddress = \"127.0.0.1:9\"\nsend_plain = true\n";
    // A notification channel lists its counters too (its receiver is never asked: no alert).
    std::fs::write(dir.path().join("people.url"), "http://127.0.0.1:9/").unwrap();
    let notify = "\n[[notify]]\nname = \"people\"\nkind = \"webhook\"\nurl_file = \"people.url\"\n";
    std::fs::write(&path, std::fs::read_to_string(&path).unwrap() + encrypting + forward + notify).unwrap();
    let child = spawn_logging_to(&path, &dir.path().join("stderr.log"));
    wait_http(http);
    let body = http_get(http, "/metrics").1;
    stop(child);

    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/metrics.md")).unwrap();
    let mut counters = 0;
    for row in docs.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let name = cells[0].trim_start_matches("| `").trim_end_matches('`');
        if cells[1] != "counter" {
            continue;
        }
        counters += 1;
        let exposed = body.lines().any(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")));
        assert!(exposed, "{name} is documented but not in the first scrape");
        if let Some((label, values)) = documented_values(cells[2]) {
            for value in values {
                let series = format!("{label}=\"{value}\"");
                let found = body.lines().any(|l| l.starts_with(&format!("{name}{{")) && l.contains(&series));
                assert!(found, "{name}{{{series}}} is documented but not in the first scrape");
            }
        }
    }
    assert!(counters > 20, "the docs table was read: {counters} counters");
    assert_eq!(metric(&body, "hj212_site_decrypt_failures_total{mn=\"ENC1\"}"), 0);
    assert!(body.contains("hj212_site_decrypt_failures_total{mn=\"ENC1\"} 0"), "per configured encrypting site");

    let gauge = |name: &str| -> f64 {
        let line = body.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name}"));
        line[name.len() + 1..].parse().unwrap()
    };
    let (fds, max_fds) = (gauge("process_open_fds"), gauge("process_max_fds"));
    assert!(fds >= 3.0 && fds < max_fds, "{fds} open of {max_fds}");
    assert!(gauge("process_resident_memory_bytes") > 1e6);
    assert!(gauge("process_cpu_seconds_total") >= 0.0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let started = gauge("process_start_time_seconds");
    assert!((now - started).abs() < 60.0, "started {started}, now {now}");
}
