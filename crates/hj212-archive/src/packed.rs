//! Sealed segments, compressed (`seg-N.hjar.zst`). The file is a series of zstd frames, so
//! `zstd -d` restores the records (length and body of each, without their hashes); what the
//! chain needs is in skippable frames, which zstd ignores:
//!
//! ```text
//! skippable "HJZH": pack version u8 | the plain segment's header [57]
//! per block:
//!   skippable "HJZB": plain_offset u64 | plain_len u32 | first_seq u64 | records u32 |
//!                     packed_len u32 | last_hash [32] | packed_sha256 [32]
//!   zstd frame [packed_len]: each record's body_len u32 | body (no hash)
//! skippable "HJZE": blocks u32 | records u64 | last_seq u64 | last_hash [32] | plain_len u64
//! ```
//!
//! A record's hash is not stored: it is the same SHA-256 of the previous hash and the record
//! as in the plain segment, so reading recomputes every hash of the chain and compares the
//! block's last one with `last_hash`. Every record keeps its hash, its sequence number and its
//! byte offset in the plain segment (`plain_offset`): checkpoints, follower positions and
//! `verify`'s reports mean the same in both forms. `packed_sha256` covers the compressed bytes
//! themselves, so even a change that would decode to the same records is seen.

use std::fmt;
use std::io;

use sha2::{Digest, Sha256};

use crate::format::{self, HASH_LEN, HEADER_LEN, Hash, MAX_BODY, Record, RecordError, SegmentHeader};

/// zstd's skippable-frame magic (any of 0x184D2A50..=0x184D2A5F is skipped by decoders).
const SKIPPABLE: u32 = 0x184D_2A5A;
const HEAD_TAG: &[u8; 4] = b"HJZH";
const BLOCK_TAG: &[u8; 4] = b"HJZB";
const END_TAG: &[u8; 4] = b"HJZE";
const PACK_VERSION: u8 = 1;
const HEAD_LEN: usize = 4 + 1 + HEADER_LEN;
const BLOCK_LEN: usize = 4 + 8 + 4 + 8 + 4 + 4 + HASH_LEN + HASH_LEN;
const END_LEN: usize = 4 + 4 + 8 + 8 + HASH_LEN + 8;
/// Plain bytes of records per block: big enough that zstd sees many frames of each site
/// (1 MiB compresses within 3 % of 4 MiB on simulated traffic), small enough that a damaged
/// block names a small range and a reader decodes little to reach a record.
const BLOCK_PLAIN_BYTES: usize = 1 << 20;
/// A block holds whole records, so at most one record over the target.
const MAX_BLOCK_PLAIN: usize = BLOCK_PLAIN_BYTES + 4 + MAX_BODY + HASH_LEN;

/// The file name suffix of a compressed segment (after the plain segment's name).
pub const PACKED_SUFFIX: &str = ".zst";

/// One block as the file describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Block {
    /// Where the block's first record starts in the plain segment.
    pub plain_offset: u64,
    /// Bytes the block's records take in the plain segment (hashes included).
    pub plain_len: u32,
    pub first_seq: u64,
    pub records: u32,
    /// Where the zstd frame starts in the file, and its length.
    frame_at: usize,
    frame_len: u32,
    pub last_hash: Hash,
    frame_sha: Hash,
}

impl Block {
    pub(crate) fn plain_end(&self) -> u64 {
        self.plain_offset + u64::from(self.plain_len)
    }
}

/// A record read from a block, with the plain-segment offset just after it.
pub(crate) type Decoded = (Record, u64);

/// A compressed segment read into memory, its blocks listed but not yet decompressed.
pub(crate) struct Packed {
    pub header: SegmentHeader,
    bytes: Vec<u8>,
    pub blocks: Vec<Block>,
    /// The first structural problem after the good blocks (a damaged block description, a
    /// missing or wrong end): readers get every record before it, then this.
    pub damage: Option<(u64, String)>,
}

