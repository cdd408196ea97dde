//! Recently seen (MN, CN, QN, content) keys: a logger that missed our 9014 resends the
//! same frame (same QN) up to 3 times; each copy is answered, but stored once. Keys are
//! 64-bit hashes (no allocation per frame; a false match needs a 2^-64 collision).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;
use std::sync::Mutex;

use hj212_archive::{Kind, Verdict, read_backwards};
use hj212_proto::framer::{self, FramerConfig, MAX_LENGTH_FIELD, Scan};
use hj212_proto::{Packet, SegmentText};

/// What is known of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not seen before: now claimed.
    New,
    /// A copy of a frame whose record is on disk.
    Durable,
    /// A copy of a frame whose record is still on its way to disk.
    Pending,
}

/// A bounded set of keys, each marked once its frame is durable; the oldest is forgotten first.
#[derive(Debug)]
pub struct Dedup {
    capacity: usize,
    inner: Mutex<(KeyMap, VecDeque<u64>)>,
}

/// Keys are already SipHash outputs under a random key (`decide::dedup_key`): the map uses them
/// as they are instead of hashing them again (the second hash was most of a frame's dedup cost).
type KeyMap = HashMap<u64, bool, BuildHasherDefault<KeyIsHash>>;

#[derive(Default)]
struct KeyIsHash(u64);

impl Hasher for KeyIsHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }

    /// Only `u64` keys are hashed here; anything else is folded in, still correct if slower.
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }
}

impl Dedup {
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), inner: Mutex::new((KeyMap::default(), VecDeque::new())) }
    }

    /// Remembers the accepted frames at the archive's tail (the newest `capacity` of them,
    /// oldest first, all durable), so that a logger resending a frame whose 9014 was lost to a
    /// crash or a restart gets it answered and stored once, as without the restart. Returns
    /// how many.
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
        for keys in chunks.into_iter().rev() {
            for key in &keys {
                self.insert(*key);
            }
            self.durable(&keys);
        }
        Ok(total.min(self.capacity))
    }

    /// Forgets a key (its frame could not be archived, so a resend is not a duplicate).
    pub fn remove(&self, key: u64) {
        let mut guard = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (map, order) = &mut *guard;
        if map.remove(&key).is_some() {
            order.retain(|k| *k != key);
        }
    }

    /// Claims a key, or says what is known of it.
    pub fn insert(&self, key: u64) -> Seen {
        let mut guard = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (map, order) = &mut *guard;
        if let Some(durable) = map.get(&key) {
            return if *durable { Seen::Durable } else { Seen::Pending };
        }
        if order.len() >= self.capacity
            && let Some(old) = order.pop_front()
        {
            map.remove(&old);
        }
        map.insert(key, false);
        order.push_back(key);
        Seen::New
    }

    /// The frames of these keys are on disk: later copies may be summarised instead of kept.
    pub fn durable(&self, keys: &[u64]) {
        if keys.is_empty() {
            return;
        }
        let mut guard = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for key in keys {
            if let Some(durable) = guard.0.get_mut(key) {
                *durable = true;
            }
        }
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
        assert_eq!(dedup.insert(1), Seen::New);
        assert_eq!(dedup.insert(2), Seen::New);
        assert_eq!(dedup.insert(2), Seen::Pending);
        assert_eq!(dedup.insert(3), Seen::New, "capacity 2: 1 is forgotten");
        assert_eq!(dedup.insert(1), Seen::New);
        dedup.remove(1);
        assert_eq!(dedup.insert(1), Seen::New);
    }

    #[test]
    fn a_copy_is_durable_once_its_original_is() {
        let dedup = Dedup::new(10);
        assert_eq!(dedup.insert(7), Seen::New);
        assert_eq!(dedup.insert(7), Seen::Pending);
        dedup.durable(&[7, 8]);
        assert_eq!(dedup.insert(7), Seen::Durable);
        assert_eq!(dedup.insert(8), Seen::New, "marking an unknown key claims nothing");
    }
}
