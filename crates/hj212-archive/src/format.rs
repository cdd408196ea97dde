//! On-disk layout. A segment file is a header followed by records:
//!
//! ```text
//! header: "HJ212ARC" | version u8 | first_seq u64 | prev_hash [32] | created_ms i64     (57 bytes)
//! record: body_len u32 | body | hash [32]
//! body:   seq u64 | kind u8 | verdict u8 | flags u8 | time_ms i64 | peer_len u8 | peer | data_len u32 | data
//! hash  = SHA-256(prev | body_len | body)
//! ```
//!
//! Integers are little-endian. `prev` is the previous record's hash, except for a segment's
//! first record: in version 2 it chains from SHA-256("hj212d segment header" | header), so a
//! changed header (its `created_ms`, which retention trusts) breaks the chain; version 1
//! (the first release) chained it from `prev_hash` alone and is still read. `prev_hash` of the
//! very first segment is all zeros; each header repeats the hash the chain continues from,
//! so a deleted or edited record, or a removed segment, breaks the chain at a point `verify`
//! can name.

use sha2::{Digest, Sha256};

pub const MAGIC: &[u8; 8] = b"HJ212ARC";
/// The version new segments are written in.
pub const VERSION: u8 = 2;
/// Segments of the first release: the header is not covered by the chain.
pub const VERSION_1: u8 = 1;
pub const HEADER_LEN: usize = 8 + 1 + 8 + 32 + 8;
pub const HASH_LEN: usize = 32;
/// Fixed part of a body: seq, kind, verdict, flags, time, peer length, data length.
const BODY_FIXED: usize = 8 + 1 + 1 + 1 + 8 + 1 + 4;
/// No record body is larger (a frame is at most ~10 KB; events and marks are short).
pub const MAX_BODY: usize = 1 << 20;
/// The longest peer name kept in a record.
const MAX_PEER: usize = 255;
/// The most data one record can carry: every reader accepts a record this large, and the
/// writer refuses anything larger ([`crate::ArchiveError::TooLarge`]), so a record that is
/// written can always be read back.
pub const MAX_DATA: usize = MAX_BODY - BODY_FIXED - MAX_PEER;

pub type Hash = [u8; HASH_LEN];

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Bytes received from a peer (a frame or a rejected chunk).
    Received,
    /// Bytes the daemon sent (replies and host commands such as 1012).
    Sent,
    /// A daemon event (start, stop, recovery, retention), as text.
    Event,
}

/// The daemon's judgement of a received frame (or the nature of a sent one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Verdict {
    Accepted,
    Duplicate,
    UnknownMn,
    BadPassword,
    BadCrc,
    ParseError,
    BadTimestamp,
    /// Bytes that could not be framed (garbage, bad length, missing tail, truncated).
    Unframed,
    /// HJ 212-2025: the CRC fails after decrypting the CP with every key of the site.
    DecryptOrCrc,
    /// HJ 212-2025: a data command in plaintext from a site that requires encryption.
    NotEncrypted,
    /// Refused or resent traffic of one peer over one interval beyond its budget, counted
    /// instead of kept (JSON: counts per verdict, bytes, the first bytes of the first chunk).
    RefusedSummary,
    /// Bytes the daemon sent that a logger must act on (1012 set-time, 1014 new key). Replies
    /// (9013, 9014) are not archived: they follow from the frame they answer.
    Command,
    Info,
    /// A downtime mark or its correction (JSON), appended by an operator; never edited.
    Mark,
    /// A signed checkpoint of the chain's head (see `checkpoint`).
    Checkpoint,
    /// A service visit to a site or its correction (JSON), appended by an operator; never edited.
    Visit,
    /// The rules in force from here on (JSON: each site's assessed factors, rate rules, limits,
    /// alert thresholds, service area; no passwords or keys), appended at start and at a
    /// reload when they changed.
    Config,
}

macro_rules! codes {
    ($ty:ident { $($variant:ident = $code:literal => $name:literal,)* }) => {
        impl $ty {
            pub fn code(self) -> u8 {
                match self { $(Self::$variant => $code,)* }
            }

            pub fn from_code(code: u8) -> Option<Self> {
                match code { $($code => Some(Self::$variant),)* _ => None }
            }

            /// A stable snake_case name, used in exports and as a metric label.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name,)* }
            }

            /// The value of an [`Self::as_str`] name.
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $($name => Some(Self::$variant),)* _ => None }
            }
        }
    };
}