impl fmt::Debug for Packed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Packed")
            .field("header", &self.header)
            .field("bytes", &self.bytes.len())
            .field("blocks", &self.blocks.len())
            .field("damage", &self.damage)
            .finish()
    }
}

/// Compresses a plain segment (its whole file), checking its chain on the way: a segment
/// whose records do not verify is not compressed (it stays as evidence, for `verify` to name).
///
/// # Errors
/// `InvalidData` naming the record that does not verify; zstd errors.
pub(crate) fn pack(plain: &[u8], level: i32) -> io::Result<Vec<u8>> {
    let header = SegmentHeader::decode(plain)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no valid segment header"))?;
    let mut compressor = zstd::bulk::Compressor::new(level)?;
    let mut out = Vec::with_capacity(plain.len() / 4);
    let mut head = Vec::with_capacity(HEAD_LEN);
    head.extend_from_slice(HEAD_TAG);
    head.push(PACK_VERSION);
    head.extend_from_slice(&header.encode());
    skippable(&mut out, &head);
    let (mut blocks, mut records, mut last_seq) = (0u32, 0u64, header.first_seq.saturating_sub(1));
    let mut prev = header.chain_seed();
    let mut last_hash = header.prev_hash;
    let mut offset = HEADER_LEN;
    let mut stripped = Vec::with_capacity(BLOCK_PLAIN_BYTES);
    while offset < plain.len() {
        let block_start = offset;
        let first_seq = last_seq + 1;
        let mut count = 0u32;
        stripped.clear();
        while offset < plain.len() && offset - block_start < BLOCK_PLAIN_BYTES {
            let (record, len) = format::decode_record(&plain[offset..], &prev).map_err(|error| {
                io::Error::new(io::ErrorKind::InvalidData, format!("record at byte {offset}: {error}"))
            })?;
            stripped.extend_from_slice(&plain[offset..offset + len - HASH_LEN]);
            prev = record.hash;
            last_seq = record.seq;
            offset += len;
            count += 1;
        }
        let frame = compressor.compress(&stripped)?;
        let mut meta = Vec::with_capacity(BLOCK_LEN);
        meta.extend_from_slice(BLOCK_TAG);
        meta.extend_from_slice(&(block_start as u64).to_le_bytes());
        meta.extend_from_slice(&u32::try_from(offset - block_start).map_err(invalid)?.to_le_bytes());
        meta.extend_from_slice(&first_seq.to_le_bytes());
        meta.extend_from_slice(&count.to_le_bytes());
        meta.extend_from_slice(&u32::try_from(frame.len()).map_err(invalid)?.to_le_bytes());
        meta.extend_from_slice(&prev);
        meta.extend_from_slice(&Sha256::digest(&frame));
        skippable(&mut out, &meta);
        out.extend_from_slice(&frame);
        blocks += 1;
        records += u64::from(count);
        last_hash = prev;
    }
    let mut end = Vec::with_capacity(END_LEN);
    end.extend_from_slice(END_TAG);
    end.extend_from_slice(&blocks.to_le_bytes());
    end.extend_from_slice(&records.to_le_bytes());
    end.extend_from_slice(&last_seq.to_le_bytes());
    end.extend_from_slice(&last_hash);
    end.extend_from_slice(&(offset as u64).to_le_bytes());
    skippable(&mut out, &end);
    Ok(out)
}

