//! Batches one follower has read, verified and interpreted, kept for the others: while the
//! followers keep pace with each other, each record is read, hash-checked and parsed once, not
//! once per follower. A follower that falls behind the kept batches reads the archive itself.

use std::collections::VecDeque;
use std::ops::{Deref, Range};
use std::sync::{Arc, Mutex};

use hj212_archive::Bookmark;

use crate::Interpreted;

/// Consecutive records as one follower read them, and where its cursor stood after them
/// (`None`: not read from this node's archive, so not shared).
#[derive(Debug)]
pub struct Chunk {
    records: Vec<Interpreted>,
    end: Option<Bookmark>,
}

impl Chunk {
    /// The archive's bookmark after the chunk, with its first record's sequence number.
    fn span(&self) -> Option<(u64, &Bookmark)> {
        let end = self.end.as_ref()?;
        Some((self.records.first().map_or(end.next_seq(), |r| r.record.seq), end))
    }
}

/// Part of a [`Chunk`]: what a follower is fed.
#[derive(Debug, Clone)]
pub struct Batch {
    chunk: Arc<Chunk>,
    range: Range<usize>,
}

impl Batch {
    pub(crate) fn whole(records: Vec<Interpreted>, end: Bookmark) -> Self {
        let range = 0..records.len();
        Self { chunk: Arc::new(Chunk { records, end: Some(end) }), range }
    }

    /// Records from elsewhere than this node's archive (the cluster's stream).
    pub fn detached(records: Vec<Interpreted>) -> Self {
        let range = 0..records.len();
        Self { chunk: Arc::new(Chunk { records, end: None }), range }
    }

    /// Where a cursor stands after the batch's chunk, if it was read from the archive.
    pub(crate) fn end(&self) -> Option<&Bookmark> {
        self.chunk.end.as_ref()
    }
}

impl Deref for Batch {
    type Target = [Interpreted];

    fn deref(&self) -> &[Interpreted] {
        &self.chunk.records[self.range.clone()]
    }
}

/// The newest chunks read by any follower, at most `max_records` records in all.
#[derive(Debug)]
pub struct SharedTail {
    chunks: Mutex<VecDeque<Arc<Chunk>>>,
    max_records: usize,
}

impl SharedTail {
    pub fn new(max_records: usize) -> Self {
        Self { chunks: Mutex::new(VecDeque::new()), max_records }
    }

    /// The kept records from `next_seq` to the end of their chunk, if they are all at most
    /// `up_to` and at most `limit` of them.
    pub(crate) fn take(&self, next_seq: u64, up_to: u64, limit: usize) -> Option<Batch> {
        let chunks = self.chunks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (chunk, first_seq, end_seq) = chunks.iter().find_map(|c| {
            let (first, end) = c.span()?;
            (first <= next_seq && next_seq < end.next_seq()).then_some((c, first, end.next_seq()))
        })?;
        let start = usize::try_from(next_seq - first_seq).ok()?;
        let fits = end_seq - 1 <= up_to && chunk.records.len() - start <= limit;
        fits.then(|| Batch { chunk: chunk.clone(), range: start..chunk.records.len() })
    }

    /// Keeps `batch`'s chunk when it continues the newest one kept (or nothing is kept); the
    /// oldest chunks go beyond `max_records`.
    pub(crate) fn keep(&self, batch: &Batch) {
        let chunk = &batch.chunk;
        let Some((first_seq, _)) = chunk.span() else { return };
        if chunk.records.is_empty() || batch.range.start != 0 {
            return;
        }
        let mut chunks = self.chunks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Only archive chunks are kept, so every kept chunk has an end.
        let newest_end = chunks.back().and_then(|newest| newest.span()).map(|(_, end)| end.next_seq());
        let continues = newest_end.is_none_or(|end| end == first_seq);
        if !continues {
            // A follower far behind read this; the others are at the kept tail.
            if newest_end.is_some_and(|end| end > first_seq) {
                return;
            }
            // Ahead of everything kept (a gap): start the tail again from here.
            chunks.clear();
        }
        chunks.push_back(chunk.clone());
        let mut kept: usize = chunks.iter().map(|c| c.records.len()).sum();
        while kept > self.max_records && chunks.len() > 1 {
            kept -= chunks.pop_front().map_or(0, |c| c.records.len());
        }
    }
}
