//! Segment files: naming, listing, and reading records from a file.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::ArchiveError;
use crate::format::{self, HEADER_LEN, Hash, Record, RecordError, SegmentHeader};
use crate::writer::io_error;

const PREFIX: &str = "seg-";
const SUFFIX: &str = ".hjar";

/// The file name of the segment starting at `first_seq`.
pub fn segment_name(first_seq: u64) -> String {
    format!("{PREFIX}{first_seq:020}{SUFFIX}")
}

/// The segments in `dir`, sorted by first sequence number.
///
/// # Errors
/// I/O errors reading the directory.
pub fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(seq) = name.strip_prefix(PREFIX).and_then(|n| n.strip_suffix(SUFFIX)) else {
            continue;
        };
        if let Ok(seq) = seq.parse::<u64>() {
            segments.push((seq, path));
        }
    }
    segments.sort_unstable_by_key(|(seq, _)| *seq);
    Ok(segments)
}

/// Creates a segment file with its header, durably (file and folder fsynced), and returns it
/// open for appending. A file left half-made by a failure is removed, so a later attempt
/// (after the disk has room again, or a file descriptor is free) can create it.
pub(crate) fn create_segment(dir: &Path, header: &SegmentHeader) -> Result<(PathBuf, File), ArchiveError> {
    let path = dir.join(segment_name(header.first_seq));
    let mut file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| io_error("cannot create", &path, &e))?;
    let written = file
        .write_all(&header.encode())
        .and_then(|()| file.sync_all())
        .and_then(|()| File::open(dir)?.sync_all())
        .map_err(|e| io_error("cannot write", &path, &e));
    if let Err(error) = written {
        drop(file);
        let _ = std::fs::remove_file(&path);
        return Err(error);
    }
    Ok((path, file))
}

/// Reads a segment's records in order, checking the chain as it goes.
#[derive(Debug)]
pub struct SegmentReader {
    pub header: SegmentHeader,
    bytes: Vec<u8>,
    offset: usize,
    /// What the next record chains from.
    prev: Hash,
    /// The hash of the last record read, or the header's `prev_hash` before the first.
    last: Hash,
}

/// A record that does not verify, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {error}")]
pub struct BadRecord {
    pub offset: usize,
    pub error: RecordError,
}

impl SegmentReader {
    /// Reads the whole segment file into memory (segments are bounded by `segment_max_bytes`).
    ///
    /// # Errors
    /// I/O errors, or `InvalidData` when the header is not an archive segment header.
    pub fn open(path: &Path) -> io::Result<Self> {
        let bytes = std::fs::read(path)?;
        let header = SegmentHeader::decode(&bytes).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{} has no valid segment header", path.display()))
        })?;
        Ok(Self { prev: header.chain_seed(), last: header.prev_hash, header, bytes, offset: HEADER_LEN })
    }

    /// Byte offset of the next record (after the last one read).
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The hash the next record must chain from.
    pub fn chain_prev(&self) -> Hash {
        self.prev
    }

    /// The hash of the last record read: the chain's head so far (the header's `prev_hash`
    /// while no record of this segment has been read).
    pub fn last_hash(&self) -> Hash {
        self.last
    }

    /// The whole file as read.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The next record, `None` at the end, or where and why the chain breaks.
    ///
    /// # Errors
    /// [`BadRecord`] with the offset of the first record that does not verify.
    pub fn next_record(&mut self) -> Result<Option<Record>, BadRecord> {
        if self.offset >= self.bytes.len() {
            return Ok(None);
        }
        let (record, len) = format::decode_record(&self.bytes[self.offset..], &self.prev)
            .map_err(|error| BadRecord { offset: self.offset, error })?;
        self.offset += len;
        self.prev = record.hash;
        self.last = record.hash;
        Ok(Some(record))
    }
}

/// Bytes read from a segment per call of [`read_from`].
const READ_WINDOW: u64 = 8 << 20;

/// Reads the records appended to a segment since `offset`, up to and including `max_seq`.
/// Returns the records and the new offset; the caller carries the chain hash.
///
/// # Errors
/// I/O errors, or `InvalidData` if a record below `max_seq` does not verify.
pub fn read_from(
    path: &Path,
    offset: u64,
    prev: &Hash,
    max_seq: u64,
    limit: usize,
) -> io::Result<(Vec<Record>, u64, Hash)> {
    // Bounded read: a consumer far behind reads a window at a time, not the rest of the
    // segment on every call (a record is at most MAX_BODY, so one always fits).
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    file.take(READ_WINDOW).read_to_end(&mut bytes)?;
    let mut records = Vec::new();
    let mut at = 0;
    let mut prev = *prev;
    while records.len() < limit && at < bytes.len() {
        match format::decode_record(&bytes[at..], &prev) {
            Ok((record, len)) if record.seq <= max_seq => {
                at += len;
                prev = record.hash;
                records.push(record);
            }
            // Beyond what is durable: a write in progress; read it next time.
            Ok(_) | Err(RecordError::Truncated { .. }) => break,
            Err(error) => {
                let at = offset + at as u64;
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} at byte {at}: {error}", path.display()),
                ));
            }
        }
    }
    Ok((records, offset + at as u64, prev))
}
