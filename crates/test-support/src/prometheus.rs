//! A real Prometheus server on a free loopback port (Debian package `prometheus`), scraping
//! one target every second, and a PromQL instant-query client.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{find_binary, free_port, http};

/// The scrape job of the generated config, for `up{job="hj212d"}`.
pub const JOB: &str = "hj212d";

/// A Prometheus server: config, TSDB and log in a temp dir, killed on drop.
#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    dir: tempfile::TempDir,
    pub addr: SocketAddr,
}

impl Prometheus {
    /// Starts one on a free port scraping `scrape_target`'s `/metrics` every second (job
    /// [`JOB`]) and waits until it is ready.
    ///
    /// # Panics
    /// If it is not installed (run `scripts/install-test-deps`) or not ready within 30 s.
    pub fn start(scrape_target: SocketAddr) -> Self {
        let binary = find_binary("prometheus");
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        let text = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: ['{scrape_target}']\n"
        );
        std::fs::write(&config, text).expect("write prometheus.yml");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("create prometheus.log");
        let addr = free_port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let mut server = Self { child, dir, addr };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(self.addr).is_ok() && http(self.addr, "GET", "/-/ready").0 == 200 {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited ({status}) before it was ready; its log:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready on {} within 30 s; its log:\n{}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What it logged (warnings and errors), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query (`GET /api/v1/query`); the whole JSON answer, `status` checked.
    ///
    /// # Panics
    /// If the server does not answer 200 with `"status": "success"` (e.g. a PromQL syntax error).
    pub fn query(&self, promql: &str) -> serde_json::Value {
        let (status, body) = http(self.addr, "GET", &format!("/api/v1/query?query={}", percent_encode(promql)));
        assert_eq!(status, 200, "query {promql}: {body}");
        let answer: serde_json::Value = serde_json::from_str(&body).expect("query answer is JSON");
        assert_eq!(answer["status"], "success", "query {promql}: {body}");
        answer
    }

    /// The samples of an instant query's vector result as (labels, value).
    ///
    /// # Panics
    /// As [`Prometheus::query`], or if the result is not a vector.
    pub fn vector(&self, promql: &str) -> Vec<(serde_json::Map<String, serde_json::Value>, f64)> {
        let answer = self.query(promql);
        let result = answer["data"]["result"].as_array().unwrap_or_else(|| panic!("{promql}: not a vector: {answer}"));
        result
            .iter()
            .map(|sample| {
                let labels = sample["metric"].as_object().cloned().unwrap_or_default();
                let value = sample["value"][1].as_str().and_then(|v| v.parse().ok()).expect("a sample value");
                (labels, value)
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// RFC 3986 percent-encoding of everything but unreserved characters.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent_encoding_keeps_only_unreserved_characters() {
        assert_eq!(
            super::percent_encode("sum by (outcome) (x{job=\"a b\"})"),
            "sum%20by%20%28outcome%29%20%28x%7Bjob%3D%22a%20b%22%7D%29"
        );
    }
}
