//! Batches one follower has read, verified and interpreted, kept for the others: while the
//! followers keep pace with each other, each record is read, hash-checked and parsed once, not
//! once per follower. A follower that falls behind the kept batches reads the archive itself.

use std::collections::VecDeque;
use std::ops::{Deref, Range};
use std::sync::{Arc, Mutex};

use hj212_archive::Bookmark;

use crate::Interpreted;

/// Consecutive records as one follower read them, and where its cursor stood after them.
#[derive(Debug)]
pub struct Chunk {
    records: Vec<Interpreted>,
    end: Bookmark,
}

impl Chunk {
    fn first_seq(&self) -> u64 {
        self.records.first().map_or(self.end.next_seq(), |r| r.record.seq)
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
        Self { chunk: Arc::new(Chunk { records, end }), range }
    }

    /// Where a cursor stands after the batch's chunk.
    pub(crate) fn end(&self) -> &Bookmark {
        &self.chunk.end
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
        let chunk = chunks.iter().find(|c| c.first_seq() <= next_seq && next_seq < c.end.next_seq())?;
        let start = usize::try_from(next_seq - chunk.first_seq()).ok()?;
        let fits = chunk.end.next_seq() - 1 <= up_to && chunk.records.len() - start <= limit;
        fits.then(|| Batch { chunk: chunk.clone(), range: start..chunk.records.len() })
    }

    /// Keeps `batch`'s chunk when it continues the newest one kept (or nothing is kept); the
    /// oldest chunks go beyond `max_records`.
    pub(crate) fn keep(&self, batch: &Batch) {
        let chunk = &batch.chunk;
        if chunk.records.is_empty() || batch.range.start != 0 {
            return;
        }
        let mut chunks = self.chunks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let continues = chunks.back().is_none_or(|newest| newest.end.next_seq() == chunk.first_seq());
        if !continues {
            // A follower far behind read this; the others are at the kept tail.
            if chunks.back().is_some_and(|newest| newest.end.next_seq() > chunk.first_seq()) {
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
