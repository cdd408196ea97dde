//! What operators and the daemon append besides frames, kept as the archive has it: downtime
//! marks, service visits and the sites' rules in force (each row keyed by its archive record).

use hj212_follow::{Interpreted, Meaning};
use rusqlite::{CachedStatement, Transaction, params};

use crate::StoreError;

/// Inserts within the apply transaction.
pub(crate) struct Appended<'t> {
    mark: CachedStatement<'t>,
    visit: CachedStatement<'t>,
    config: CachedStatement<'t>,
}

impl<'t> Appended<'t> {
    pub(crate) fn new(tx: &'t Transaction<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            mark: tx.prepare_cached(
                "INSERT OR IGNORE INTO marks (seq, mn, from_ms, to_ms, supersedes, created_ms, mark)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?,
            visit: tx.prepare_cached(
                "INSERT OR IGNORE INTO visits (seq, mn, arrived_ms, alert_id, supersedes, created_ms, visit)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?,
            config: tx.prepare_cached(
                "INSERT OR IGNORE INTO config_history (seq, mn, time_ms, hash, record) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?,
        })
    }

    /// Keeps `archived` if it is a mark, a visit or a site's rules; false for anything else.
    pub(crate) fn insert(&mut self, archived: &Interpreted) -> Result<bool, StoreError> {
        if !matches!(archived.meaning, Meaning::Mark(_) | Meaning::Visit(_) | Meaning::Config(_)) {
            // Every frame passes here: nothing is converted for it.
            return Ok(false);
        }
        let record = &archived.record;
        let seq = i64::try_from(record.seq).unwrap_or(i64::MAX);
        let json = String::from_utf8_lossy(&record.data);
        let supersedes = |s: Option<u64>| s.and_then(|s| i64::try_from(s).ok());
        match &archived.meaning {
            Meaning::Mark(mark) => self.mark.execute(params![
                seq,
                mark.mn,
                mark.from_ms,
                mark.to_ms,
                supersedes(mark.supersedes),
                record.time_ms,
                json
            ])?,
            Meaning::Visit(visit) => self.visit.execute(params![
                seq,
                visit.mn,
                visit.arrived_ms,
                visit.alert_id,
                supersedes(visit.supersedes),
                record.time_ms,
                json
            ])?,
            Meaning::Config(config) => {
                self.config.execute(params![seq, config.mn, record.time_ms, config.hash, json])?
            }
            _ => return Ok(false),
        };
        Ok(true)
    }
}
