//! What the store's tests share.

use hj212_archive::{Kind, Record, Verdict};

/// An accepted frame of the data segment `text`, received at `time_ms` with the archive's
/// `marks`, as the archive hands it to a follower.
pub fn accepted(seq: u64, time_ms: i64, marks: u8, text: &str) -> Record {
    Record {
        seq,
        kind: Kind::Received,
        verdict: Verdict::Accepted,
        flags: marks,
        time_ms,
        peer: "127.0.0.1:40000".into(),
        data: hj212_proto::encode::frame(text.as_bytes()).unwrap(),
        hash: [0; 32],
    }
}