codes!(Kind { Received = 1 => "received", Sent = 2 => "sent", Event = 3 => "event", });
codes!(Verdict {
    Accepted = 1 => "accepted",
    Duplicate = 2 => "duplicate",
    UnknownMn = 3 => "unknown_mn",
    BadPassword = 4 => "bad_password",
    BadCrc = 5 => "bad_crc",
    ParseError = 6 => "parse_error",
    BadTimestamp = 7 => "bad_timestamp",
    Unframed = 8 => "unframed",
    DecryptOrCrc = 9 => "decrypt_or_crc",
    NotEncrypted = 10 => "not_encrypted",
    RefusedSummary = 11 => "refused_summary",
    // 20 was `reply`, never written: a code is never reused.
    Command = 21 => "command",
    Info = 30 => "info",
    Mark = 31 => "mark",
    Checkpoint = 32 => "checkpoint",
    Visit = 33 => "visit",
    Config = 34 => "config",
});

/// Marks on an accepted data frame.
pub mod flags {
    /// DataTime further in the future than the configured skew.
    pub const FUTURE_TIME: u8 = 1;
    /// Backfill (补传): older than its period plus grace, or RF=1.
    pub const BACKFILL: u8 = 2;
    /// HJ 212-2025: the CP arrived SM4-encrypted; the record holds the decrypted frame (the
    /// wire bytes are this frame with its CP encrypted under the site's key of that time).
    pub const DECRYPTED: u8 = 4;
    /// HJ 212-2025: the logger marked the frame as a re-send (RF=1).
    pub const RESENT: u8 = 8;
}

/// A record as handed to the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    pub kind: Kind,
    pub verdict: Verdict,
    pub flags: u8,
    /// Receive (or send) time, Unix milliseconds.
    pub time_ms: i64,
    /// Peer address, or a short source name for events (at most 255 bytes are kept).
    pub peer: String,
    pub data: Vec<u8>,
}

/// A record as stored, with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub kind: Kind,
    pub verdict: Verdict,
    pub flags: u8,
    pub time_ms: i64,
    pub peer: String,
    pub data: Vec<u8>,
    pub hash: Hash,
}

/// A segment file's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub version: u8,
    pub first_seq: u64,
    pub prev_hash: Hash,
    pub created_ms: i64,
}

impl SegmentHeader {
    /// A header for a new segment, in the current version.
    pub fn new(first_seq: u64, prev_hash: Hash, created_ms: i64) -> Self {
        Self { version: VERSION, first_seq, prev_hash, created_ms }
    }

    /// What the segment's first record chains from: the header itself (version 2), so that
    /// no header field can change unnoticed once a record follows it.
    pub fn chain_seed(&self) -> Hash {
        if self.version == VERSION_1 {
            return self.prev_hash;
        }
        let mut hasher = Sha256::new();
        hasher.update(b"hj212d segment header");
        hasher.update(self.encode());
        hasher.finalize().into()
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..8].copy_from_slice(MAGIC);
        out[8] = self.version;
        out[9..17].copy_from_slice(&self.first_seq.to_le_bytes());
        out[17..49].copy_from_slice(&self.prev_hash);
        out[49..57].copy_from_slice(&self.created_ms.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC || ![VERSION_1, VERSION].contains(&bytes[8]) {
            return None;
        }
        Some(Self {
            version: bytes[8],
            first_seq: u64::from_le_bytes(bytes[9..17].try_into().ok()?),
            prev_hash: bytes[17..49].try_into().ok()?,
            created_ms: i64::from_le_bytes(bytes[49..57].try_into().ok()?),
        })
    }
}

