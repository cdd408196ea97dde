//! The load generator and the daemon under test.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hj212_proto::codec::{FrameEvent, Hj212Codec};
use hj212_proto::encode;
use hj212_proto::time::BeijingTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

/// Sites in the generated config; connection `c` speaks for site `c % SITES`.
pub const SITES: usize = 100;
pub const PASSWORD: &str = "123456";

/// The MN of generated site `site`.
pub fn mn(site: usize) -> String {
    format!("LOAD{site:020}")
}

/// A child `hj212d` with its own data dir and config.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
    pub addr: SocketAddr,
    /// The admin HTTP listener (/metrics).
    pub http: SocketAddr,
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port")
}

/// A free loopback port below the ephemeral range, for a daemon started later on it (see
/// [`Daemon::start_full_at`]): until then connections to it are refused. An ephemeral port
/// could meanwhile be given to a client socket, or a connection to it could meet itself (TCP
/// simultaneous open); this one cannot.
pub fn reserved_port() -> SocketAddr {
    const FIRST: u32 = 10_000;
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let span = ephemeral.saturating_sub(FIRST);
    let seed = std::process::id().wrapping_add(std::time::UNIX_EPOCH.elapsed().map_or(0, |d| d.subsec_nanos()));
    (0..span)
        .filter_map(|i| u16::try_from(FIRST + seed.wrapping_add(i) % span).ok())
        .find_map(|port| TcpListener::bind(("127.0.0.1", port)).and_then(|l| l.local_addr()).ok())
        .unwrap_or_else(free_port)
}

/// `count` generated sites (MN [`mn`], password [`PASSWORD`]) as `[[sites]]` tables, with
/// `per_site` appended to each.
pub fn sites_config(count: usize, per_site: &str) -> String {
    let mut sites = String::new();
    for site in 0..count {
        let _ = write!(sites, "[[sites]]\nmn = \"{}\"\npassword = \"{PASSWORD}\"\n{per_site}", mn(site));
    }
    sites
}

impl Daemon {
    /// Starts the daemon and waits until it accepts connections.
    ///
    /// # Panics
    /// If it cannot be started; this is a benchmark, not a service.
    pub async fn start(binary: &Path, max_connections: usize) -> Self {
        Self::start_with(binary, max_connections, "", "").await
    }

    /// As [`Daemon::start`], with `extra` appended to the config's top-level tables and
    /// `per_site` appended to each `[[sites]]` table.
    ///
    /// # Panics
    /// As [`Daemon::start`].
    pub async fn start_with(binary: &Path, max_connections: usize, extra: &str, per_site: &str) -> Self {
        Self::start_config(binary, max_connections, extra, &sites_config(SITES, per_site)).await
    }

    /// A daemon with `extra` top-level tables and the `sites` given as TOML (`[[sites]]` tables).
    ///
    /// # Panics
    /// As [`Daemon::start`].
    pub async fn start_config(binary: &Path, max_connections: usize, extra: &str, sites: &str) -> Self {
        Self::start_full(binary, max_connections, "", extra, sites).await
    }

    /// As [`Daemon::start_config`], with `server` appended to the `[server]` table (TOML
    /// cannot reopen it from `extra`).
    ///
    /// # Panics
    /// As [`Daemon::start`].
    pub async fn start_full(binary: &Path, max_connections: usize, server: &str, extra: &str, sites: &str) -> Self {
        Self::start_full_at(binary, max_connections, free_port(), server, extra, sites).await
    }

