//! Helpers for the daemon's integration tests: a daemon on 127.0.0.1:0 with its data in a
//! temp dir, a raw-bytes client, and frame builders.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::time::Duration;

use hj212_config::{Config, CrcSetting, Site};
use hj212_proto::codec::{FrameEvent, Hj212Codec};
use hj212_proto::{Packet, SegmentText, encode};
use hj212d::{Daemon, Running};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

pub const MN: &str = "010000A8900016F000169DC0";
pub const PW: &str = "123456";

pub fn site(mn: &str, password: &str, crc: CrcSetting) -> Site {
    Site { name: format!("site {mn}"), crc, ..Site::new(mn, password) }
}

pub fn config(data_dir: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.http_listen = "127.0.0.1:0".parse().unwrap();
    config.server.data_dir = data_dir.to_path_buf();
    config.sites = vec![site(MN, PW, CrcSetting::Hj212)];
    config
}

pub struct TestDaemon {
    pub running: Running,
    pub dir: tempfile::TempDir,
}

impl TestDaemon {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        adjust(&mut config);
        let running = Daemon::start(config).await.expect("daemon starts");
        Self { running, dir }
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.running.hj212_addr).await
    }

    pub fn http(&self, path: &str) -> (u16, String) {
        http_get(self.running.http_addr, path)
    }

    /// Stops the daemon (draining the store) and returns its data dir.
    pub async fn stop(self) -> tempfile::TempDir {
        self.running.stop().await.unwrap();
        self.dir
    }
}

/// A blocking HTTP/1.0 GET, enough for the admin API.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

pub struct Client {
    pub stream: TcpStream,
    codec: Hj212Codec,
    buf: bytes::BytesMut,
}

/// A reply frame as received.
#[derive(Debug, Clone)]
pub struct Reply {
    pub qn: Option<String>,
    pub cn: u16,
    pub st: Option<String>,
    pub flag: Option<u8>,
    pub cp: String,
    pub raw: Vec<u8>,
}

impl Client {
    pub async fn connect(addr: std::net::SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.unwrap(),
            codec: Hj212Codec::default(),
            buf: bytes::BytesMut::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// As [`Client::send`], false when the connection is gone (a daemon that was killed).
    pub async fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok()
    }

    /// The next reply, or `None` if nothing arrives within `wait`.
    pub async fn reply_within(&mut self, wait: Duration) -> Option<Reply> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(FrameEvent::Frame(frame)) = self.codec.decode(&mut self.buf).unwrap() {
                let text = SegmentText::new(frame.data());
                let p = Packet::parse_text(&text).expect("daemon replies parse");
                return Some(Reply {
                    qn: p.qn.map(str::to_owned),
                    cn: p.cn.code(),
                    st: p.st.map(str::to_owned),
                    flag: p.flag.map(|f| f.0),
                    cp: p.cp.to_owned(),
                    raw: frame.bytes.to_vec(),
                });
            }
            let read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await;
            match read {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
    }

    pub async fn reply(&mut self) -> Reply {
        self.reply_within(Duration::from_secs(5)).await.expect("a reply within 5 s")
    }

    /// True when the daemon has closed the connection (EOF within `wait`).
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let mut byte = [0u8; 1];
        matches!(tokio::time::timeout(wait, self.stream.read(&mut byte)).await, Ok(Ok(0) | Err(_)))
    }
}

/// A framed data segment (correct length and HJ 212 CRC).
pub fn frame(segment: &str) -> Vec<u8> {
    encode::frame(segment.as_bytes()).unwrap()
}

/// A CN=2011 real-time frame for `MN` with the given QN and DataTime.
pub fn realtime(qn: &str, data_time: &str, flag: u8) -> Vec<u8> {
    frame(&format!(
        "QN={qn};ST=31;CN=2011;PW={PW};MN={MN};Flag={flag};CP=&&DataTime={data_time};a21026-Rtd=35.2,a21026-Flag=N;a21002-Rtd=48.1,a21002-Flag=N&&"
    ))
}

/// Beijing time `secs_from_now` seconds from now, as 14 digits.
pub fn beijing_in(secs_from_now: i64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let ms = i64::try_from(now).unwrap() + secs_from_now * 1000;
    hj212_proto::time::BeijingTime::from_unix_millis(ms).to_seconds_string()
}

/// The archive's records as (verdict, marks, frame text), via the auditor's export path.
pub fn archived(data_dir: &std::path::Path) -> Vec<(String, u8, String)> {
    let dir = data_dir.join("archive");
    let mut follower = hj212_archive::Follower::new(&dir, 1);
    let mut out = Vec::new();
    loop {
        let records = follower.read(u64::MAX, 1000).unwrap();
        if records.is_empty() {
            return out;
        }
        out.extend(
            records
                .into_iter()
                .filter(|r| r.kind == hj212_archive::Kind::Received)
                .map(|r| (r.verdict.as_str().to_owned(), r.flags, String::from_utf8_lossy(&r.data).into_owned())),
        );
    }
}

/// Reading rows of a site in the embedded store (after the daemon stopped).
pub fn stored(data_dir: &std::path::Path, mn: &str) -> Vec<hj212_store::Reading> {
    hj212_store::Store::open(&data_dir.join("store.sqlite")).unwrap().readings(mn).unwrap()
}

/// The value of one counter series (`name{labels}` exactly as exposed), 0 when absent.
pub fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0, |v| v.parse().unwrap())
}

impl TestDaemon {
    /// A metric's current value. The recorder is process-wide, so tests compare values
    /// before and after what they do (nextest also gives each test its own process).
    pub fn metric(&self, series: &str) -> u64 {
        metric(&self.http("/metrics").1, series)
    }

    /// Waits up to 2 s for `series` to reach `at_least`, returning its value.
    pub async fn wait_metric(&self, series: &str, at_least: u64) -> u64 {
        for _ in 0..40 {
            let value = self.metric(series);
            if value >= at_least {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.metric(series)
    }
}

impl Client {
    /// A client connecting from `from` (any 127.x.y.z works on Linux loopback), so tests can
    /// play several peers.
    pub async fn connect_from(from: std::net::IpAddr, addr: std::net::SocketAddr) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(std::net::SocketAddr::new(from, 0)).unwrap();
        Self { stream: socket.connect(addr).await.unwrap(), codec: Hj212Codec::default(), buf: bytes::BytesMut::new() }
    }
}

/// Every archive record, in order.
pub fn records(data_dir: &std::path::Path) -> Vec<hj212_archive::Record> {
    let mut follower = hj212_archive::Follower::new(&data_dir.join("archive"), 1);
    let mut out = Vec::new();
    loop {
        let records = follower.read(u64::MAX, 1000).unwrap();
        if records.is_empty() {
            return out;
        }
        out.extend(records);
    }
}

/// The exit code of a daemon process, waiting up to 20 s for it to exit.
pub fn wait_exit(child: &mut std::process::Child) -> Option<i32> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        assert!(std::time::Instant::now() < deadline, "daemon did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.0 request with an optional bearer token and JSON body: (status, body).
pub fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let body = body.unwrap_or_default();
    let content = if body.is_empty() {
        String::new()
    } else {
        format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len())
    };
    write!(stream, "{method} {path} HTTP/1.0\r\nHost: localhost\r\n{auth}{content}\r\n{body}").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}
