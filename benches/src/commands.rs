//! The parts of the command round-trip benchmark: a kept-alive HTTP/1.1 client for the admin
//! API, and a simulated logger that answers every host command at once (9011, the upload, 9012).

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hj212_proto::codec::{FrameEvent, Hj212Codec};
use hj212_proto::encode;
use hj212_proto::time::BeijingTime;
use hj212_proto::{Packet, SegmentText};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_util::codec::Decoder;

use crate::load::{PASSWORD, mn};

/// One kept-alive HTTP/1.1 connection to the admin API, sending the bearer token.
#[derive(Debug)]
pub struct Admin {
    stream: TcpStream,
    buf: Vec<u8>,
    token: Arc<str>,
}

fn invalid(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

impl Admin {
    /// Opens a connection to the admin listener.
    ///
    /// # Errors
    /// When the connection cannot be made.
    pub async fn connect(addr: SocketAddr, token: Arc<str>) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self { stream, buf: Vec::with_capacity(4096), token })
    }

    /// Sends one request and reads its answer: the status and the body.
    ///
    /// # Errors
    /// On I/O errors, or an answer without a status or a Content-Length.
    pub async fn request(&mut self, method: &str, path: &str, body: Option<&str>) -> io::Result<(u16, Vec<u8>)> {
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n", self.token);
        if let Some(body) = body {
            let _ = write!(request, "Content-Type: application/json\r\nContent-Length: {}\r\n", body.len());
        }
        request.push_str("\r\n");
        request.push_str(body.unwrap_or_default());
        self.stream.write_all(request.as_bytes()).await?;
        self.response().await
    }

    async fn response(&mut self) -> io::Result<(u16, Vec<u8>)> {
        let header_end = loop {
            if let Some(at) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..header_end]).map_err(|e| invalid(e.to_string()))?;
        let status = head.get(9..12).and_then(|s| s.parse().ok()).ok_or_else(|| invalid("no HTTP status"))?;
        let length = head
            .lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.trim().parse::<usize>().ok())
            .ok_or_else(|| invalid("an answer without Content-Length"))?;
        while self.buf.len() < header_end + length {
            self.fill().await?;
        }
        let body = self.buf[header_end..header_end + length].to_vec();
        self.buf.drain(..header_end + length);
        Ok((status, body))
    }

    async fn fill(&mut self) -> io::Result<()> {
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}

/// When a logger read a command and when it had written its last answer (the 9012).
#[derive(Debug, Clone, Copy)]
pub struct Answered {
    pub received: Instant,
    pub answered: Instant,
}

/// Per site, where its logger reports the next command it answers (one in flight per site).
pub type Watch = Arc<Vec<Mutex<Option<oneshot::Sender<Answered>>>>>;

/// A new watch for `sites` sites.
pub fn watch(sites: usize) -> Watch {
    Arc::new((0..sites).map(|_| Mutex::new(None)).collect())
}

/// Registers the receiver of site `site`'s next answer.
pub fn expect_answer(watch: &Watch, site: usize) -> oneshot::Receiver<Answered> {
    let (tx, rx) = oneshot::channel();
    *watch[site].lock().unwrap_or_else(PoisonError::into_inner) = Some(tx);
    rx
}

/// A simulated data logger for one site.
#[derive(Debug)]
pub struct Logger {
    site: usize,
    mn: String,
    stream: TcpStream,
    codec: Hj212Codec,
    buf: BytesMut,
}

impl Logger {
    /// Connects as site `site`, sends one real-time frame and waits for its 9014: from then on
    /// the daemon carries the site's commands on this connection.
    ///
    /// # Errors
    /// On I/O errors, or when no 9014 comes within 10 s.
    pub async fn connect(addr: SocketAddr, site: usize) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut logger = Self { site, mn: mn(site), stream, codec: Hj212Codec::default(), buf: BytesMut::new() };
        let now = BeijingTime::from_unix_millis(hj212_archive::now_ms());
        let realtime = format!(
            "QN={};ST=31;CN=2011;PW={PASSWORD};MN={};Flag=5;CP=&&DataTime={};a21026-Rtd=35.2,a21026-Flag=N;\
             a21002-Rtd=48.1,a21002-Flag=N&&",
            now.to_qn_string(),
            logger.mn,
            now.to_seconds_string()
        );
        logger.stream.write_all(&encode::frame(realtime.as_bytes()).map_err(|e| invalid(e.to_string()))?).await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let frames = tokio::time::timeout_at(deadline.into(), logger.frames())
                .await
                .map_err(|_| invalid("no 9014 within 10 s"))??;
            if frames.iter().any(|(_, _, cn)| *cn == 9014) {
                return Ok(logger);
            }
        }
    }

    /// Answers every command until the connection closes: 9011 (QnRtn=1), for a 1011 the
    /// upload of the logger's time, and 9012 (ExeRtn=1), all in one write. Then reports the
    /// instants to whoever waits on `watch` for this site.
    pub async fn serve(mut self, watch: Watch) {
        while let Ok(frames) = self.frames().await {
            for (qn, st, cn) in frames {
                if !(1000..9000).contains(&cn) {
                    continue;
                }
                let received = Instant::now();
                if self.stream.write_all(&self.answers(&qn, &st, cn)).await.is_err() {
                    return;
                }
                let answered = Instant::now();
                let waiting = watch[self.site].lock().unwrap_or_else(PoisonError::into_inner).take();
                if let Some(tx) = waiting {
                    let _ = tx.send(Answered { received, answered });
                }
            }
        }
    }

    fn answers(&self, qn: &str, st: &str, cn: u16) -> Vec<u8> {
        let mn = &self.mn;
        let mut out = Vec::new();
        let mut push = |segment: String| out.extend_from_slice(&encode::frame(segment.as_bytes()).expect("fits"));
        push(format!("QN={qn};ST=91;CN=9011;PW={PASSWORD};MN={mn};Flag=4;CP=&&QnRtn=1&&"));
        if cn == 1011 {
            let now = BeijingTime::from_unix_millis(hj212_archive::now_ms()).to_seconds_string();
            push(format!("QN={qn};ST={st};CN=1011;PW={PASSWORD};MN={mn};Flag=4;CP=&&SystemTime={now}&&"));
        }
        push(format!("QN={qn};ST=91;CN=9012;PW={PASSWORD};MN={mn};Flag=4;CP=&&ExeRtn=1&&"));
        out
    }

    /// Reads until at least one frame is complete; returns each frame's QN, ST and CN.
    async fn frames(&mut self) -> io::Result<Vec<(String, String, u16)>> {
        loop {
            let mut frames = Vec::new();
            while let Some(event) = self.codec.decode(&mut self.buf).map_err(|e| invalid(e.to_string()))? {
                let FrameEvent::Frame(frame) = event else { continue };
                let text = SegmentText::new(frame.data());
                let Ok(packet) = Packet::parse_text(&text) else { continue };
                let field = |value: Option<&str>| value.unwrap_or_default().to_owned();
                frames.push((field(packet.qn), field(packet.st), packet.cn.code()));
            }
            if !frames.is_empty() {
                return Ok(frames);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}
