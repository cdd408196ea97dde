//! Segment files: naming, listing, and reading records from a file.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::ArchiveError;
use crate::format::{self, HEADER_LEN, Hash, Record, RecordError, SegmentHeader};
use crate::packed::{self, Decoded, Inflate, PACKED_SUFFIX, Packed};
use crate::writer::io_error;

const PREFIX: &str = "seg-";
const SUFFIX: &str = ".hjar";

/// The file name of the segment starting at `first_seq`.
pub fn segment_name(first_seq: u64) -> String {
    format!("{PREFIX}{first_seq:020}{SUFFIX}")
}

/// The segments in `dir`, sorted by first sequence number. A sealed segment is either plain
/// or compressed ([`PACKED_SUFFIX`]); while both exist (a compression not yet finished), the
/// plain file is listed, and readers that find it gone read the compressed one.
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
        let (name, packed) = match name.strip_suffix(PACKED_SUFFIX) {
            Some(plain) => (plain, true),
            None => (name, false),
        };
        let Some(seq) = name.strip_prefix(PREFIX).and_then(|n| n.strip_suffix(SUFFIX)) else {
            continue;
        };
        if let Ok(seq) = seq.parse::<u64>() {
            segments.push((seq, packed, path));
        }
    }
    // Plain before compressed for the same segment, then the first of each kept.
    segments.sort_unstable_by_key(|(seq, packed, _)| (*seq, *packed));
    segments.dedup_by_key(|(seq, _, _)| *seq);
    Ok(segments.into_iter().map(|(seq, _, path)| (seq, path)).collect())
}

/// Whether `path` names a compressed segment.
pub(crate) fn is_packed(path: &Path) -> bool {
    path.as_os_str().to_string_lossy().ends_with(PACKED_SUFFIX)
}

/// The compressed form of a plain segment's path.
pub(crate) fn packed_path(plain: &Path) -> PathBuf {
    let mut name = plain.as_os_str().to_owned();
    name.push(PACKED_SUFFIX);
    PathBuf::from(name)
}

/// `open` applied to a segment's path; a plain segment that was compressed meanwhile is opened
/// in its compressed form. Returns the path opened.
fn either_form<T>(path: &Path, open: impl Fn(&Path) -> io::Result<T>) -> io::Result<(PathBuf, T)> {
    match open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && !is_packed(path) => {
            let packed = packed_path(path);
            open(&packed).map(|opened| (packed, opened))
        }
        other => other.map(|opened| (path.to_path_buf(), opened)),
    }
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
    source: Source,
    /// Plain-segment offset of the next record (the same in both forms).
    offset: usize,
    /// What the next record chains from.
    prev: Hash,
    /// The hash of the last record read, or the header's `prev_hash` before the first.
    last: Hash,
    /// The sequence number after the last record read.
    next_seq: u64,
}

#[derive(Debug)]
enum Source {
    Plain(Vec<u8>),
    /// A compressed segment, the next block to decode, and the records left of the current one.
    Packed {
        packed: Packed,
        next_block: usize,
        decoded: std::vec::IntoIter<Decoded>,
        inflate: Box<Inflate>,
    },
}

/// A record that does not verify, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {error}")]
pub struct BadRecord {
    pub offset: usize,
    pub error: RecordError,
}

impl SegmentReader {
    /// Reads the whole segment file into memory (segments are bounded by `segment_max_bytes`;
    /// a compressed one is decompressed a block at a time as it is read).
    ///
    /// # Errors
    /// I/O errors, or `InvalidData` when the header is not an archive segment header.
    pub fn open(path: &Path) -> io::Result<Self> {
        let (path, bytes) = either_form(path, |path| std::fs::read(path))?;
        let no_header =
            || io::Error::new(io::ErrorKind::InvalidData, format!("{} has no valid segment header", path.display()));
        let (header, source) = if is_packed(&path) {
            let packed =
                Packed::parse(bytes).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            let packed_header = packed.header;
            let source =
                Source::Packed { packed, next_block: 0, decoded: Vec::new().into_iter(), inflate: Box::default() };
            (packed_header, source)
        } else {
            (SegmentHeader::decode(&bytes).ok_or_else(no_header)?, Source::Plain(bytes))
        };
        let next_seq = header.first_seq;
        Ok(Self { prev: header.chain_seed(), last: header.prev_hash, header, source, offset: HEADER_LEN, next_seq })
    }

    /// Byte offset of the next record (after the last one read), in the plain segment.
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

