//! A real ChromeDriver (Debian package `chromium-driver`) on a free loopback port, driving
//! Debian's headless Chromium with a fresh profile; stopped on drop.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::io::{Read, Write};

use crate::{find_binary, free_port};

#[derive(Debug)]
pub struct ChromeDriver {
    child: Child,
    pub addr: SocketAddr,
    /// Chromium's profile, thrown away with the driver.
    pub profile: tempfile::TempDir,
}

impl ChromeDriver {
    /// Starts one and waits until it answers `/status`.
    ///
    /// # Panics
    /// If it is not installed or not ready within 20 s.
    pub fn start() -> Self {
        let addr = free_port();
        let child = Command::new(find_binary("chromedriver"))
            .arg(format!("--port={}", addr.port()))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver (scripts/install-test-deps installs chromium-driver)");
        let driver = Self { child, addr, profile: tempfile::tempdir().expect("temp dir") };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready(addr) {
            assert!(Instant::now() < deadline, "chromedriver did not answer on {addr} within 20 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        driver
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The W3C capabilities for headless Debian Chromium: no sandbox (tests run as root in CI),
    /// no background traffic (the machine's network is closed), this driver's own profile.
    pub fn capabilities(&self) -> serde_json::Map<String, serde_json::Value> {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
        ]
        .into_iter()
        .map(str::to_owned)
        .chain([format!("--user-data-dir={}", self.profile.path().display())])
        .collect::<Vec<_>>();
        let options = serde_json::json!({ "binary": find_binary("chromium"), "args": args });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".to_owned(), options);
        capabilities
    }
}

/// Whether the driver answers `/status` with `"ready": true` (it keeps the connection open
/// after the answer, so the answer is read until that shows).
fn ready(addr: SocketAddr) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET /status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let (mut answer, mut chunk) = (Vec::new(), [0u8; 4096]);
    while let Ok(n @ 1..) = stream.read(&mut chunk) {
        answer.extend_from_slice(&chunk[..n]);
        if String::from_utf8_lossy(&answer).replace(' ', "").contains("\"ready\":true") {
            return true;
        }
    }
    false
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