fn invalid(error: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

fn skippable(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&SKIPPABLE.to_le_bytes());
    out.extend_from_slice(&u32::try_from(payload.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Reads little-endian fields off the front of a slice (lengths checked by the caller).
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        head.try_into().expect("length checked")
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
}

/// The payload of the skippable frame at `at` with the given tag and length, or what is wrong.
fn frame(bytes: &[u8], at: usize, tag: [u8; 4], len: usize) -> Result<&[u8], String> {
    let what = String::from_utf8_lossy(&tag);
    let header = bytes.get(at..at + 8).ok_or_else(|| format!("the file ends where a {what} frame should be"))?;
    let magic = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
    let size = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    let payload = bytes.get(at + 8..at + 8 + len);
    match payload {
        Some(payload) if magic == SKIPPABLE && size as usize == len && payload.starts_with(&tag) => Ok(&payload[4..]),
        Some(_) => Err(format!("the {what} frame at byte {at} of the file is damaged")),
        None => Err(format!("the file ends inside the {what} frame at byte {at}")),
    }
}

/// Where the plain segment's header starts in a compressed segment's file.
pub(crate) const HEADER_AT: usize = 8 + 4 + 1;

/// The plain segment's header, from the first bytes of a compressed segment.
pub(crate) fn header(start: &[u8]) -> Option<SegmentHeader> {
    let head = frame(start, 0, *HEAD_TAG, HEAD_LEN).ok()?;
    if head[0] != PACK_VERSION {
        return None;
    }
    SegmentHeader::decode(&head[1..])
}

/// What decompressing blocks reuses: a zstd context and the buffer a block is decompressed
/// into (a fresh megabyte a block cost a reader more in page faults than decompressing it).
#[derive(Default)]
pub(crate) struct Inflate {
    context: Option<zstd::bulk::Decompressor<'static>>,
    buffer: Vec<u8>,
}

impl fmt::Debug for Inflate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inflate").field("buffer_capacity", &self.buffer.capacity()).finish_non_exhaustive()
    }
}

impl Inflate {
    /// `frame` decompressed, at most `len` bytes.
    fn block(&mut self, frame: &[u8], len: usize) -> io::Result<&[u8]> {
        let context = match &mut self.context {
            Some(context) => context,
            None => self.context.insert(zstd::bulk::Decompressor::new()?),
        };
        self.buffer.clear();
        self.buffer.reserve(len);
        context.decompress_to_buffer(frame, &mut self.buffer)?;
        Ok(&self.buffer)
    }
}

