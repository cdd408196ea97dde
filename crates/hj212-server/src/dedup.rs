//! Recently seen (MN, CN, QN, content) keys: a logger that missed our 9014 resends the
//! same frame (same QN) up to 3 times; each copy is answered, but stored once. Keys are
//! 64-bit hashes (no allocation per frame; a false match needs a 2^-64 collision).

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

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
