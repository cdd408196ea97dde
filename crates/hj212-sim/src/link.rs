//! One station's TCP connection to the daemon: connect with backoff (within the connection
//! limit), write, read the host's frames, and close cleanly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use hj212_proto::codec::{Frame, FrameEvent, Hj212Codec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::codec::Decoder;

/// Connection attempts before a station gives up (backoff 0.1 s doubling to 5 s: about 30 s).
const CONNECT_ATTEMPTS: u32 = 10;
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a clean close waits for the daemon to finish and close its side.
const CLOSE_WAIT: Duration = Duration::from_secs(10);
/// One connection attempt may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An open connection.
#[derive(Debug)]
pub(crate) struct Link {
    stream: TcpStream,
    buf: BytesMut,
    codec: Hj212Codec,
    /// A slot of `--connections-limit`, held while connected.
    _permit: Option<OwnedSemaphorePermit>,
}

/// The outcome of connecting: the link (if any) and the attempts that failed.
pub(crate) struct Connected {
    pub link: Option<Link>,
    pub failures: u64,
}

impl Link {
    /// Connects, retrying with exponential backoff; `None` in `link` after the last attempt failed.
    pub(crate) async fn connect(target: SocketAddr, limiter: Option<&Arc<Semaphore>>) -> Connected {
        let permit = match limiter {
            // The semaphore is never closed.
            Some(limiter) => limiter.clone().acquire_owned().await.ok(),
            None => None,
        };
        let mut backoff = Duration::from_millis(100);
        let mut failures = 0;
        for _ in 0..CONNECT_ATTEMPTS {
            // Bounded: a target behind a firewall that drops SYNs would otherwise stall ~2 min per try.
            if let Ok(Ok(stream)) = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
                let _ = stream.set_nodelay(true);
                let link = Self { stream, buf: BytesMut::new(), codec: Hj212Codec::default(), _permit: permit };
                return Connected { link: Some(link), failures };
            }
            failures += 1;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        Connected { link: None, failures }
    }

    pub(crate) async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// The next well-framed frame from the host; `None` at end of stream. Cancel-safe: bytes
    /// read stay in the buffer, and a decoded frame is returned without another await.
    pub(crate) async fn read_frame(&mut self) -> std::io::Result<Option<Frame>> {
        loop {
            while let Some(event) = self.codec.decode(&mut self.buf)? {
                if let FrameEvent::Frame(frame) = event {
                    return Ok(Some(frame));
                }
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Half-closes, then reads until the daemon has handled everything and closed its side,
    /// returning the frames that came meanwhile (answers to the last frames sent).
    pub(crate) async fn close(mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        if self.stream.shutdown().await.is_err() {
            return frames;
        }
        let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
        while let Ok(Ok(Some(frame))) = tokio::time::timeout_at(deadline, self.read_frame()).await {
            frames.push(frame);
        }
        frames
    }
}
