//! Where a reader of the archive (store, alert engine, sinks) is, and whether it is stuck:
//! what `/readyz`, the lag metrics and retention read, one type for every follower.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// A follower's position and health; shared between the follower and its observers.
#[derive(Debug, Default)]
pub struct FollowerStatus {
    /// The last archive record applied (its results persisted).
    position: AtomicU64,
    /// Unix ms of the first failure in the current run of failures; 0 while it works.
    failing_since_ms: AtomicI64,
    last_error: Mutex<Option<String>>,
}

/// A follower failing on every retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failing {
    pub since_ms: i64,
    pub error: String,
}

impl FollowerStatus {
    /// A status starting at `position`.
    pub fn at(position: u64) -> Self {
        Self { position: AtomicU64::new(position), ..Self::default() }
    }

    /// The last record applied.
    pub fn position(&self) -> u64 {
        self.position.load(Ordering::Relaxed)
    }

    /// Records up to `position` are applied: the follower works (again).
    pub fn applied(&self, position: u64) {
        self.position.store(position, Ordering::Relaxed);
        self.failing_since_ms.store(0, Ordering::Relaxed);
    }

    /// The position moved, but whether the follower works is not settled by it (a clock tick
    /// that succeeded while applying records keeps failing).
    pub fn moved(&self, position: u64) {
        self.position.store(position, Ordering::Relaxed);
    }

    /// An attempt failed at `now_ms`; the first failure of a run is remembered.
    pub fn failed(&self, error: &dyn std::fmt::Display, now_ms: i64) {
        let _ = self.failing_since_ms.compare_exchange(0, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error.to_string());
    }

    /// Since when, and why, every attempt has failed; `None` while it works.
    pub fn failing(&self) -> Option<Failing> {
        let since_ms = self.failing_since_ms.load(Ordering::Relaxed);
        if since_ms == 0 {
            return None;
        }
        let error = self.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        Some(Failing { since_ms, error: error.unwrap_or_default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_failures_keeps_its_start_until_a_success() {
        let status = FollowerStatus::at(5);
        assert_eq!((status.position(), status.failing()), (5, None));
        status.failed(&"disk full", 1000);
        status.failed(&"still full", 2000);
        assert_eq!(status.failing(), Some(Failing { since_ms: 1000, error: "still full".into() }));
        status.applied(9);
        assert_eq!((status.position(), status.failing()), (9, None));
    }
}
