//! The task that keeps the store caught up with the archive.
//!
//! Policy: the store reads the archive itself, in batches of at most `batch` records, so
//! the "queue" between them is the archive on disk: bounded memory, and a store that
//! falls behind (slow disk, long query) delays nothing upstream and catches up later.

use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use hj212_archive::{Follower, FollowerStatus};
use hj212_follow::Interpreted;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{Applied, Store, StoreError};

/// How the feed runs.
#[derive(Debug, Clone)]
pub struct FeedSettings {
    pub archive_dir: PathBuf,
    /// Records per transaction.
    pub batch: usize,
}

/// Applies durable archive records to the store until `shutdown`, then drains what is
/// durable and returns. `progress` is told (applied seq, lag, batch result) after each batch;
/// `status` shows the position and, while every retry fails, since when and why.
///
/// # Errors
/// The error that was being retried when `shutdown` came, or one that cannot be retried.
pub async fn run_feed(
    store: Store,
    settings: FeedSettings,
    mut durable: watch::Receiver<u64>,
    shutdown: CancellationToken,
    status: Arc<FollowerStatus>,
    progress: impl Fn(u64, u64, Applied) + Send + 'static,
) -> Result<(), StoreError> {
    let follower = Follower::new(&settings.archive_dir, store.applied_seq()? + 1);
    let mut feeder = Feeder { store, follower, batch: settings.batch.max(1) };
    let mut failures = 0u32;
    loop {
        let target = *durable.borrow_and_update();
        // SQLite and file reads block: run them off the async workers.
        let (back, result) = tokio::task::spawn_blocking(move || {
            let result = feeder.apply_available(target);
            (feeder, result)
        })
        .await
        .map_err(|e| StoreError::Archive(std::io::Error::other(e.to_string())))?;
        feeder = back;
        let applied = match result {
            Ok(applied) => {
                failures = 0;
                applied
            }
            Err(error) => {
                // Disk full, a locked database, an unreadable segment: retry from what the
                // store has committed, with a growing pause; the status and lag show the stall.
                status.failed(&error, hj212_archive::now_ms());
                failures += 1;
                let pause = Duration::from_secs(1 << failures.min(5));
                tracing::error!(%error, retry_in = ?pause, "embedded store feed failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(pause) => {},
                    () = shutdown.cancelled() => return Err(error),
                }
                feeder.follower = Follower::new(&settings.archive_dir, feeder.store.applied_seq()? + 1);
                continue;
            }
        };
        let applied_seq = feeder.follower.next_seq() - 1;
        status.applied(applied_seq);
        progress(applied_seq, target.saturating_sub(applied_seq), applied);
        if applied_seq < target {
            if applied.records == 0 {
                // Durable but not yet readable (should not happen): do not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            continue;
        }
        // Stop only when nothing more is durable than what was just applied.
        if shutdown.is_cancelled() && *durable.borrow() == target {
            return Ok(());
        }
        tokio::select! {
            changed = durable.changed() => if changed.is_err() { return Ok(()) },
            () = shutdown.cancelled() => {},
            // Belt and braces: a missed notification costs at most this delay.
            () = tokio::time::sleep(Duration::from_secs(1)) => {},
        }
    }
}

struct Feeder {
    store: Store,
    follower: Follower,
    batch: usize,
}

impl Feeder {
    fn apply_available(&mut self, target: u64) -> Result<Applied, StoreError> {
        let records = Interpreted::all(self.follower.read(target, self.batch)?);
        self.store.apply(&records)
    }
}
