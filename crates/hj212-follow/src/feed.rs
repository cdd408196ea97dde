//! Where a follower's records come from: this node's archive by default (read ahead on a
//! thread of its own, sharing batches with the other followers), or another ordered log
//! given in [`crate::RunnerSettings::feed`] (a cluster node's store reads the cluster's
//! stream, hj212-cluster). Positions are that log's: the archive's sequence numbers, or the
//! stream's.

use tokio::sync::watch;

use crate::shared::Batch;

/// Records in order after a position.
pub trait Feed: Send {
    /// The position of the last record given (at the start: the position it was opened at).
    fn fed(&self) -> u64;

    /// The next records, positions at most `up_to`; an empty batch when none came in time.
    ///
    /// # Errors
    /// The log cannot be read: the runner backs off and opens the feed again.
    fn read(&mut self, up_to: u64) -> std::io::Result<Batch>;

    /// Hands back a batch the follower is done with (to be dropped off its thread).
    fn spent(&self, batch: Batch) {
        drop(batch);
    }
}

/// Opens a [`Feed`], again after each failure.
pub trait OpenFeed: Send + Sync + std::fmt::Debug {
    /// Records after `position`, at most `limit` a batch, for the follower `name`.
    ///
    /// # Errors
    /// The log cannot be reached (retried with the runner's backoff).
    fn open(&self, position: u64, limit: usize, name: &'static str) -> std::io::Result<Box<dyn Feed>>;

    /// The position of the newest record in the log: what the follower runs to.
    fn head(&self) -> watch::Receiver<u64>;
}
