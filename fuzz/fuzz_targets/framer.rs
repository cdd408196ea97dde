//! Any byte stream, cut into any chunks: the codec never panics, never holds more than
//! one maximum frame plus one chunk, and every frame it yields is well formed.
#![no_main]

use bytes::BytesMut;
use hj212_proto::codec::{FrameEvent, Hj212Codec};
use hj212_proto::framer::{FramerConfig, MAX_LENGTH_FIELD};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|input: &[u8]| {
    let Some((&chunk_seed, stream)) = input.split_first() else { return };
    let chunk = usize::from(chunk_seed) + 1;
    let crc_gate = chunk_seed & 1 == 1;
    let mut codec = Hj212Codec::new(FramerConfig { crc_gate, ..FramerConfig::default() });
    let mut buf = BytesMut::new();
    let mut seen = 0;
    let mut check = |event: FrameEvent| {
        match event {
            FrameEvent::Frame(frame) => {
                assert!(frame.bytes.starts_with(b"##"));
                assert_eq!(frame.bytes.len(), frame.layout.len);
                assert!(frame.bytes.ends_with(b"\n"));
                seen += frame.bytes.len();
            }
            FrameEvent::Rejected { bytes, .. } => {
                assert!(!bytes.is_empty());
                seen += bytes.len();
            }
        }
    };
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Some(event) = codec.decode(&mut buf).unwrap() {
            check(event);
        }
        assert!(buf.len() <= MAX_LENGTH_FIELD + 16 + chunk);
    }
    while let Some(event) = codec.decode_eof(&mut buf).unwrap() {
        check(event);
    }
    assert!(buf.is_empty());
    // Whitespace between frames is dropped silently; everything else is accounted for.
    assert!(seen <= stream.len());
});
