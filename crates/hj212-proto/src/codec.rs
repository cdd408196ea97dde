//! A thin `tokio_util::codec` adapter over [`crate::framer`].
//!
//! Decoding never fails on bad input: rejected bytes come out as [`FrameEvent::Rejected`]
//! (with the bytes, so they can be archived) and the stream goes on. The only errors are
//! I/O errors. The read buffer never holds more than one maximum frame plus one read.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::framer::{self, FrameError, FrameLayout, FramerConfig, Scan};

/// A well-framed frame: `bytes` runs from `##` to the end of the tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub bytes: Bytes,
    pub layout: FrameLayout,
}

impl Frame {
    /// The data segment (what the CRC covers).
    pub fn data(&self) -> &[u8] {
        self.layout.data(&self.bytes)
    }
}

/// What the decoder found next in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameEvent {
    Frame(Frame),
    Rejected { error: FrameError, bytes: Bytes },
}

/// HJ 212 framing for `tokio_util::codec::Framed`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hj212Codec {
    config: FramerConfig,
}

impl Hj212Codec {
    pub fn new(config: FramerConfig) -> Self {
        Self { config }
    }

    fn next(&self, buf: &mut BytesMut, eof: bool) -> Option<FrameEvent> {
        loop {
            match framer::scan(buf, &self.config, eof) {
                Scan::Incomplete => return None,
                Scan::Skip(n) => buf.advance(n),
                Scan::Frame(layout) => {
                    let bytes = buf.split_to(layout.len).freeze();
                    return Some(FrameEvent::Frame(Frame { bytes, layout }));
                }
                Scan::Rejected { error, consumed } => {
                    let bytes = buf.split_to(consumed).freeze();
                    return Some(FrameEvent::Rejected { error, bytes });
                }
            }
        }
    }
}

impl Decoder for Hj212Codec {
    type Item = FrameEvent;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<FrameEvent>, Self::Error> {
        Ok(self.next(buf, false))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<FrameEvent>, Self::Error> {
        Ok(self.next(buf, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use tokio_util::codec::FramedRead;

    const FRAME: &[u8] = b"##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n";

    #[tokio::test]
    async fn stream_with_garbage_and_truncated_tail() {
        let mut input = b"\r\nnoise".to_vec();
        input.extend_from_slice(FRAME);
        input.extend_from_slice(FRAME);
        input.extend_from_slice(&FRAME[..40]);
        let mut reader = FramedRead::new(&input[..], Hj212Codec::default());
        let mut kinds = Vec::new();
        while let Some(event) = reader.next().await {
            kinds.push(match event.unwrap() {
                FrameEvent::Frame(f) => {
                    assert_eq!(f.data().len(), 101);
                    "frame"
                }
                FrameEvent::Rejected { error, .. } => error.kind(),
            });
        }
        assert_eq!(kinds, ["garbage", "frame", "frame", "truncated"]);
    }
}
