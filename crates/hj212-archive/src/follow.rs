//! Reads durable records in order from a given sequence number, across segments, for
//! consumers that materialise the archive (the embedded store, later other sinks).

use std::io;
use std::path::{Path, PathBuf};

use crate::format::{Hash, Record};
use crate::segment::{self, BlockCache, SegmentReader, list_segments};

/// Where a cursor stands: another cursor resumed from it reads on from the same byte, with
/// the same chain hash, without searching its segment again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bookmark {
    next_seq: u64,
    position: Option<(PathBuf, u64, Hash)>,
}

impl Bookmark {
    /// The sequence number a cursor resumed here reads next.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
}

/// A cursor over the archive.
#[derive(Debug)]
pub struct Follower {
    dir: PathBuf,
    next_seq: u64,
    /// The segment being read, the byte offset of the next record (in the plain form), and
    /// the chain hash.
    position: Option<(PathBuf, u64, Hash)>,
    cache: BlockCache,
}

impl Follower {
    /// A cursor that will return records from `next_seq` on.
    pub fn new(dir: &Path, next_seq: u64) -> Self {
        Self { dir: dir.to_path_buf(), next_seq, position: None, cache: BlockCache::default() }
    }

    /// Moves this cursor to where `bookmark` (taken in the same archive) stands, keeping what
    /// it has cached.
    pub fn jump(&mut self, bookmark: Bookmark) {
        self.next_seq = bookmark.next_seq;
        self.position = bookmark.position;
    }

    /// Where this cursor stands.
    pub fn bookmark(&self) -> Bookmark {
        Bookmark { next_seq: self.next_seq, position: self.position.clone() }
    }

    /// The archive directory being followed.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The sequence number the next record will have.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Up to `limit` records with sequence numbers up to `durable`.
    ///
    /// # Errors
    /// I/O errors, or `InvalidData` when a record does not verify or a needed segment is gone.
    pub fn read(&mut self, durable: u64, limit: usize) -> io::Result<Vec<Record>> {
        let mut out = Vec::new();
        match self.read_into(durable, limit, &mut out) {
            // Records already read are handed out; the error comes back on the next call.
            Err(_) if !out.is_empty() => Ok(out),
            Err(error) => Err(error),
            Ok(()) => Ok(out),
        }
    }

    fn read_into(&mut self, durable: u64, limit: usize, out: &mut Vec<Record>) -> io::Result<()> {
        while self.next_seq <= durable && out.len() < limit {
            let (path, offset, prev) = match self.position.take() {
                Some(position) => position,
                None => self.locate()?,
            };
            let (records, new_offset, head) =
                segment::read_from(&path, offset, &prev, durable, limit - out.len(), &mut self.cache)?;
            if records.is_empty() {
                // The segment is finished and the next record is in a newer one (if the
                // newest segment holds it, it is not readable yet: try again later).
                let newer = self.locate()?;
                if newer.0 == path {
                    self.position = Some((path, offset, prev));
                    break;
                }
                self.position = Some(newer);
                continue;
            }
            self.next_seq = records.last().map_or(self.next_seq, |r| r.seq + 1);
            self.position = Some((path, new_offset, head));
            // Most batches come from one segment: its records are the batch, not copied.
            if out.is_empty() {
                *out = records;
            } else {
                out.extend(records);
            }
        }
        Ok(())
    }

    /// The segment holding `next_seq`, positioned just before that record.
    fn locate(&self) -> io::Result<(PathBuf, u64, Hash)> {
        let segments = list_segments(&self.dir)?;
        let (_, path) = segments.iter().rev().find(|(first, _)| *first <= self.next_seq).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("no segment holds seq {}", self.next_seq))
        })?;
        let mut reader = SegmentReader::open(path)?;
        reader
            .skip_to(self.next_seq)
            .map_err(|bad| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {bad}", path.display())))?;
        let offset = reader.offset() as u64;
        Ok((path.clone(), offset, reader.chain_prev()))
    }
}

/// Hands the records of each segment (oldest first within it) to `visit`, from the newest
/// segment back, until `visit` returns false: for state rebuilt from the archive's tail at
/// start (the resend window). In a segment whose records stop verifying, the records before
/// the damage are handed over and the walk goes on with the older segments.
///
/// # Errors
/// I/O errors listing or reading the segments.
pub fn read_backwards(dir: &Path, mut visit: impl FnMut(Vec<Record>) -> bool) -> io::Result<()> {
    for (_, path) in list_segments(dir)?.iter().rev() {
        let mut reader = SegmentReader::open(path)?;
        let mut records = Vec::new();
        while let Ok(Some(record)) = reader.next_record() {
            records.push(record);
        }
        if !visit(records) {
            break;
        }
    }
    Ok(())
}
