//! What the daily and monthly reports read from the store besides the rate evidence: the
//! periods' values of a factor, the Cou fields of the period records, when a site was heard,
//! and the visits.

use std::collections::HashSet;

use hj212_compliance::Range;
use rusqlite::params;

use crate::packed::{self, Receipt};
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
        let mut values = Vec::new();
        self.for_each_reading(mn, cn, range, |data_time_ms, _, entry, code| {
            let (avg, zs_avg, cou) = crate::readings::period_fields(entry.v);
            values.push(PeriodValue { factor: code.to_owned(), data_time_ms, avg, zs_avg, cou });
        })?;
        values.sort_by(|a, b| (&a.factor, a.data_time_ms).cmp(&(&b.factor, b.data_time_ms)));
        Ok(values)
    }

    /// How many `slot_ms` slots of `range` had at least one accepted record of `mn` arrive
    /// (any CN: real-time data, minute and hourly records, heartbeats are not stored).
    ///
    /// # Errors
    /// SQL errors; [`StoreError::ReadingsDeleted`] when the range reaches past the readings' retention.
    pub fn heard_slots(&self, mn: &str, range: Range, slot_ms: i64) -> Result<u64, StoreError> {
        self.check_kept(range)?;
        let slot_ms = slot_ms.max(1);
        // DataTime bounds first (the key), a day of slack for late records, then the receive time
        // of each reading (a factor a later record added has its own).
        let mut query = self.conn.prepare_cached(
            "SELECT data_time_ms, received, factors FROM readings
             WHERE series IN (SELECT id FROM series WHERE mn = ?1) AND data_time_ms >= ?2 - 86400000 AND data_time_ms < ?3",
        )?;
        let mut rows = query.query(params![mn, range.from_ms, range.to_ms])?;
        let mut slots = HashSet::new();
        while let Some(row) = rows.next()? {
            let (data_time_ms, received): (i64, i64) = (row.get(0)?, row.get(1)?);
            let row_receipt = Receipt { seq: 0, received };
            for entry in packed::entries_at(row, 2)? {
                let received_ms = data_time_ms + entry.receipt(row_receipt).received;
                if received_ms >= range.from_ms && received_ms < range.to_ms {
                    slots.insert((received_ms - range.from_ms) / slot_ms);
                }
            }
        }
        Ok(slots.len() as u64)
    }
}
