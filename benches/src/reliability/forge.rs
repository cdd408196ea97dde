//! A forger's tools: the archive's byte layout, written here from its documentation
//! (crates/hj212-archive/src/format.rs) as an attacker would, to read a segment, change a
//! record, and re-hash the chain after it (optionally re-signing the checkpoints with a key).
//!
//! ```text
//! header: "HJ212ARC" | version u8 | first_seq u64 | prev_hash [32] | created_ms i64     (57 bytes)
//! record: body_len u32 | body | hash [32]
//! body:   seq u64 | kind u8 | verdict u8 | flags u8 | time_ms i64 | peer_len u8 | peer | data_len u32 | data
//! hash  = SHA-256(prev | body_len | body); a version 2 segment's first record chains from
//!         SHA-256("hj212d segment header" | header), each header repeats the hash before it
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use hj212_archive::{Checkpoint, SigningKey};
use sha2::{Digest, Sha256};

pub const HEADER_LEN: usize = 57;
/// `created_ms` in the header.
pub const CREATED_AT: std::ops::Range<usize> = 49..57;
const PREV_AT: std::ops::Range<usize> = 17..49;
/// The checkpoint verdict's code.
const CHECKPOINT: u8 = 32;
/// The accepted verdict's code.
pub const ACCEPTED: u8 = 1;

/// One record as stored.
#[derive(Debug, Clone)]
pub struct RawRecord {
    /// Where the record starts in its file.
    pub offset: usize,
    pub body: Vec<u8>,
    pub hash: [u8; 32],
}

impl RawRecord {
    pub fn seq(&self) -> u64 {
        u64::from_le_bytes(self.body[..8].try_into().unwrap_or_default())
    }

    pub fn verdict(&self) -> u8 {
        self.body[9]
    }

    fn data_at(&self) -> usize {
        24 + usize::from(self.body[19])
    }

    pub fn data(&self) -> &[u8] {
        &self.body[self.data_at()..]
    }

    /// Replaces the data (any length), keeping the rest of the body.
    pub fn set_data(&mut self, data: &[u8]) {
        let at = self.data_at();
        self.body.truncate(at - 4);
        self.body.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_le_bytes());
        self.body.extend_from_slice(data);
    }

    /// Bytes on disk.
    pub fn len(&self) -> usize {
        4 + self.body.len() + 32
    }

    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }
}

/// A segment file, parsed.
#[derive(Debug, Clone)]
pub struct Segment {
    pub path: PathBuf,
    pub header: [u8; HEADER_LEN],
    pub records: Vec<RawRecord>,
}

/// The hash that chains a record to `prev`.
pub fn chain(prev: &[u8; 32], body: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(u32::try_from(body.len()).unwrap_or(u32::MAX).to_le_bytes());
    hasher.update(body);
    hasher.finalize().into()
}

impl Segment {
    /// Reads and parses a whole segment.
    ///
    /// # Errors
    /// If it cannot be read or is not a complete segment.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
        let header: [u8; HEADER_LEN] = bytes.get(..HEADER_LEN).and_then(|h| h.try_into().ok()).context("no header")?;
        let mut records = Vec::new();
        let mut at = HEADER_LEN;
        while at < bytes.len() {
            let len = bytes.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()) as usize);
            let Some(len) = len.filter(|len| at + 4 + len + 32 <= bytes.len()) else {
                bail!("{}: a partial record at byte {at}", path.display());
            };
            let body = bytes[at + 4..at + 4 + len].to_vec();
            let hash = bytes[at + 4 + len..at + 4 + len + 32].try_into().unwrap_or_default();
            records.push(RawRecord { offset: at, body, hash });
            at += 4 + len + 32;
        }
        Ok(Self { path: path.to_path_buf(), header, records })
    }

    /// What the first record chains from.
    pub fn seed(&self) -> [u8; 32] {
        if self.header[8] == 1 {
            return self.header[PREV_AT].try_into().unwrap_or_default();
        }
        let mut hasher = Sha256::new();
        hasher.update(b"hj212d segment header");
        hasher.update(self.header);
        hasher.finalize().into()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.header.to_vec();
        for r in &self.records {
            out.extend_from_slice(&u32::try_from(r.body.len()).unwrap_or(u32::MAX).to_le_bytes());
            out.extend_from_slice(&r.body);
            out.extend_from_slice(&r.hash);
        }
        out
    }

    /// Writes the segment back.
    ///
    /// # Errors
    /// If it cannot be written.
    pub fn write(&self) -> Result<()> {
        std::fs::write(&self.path, self.encode()).with_context(|| format!("write {}", self.path.display()))
    }
}

/// Every segment of `archive`, in order.
///
/// # Errors
/// If the folder or a segment cannot be read.
pub fn read_all(archive: &Path) -> Result<Vec<Segment>> {
    let list = hj212_archive::list_segments(archive).context("list the segments")?;
    list.iter().map(|(_, path)| Segment::read(path)).collect()
}

/// True if every stored hash is what [`chain`] computes: the forger's layout is right.
pub fn chain_holds(segments: &[Segment]) -> bool {
    let mut prev = [0u8; 32];
    for (i, segment) in segments.iter().enumerate() {
        if i > 0 && segment.header[PREV_AT] != prev {
            return false;
        }
        prev = segment.seed();
        for r in &segment.records {
            if chain(&prev, &r.body) != r.hash {
                return false;
            }
            prev = r.hash;
        }
    }
    true
}

/// Re-hashes the whole chain (headers' `prev_hash` included), re-signing each checkpoint
/// with `key` when given; returns the last checkpoint's text (for `checkpoint.latest`).
pub fn rehash(segments: &mut [Segment], key: Option<&SigningKey>) -> Option<String> {
    let mut prev = [0u8; 32];
    let mut latest = None;
    for (i, segment) in segments.iter_mut().enumerate() {
        if i > 0 {
            segment.header[PREV_AT].copy_from_slice(&prev);
        }
        prev = segment.seed();
        for r in &mut segment.records {
            if let Some(key) = key.filter(|_| r.verdict() == CHECKPOINT)
                && let Ok(old) = Checkpoint::parse(&String::from_utf8_lossy(r.data()))
            {
                let new = Checkpoint::sign(key, old.seq, prev, old.time_ms, old.adopted, old.last);
                r.set_data(new.encode().as_bytes());
                latest = Some(new.encode());
            }
            r.hash = chain(&prev, &r.body);
            prev = r.hash;
        }
    }
    latest
}

/// A record that follows `last` and chains to it: `data` as an accepted frame from `peer`.
pub fn next_record(last: &RawRecord, data: &[u8], peer: &str) -> RawRecord {
    let mut body = Vec::new();
    body.extend_from_slice(&(last.seq() + 1).to_le_bytes());
    body.extend_from_slice(&[1, ACCEPTED, 0]);
    let time = i64::from_le_bytes(last.body[11..19].try_into().unwrap_or_default()) + 1000;
    body.extend_from_slice(&time.to_le_bytes());
    body.push(u8::try_from(peer.len()).unwrap_or(0));
    body.extend_from_slice(peer.as_bytes());
    body.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_le_bytes());
    body.extend_from_slice(data);
    let hash = chain(&last.hash, &body);
    RawRecord { offset: last.offset + last.len(), body, hash }
}
