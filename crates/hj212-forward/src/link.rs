//! The connection to an upstream platform: blocking writes and reads with timeouts (the
//! forwarder runs on its own follower thread), framing what the upstream sends back.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::BytesMut;
use hj212_proto::codec::{FrameEvent, Hj212Codec};
use hj212_proto::{Packet, SegmentText};
use tokio_util::codec::Decoder;

/// What the upstream sent back, as far as forwarding cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Heard {
    /// A 9014 echoing this QN.
    Ack(String),
    /// Anything else (a command, a reply we did not ask for, garbage).
    Other,
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
        let mut heard = Vec::new();
        while let Ok(Some(event)) = self.codec.decode(&mut self.buf) {
            heard.push(match event {
                FrameEvent::Frame(frame) => {
                    let text = SegmentText::new(frame.data());
                    match Packet::parse_text(&text) {
                        Ok(packet) if packet.cn.code() == 9014 => {
                            packet.qn.map_or(Heard::Other, |qn| Heard::Ack(qn.to_owned()))
                        }
                        _ => Heard::Other,
                    }
                }
                FrameEvent::Rejected { .. } => Heard::Other,
            });
        }
        if self.buf.len() > MAX_BUFFER {
            self.buf.clear();
            heard.push(Heard::Other);
        }
        Ok(heard)
    }
}
