//! Helpers that start real services on free loopback ports, with their data in a temp dir,
//! and stop them on drop. A missing service binary is a test failure with the fix in the
//! message, never a skip: `scripts/install-test-deps` installs them. Also: captured log lines.

pub mod chromedriver;
mod logs;
pub mod mosquitto;
pub mod nats;
pub mod prometheus;
pub mod receiver;
pub mod smtp;
mod tmpfs;

pub use logs::logged;
pub use tmpfs::Tmpfs;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free port on 127.0.0.1 (bound and released; a tiny race is acceptable in tests).
///
/// # Panics
/// If no port can be had.
pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port")
}

fn find_binary(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed: run scripts/install-test-deps (Debian package {name})"))
}

/// Like [`find_binary`], for daemons in /usr/sbin (mosquitto, nats-server), which a non-root PATH
/// often lacks.
pub(crate) fn find_sbin_binary(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed: run scripts/install-test-deps (Debian package {name})"))
}

/// A minimal HTTP/1.0 request on loopback; returns (status, body).
///
/// # Panics
/// If the server cannot be reached or answers garbage.
pub fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    write!(stream, "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n").expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let status = response.get(9..12).and_then(|s| s.parse().ok()).expect("an HTTP status line");
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// The status of `GET path`, or `None` while nothing listens at `addr` yet (a server starting).
///
/// # Panics
/// As [`http`], once the server is reached.
pub fn status_once_listening(addr: SocketAddr, path: &str) -> Option<u16> {
    TcpStream::connect(addr).ok()?;
    Some(http(addr, "GET", path).0)
}

/// A VictoriaMetrics server (Debian package `victoria-metrics`).
#[derive(Debug)]
pub struct VictoriaMetrics {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub addr: SocketAddr,
}

impl VictoriaMetrics {
    /// Starts one on a free port and waits until it is healthy.
    ///
    /// # Panics
    /// If it is not installed or does not become healthy within 30 s.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut vm = Self { child: None, dir, addr: free_port() };
        vm.restart();
        vm
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts it again on the same port and data (after [`VictoriaMetrics::stop`]).
    ///
    /// # Panics
    /// As [`VictoriaMetrics::start`].
    pub fn restart(&mut self) {
        let child = Command::new(find_binary("victoria-metrics"))
            .arg(format!("-httpListenAddr={}", self.addr))
            .arg(format!("-storageDataPath={}", self.dir.path().join("storage").display()))
            .arg("-search.latencyOffset=0s")
            // Fixture data is years old; the default retention (1 month) would drop it.
            .arg("-retentionPeriod=100y")
            // Identical (series, timestamp) samples collapse, as InfluxDB overwrites them.
            .arg("-dedup.minScrapeInterval=1ms")
            .arg("-loggerLevel=ERROR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start victoria-metrics");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(self.addr).is_ok() && http(self.addr, "GET", "/health").0 == 200 {
                return;
            }
            assert!(Instant::now() < deadline, "victoria-metrics did not become healthy on {}", self.addr);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops it (SIGKILL), keeping its data for [`VictoriaMetrics::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Makes recent writes searchable.
    ///
    /// # Panics
    /// If the server does not answer.
    pub fn flush(&self) {
        assert_eq!(http(self.addr, "GET", "/internal/force_flush").0, 200);
    }

    /// Every sample of the series matching `selector`, one JSON object per series
    /// (`metric`, `values`, `timestamps`), via `/api/v1/export`.
    ///
    /// # Panics
    /// If the export fails.
    pub fn export(&self, selector: &str) -> Vec<serde_json::Value> {
        self.flush();
        let query: String =
            selector
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b == b'_' { char::from(b).to_string() } else { format!("%{b:02X}") }
                })
                .collect();
        let (status, body) = http(self.addr, "GET", &format!("/api/v1/export?match[]={query}"));
        assert_eq!(status, 200, "export: {body}");
        body.lines().map(|l| serde_json::from_str(l).expect("export line is JSON")).collect()
    }
}

impl Drop for VictoriaMetrics {
    fn drop(&mut self) {
        self.stop();
    }
}
