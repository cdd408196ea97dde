//! Recently seen (MN, CN, QN) keys: a logger that missed our 9014 resends the same frame
//! (same QN) up to 3 times; each copy is answered, but stored once.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// A bounded set of keys; the oldest is forgotten first.
#[derive(Debug)]
pub struct Dedup {
    capacity: usize,
    inner: Mutex<(HashSet<String>, VecDeque<String>)>,
}

impl Dedup {
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), inner: Mutex::new((HashSet::new(), VecDeque::new())) }
    }

    /// Forgets a key (its frame could not be archived, so a resend is not a duplicate).
    pub fn remove(&self, key: &str) {
        let mut guard = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (set, order) = &mut *guard;
        if set.remove(key) {
            order.retain(|k| k != key);
        }
    }

    /// Remembers a key; returns false if it was already known (a duplicate).
    pub fn insert(&self, key: String) -> bool {
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
        set.insert(key.clone());
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
        assert!(dedup.insert("a".into()));
        assert!(dedup.insert("b".into()));
        assert!(!dedup.insert("b".into()));
        assert!(dedup.insert("c".into()), "capacity 2: a is forgotten");
        assert!(dedup.insert("a".into()));
        dedup.remove("a");
        assert!(dedup.insert("a".into()));
    }
}
