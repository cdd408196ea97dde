//! The store as a follower of the archive (hj212-follow runs it): each batch of durable
//! records is applied in one transaction together with the position, so a restart resumes
//! exactly where the last committed batch ended. The "queue" between ingest and the store is
//! the archive on disk: bounded memory, and a store that falls behind (slow disk, a long
//! query) delays nothing upstream and catches up later.

use hj212_follow::{FollowError, Follower, Interpreted};

use crate::{Applied, Store};

/// The embedded store, fed by the follower runtime.
pub struct StoreFollower {
    store: Store,
    /// Told what each batch did (the daemon counts rows and duplicates).
    on_applied: Box<dyn Fn(Applied) + Send>,
}

impl std::fmt::Debug for StoreFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreFollower").field("store", &self.store).finish_non_exhaustive()
    }
}

impl StoreFollower {
    pub fn new(store: Store, on_applied: impl Fn(Applied) + Send + 'static) -> Self {
        Self { store, on_applied: Box::new(on_applied) }
    }
}

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
}
