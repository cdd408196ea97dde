//! Applying archive records: a data upload becomes one `readings` row (its factors packed, see
//! `packed.rs`), counted in the rate ledger; operators' records are kept as they are.
//!
//! First copy wins per (MN, CN, DataTime, factor): a later record of a DataTime already stored
//! adds the factors the row does not have yet (each with its own record and receipt time) and
//! lists the ones it sends with other values or flag as changed copies.

use std::ops::Range;

use hj212_follow::Interpreted;
use rusqlite::{CachedStatement, OptionalExtension, Transaction, params};

use crate::packed::{self, Entry, Receipt};
use crate::readings::{self, NewRow};
use crate::{Applied, Store, StoreError, appended, ledger};

impl Store {
    /// Applies archive records in one transaction: readings from accepted data frames are
    /// inserted, everything else is skipped, and the applied sequence number advances.
    ///
    /// # Errors
    /// SQL errors (nothing of the batch is applied then).
    pub fn apply(&mut self, records: &[Interpreted]) -> Result<Applied, StoreError> {
        let applied = self.apply_in_transaction(records);
        if applied.is_err() {
            self.ids.forget();
        }
        applied
    }

    fn apply_in_transaction(&mut self, records: &[Interpreted]) -> Result<Applied, StoreError> {
        let Some(last) = records.last() else {
            return Ok(Applied::default());
        };
        let tx = self.conn.transaction()?;
        let mut applied = Applied { records: records.len(), ..Applied::default() };
        {
            let mut rows = RowWriter::new(&tx)?;
            let mut ledger = ledger::LedgerWriter::new(&tx)?;
            let mut operator_records = appended::Appended::new(&tx)?;
            for archived in records {
                if operator_records.insert(archived)? {
                    continue;
                }
                let mut record = readings::rows_of(archived).peekable();
                let Some(first) = record.peek() else { continue };
                let series = self.ids.series(&tx, first.mn, first.cn)?;
                let key = RowKey {
                    series,
                    data_time_ms: first.data_time_ms,
                    first: Receipt {
                        seq: i64::try_from(first.archive_seq).unwrap_or(i64::MAX),
                        received: first.received_ms - first.data_time_ms,
                    },
                };
                rows.start();
                for r in record {
                    let factor = self.ids.factor(&tx, r.factor)?;
                    ledger.add(&r, series, factor)?;
                    rows.add(&r, factor);
                }
                rows.finish(&key, &mut applied)?;
            }
        }
        tx.execute(
            "INSERT INTO store_state (key, value) VALUES ('applied_seq', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [i64::try_from(last.record.seq).unwrap_or(i64::MAX)],
        )?;
        tx.commit()?;
        Ok(applied)
    }
}

/// The row of one record: its series, DataTime and the record's receipt.
struct RowKey {
    series: i64,
    data_time_ms: i64,
    first: Receipt,
}

/// One factor of the record being applied, its fields written out.
struct Pending<'r> {
    factor: i64,
    flag: Option<&'r str>,
    /// Where its fields are in [`RowWriter::fields`].
    fields: Option<Range<usize>>,
}

impl Pending<'_> {
    /// Its fields, given [`RowWriter::fields`].
    fn fields_in<'f>(&self, fields: &'f str) -> Option<&'f str> {
        self.fields.clone().and_then(|range| fields.get(range))
    }
}

/// Writes a record's row within the apply transaction, reusing its buffers.
struct RowWriter<'t, 'r> {
    insert: CachedStatement<'t>,
    select: CachedStatement<'t>,
    update: CachedStatement<'t>,
    changed_copy: CachedStatement<'t>,
    pending: Vec<Pending<'r>>,
    /// The pending factors' fields, one after another.
    fields: String,
    column: Vec<u8>,
    field: String,
}

impl<'t, 'r> RowWriter<'t, 'r> {
    fn new(tx: &'t Transaction<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            insert: tx.prepare_cached(
                "INSERT OR IGNORE INTO readings (series, data_time_ms, archive_seq, received, factors)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?,
            select: tx.prepare_cached(
                "SELECT archive_seq, received, factors FROM readings WHERE series = ?1 AND data_time_ms = ?2",
            )?,
            update: tx.prepare_cached("UPDATE readings SET factors = ?3 WHERE series = ?1 AND data_time_ms = ?2")?,
            changed_copy: tx.prepare_cached(
                "INSERT OR IGNORE INTO changed_copies (archive_seq, factor, first_seq, data_time_ms)
                 VALUES (?1, ?2, ?3, ?4)",
            )?,
            pending: Vec::new(),
            fields: String::new(),
            column: Vec::new(),
            field: String::new(),
        })
    }

    fn start(&mut self) {
        self.pending.clear();
        self.fields.clear();
    }

    fn add(&mut self, r: &NewRow<'r>, factor: i64) {
        let has_fields = r.write(&mut self.field);
        let fields = has_fields.then(|| {
            let at = self.fields.len();
            self.fields.push_str(&self.field);
            at..self.fields.len()
        });
        self.pending.push(Pending { factor, flag: r.flag, fields });
    }

    /// Inserts the record's row, or merges it into the row of an earlier record of that DataTime.
    fn finish(&mut self, key: &RowKey, applied: &mut Applied) -> Result<(), StoreError> {
        self.column.clear();
        for pending in &self.pending {
            let entry =
                Entry { factor: pending.factor, flag: pending.flag, v: pending.fields_in(&self.fields), own: None };
            packed::push(&mut self.column, &entry);
        }
        let inserted = self.insert.execute(params![
            key.series,
            key.data_time_ms,
            key.first.seq,
            key.first.received,
            self.column
        ])?;
        if inserted == 1 {
            applied.rows += self.pending.len();
            return Ok(());
        }
        self.merge(key, applied)
    }

    /// The row exists: factors it lacks are added with this record's receipt; the others are
    /// duplicates, changed copies when their values or flag differ from the stored ones.
    fn merge(&mut self, key: &RowKey, applied: &mut Applied) -> Result<(), StoreError> {
        let stored: Option<(i64, i64, Vec<u8>)> = self
            .select
            .query_row(params![key.series, key.data_time_ms], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .optional()?;
        let Some((seq, received, column)) = stored else { return Ok(()) };
        let row = Receipt { seq, received };
        let existing: Vec<Entry<'_>> = packed::entries(&column).collect::<Result<_, _>>().map_err(|corrupt| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Blob, Box::new(corrupt))
        })?;
        let mut merged = column.clone();
        let mut added = false;
        for pending in &self.pending {
            let fields = pending.fields_in(&self.fields);
            if let Some(first) = existing.iter().find(|e| e.factor == pending.factor) {
                applied.duplicates += 1;
                if readings::values_of(first.v) != readings::values_of(fields) || first.flag != pending.flag {
                    let params = params![key.first.seq, pending.factor, first.receipt(row).seq, key.data_time_ms];
                    self.changed_copy.execute(params)?;
                }
            } else {
                applied.rows += 1;
                added = true;
                let own = (key.first != row).then_some(key.first);
                packed::push(&mut merged, &Entry { factor: pending.factor, flag: pending.flag, v: fields, own });
            }
        }
        if added {
            self.update.execute(params![key.series, key.data_time_ms, merged])?;
        }
        Ok(())
    }
}
