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

    pub fn contains(&self, key: &str) -> bool {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).0.contains(key)
    }

    pub fn insert(&self, key: String) {
        let mut guard = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (set, order) = &mut *guard;
        if set.contains(&key) {
            return;
        }
        if order.len() >= self.capacity
            && let Some(old) = order.pop_front()
        {
            set.remove(&old);
        }
        set.insert(key.clone());
        order.push_back(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded() {
        let dedup = Dedup::new(2);
        dedup.insert("a".into());
        dedup.insert("b".into());
        dedup.insert("b".into());
        assert!(dedup.contains("a"));
        dedup.insert("c".into());
        assert!(!dedup.contains("a") && dedup.contains("b") && dedup.contains("c"));
    }
}
