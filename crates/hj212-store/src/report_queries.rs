//! What the daily and monthly reports read from the store besides the rate evidence: the
//! periods' values of a factor, the Cou fields of the period records, when a site was heard,
//! and the visits.

use hj212_compliance::Range;
use rusqlite::params;

use crate::{Store, StoreError};

/// One factor's value in one period record.
#[derive(Debug, Clone, PartialEq)]
pub struct PeriodValue {
    pub factor: String,
    pub data_time_ms: i64,
    /// The Avg field as sent, and its converted (Zs) form when the logger sent one.
    pub avg: Option<String>,
    pub zs_avg: Option<String>,
    /// The Cou (emission amount over the period) field as sent.
    pub cou: Option<String>,
}

impl Store {
    /// Every factor's values in `mn`'s `cn` records with DataTime in `range` (first copy of each).
    ///
    /// # Errors
    /// SQL errors; [`StoreError::ReadingsDeleted`] when the range reaches past the readings' retention.
    pub fn period_values(&self, mn: &str, cn: u16, range: Range) -> Result<Vec<PeriodValue>, StoreError> {
        self.check_kept(range)?;
        let mut query = self.conn.prepare_cached(
            "SELECT f.code, r.data_time_ms, r.v FROM readings r JOIN factors f ON f.id = r.factor
             WHERE r.series = (SELECT id FROM series WHERE mn = ?1 AND cn = ?2) AND r.data_time_ms >= ?3
               AND r.data_time_ms < ?4 ORDER BY f.code, r.data_time_ms",
        )?;
        let rows = query.query_map(params![mn, cn, range.from_ms, range.to_ms], |row| {
            let (avg, zs_avg, cou) = crate::readings::period_fields(crate::readings::text_at(row, 2)?);
            Ok(PeriodValue { factor: row.get(0)?, data_time_ms: row.get(1)?, avg, zs_avg, cou })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many `slot_ms` slots of `range` had at least one accepted record of `mn` arrive
    /// (any CN: real-time data, minute and hourly records, heartbeats are not stored).
    ///
    /// # Errors
    /// SQL errors; [`StoreError::ReadingsDeleted`] when the range reaches past the readings' retention.
    pub fn heard_slots(&self, mn: &str, range: Range, slot_ms: i64) -> Result<u64, StoreError> {
        self.check_kept(range)?;
        // DataTime bounds first (the key), a day of slack for late records, then the receive time.
        let mut query = self.conn.prepare_cached(
            "SELECT COUNT(DISTINCT (data_time_ms + received - ?2) / ?4) FROM readings
             WHERE series IN (SELECT id FROM series WHERE mn = ?1) AND data_time_ms >= ?2 - 86400000 AND data_time_ms < ?3
               AND data_time_ms + received >= ?2 AND data_time_ms + received < ?3",
        )?;
        let count: i64 = query.query_row(params![mn, range.from_ms, range.to_ms, slot_ms.max(1)], |row| row.get(0))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
