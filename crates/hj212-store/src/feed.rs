//! The store as a follower of the archive (hj212-follow runs it): each batch of durable
//! records is applied in one transaction together with the position, so a restart resumes
//! exactly where the last committed batch ended. The "queue" between ingest and the store is
//! the archive on disk: bounded memory, and a store that falls behind (slow disk, a long
//! query) delays nothing upstream and catches up later.

use hj212_follow::{FollowError, Follower, Interpreted};

use crate::{Applied, Pruned, Store};

/// The embedded store, fed by the follower runtime.
pub struct StoreFollower {
    store: Store,
    /// `[store] readings_retention_days` in milliseconds; 0 keeps readings.
    retention_ms: i64,
    /// Told what each batch did (the daemon counts rows and duplicates).
    on_applied: Box<dyn Fn(Applied) + Send>,
    /// Told what each tick's retention deleted (the daemon counts the rows).
    on_pruned: Box<dyn Fn(Pruned) + Send>,
}

impl std::fmt::Debug for StoreFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreFollower").field("store", &self.store).finish_non_exhaustive()
    }
}

impl StoreFollower {
    pub fn new(store: Store, on_applied: impl Fn(Applied) + Send + 'static) -> Self {
        Self { store, retention_ms: 0, on_applied: Box::new(on_applied), on_pruned: Box::new(|_| {}) }
    }

    /// Deletes readings whose DataTime is more than `days` old from each tick (0: keeps them),
    /// telling `on_pruned` what each tick deleted.
    #[must_use]
    pub fn with_readings_retention(mut self, days: u32, on_pruned: impl Fn(Pruned) + Send + 'static) -> Self {
        self.retention_ms = i64::from(days) * DAY_MS;
        self.on_pruned = Box::new(on_pruned);
        self
    }
}

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
/// Readings deleted per tick at most (a few milliseconds of work, benches/results/store.md): the
/// retention never holds up the records waiting to be applied, and at one tick a second still
/// deletes more than twice what 10,000 sites send (30-second real-time records of six factors).
const PRUNE_PER_TICK: usize = 5000;

impl Follower for StoreFollower {
    fn name(&self) -> &'static str {
        "store"
    }

    fn position(&mut self) -> Result<u64, FollowError> {
        Ok(self.store.applied_seq()?)
    }

    fn apply(&mut self, records: &[Interpreted]) -> Result<u64, FollowError> {
        let Some(last) = records.last() else { return self.position() };
        let applied = self.store.apply(records)?;
        (self.on_applied)(applied);
        Ok(last.record.seq)
    }

    fn tick(&mut self, now_ms: i64, _behind: u64) -> Result<u64, FollowError> {
        if self.retention_ms > 0 {
            // Whole hours: a pass that ends within the hour finds nothing more and the next waits.
            let before_ms = (now_ms - self.retention_ms).div_euclid(HOUR_MS) * HOUR_MS;
            let pruned = self.store.prune_readings(before_ms, PRUNE_PER_TICK, now_ms)?;
            if pruned != Pruned::default() {
                (self.on_pruned)(pruned);
                tracing::debug!(
                    readings = pruned.readings,
                    changed_copies = pruned.changed_copies,
                    "readings past the retention deleted"
                );
            }
        }
        self.position()
    }
}