    /// The whole file as read, for a plain segment (a compressed one is never torn: empty).
    pub(crate) fn plain_bytes(&self) -> &[u8] {
        match &self.source {
            Source::Plain(bytes) => bytes,
            Source::Packed { .. } => &[],
        }
    }

    /// Moves on to record `seq` (or the end), checking the chain of what it passes; in a
    /// compressed segment, the blocks before the one holding `seq` are skipped undecoded.
    ///
    /// # Errors
    /// As [`SegmentReader::next_record`].
    pub fn skip_to(&mut self, seq: u64) -> Result<(), BadRecord> {
        if let Source::Packed { packed, next_block, decoded, .. } = &mut self.source
            && decoded.len() == 0
            && let Some(block) = packed.block_with(seq).filter(|b| *b > *next_block)
        {
            self.prev = packed.chain_into(block);
            self.last = self.prev;
            self.offset = usize::try_from(packed.blocks[block].plain_offset).unwrap_or(usize::MAX);
            self.next_seq = packed.blocks[block].first_seq;
            *next_block = block;
        }
        while self.next_seq < seq && self.next_record()?.is_some() {}
        Ok(())
    }

    /// The next record, `None` at the end, or where and why the chain breaks.
    ///
    /// # Errors
    /// [`BadRecord`] with the offset of the first record that does not verify.
    pub fn next_record(&mut self) -> Result<Option<Record>, BadRecord> {
        let record = match &mut self.source {
            Source::Plain(bytes) => {
                if self.offset >= bytes.len() {
                    return Ok(None);
                }
                let (record, len) = format::decode_record(&bytes[self.offset..], &self.prev)
                    .map_err(|error| BadRecord { offset: self.offset, error })?;
                self.offset += len;
                record
            }
            Source::Packed { packed, next_block, decoded, inflate } => {
                if decoded.len() == 0 {
                    if *next_block == packed.blocks.len() {
                        return match &packed.damage {
                            None => Ok(None),
                            Some((offset, problem)) => Err(BadRecord {
                                offset: usize::try_from(*offset).unwrap_or(usize::MAX),
                                error: RecordError::Packed(problem.clone()),
                            }),
                        };
                    }
                    let block = *next_block;
                    let records =
                        packed.decode(block, inflate).map_err(|error| BadRecord { offset: self.offset, error })?;
                    *next_block += 1;
                    *decoded = records.into_iter();
                }
                let (record, end) = decoded.next().expect("a decoded block holds records");
                self.offset = usize::try_from(end).unwrap_or(usize::MAX);
                record
            }
        };
        self.prev = record.hash;
        self.last = record.hash;
        self.next_seq = record.seq + 1;
        Ok(Some(record))
    }
}

/// The header of the segment at `path` (plain or compressed), from its first bytes.
///
/// # Errors
/// I/O errors, or `InvalidData` when there is no valid header.
pub fn header_of(path: &Path) -> io::Result<SegmentHeader> {
    let (path, file) = either_form(path, |path| File::open(path))?;
    let mut start = Vec::with_capacity(packed::HEADER_AT + HEADER_LEN);
    file.take((packed::HEADER_AT + HEADER_LEN) as u64).read_to_end(&mut start)?;
    let header = if is_packed(&path) { packed::header(&start) } else { SegmentHeader::decode(&start) };
    header.ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, format!("{} has no valid segment header", path.display()))
    })
}

/// The compressed segment a cursor is reading, and the block it decoded last, so that a
/// cursor reading a block in several calls decompresses it once; and the buffers it reads a
/// plain segment's window, a compressed segment and a block into, kept for their capacity (a
/// fresh 8 MiB buffer a call cost a follower of a busy archive more in page faults and
/// regrowth than decoding the records).
#[derive(Default)]
pub struct BlockCache {
    segment: Option<(PathBuf, Packed)>,
    block: Option<(usize, Vec<Decoded>)>,
    window: Vec<u8>,
    inflate: Inflate,
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCache")
            .field("segment", &self.segment.as_ref().map(|(path, _)| path))
            .field("block", &self.block.as_ref().map(|(index, _)| index))
            .field("window_capacity", &self.window.capacity())
            .field("inflate", &self.inflate)
            .finish()
    }
}

/// Reads the file at `path` into `buffer` (emptied first), whose capacity the caller keeps
/// from one file to the next.
pub(crate) fn read_into(path: &Path, buffer: &mut Vec<u8>) -> io::Result<()> {
    let mut file = File::open(path)?;
    buffer.clear();
    buffer.reserve(usize::try_from(file.metadata()?.len()).unwrap_or(0));
    file.read_to_end(buffer).map(|_| ())
}

