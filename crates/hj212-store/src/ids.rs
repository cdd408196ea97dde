//! The integer keys that stand for a site's MN and a factor's code in the readings, the
//! ledger and the changed copies (`sites`, `factors`): a reading row keeps a small integer
//! instead of 24 characters of MN and 6 of factor code.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, Transaction};

use crate::StoreError;

/// The dictionaries' tables at the newest version (part of [`crate::SCHEMA`]).
pub(crate) const TABLES: &str = "
CREATE TABLE sites (id INTEGER PRIMARY KEY, mn TEXT NOT NULL UNIQUE);
CREATE TABLE factors (id INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE);
";

/// The ids the writer has looked up or added. Only ids of committed transactions may stay:
/// after a failed apply the caller drops them ([`Ids::forget`]), as the transaction that added
/// some of them was rolled back.
#[derive(Debug, Default)]
pub(crate) struct Ids {
    sites: HashMap<String, i64>,
    factors: HashMap<String, i64>,
}

/// Which dictionary.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Dictionary {
    Sites,
    Factors,
}

impl Ids {
    /// The id of `key` in `dictionary`, added within `tx` when new.
    pub(crate) fn get(&mut self, tx: &Transaction<'_>, dictionary: Dictionary, key: &str) -> Result<i64, StoreError> {
        let (map, insert, select) = match dictionary {
            Dictionary::Sites => {
                (&mut self.sites, "INSERT INTO sites (mn) VALUES (?1)", "SELECT id FROM sites WHERE mn = ?1")
            }
            Dictionary::Factors => (
                &mut self.factors,
                "INSERT INTO factors (code) VALUES (?1)",
                "SELECT id FROM factors WHERE code = ?1",
            ),
        };
        if let Some(id) = map.get(key) {
            return Ok(*id);
        }
        let found: Option<i64> = tx.prepare_cached(select)?.query_row([key], |row| row.get(0)).optional()?;
        let id = match found {
            Some(id) => id,
            None => {
                tx.prepare_cached(insert)?.execute([key])?;
                tx.last_insert_rowid()
            }
        };
        map.insert(key.to_owned(), id);
        Ok(id)
    }

    /// Drops every id looked up: some may come from a transaction that was rolled back.
    pub(crate) fn forget(&mut self) {
        self.sites.clear();
        self.factors.clear();
    }
}