    /// As [`Daemon::start_full`], listening for loggers on `addr` (e.g. a [`reserved_port`]).
    ///
    /// # Panics
    /// As [`Daemon::start`].
    pub async fn start_full_at(
        binary: &Path,
        max_connections: usize,
        addr: SocketAddr,
        server: &str,
        extra: &str,
        sites: &str,
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let http = free_port();
        // Every simulated logger connects from 127.0.0.1: one address may hold all the connections.
        let mut config = format!(
            "[server]\nlisten = \"{addr}\"\nhttp_listen = \"{http}\"\ndata_dir = \"{}\"\nlog_level = \"warn\"\n{server}\
             [limits]\nmax_connections = {max_connections}\nidle_timeout_secs = 3600\n\
             max_connections_per_peer = {max_connections}\nmax_unauthenticated = {max_connections}\n\
             [time_sync]\nenabled = false\n",
            dir.path().join("data").display()
        );
        config.push_str(extra);
        config.push_str(sites);
        let path = dir.path().join("hj212d.toml");
        std::fs::write(&path, config).expect("write config");
        let child = Command::new(binary)
            .arg("--config")
            .arg(&path)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).await.is_err() {
            assert!(Instant::now() < deadline, "hj212d did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { child, dir, addr, http }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Resident memory of the daemon, from /proc.
    pub fn rss_bytes(&self) -> u64 {
        rss_of(self.pid())
    }

    /// Stops the daemon with SIGTERM.
    pub fn stop(mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

/// One timed run.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub connections: usize,
    pub window: usize,
    pub duration: Duration,
    /// Total offered frames per second, or `None` for as fast as acknowledgements allow.
    pub rate: Option<u64>,
    /// Seconds of DataTime the runs before this one used per connection: a later run starts
    /// below them, so that its frames are not duplicates of theirs.
    pub first_second: u64,
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Outcome {
    pub acked: u64,
    pub elapsed: Duration,
    /// Ack latencies in microseconds, sorted.
    pub latencies: Vec<u32>,
}

impl Outcome {
    pub fn per_second(&self) -> u64 {
        let micros = self.elapsed.as_micros().max(1);
        u64::try_from(u128::from(self.acked) * 1_000_000 / micros).unwrap_or(u64::MAX)
    }

    /// The `percent`-th percentile latency in milliseconds.
    fn percentile(&self, percent: usize) -> f64 {
        let Some(last) = self.latencies.len().checked_sub(1) else { return 0.0 };
        f64::from(self.latencies[last * percent / 100]) / 1000.0
    }

    pub fn summary(&self) -> String {
        format!(
            "{} frames acknowledged in {:.1} s = {} frames/s; ack latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.acked,
            self.elapsed.as_secs_f64(),
            self.per_second(),
            self.percentile(50),
            self.percentile(99),
            self.percentile(100)
        )
    }
}

/// Days between the DataTimes of two connections that speak for the same site.
const ROUND_DAYS: i64 = 30;

/// Frame `n` of connection `c`: six readings at a DataTime of its own, one second before the
/// previous frame's, going back from `newest_ms` (nothing is a duplicate, nothing is dated in
/// the future, and every frame adds rows to the store).
fn frame(c: usize, n: u64, newest_ms: i64) -> Vec<u8> {
    let site = mn(c % SITES);
    let round = i64::try_from(c / SITES).unwrap_or(0);
    let n = i64::try_from(n).unwrap_or(0);
    let time = BeijingTime::from_unix_millis(newest_ms - round * ROUND_DAYS * 86_400_000 - n * 1000);
    let segment = format!(
        "QN={};ST=31;CN=2011;PW={PASSWORD};MN={};Flag=5;CP=&&DataTime={};a21026-Rtd={}.25,a21026-Flag=N;\
         a21002-Rtd=48.1,a21002-Flag=N;a34013-Rtd=10.5,a34013-Flag=N;a19001-Rtd=9.8,a19001-Flag=N;\
         a01012-Rtd=135.2,a01012-Flag=N;a01011-Rtd=12.4,a01011-Flag=N&&",
        time.to_qn_string(),
        site,
        time.to_seconds_string(),
        n % 100
    );
    encode::frame(segment.as_bytes()).expect("fits")
}

/// The newest DataTime a run sends: a minute ago, on a whole second.
fn newest_data_time() -> i64 {
    let now = i64::try_from(std::time::SystemTime::UNIX_EPOCH.elapsed().map_or(0, |d| d.as_millis())).unwrap_or(0);
    (now - 60_000) / 1000 * 1000
}

/// Drives `run.connections` loggers against `addr` and measures acknowledgements.
///
/// # Panics
/// On connection or I/O errors: the measurement would be meaningless.
pub async fn drive(addr: SocketAddr, run: &Run) -> Outcome {
    let started = Instant::now();
    let stop = started + run.duration;
    // Each logger offers rate / connections frames per second.
    let pacing = run.rate.map(|rate| (rate, run.connections as u64));
    let newest = newest_data_time() - i64::try_from(run.first_second).unwrap_or(0) * 1000;
    let tasks: Vec<_> =
        (0..run.connections).map(|c| tokio::spawn(logger(addr, c, run.window, stop, pacing, newest))).collect();
    let mut outcome = Outcome::default();
    for task in tasks {
        let (acked, latencies) = task.await.expect("logger task");
        outcome.acked += acked;
        outcome.latencies.extend(latencies);
    }
    outcome.elapsed = started.elapsed();
    outcome.latencies.sort_unstable();
    outcome
}

/// One logger: keeps up to `window` frames in flight (optionally paced), counts 9014s.
async fn logger(
    addr: SocketAddr,
    c: usize,
    window: usize,
    stop: Instant,
    pacing: Option<(u64, u64)>,
    newest_ms: i64,
) -> (u64, Vec<u32>) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut codec = Hj212Codec::default();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut in_flight = std::collections::VecDeque::new();
    let mut latencies = Vec::new();
    let (mut sent, mut acked) = (0u64, 0u64);
    let start = Instant::now();
    let mut out = Vec::new();
    loop {
        let now = Instant::now();
        let elapsed_us = u64::try_from(now.duration_since(start).as_micros()).unwrap_or(u64::MAX);
        let due =
            pacing.map_or(u64::MAX, |(rate, loggers)| elapsed_us.saturating_mul(rate) / (loggers * 1_000_000) + 1);
        while now < stop && in_flight.len() < window && sent < due {
            out.extend_from_slice(&frame(c, sent, newest_ms));
            in_flight.push_back(Instant::now());
            sent += 1;
        }
        if !out.is_empty() {
            stream.write_all(&out).await.expect("write");
            out.clear();
        }
        if in_flight.is_empty() {
            if now >= stop {
                return (acked, latencies);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        let read = tokio::time::timeout(Duration::from_millis(5), stream.read_buf(&mut buf)).await;
        if let Ok(result) = read
            && result.expect("read") == 0
        {
            return (acked, latencies);
        }
        while let Ok(Some(FrameEvent::Frame(_))) = codec.decode(&mut buf) {
            if let Some(sent_at) = in_flight.pop_front() {
                latencies.push(u32::try_from(sent_at.elapsed().as_micros()).unwrap_or(u32::MAX));
                acked += 1;
            }
        }
    }
}

/// Opens `count` connections, each sending one frame (so the daemon knows its site) and
/// reading its 9014, then leaves them quiet. Returns the open streams.
///
/// # Panics
/// On write errors.
pub async fn hold_idle(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(count);
    for c in 0..count {
        let Ok(mut stream) = TcpStream::connect(addr).await else {
            eprintln!("stopped at {c} idle connections (open-file limit?)");
            break;
        };
        stream.write_all(&frame(1_000 + c, 0, newest_data_time())).await.expect("write");
        let mut buf = [0u8; 256];
        let _ = stream.read(&mut buf).await;
        streams.push(stream);
    }
    streams
}

/// Resident memory of process `pid`, from /proc (0 when it cannot be read).
/// CPU time the process `pid` has used, all its threads, in seconds (0 if unreadable): user and
/// system time from `/proc/{pid}/stat`, in the kernel's `USER_HZ` ticks (100 a second on Linux).
pub fn cpu_seconds_of(pid: u32) -> f64 {
    const USER_HZ: f64 = 100.0;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces: utime is the 14th field.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after_name.split_whitespace().skip(11).take(2).filter_map(|t| t.parse::<u64>().ok()).sum();
    #[expect(clippy::cast_precision_loss, reason = "ticks of one run fit in f64's mantissa")]
    let seconds = ticks as f64 / USER_HZ;
    seconds
}

pub fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}