/// Bytes read from a segment per call of [`read_from`].
const READ_WINDOW: u64 = 8 << 20;

/// Reads the records appended to a segment since `offset` (a plain-segment offset, also for a
/// compressed segment), up to and including `max_seq`. Returns the records, the new offset and
/// the chain hash after them. A plain segment that was compressed meanwhile is read compressed.
///
/// # Errors
/// I/O errors, or `InvalidData` if a record below `max_seq` does not verify.
pub fn read_from(
    path: &Path,
    offset: u64,
    prev: &Hash,
    max_seq: u64,
    limit: usize,
    cache: &mut BlockCache,
) -> io::Result<(Vec<Record>, u64, Hash)> {
    if is_packed(path) {
        return cache.read(path, offset, prev, limit);
    }
    match File::open(path) {
        Ok(file) => read_plain(file, path, offset, prev, max_seq, limit, &mut cache.window),
        Err(e) if e.kind() == io::ErrorKind::NotFound => cache.read(&packed_path(path), offset, prev, limit),
        Err(e) => Err(e),
    }
}

fn read_plain(
    mut file: File,
    path: &Path,
    offset: u64,
    prev: &Hash,
    max_seq: u64,
    limit: usize,
    bytes: &mut Vec<u8>,
) -> io::Result<(Vec<Record>, u64, Hash)> {
    // Bounded read: a consumer far behind reads a window at a time, not the rest of the
    // segment on every call (a record is at most MAX_BODY, so one always fits).
    file.seek(SeekFrom::Start(offset))?;
    bytes.clear();
    file.take(READ_WINDOW).read_to_end(bytes)?;
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
                return Err(invalid_data(format!("{} at byte {at}: {error}", path.display())));
            }
        }
    }
    Ok((records, offset + at as u64, prev))
}

fn invalid_data(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

impl BlockCache {
    /// Records of a compressed segment from plain offset `offset` to the end of its block (a
    /// sealed segment is durable throughout).
    fn read(&mut self, path: &Path, offset: u64, prev: &Hash, limit: usize) -> io::Result<(Vec<Record>, u64, Hash)> {
        if self.segment.as_ref().is_none_or(|(cached, _)| cached != path) {
            // The last segment's buffer takes this one.
            let mut bytes = self.segment.take().map(|(_, packed)| packed.into_bytes()).unwrap_or_default();
            read_into(path, &mut bytes)?;
            let packed =
                Packed::parse(bytes).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            self.segment = Some((path.to_path_buf(), packed));
            self.block = None;
        }
        let (_, packed) = self.segment.as_ref().expect("set above");
        let Some(index) = packed.block_at(offset) else {
            return match &packed.damage {
                Some((at, problem)) if *at == offset => Err(invalid_data(format!("{}: {problem}", path.display()))),
                _ => Ok((Vec::new(), offset, *prev)),
            };
        };
        if self.block.as_ref().is_none_or(|(cached, _)| *cached != index) {
            let records = packed
                .decode(index, &mut self.inflate)
                .map_err(|e| invalid_data(format!("{} at byte {offset}: {e}", path.display())))?;
            self.block = Some((index, records));
        }
        let records = &self.block.as_ref().expect("set above").1;
        let block = &packed.blocks[index];
        let start = if offset == block.plain_offset {
            Some(0)
        } else {
            records.iter().position(|(_, end)| *end == offset).map(|i| i + 1)
        };
        let expected_prev =
            start.map(|i| i.checked_sub(1).map_or_else(|| packed.chain_into(index), |i| records[i].0.hash));
        let (Some(start), Some(expected_prev)) = (start, expected_prev) else {
            return Err(invalid_data(format!("{}: no record starts at byte {offset}", path.display())));
        };
        if expected_prev != *prev {
            return Err(invalid_data(format!(
                "{} at byte {offset}: the record there does not chain from the reader's position",
                path.display()
            )));
        }
        let stop = records.len().min(start + limit);
        let Some((last, end)) = records[start..stop].last() else { return Ok((Vec::new(), offset, *prev)) };
        let (end, head) = (*end, last.hash);
        // A reader moves forward: a block read to its end is not read again (if it were, it
        // would be decoded again), so its records are handed over instead of copied.
        let taken = if stop == records.len() {
            let (_, mut records) = self.block.take().expect("set above");
            records.drain(start..).map(|(record, _)| record).collect()
        } else {
            records[start..stop].iter().map(|(record, _)| record.clone()).collect()
        };
        Ok((taken, end, head))
    }
}