impl Packed {
    /// Lists the blocks of a compressed segment's bytes.
    ///
    /// # Errors
    /// `InvalidData` when the file does not start as a compressed segment.
    pub(crate) fn parse(bytes: Vec<u8>) -> io::Result<Self> {
        let header = header(&bytes).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "not a compressed segment of a version this build reads")
        })?;
        let mut packed = Self { header, bytes, blocks: Vec::new(), damage: None };
        packed.damage = packed.list_blocks(8 + HEAD_LEN).err();
        Ok(packed)
    }

    /// The bytes back, for their buffer to take the next segment.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Reads the block descriptions from `at` to the end frame; an inconsistent one is damage,
    /// reported at the plain offset the reader has reached.
    fn list_blocks(&mut self, mut at: usize) -> Result<(), (u64, String)> {
        let (mut plain, mut next_seq) = (HEADER_LEN as u64, self.header.first_seq);
        loop {
            let damaged = |problem: String| (plain, problem);
            let is_end = self.bytes.get(at + 8..at + 12) == Some(END_TAG.as_slice());
            if is_end {
                return self.check_end(at, plain, next_seq).map_err(damaged);
            }
            let mut fields = Fields(frame(&self.bytes, at, *BLOCK_TAG, BLOCK_LEN).map_err(damaged)?);
            let block_at = at;
            at += 8 + BLOCK_LEN;
            let block = Block {
                plain_offset: fields.u64(),
                plain_len: fields.u32(),
                first_seq: fields.u64(),
                records: fields.u32(),
                frame_at: at,
                frame_len: fields.u32(),
                last_hash: fields.take(),
                frame_sha: fields.take(),
            };
            let fits = at.checked_add(block.frame_len as usize).is_some_and(|end| end <= self.bytes.len());
            if block.plain_offset != plain
                || block.first_seq != next_seq
                || block.records == 0
                || block.plain_len as usize > MAX_BLOCK_PLAIN
                || !fits
            {
                return Err(damaged(format!("the description of the block at byte {block_at} of the file is damaged")));
            }
            at += block.frame_len as usize;
            plain = block.plain_end();
            next_seq = next_seq.saturating_add(u64::from(block.records));
            self.blocks.push(block);
        }
    }

    fn check_end(&self, at: usize, plain: u64, next_seq: u64) -> Result<(), String> {
        let mut fields = Fields(frame(&self.bytes, at, *END_TAG, END_LEN)?);
        let (blocks, records, last_seq) = (fields.u32(), fields.u64(), fields.u64());
        let last_hash: Hash = fields.take();
        let plain_len = fields.u64();
        let expected_hash = self.blocks.last().map_or(self.header.prev_hash, |b| b.last_hash);
        let consistent = blocks as usize == self.blocks.len()
            && records == next_seq - self.header.first_seq
            && last_seq == next_seq.wrapping_sub(1)
            && last_hash == expected_hash
            && plain_len == plain;
        if !consistent {
            return Err("the end frame does not match the blocks (blocks removed or the end altered)".into());
        }
        if at + 8 + END_LEN != self.bytes.len() {
            return Err(format!("{} bytes follow the end frame", self.bytes.len() - at - 8 - END_LEN));
        }
        Ok(())
    }

    /// The plain segment's bytes, exactly as they were before compression, every block checked.
    ///
    /// # Errors
    /// [`RecordError::Packed`] for the first block or structure that does not verify.
    pub(crate) fn unpack(&self) -> Result<Vec<u8>, RecordError> {
        if let Some((_, problem)) = &self.damage {
            return Err(RecordError::Packed(problem.clone()));
        }
        let end = self.blocks.last().map_or(HEADER_LEN as u64, Block::plain_end);
        let mut plain = Vec::with_capacity(usize::try_from(end).unwrap_or(0));
        plain.extend_from_slice(&self.header.encode());
        let mut inflate = Inflate::default();
        for index in 0..self.blocks.len() {
            let records = self.decode(index, &mut inflate)?;
            let stripped = &inflate.buffer;
            let mut at = 0;
            for (record, _) in &records {
                let len = 4 + u32::from_le_bytes(stripped[at..at + 4].try_into().expect("4 bytes")) as usize;
                plain.extend_from_slice(&stripped[at..at + len]);
                plain.extend_from_slice(&record.hash);
                at += len;
            }
        }
        Ok(plain)
    }

    /// What block `index`'s first record chains from.
    pub(crate) fn chain_into(&self, index: usize) -> Hash {
        index.checked_sub(1).map_or_else(|| self.header.chain_seed(), |i| self.blocks[i].last_hash)
    }

    /// The block holding the record that starts at plain offset `offset`.
    pub(crate) fn block_at(&self, offset: u64) -> Option<usize> {
        self.blocks.iter().position(|b| (b.plain_offset..b.plain_end()).contains(&offset))
    }

    /// The block holding record `seq`.
    pub(crate) fn block_with(&self, seq: u64) -> Option<usize> {
        self.blocks.iter().position(|b| (b.first_seq..b.first_seq.saturating_add(u64::from(b.records))).contains(&seq))
    }

    /// Decompresses block `index` and checks it: the compressed bytes against their hash,
    /// every record's chain from the previous block's last hash, and the last against the
    /// block's. Nothing of a block that fails is returned. The decompressed bytes (each
    /// record's length and body) are left in `inflate`.
    ///
    /// # Errors
    /// [`RecordError::Packed`] saying what does not verify.
    pub(crate) fn decode(&self, index: usize, inflate: &mut Inflate) -> Result<Vec<Decoded>, RecordError> {
        let block = &self.blocks[index];
        let fail = |what: String| block_error(block, &what);
        let stripped = self.decompress(index, inflate)?;
        let mut records = Vec::with_capacity(block.records as usize);
        let (mut at, mut prev, mut plain) = (0, self.chain_into(index), block.plain_offset);
        while at < stripped.len() {
            let (record, len) = format::decode_unhashed(&stripped[at..], &prev)
                .map_err(|error| fail(format!("holds a bad record after {} good ones: {error}", records.len())))?;
            if record.seq != block.first_seq.saturating_add(records.len() as u64) {
                return Err(fail(format!("holds record {} out of order", record.seq)));
            }
            at += len;
            plain += (len + HASH_LEN) as u64;
            prev = record.hash;
            records.push((record, plain));
        }
        if records.len() != block.records as usize || prev != block.last_hash {
            return Err(fail(
                "does not verify: its records do not chain to the block's last hash (a record was altered)".into(),
            ));
        }
        Ok(records)
    }

    /// The records of block `index` as stored (without their hashes), after checking the
    /// compressed bytes against their hash and the length the block describes.
    fn decompress<'a>(&self, index: usize, inflate: &'a mut Inflate) -> Result<&'a [u8], RecordError> {
        let block = &self.blocks[index];
        let fail = |what: String| block_error(block, &what);
        let frame = &self.bytes[block.frame_at..block.frame_at + block.frame_len as usize];
        if Sha256::digest(frame).as_slice() != block.frame_sha {
            return Err(fail("was altered: its compressed bytes do not match their hash".into()));
        }
        let stripped_len = (block.plain_len as usize).checked_sub(block.records as usize * HASH_LEN);
        let stripped = stripped_len
            .ok_or_else(|| "impossible length".to_owned())
            .and_then(|len| inflate.block(frame, len).map_err(|e| e.to_string()))
            .map_err(|e| fail(format!("does not decompress: {e}")))?;
        if Some(stripped.len()) != stripped_len {
            return Err(fail("decompresses to a different length than described".into()));
        }
        Ok(stripped)
    }

    /// Whether the header is `plain`'s (a segment whose chain was verified) and every block
    /// decompresses to its records at their offsets, byte for byte without their hashes, and ends on the hash
    /// stored there: then this form verifies as that one does. Compares bytes instead of
    /// hashing every record again.
    ///
    /// # Errors
    /// What differs, naming the block.
    pub(crate) fn matches_plain(&self, plain: &[u8]) -> Result<(), RecordError> {
        if plain.get(..HEADER_LEN) != Some(&self.header.encode()[..]) {
            return Err(RecordError::Packed("the compressed segment's header differs from the plain one".into()));
        }
        let mut inflate = Inflate::default();
        for (index, block) in self.blocks.iter().enumerate() {
            let fail = |what: &str| block_error(block, what);
            let stripped = self.decompress(index, &mut inflate)?;
            let (mut at, mut from) = (usize::try_from(block.plain_offset).unwrap_or(usize::MAX), 0);
            for _ in 0..block.records {
                let len = 4 + format::body_len(plain.get(at..).unwrap_or_default())?;
                let same = plain.get(at..at + len).is_some_and(|record| stripped.get(from..from + len) == Some(record));
                if !same {
                    return Err(fail("differs from the plain segment"));
                }
                (at, from) = (at + len + HASH_LEN, from + len);
            }
            let last_hash = at.checked_sub(HASH_LEN).and_then(|end| plain.get(end..at));
            if from != stripped.len() || at as u64 != block.plain_end() || last_hash != Some(&block.last_hash[..]) {
                return Err(fail("does not cover the plain segment's records"));
            }
        }
        Ok(())
    }
}

