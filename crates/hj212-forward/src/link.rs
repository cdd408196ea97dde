//! The connection to an upstream platform: blocking writes and reads with timeouts (the
//! forwarder runs on its own follower thread), framing what the upstream sends back.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::BytesMut;
use hj212_proto::codec::{FrameEvent, Hj212Codec};
use hj212_proto::encode::{self, ReplyTo};
use hj212_proto::time::BeijingTime;
use hj212_proto::{Packet, SegmentText};
use tokio_util::codec::Decoder;

/// What the upstream sent back, as far as forwarding cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Heard {
    /// A 9014 echoing this QN, for this MN.
    Ack { qn: String, mn: String },
    /// A history request (2031, 2041, 2051, 2061) to answer from the archive.
    History(HistoryRequest),
    /// Another request (1012 time set, settings, queries): for the logger, if relayed at all.
    Command(UpstreamCommand),
    /// Anything else (a reply we did not ask for, garbage).
    Other,
}

/// A request from the upstream that only the logger could answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UpstreamCommand {
    pub mn: String,
    pub cn: u16,
    pub qn: String,
    /// Its CP (`Key=Value;...`), relayed when commands are.
    pub cp: String,
    /// The data segment as the upstream sent it (archived; answers are built from it).
    pub data: Vec<u8>,
    /// 9011 QnRtn=2 (refused), when it is not relayed.
    pub refused: Vec<u8>,
}

/// A history request from the upstream, with the answers that frame it (HJ 212-2017 §6.1:
/// 9011, the records, 9012).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HistoryRequest {
    pub mn: String,
    pub cn: u16,
    /// BeginTime and EndTime, inclusive period starts.
    pub from_ms: i64,
    pub to_ms: i64,
    /// 9011 QnRtn=1.
    pub accepted: Vec<u8>,
    /// 9012 ExeRtn=1, and ExeRtn=100 (no data).
    pub done: Vec<u8>,
    pub no_data: Vec<u8>,
}

/// What a frame from the upstream (its data segment `data`) asks.
fn heard(packet: &Packet<'_>, data: &[u8]) -> Heard {
    let cn = packet.cn.code();
    if cn == 9014 {
        return packet.qn.map_or(Heard::Other, |qn| Heard::Ack { qn: qn.to_owned(), mn: packet.mn.to_owned() });
    }
    // Answers and notifications are not requests; neither is anything without the A bit.
    if (9000..10000).contains(&cn) || !packet.wants_ack() {
        return Heard::Other;
    }
    let to = ReplyTo::from(packet);
    let time = |key| packet.get(key).and_then(|t| BeijingTime::parse(t).ok()).map(|t| t.unix_millis());
    let history = matches!(cn, 2031 | 2041 | 2051 | 2061).then(|| time("BeginTime").zip(time("EndTime"))).flatten();
    let Some((from_ms, to_ms)) = history else {
        let (Ok(refused), Some(qn)) = (encode::request_response(&to, 2), packet.qn) else { return Heard::Other };
        let command = UpstreamCommand {
            mn: packet.mn.to_owned(),
            cn,
            qn: qn.to_owned(),
            cp: packet.cp.to_owned(),
            data: data.to_vec(),
            refused,
        };
        return Heard::Command(command);
    };
    let answers =
        (encode::request_response(&to, 1), encode::execution_result(&to, 1), encode::execution_result(&to, 100));
    match answers {
        (Ok(accepted), Ok(done), Ok(no_data)) => {
            Heard::History(HistoryRequest { mn: packet.mn.to_owned(), cn, from_ms, to_ms, accepted, done, no_data })
        }
        _ => Heard::Other,
    }
}

#[derive(Debug)]
pub(crate) struct Link {
    stream: TcpStream,
    codec: Hj212Codec,
    buf: BytesMut,
}

/// Upstream bytes kept unframed at most: a peer that sends garbage cannot grow it.
const MAX_BUFFER: usize = 64 * 1024;

impl Link {
    pub(crate) fn connect(address: &str, timeout: Duration) -> io::Result<Self> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{address} resolves to no address"));
        for addr in address.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    stream.set_write_timeout(Some(timeout))?;
                    return Ok(Self { stream, codec: Hj212Codec::default(), buf: BytesMut::new() });
                }
                Err(error) => last = error,
            }
        }
        Err(last)
    }

    pub(crate) fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// What the upstream sent within `wait` (`None`: return what is there at once).
    pub(crate) fn hear(&mut self, wait: Option<Duration>) -> io::Result<Vec<Heard>> {
        match wait {
            Some(wait) => {
                self.stream.set_nonblocking(false)?;
                self.stream.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
            }
            None => self.stream.set_nonblocking(true)?,
        }
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the upstream closed the connection")),
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
        let mut frames = Vec::new();
        while let Ok(Some(event)) = self.codec.decode(&mut self.buf) {
            frames.push(match event {
                FrameEvent::Frame(frame) => {
                    let text = SegmentText::new(frame.data());
                    Packet::parse_text(&text).map_or(Heard::Other, |packet| heard(&packet, frame.data()))
                }
                FrameEvent::Rejected { .. } => Heard::Other,
            });
        }
        if self.buf.len() > MAX_BUFFER {
            self.buf.clear();
            frames.push(Heard::Other);
        }
        Ok(frames)
    }
}
