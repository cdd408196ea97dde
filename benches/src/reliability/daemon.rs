//! The daemon under trial as a child process: its config, start, readiness, SIGKILL and
//! SIGTERM, and its log. Every child is killed when its handle is dropped.

use std::fmt::Write as _;
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::load::{PASSWORD, SITES, mn};

/// A free port on 127.0.0.1 (bound and released).
///
/// # Errors
/// If no port can be had.
pub fn free_port() -> Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).context("a free loopback port")
}

/// The config of a daemon under trial: `[server]` on free loopback ports and `data_dir`,
/// generous connection limits for loggers that all come from 127.0.0.1 (unless a trial sets
/// its own), and the load generator's sites.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub http: SocketAddr,
    pub data_dir: PathBuf,
    /// Extra `[server]` lines.
    pub server: Vec<String>,
    /// `[limits]` lines (replace the defaults set by [`Config::new`]).
    pub limits: Vec<String>,
    pub archive: Vec<String>,
    pub http_table: Vec<String>,
    /// Whole tables appended as they are (`[alerts]`, `[influx]` ...).
    pub tables: String,
    /// `[[sites]]` tables.
    pub sites: String,
}

impl Config {
    /// A config with the load generator's sites (`factors` set, so that rates are due).
    ///
    /// # Errors
    /// If no free port can be had.
    pub fn new(data_dir: &Path) -> Result<Self> {
        Ok(Self {
            addr: free_port()?,
            http: free_port()?,
            data_dir: data_dir.to_path_buf(),
            server: vec!["log_level = \"warn\"".into()],
            limits: vec![
                "max_connections_per_peer = 10000".into(),
                "max_unauthenticated = 10000".into(),
                "idle_timeout_secs = 3600".into(),
            ],
            archive: Vec::new(),
            http_table: Vec::new(),
            tables: "[time_sync]\nenabled = false\n".into(),
            sites: load_sites(""),
        })
    }

    pub fn render(&self) -> String {
        let mut text = format!(
            "[server]\nlisten = \"{}\"\nhttp_listen = \"{}\"\ndata_dir = \"{}\"\n",
            self.addr,
            self.http,
            self.data_dir.display()
        );
        for (table, lines) in [("server", &self.server), ("limits", &self.limits)]
            .into_iter()
            .chain([("archive", &self.archive), ("http", &self.http_table)])
        {
            if table != "server" {
                let _ = writeln!(text, "[{table}]");
            }
            for line in lines {
                let _ = writeln!(text, "{line}");
            }
        }
        text.push_str(&self.tables);
        text.push_str(&self.sites);
        text
    }

    /// Writes the config to `path`.
    ///
    /// # Errors
    /// If it cannot be written.
    pub fn write(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.render()).with_context(|| format!("write {}", path.display()))
    }
}

/// The load generator's `[[sites]]`, each followed by `site_tables` (e.g. `[[sites.limits]]`).
pub fn load_sites(site_tables: &str) -> String {
    let mut sites = String::new();
    for site in 0..SITES {
        let _ = write!(
            sites,
            "[[sites]]\nmn = \"{}\"\npassword = \"{PASSWORD}\"\nfactors = [\"a21026\", \"a21002\", \"a34013\"]\n{site_tables}",
            mn(site)
        );
    }
    sites
}

/// A running (or exited) `hj212d`.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub http: SocketAddr,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    pid: u32,
}

impl Daemon {
    /// Starts `binary --config config_path`, its stderr appended to `log`.
    ///
    /// # Errors
    /// If it cannot be spawned.
    pub fn spawn(binary: &Path, config_path: &Path, config: &Config, log: &Path) -> Result<Self> {
        let log_file = File::options().create(true).append(true).open(log).context("open the daemon log")?;
        let child = Command::new(binary)
            .arg("--config")
            .arg(config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let pid = child.id();
        Ok(Self {
            child: Some(child),
            addr: config.addr,
            http: config.http,
            data_dir: config.data_dir.clone(),
            log: log.to_path_buf(),
            pid,
        })
    }

    /// Writes `config` beside the data, starts the daemon and waits until it accepts.
    ///
    /// # Errors
    /// If it exits or does not accept within 60 s.
    pub async fn start(binary: &Path, dir: &Path, config: &Config) -> Result<Self> {
        let path = dir.join("hj212d.toml");
        config.write(&path)?;
        let mut daemon = Self::spawn(binary, &path, config, &dir.join("hj212d.log"))?;
        daemon.wait_ready(Duration::from_secs(60)).await?;
        Ok(daemon)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits until the HJ 212 listener accepts a connection.
    ///
    /// # Errors
    /// If the daemon exits first (with its code and log tail) or `timeout` passes.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited()? {
                bail!("hj212d exited with {status} before accepting; log:\n{}", self.log_tail(20));
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("hj212d did not accept on {} within {timeout:?}; log:\n{}", self.addr, self.log_tail(20));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The exit status if the daemon has exited.
    ///
    /// # Errors
    /// If waiting fails.
    pub fn exited(&mut self) -> Result<Option<ExitStatus>> {
        match &mut self.child {
            None => Ok(None),
            Some(child) => Ok(child.try_wait()?),
        }
    }

    /// SIGKILL, and reaps it.
    ///
    /// # Errors
    /// If it cannot be signalled or reaped.
    pub fn kill(&mut self) -> Result<ExitStatus> {
        let mut child = self.child.take().context("the daemon was already stopped")?;
        let _ = child.kill();
        Ok(child.wait()?)
    }

    /// SIGTERM, then waits up to `timeout` for the exit (SIGKILL after it, as an error).
    ///
    /// # Errors
    /// If it does not stop within `timeout`.
    pub fn terminate(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let mut child = self.child.take().context("the daemon was already stopped")?;
        let _ = Command::new("kill").arg("-TERM").arg(self.pid.to_string()).status();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("hj212d did not stop within {timeout:?} of SIGTERM; log:\n{}", self.log_tail(20));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `timeout` for the daemon to exit by itself.
    ///
    /// # Errors
    /// If waiting fails.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.exited()? {
                self.child = None;
                return Ok(Some(status));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(None)
    }

    /// The last `lines` lines of the daemon's log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// Resident memory in bytes (0 when unknown).
    pub fn rss_bytes(&self) -> u64 {
        crate::load::rss_of(self.pid)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The last `lines` lines of a log file.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// An exit status as the code, or the signal that ended it.
pub fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        _ => status.to_string(),
    }
}
