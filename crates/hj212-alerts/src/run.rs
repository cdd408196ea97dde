//! The task that keeps the alert engine caught up with the archive and the clock.
//!
//! Like the store feed, it reads the archive itself, so the "queue" to it is the archive on
//! disk: bounded memory, and a slow database delays nothing upstream.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hj212_archive::FollowerStatus;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::process::Processor;
use crate::rules::RulesMap;
use crate::{AlertsError, metrics};

/// Archive records behind, at most, for the clock rules to run.
const CATCH_UP_MARGIN: u64 = 10_000;

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// `data_dir/alerts.sqlite`.
    pub db_path: PathBuf,
    pub archive_dir: PathBuf,
    /// Records per transaction.
    pub batch: usize,
    /// How often the clock rules (offline, record missing) run.
    pub tick: Duration,
    /// Queue messages for MQTT (a broker is configured).
    pub mqtt: bool,
    /// Tamper fingerprints are kept for data this recent (national repair window 10 days, with margin).
    pub fingerprint_days: u32,
}

/// Opens the alerts database (checked at start, before serving).
///
/// # Errors
/// [`AlertsError`] when the database cannot be opened or its state does not load.
pub fn applied_seq(settings: &AlertSettings) -> Result<u64, AlertsError> {
    crate::db::applied_seq(&crate::db::open(&settings.db_path)?)
}

/// Runs the engine until `shutdown`, then drains what is durable and returns. `newest`
/// is told the newest outbox sequence number (wakes the publisher).
///
/// # Errors
/// Only if the database cannot be opened; later errors are retried with a growing pause.
pub async fn run(
    settings: AlertSettings,
    mut rules: watch::Receiver<Arc<RulesMap>>,
    mut durable: watch::Receiver<u64>,
    newest: watch::Sender<u64>,
    status: Arc<FollowerStatus>,
    shutdown: CancellationToken,
) -> Result<(), AlertsError> {
    let (db_path, archive_dir) = (settings.db_path.clone(), settings.archive_dir.clone());
    let head = *durable.borrow();
    let mut processor =
        tokio::task::spawn_blocking(move || Processor::open(&db_path, &archive_dir, settings.mqtt, head))
            .await
            .map_err(|e| AlertsError::Task(e.to_string()))??;
    status.applied(processor.applied_seq());
    let mut next_tick = tokio::time::Instant::now();
    let mut failures = 0u32;
    loop {
        let target = *durable.borrow_and_update();
        let current = rules.borrow_and_update().clone();
        // The clock rules run on wall time: not while catching up on a backlog, when the
        // sites' last frames would all look old.
        let behind = target.saturating_sub(processor.applied_seq());
        let tick_due = tokio::time::Instant::now() >= next_tick && behind <= CATCH_UP_MARGIN;
        let now = hj212_archive::now_ms();
        let prune = tick_due.then(|| now - i64::from(settings.fingerprint_days) * 86_400_000);
        let batch = settings.batch.max(1);
        let (back, result) = tokio::task::spawn_blocking(move || {
            let result = processor.step(target, batch, tick_due.then_some(now), &current, prune);
            if result.is_err() {
                // Forget the in-memory changes of the failed step: retry from what is committed.
                let reload = processor.reload();
                return (processor, result.and_then(|s| reload.map(|()| s)));
            }
            (processor, result)
        })
        .await
        .map_err(|e| AlertsError::Task(e.to_string()))?;
        processor = back;
        let stepped = match result {
            Ok(stepped) => {
                failures = 0;
                stepped
            }
            Err(error) => {
                status.failed(&error, hj212_archive::now_ms());
                failures += 1;
                metrics::error();
                let pause = Duration::from_secs(1 << failures.min(5));
                tracing::error!(%error, retry_in = ?pause, "alert engine step failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(pause) => {},
                    () = shutdown.cancelled() => return Err(error),
                }
                continue;
            }
        };
        if tick_due {
            next_tick = tokio::time::Instant::now() + settings.tick;
            if let Ok(depth) = processor.outbox_depth() {
                metrics::outbox(depth);
            }
        }
        if stepped.newest_outbox > 0 {
            newest.send_replace(stepped.newest_outbox);
        }
        status.applied(stepped.applied_seq);
        metrics::lag(target.saturating_sub(stepped.applied_seq));
        if stepped.applied_seq < target {
            continue;
        }
        if shutdown.is_cancelled() && *durable.borrow() == target {
            return Ok(());
        }
        tokio::select! {
            changed = durable.changed() => if changed.is_err() { return Ok(()) },
            () = shutdown.cancelled() => {},
            () = tokio::time::sleep_until(next_tick) => {},
        }
    }
}
