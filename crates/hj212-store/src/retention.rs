//! The readings' retention (`[store] readings_retention_days`): readings whose DataTime is older
//! than it, and the changed copies of that time, are deleted a few thousand rows (records) at a time from
//! the store follower's tick. The rate ledger, marks, visits and config history stay: rates of
//! whole days past the retention are still summed from the ledger, and `hj212-audit
//! rebuild-ledger` rebuilds a store with every reading from the archive.

use rusqlite::{OptionalExtension, params};

use crate::{Store, StoreError, packed};

/// After a pass over every series that found nothing to delete, the next one waits this long.
const PASS_INTERVAL_MS: i64 = 3_600_000;
/// Series one call visits at most (a few index seeks each).
const SERIES_PER_CALL: usize = 2000;

/// Where the sweep is.
#[derive(Debug, Default)]
pub(crate) struct Sweep {
    /// The last series swept in this pass; 0 before the first.
    done: i64,
    /// Rows deleted in this pass.
    deleted: u64,
    /// No call sweeps before this (after a pass that found nothing to delete).
    next_pass_ms: i64,
}

/// What one call deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub readings: u64,
    pub changed_copies: u64,
}

impl Store {
    /// Deletes at most `budget` readings rows (one per record, with all its factors) whose
    /// DataTime is before `before_ms`, going on where the previous call stopped, and at
    /// the end of each pass the changed copies of that time. Once a pass finds nothing to
    /// delete, calls do nothing for an hour after `now_ms`.
    ///
    /// # Errors
    /// SQL errors (nothing of the call is deleted then).
    pub fn prune_readings(&mut self, before_ms: i64, budget: usize, now_ms: i64) -> Result<Pruned, StoreError> {
        let mut pruned = Pruned::default();
        if now_ms < self.sweep.next_pass_ms {
            return Ok(pruned);
        }
        let tx = self.conn.transaction()?;
        let mut left = i64::try_from(budget.max(1)).unwrap_or(i64::MAX);
        let (deleted, done, finished) = delete_old(&tx, self.sweep.done, before_ms, &mut left)?;
        pruned.readings = deleted;
        if finished {
            pruned.changed_copies = u64::try_from(tx.execute(
                "DELETE FROM changed_copies WHERE (archive_seq, factor) IN
                 (SELECT archive_seq, factor FROM changed_copies WHERE data_time_ms < ?1 LIMIT ?2)",
                params![before_ms, left.max(1)],
            )?)
            .unwrap_or(0);
        }
        if pruned.readings > 0 {
            // Every deleted reading has a DataTime before this: readers refuse ranges reaching it.
            tx.execute(
                "INSERT INTO store_state (key, value) VALUES ('readings_deleted_before', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = MAX(value, excluded.value)",
                [before_ms],
            )?;
        }
        tx.commit()?;
        self.sweep.deleted += pruned.readings + pruned.changed_copies;
        self.sweep.done = done;
        if finished {
            if self.sweep.deleted == 0 {
                self.sweep.next_pass_ms = now_ms + PASS_INTERVAL_MS;
            }
            self.sweep.done = 0;
            self.sweep.deleted = 0;
        }
        Ok(pruned)
    }
}

/// Deletes readings before `before_ms` series by series after `done`, until `left` rows are
/// deleted or [`SERIES_PER_CALL`] series were visited: (readings deleted, the last series done,
/// whether the pass reached the last series).
fn delete_old(
    tx: &rusqlite::Transaction<'_>,
    mut done: i64,
    before_ms: i64,
    left: &mut i64,
) -> Result<(u64, i64, bool), StoreError> {
    let mut next = tx.prepare_cached("SELECT id FROM series WHERE id > ?1 ORDER BY id LIMIT 1")?;
    // The oldest `left` rows (one per record), and no more: bounded work per call.
    let mut delete = tx.prepare_cached(
        "DELETE FROM readings WHERE series = ?1 AND data_time_ms < ?2 AND data_time_ms <= COALESCE(
            (SELECT data_time_ms FROM readings WHERE series = ?1 AND data_time_ms < ?2
             ORDER BY data_time_ms LIMIT 1 OFFSET ?3), ?2)
         RETURNING factors",
    )?;
    let mut total = 0;
    for _ in 0..SERIES_PER_CALL {
        let Some(series) = next.query_row([done], |row| row.get::<_, i64>(0)).optional()? else {
            return Ok((total, done, true));
        };
        let mut deleted = delete.query(params![series, before_ms, *left - 1])?;
        while let Some(row) = deleted.next()? {
            total += packed::entries_at(row, 0)?.len() as u64;
            *left -= 1;
        }
        if *left <= 0 {
            // The series may hold more: the next call starts on it again.
            return Ok((total, done, false));
        }
        done = series;
    }
    Ok((total, done, false))
}

impl Store {
    /// Refuses `range` when readings it covers may have been deleted by the retention: a figure
    /// from what is left would be wrong, not partial.
    pub(crate) fn check_kept(&self, range: hj212_compliance::Range) -> Result<(), StoreError> {
        let mut query =
            self.conn.prepare_cached("SELECT value FROM store_state WHERE key = 'readings_deleted_before'")?;
        match query.query_row([], |row| row.get::<_, i64>(0)).optional()? {
            Some(before_ms) if range.from_ms < before_ms => Err(StoreError::ReadingsDeleted { before_ms }),
            _ => Ok(()),
        }
    }
}
