//! The integer keys that stand for text in the readings, the ledger and the changed copies: a
//! series is one site's records of one CN (`series`), a factor its code (`factors`). A reading
//! row keeps two small integers instead of 24 characters of MN, a CN and 6 characters of code.
//! The alert engine keys its tamper fingerprints the same way, in its own database.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// The dictionaries' tables at the newest version (part of [`crate::SCHEMA`]).
pub const TABLES: &str = "
CREATE TABLE series (id INTEGER PRIMARY KEY, mn TEXT NOT NULL, cn INTEGER NOT NULL, UNIQUE (mn, cn));
CREATE TABLE factors (id INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE);
";

/// The series of `?1` (MN) and `?2` (CN) in a query, NULL when there is none.
pub(crate) const SERIES_OF: &str = "(SELECT id FROM series WHERE mn = ?1 AND cn = ?2)";

/// The factor codes by id, for readers decoding rows (the dictionary is small: one row per
/// factor code ever stored).
#[derive(Debug)]
pub(crate) struct FactorCodes(HashMap<i64, String>);

impl FactorCodes {
    pub(crate) fn read(conn: &Connection) -> rusqlite::Result<Self> {
        let mut query = conn.prepare_cached("SELECT id, code FROM factors")?;
        let rows = query.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(Self(rows.collect::<Result<_, _>>()?))
    }

    /// The code of factor `id`; an error when the dictionary lacks it (the file was changed
    /// outside hj212d).
    pub(crate) fn code(&self, id: i64) -> rusqlite::Result<&str> {
        self.0.get(&id).map(String::as_str).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, Box::new(UnknownFactor(id)))
        })
    }
}

/// A reading names a factor id the `factors` table does not have.
#[derive(Debug, thiserror::Error)]
#[error("a reading names factor id {0}, which the factors table does not have")]
pub(crate) struct UnknownFactor(i64);

/// The ids the writer has looked up or added. Only ids of committed transactions may stay:
/// after a failed apply the caller drops them ([`Ids::forget`]), as the transaction that added
/// some of them was rolled back.
#[derive(Debug, Default)]
pub struct Ids {
    /// Per MN, the ids of its series by CN (a few each).
    series: HashMap<String, Vec<(u16, i64)>>,
    factors: HashMap<String, i64>,
}

impl Ids {
    /// The id of `mn`'s series of `cn`, added within `tx` when new.
    ///
    /// # Errors
    /// SQL errors.
    pub fn series(&mut self, tx: &Transaction<'_>, mn: &str, cn: u16) -> rusqlite::Result<i64> {
        if let Some((_, id)) = self.series.get(mn).and_then(|ids| ids.iter().find(|(c, _)| *c == cn)) {
            return Ok(*id);
        }
        let id = lookup(
            tx,
            "SELECT id FROM series WHERE mn = ?1 AND cn = ?2",
            "INSERT INTO series (mn, cn) VALUES (?1, ?2)",
            params![mn, cn],
        )?;
        self.series.entry(mn.to_owned()).or_default().push((cn, id));
        Ok(id)
    }

    /// The id of factor `code`, added within `tx` when new.
    ///
    /// # Errors
    /// SQL errors.
    pub fn factor(&mut self, tx: &Transaction<'_>, code: &str) -> rusqlite::Result<i64> {
        if let Some(id) = self.factors.get(code) {
            return Ok(*id);
        }
        let id = lookup(
            tx,
            "SELECT id FROM factors WHERE code = ?1",
            "INSERT INTO factors (code) VALUES (?1)",
            params![code],
        )?;
        self.factors.insert(code.to_owned(), id);
        Ok(id)
    }

    /// Drops every id looked up: some may come from a transaction that was rolled back.
    pub fn forget(&mut self) {
        self.series.clear();
        self.factors.clear();
    }
}

fn lookup(tx: &Transaction<'_>, select: &str, insert: &str, key: &[&dyn rusqlite::ToSql]) -> rusqlite::Result<i64> {
    let found: Option<i64> = tx.prepare_cached(select)?.query_row(key, |row| row.get(0)).optional()?;
    if let Some(id) = found {
        return Ok(id);
    }
    tx.prepare_cached(insert)?.execute(key)?;
    Ok(tx.last_insert_rowid())
}