/// Appends the encoded record to `out` and returns its hash.
pub fn encode_record(out: &mut Vec<u8>, seq: u64, record: &NewRecord, prev: &Hash) -> Hash {
    let peer = truncate_utf8(&record.peer, MAX_PEER);
    let body_len = BODY_FIXED + peer.len() + record.data.len();
    let start = out.len();
    out.extend_from_slice(&u32::try_from(body_len).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&[record.kind.code(), record.verdict.code(), record.flags]);
    out.extend_from_slice(&record.time_ms.to_le_bytes());
    out.push(u8::try_from(peer.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(peer.as_bytes());
    out.extend_from_slice(&u32::try_from(record.data.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&record.data);
    let hash = chain_hash(prev, &out[start..]);
    out.extend_from_slice(&hash);
    hash
}

/// SHA-256 of the previous hash and this record's length and body.
pub fn chain_hash(prev: &Hash, len_and_body: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(len_and_body);
    hasher.finalize().into()
}

fn truncate_utf8(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Why bytes at some offset are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error("record is cut short: {needed} bytes needed, {available} present")]
    Truncated { needed: usize, available: usize },
    #[error("record length {len} is impossible")]
    BadLength { len: usize },
    #[error("record body is malformed ({what})")]
    Malformed { what: &'static str },
    #[error("hash does not match: the record or one before it was altered")]
    HashMismatch,
    /// A block of a compressed segment that does not decompress or verify.
    #[error("{0}")]
    Packed(String),
}

/// Decodes the record at the front of `bytes`, checking it chains from `prev`.
/// Returns the record and its encoded length.
///
/// # Errors
/// [`RecordError`] saying what is wrong.
pub fn decode_record(bytes: &[u8], prev: &Hash) -> Result<(Record, usize), RecordError> {
    let body_len = body_len(bytes)?;
    let total = 4 + body_len + HASH_LEN;
    let all = bytes.get(..total).ok_or(RecordError::Truncated { needed: total, available: bytes.len() })?;
    let (len_and_body, stored_hash) = all.split_at(4 + body_len);
    let hash = chain_hash(prev, len_and_body);
    if hash.as_slice() != stored_hash {
        return Err(RecordError::HashMismatch);
    }
    let record = decode_body(&len_and_body[4..], hash)?;
    Ok((record, total))
}

/// Decodes a record stored without its hash (in a compressed block), its hash computed from
/// `prev`. Returns the record and its length there (the plain form is `HASH_LEN` longer).
///
/// # Errors
/// [`RecordError`] saying what is wrong.
pub fn decode_unhashed(bytes: &[u8], prev: &Hash) -> Result<(Record, usize), RecordError> {
    let total = 4 + body_len(bytes)?;
    let len_and_body = bytes.get(..total).ok_or(RecordError::Truncated { needed: total, available: bytes.len() })?;
    let record = decode_body(&len_and_body[4..], chain_hash(prev, len_and_body))?;
    Ok((record, total))
}

/// The body length at the front of `bytes`, checked against the possible range.
pub(crate) fn body_len(bytes: &[u8]) -> Result<usize, RecordError> {
    let len_bytes: [u8; 4] = bytes
        .get(..4)
        .ok_or(RecordError::Truncated { needed: 4, available: bytes.len() })?
        .try_into()
        .expect("4 bytes");
    let body_len = usize::try_from(u32::from_le_bytes(len_bytes)).unwrap_or(usize::MAX);
    if !(BODY_FIXED..=MAX_BODY).contains(&body_len) {
        return Err(RecordError::BadLength { len: body_len });
    }
    Ok(body_len)
}

/// A complete record that verifies against the hash stored just before it, at some offset
/// after `from`, with a sequence number of at least `min_seq`. A crash only ever leaves an
/// incomplete write at the very end of a segment, so such a record means the bytes at `from`
/// were damaged, not torn (a flipped bit in a length would otherwise hide every record after it).
pub fn find_record_after(bytes: &[u8], from: usize, min_seq: u64) -> Option<(usize, u64)> {
    let smallest = 4 + BODY_FIXED + HASH_LEN;
    let start = from.max(HASH_LEN) + 1;
    let last = bytes.len().checked_sub(smallest)?;
    (start..=last).find_map(|at| {
        let len = usize::try_from(u32::from_le_bytes(bytes[at..at + 4].try_into().ok()?)).ok()?;
        if !(BODY_FIXED..=MAX_BODY).contains(&len) {
            return None;
        }
        let end = at + 4 + len + HASH_LEN;
        let seq = u64::from_le_bytes(bytes[at + 4..at + 12].try_into().ok()?);
        if end > bytes.len() || seq < min_seq {
            return None;
        }
        let prev: Hash = bytes[at - HASH_LEN..at].try_into().ok()?;
        (chain_hash(&prev, &bytes[at..at + 4 + len]).as_slice() == &bytes[end - HASH_LEN..end]).then_some((at, seq))
    })
}

fn decode_body(body: &[u8], hash: Hash) -> Result<Record, RecordError> {
    let malformed = |what| RecordError::Malformed { what };
    let seq = u64::from_le_bytes(body[..8].try_into().expect("fixed part present"));
    let kind = Kind::from_code(body[8]).ok_or(malformed("kind"))?;
    let verdict = Verdict::from_code(body[9]).ok_or(malformed("verdict"))?;
    let flags = body[10];
    let time_ms = i64::from_le_bytes(body[11..19].try_into().expect("fixed part present"));
    let peer_len = usize::from(body[19]);
    let peer = body.get(20..20 + peer_len).ok_or(malformed("peer length"))?;
    let peer = String::from_utf8(peer.to_vec()).map_err(|_| malformed("peer text"))?;
    let rest = &body[20 + peer_len..];
    let data_len_bytes: [u8; 4] = rest.get(..4).ok_or(malformed("data length"))?.try_into().expect("4 bytes");
    let data_len = usize::try_from(u32::from_le_bytes(data_len_bytes)).unwrap_or(usize::MAX);
    if rest.len() != 4 + data_len {
        return Err(malformed("data length"));
    }
    Ok(Record { seq, kind, verdict, flags, time_ms, peer, data: rest[4..].to_vec(), hash })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NewRecord {
        NewRecord {
            kind: Kind::Received,
            verdict: Verdict::Accepted,
            flags: flags::BACKFILL,
            time_ms: 1_700_000_000_123,
            peer: "127.0.0.1:5000".into(),
            data: b"##0000FFFF\r\n".to_vec(),
        }
    }

    #[test]
    fn record_round_trip_and_chain() {
        let mut buf = Vec::new();
        let h1 = encode_record(&mut buf, 1, &sample(), &[0; 32]);
        let first_len = buf.len();
        let h2 = encode_record(&mut buf, 2, &sample(), &h1);
        let (r1, n1) = decode_record(&buf, &[0; 32]).unwrap();
        assert_eq!((r1.seq, n1, r1.hash), (1, first_len, h1));
        assert_eq!(r1.data, sample().data);
        assert_eq!(r1.peer, "127.0.0.1:5000");
        let (r2, _) = decode_record(&buf[n1..], &h1).unwrap();
        assert_eq!((r2.seq, r2.hash, r2.flags), (2, h2, flags::BACKFILL));
        // Chained from the wrong hash, the same bytes do not verify.
        assert_eq!(decode_record(&buf[n1..], &[0; 32]).unwrap_err(), RecordError::HashMismatch);
    }

    #[test]
    fn any_flipped_byte_is_detected() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 7, &sample(), &[0; 32]);
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x01;
            assert!(decode_record(&bad, &[0; 32]).is_err(), "flip at {i} not detected");
        }
        assert!(matches!(decode_record(&buf[..buf.len() - 1], &[0; 32]), Err(RecordError::Truncated { .. })));
    }

    #[test]
    fn a_valid_record_after_damage_is_found_but_not_in_a_torn_tail() {
        let mut buf = vec![0u8; 40];
        let mut prev = [0; 32];
        for seq in 1..=3 {
            prev = encode_record(&mut buf, seq, &sample(), &prev);
        }
        let second = 40 + (buf.len() - 40) / 3;
        // A bit flipped in the first record's length: records 2 and 3 are still there.
        assert_eq!(find_record_after(&buf, 40, 1), Some((second, 2)));
        // A torn write: the last record cut short, nothing whole after the cut.
        let third = 40 + 2 * (buf.len() - 40) / 3;
        assert_eq!(find_record_after(&buf[..buf.len() - 5], third, 3), None);
        assert_eq!(find_record_after(&[0u8; 200], 40, 1), None, "a zero-filled tail holds no record");
    }

    #[test]
    fn header_round_trip() {
        let header = SegmentHeader::new(42, [7; 32], -5);
        assert_eq!(SegmentHeader::decode(&header.encode()), Some(header));
        assert_eq!(SegmentHeader::decode(b"HJ212ARX"), None);
        let v1 = SegmentHeader { version: VERSION_1, ..header };
        assert_eq!(SegmentHeader::decode(&v1.encode()), Some(v1));
        assert_eq!(v1.chain_seed(), [7; 32], "version 1 chains from prev_hash");
        let moved = SegmentHeader { created_ms: -4, ..header };
        assert_ne!(header.chain_seed(), moved.chain_seed(), "version 2 covers created_ms");
    }
}
