//! Recently seen (MN, CN, QN, content) keys: a logger that missed our 9014 resends the
//! same frame (same QN) up to 3 times; each copy is answered, but stored once. Keys are
//! 64-bit hashes (no allocation per frame; a false match needs a 2^-64 collision).

use std::collections::{HashSet, VecDeque};
use std::path::Path;
use std::sync::Mutex;

use hj212_archive::{Kind, Verdict, read_backwards};
use hj212_proto::framer::{self, FramerConfig, MAX_LENGTH_FIELD, Scan};
use hj212_proto::{Packet, SegmentText};

/// A bounded set of keys; the oldest is forgotten first.
#[derive(Debug)]
pub struct Dedup {
    capacity: usize,
    inner: Mutex<(HashSet<u64>, VecDeque<u64>)>,
}

impl Dedup {
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), inner: Mutex::new((HashSet::new(), VecDeque::new())) }
    }

    /// Remembers the accepted frames at the archive's tail (the newest `capacity` of them,
    /// oldest first), so that a logger resending a frame whose 9014 was lost to a crash or a
    /// restart gets it answered and stored once, as without the restart. Returns how many.
    ///
    /// # Errors
    /// I/O errors reading the archive.
    pub fn prime(&self, archive_dir: &Path) -> std::io::Result<usize> {
        let mut chunks = Vec::new();
        let mut total = 0;
        read_backwards(archive_dir, |records| {
            let keys: Vec<u64> = records
                .iter()
                .filter(|r| r.kind == Kind::Received && r.verdict == Verdict::Accepted)
                .filter_map(|r| key_of_archived(&r.data))
                .collect();
            total += keys.len();
            chunks.push(keys);
            total < self.capacity
        })?;
        for key in chunks.into_iter().rev().flatten() {
            self.insert(key);
        }
        Ok(total.min(self.capacity))
    }

    /// Forgets a key (its frame could not be archived, so a resend is not a duplicate).
    pub fn remove(&self, key: u64) {
        let mut guard = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (set, order) = &mut *guard;
        if set.remove(&key) {
            order.retain(|k| *k != key);
        }
    }

    /// Remembers a key; returns false if it was already known (a duplicate).
    pub fn insert(&self, key: u64) -> bool {
        let mut guard = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (set, order) = &mut *guard;
        if set.contains(&key) {
            return false;
        }
        if order.len() >= self.capacity
            && let Some(old) = order.pop_front()
        {
            set.remove(&old);
        }
        set.insert(key);
        order.push_back(key);
        true
    }
}

/// The key of an archived frame (decrypted frames are archived in plaintext, as decided).
fn key_of_archived(frame: &[u8]) -> Option<u64> {
    let config = FramerConfig { max_data_len: MAX_LENGTH_FIELD, crc_gate: false };
    let Scan::Frame(layout) = framer::scan(frame, &config, true) else { return None };
    let text = SegmentText::new(layout.data(frame));
    crate::decide::dedup_key(&Packet::parse_text(&text).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded() {
        let dedup = Dedup::new(2);
        assert!(dedup.insert(1));
        assert!(dedup.insert(2));
        assert!(!dedup.insert(2));
        assert!(dedup.insert(3), "capacity 2: 1 is forgotten");
        assert!(dedup.insert(1));
        dedup.remove(1);
        assert!(dedup.insert(1));
    }
}