/// A problem with one block, naming its records.
fn block_error(block: &Block, what: &str) -> RecordError {
    let last = block.first_seq.saturating_add(u64::from(block.records).saturating_sub(1));
    RecordError::Packed(format!("compressed block of records {}-{last} {what}", block.first_seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{Kind, NewRecord, Verdict, encode_record};

    fn plain_segment(records: u64) -> Vec<u8> {
        let header = SegmentHeader::new(11, [9; 32], 1_700_000_000_000);
        let mut bytes = header.encode().to_vec();
        let mut prev = header.chain_seed();
        for i in 0..records {
            let record = NewRecord {
                kind: Kind::Received,
                verdict: Verdict::Accepted,
                flags: 0,
                time_ms: 1_700_000_000_000 + i64::try_from(i).unwrap(),
                peer: "127.0.0.1:40000".into(),
                data: format!(
                    "##0101QN=2026113018{i:07};ST=31;CN=2011;PW=123456;MN=SIM0001;CP=&&a01012-Rtd={i}&&ABCD\r\n"
                )
                .into_bytes(),
            };
            prev = encode_record(&mut bytes, 11 + i, &record, &prev);
        }
        bytes
    }

    fn all_records(packed: &Packed) -> Vec<Decoded> {
        let mut inflate = Inflate::default();
        (0..packed.blocks.len()).flat_map(|i| packed.decode(i, &mut inflate).unwrap()).collect()
    }

    #[test]
    fn packs_and_reads_back_every_record_with_its_hash_and_offset() {
        let plain = plain_segment(9000);
        let bytes = pack(&plain, 3).unwrap();
        assert!(bytes.len() * 5 < plain.len(), "{} of {}", bytes.len(), plain.len());
        let packed = Packed::parse(bytes).unwrap();
        assert!(packed.blocks.len() > 1, "several blocks");
        assert_eq!(packed.damage, None);
        let mut prev = packed.header.chain_seed();
        let mut offset = HEADER_LEN;
        for (record, end) in all_records(&packed) {
            let (expected, len) = format::decode_record(&plain[offset..], &prev).unwrap();
            offset += len;
            assert_eq!((record.clone(), end), (expected, offset as u64));
            prev = record.hash;
        }
        assert_eq!(offset, plain.len());
        assert_eq!(packed.unpack().unwrap(), plain, "the plain segment, byte for byte");
        assert_eq!(packed.block_with(11), Some(0));
        assert_eq!(packed.block_at(HEADER_LEN as u64), Some(0));
        assert_eq!(packed.block_with(11 + 9000), None);
    }

    #[test]
    fn the_compressed_form_matches_its_plain_segment_and_no_other() {
        let plain = plain_segment(3000);
        let packed = Packed::parse(pack(&plain, 3).unwrap()).unwrap();
        packed.matches_plain(&plain).unwrap();
        let mut other = plain.clone();
        let last = other.len() - 40;
        other[last] ^= 1;
        assert!(packed.matches_plain(&other).unwrap_err().to_string().contains("differs"), "a record's byte");
        let mut other = plain.clone();
        let end = other.len() - 1;
        other[end] ^= 1;
        assert!(packed.matches_plain(&other).unwrap_err().to_string().contains("cover"), "the last hash");
        let mut other = plain.clone();
        other[HEADER_LEN - 1] ^= 1;
        assert!(packed.matches_plain(&other).unwrap_err().to_string().contains("header"), "the header");
        assert!(packed.matches_plain(&plain[..plain.len() - 10]).is_err(), "a shorter segment");
    }

    #[test]
    fn an_empty_segment_packs_to_no_blocks() {
        let packed = Packed::parse(pack(&plain_segment(0), 3).unwrap()).unwrap();
        assert!(packed.blocks.is_empty());
        assert_eq!(packed.damage, None);
    }

    proptest::proptest! {
        /// Damaged or hostile bytes are an error, never a panic or an unbounded allocation.
        #[test]
        fn damaged_files_are_read_without_panicking(
            at in 0usize..4000,
            garbage in proptest::collection::vec(proptest::num::u8::ANY, 1..64),
            cut in 0usize..4000,
        ) {
            let mut bytes = pack(&plain_segment(40), 3).unwrap();
            let at = at % bytes.len();
            let end = (at + garbage.len()).min(bytes.len());
            bytes[at..end].copy_from_slice(&garbage[..end - at]);
            bytes.truncate(bytes.len() - cut % bytes.len());
            if let Ok(packed) = Packed::parse(bytes) {
                for index in 0..packed.blocks.len() {
                    let _ = packed.decode(index, &mut Inflate::default());
                }
            }
        }
    }

    #[test]
    fn a_segment_that_does_not_verify_is_not_packed() {
        let mut plain = plain_segment(10);
        plain[HEADER_LEN + 30] ^= 1;
        let error = pack(&plain, 3).unwrap_err();
        assert!(error.to_string().contains("hash does not match"), "{error}");
    }
}
