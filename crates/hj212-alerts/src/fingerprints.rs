//! Tamper fingerprints: for each factor of a recent minute, hourly or daily record, a hash of
//! its fields as first received, so that a resend with other values is an alert.
//!
//! One row per factor and DataTime, keyed by time first: live data appends at the end of the
//! table and the prune of old data deletes from its start (no index on the time). The site's
//! series (MN and CN) and the factor are integer ids ([`hj212_store::ids`]); the fingerprint is
//! the first 8 bytes of the SHA-256 of the normalised fields, 8 bytes instead of about 60 of
//! text. A cryptographic hash, because whoever resends is whoever would want a changed value to
//! pass as the same: a second text with the same 64 bits takes about 2^64 tries.

use hj212_store::ids::Ids;
use hj212_store::schema::Migration;
use rusqlite::functions::FunctionFlags;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use sha2::{Digest, Sha256};

/// The table at the newest version (with [`hj212_store::ids::TABLES`]).
pub(crate) const TABLE: &str = "
CREATE TABLE fingerprints (
    data_time_ms INTEGER NOT NULL, series INTEGER NOT NULL, factor INTEGER NOT NULL, fingerprint INTEGER NOT NULL,
    PRIMARY KEY (data_time_ms, series, factor)
) WITHOUT ROWID;
";

/// The SQL function [`MIGRATION`] hashes the stored texts with (see [`register_hash`]).
const HASH_FUNCTION: &str = "hj212_fingerprint";

/// 1 -> 2: text keys and fingerprints become integers; every fingerprint is kept.
pub(crate) const MIGRATION: Migration = Migration {
    change: "compact tamper fingerprints: series and factors as integer keys, the fields' SHA-256 (8 bytes) \
             instead of their text (the table is copied)",
    sql: "
CREATE TABLE series (id INTEGER PRIMARY KEY, mn TEXT NOT NULL, cn INTEGER NOT NULL, UNIQUE (mn, cn));
CREATE TABLE factors (id INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE);
INSERT INTO series (mn, cn) SELECT DISTINCT mn, cn FROM fingerprints;
INSERT INTO factors (code) SELECT DISTINCT factor FROM fingerprints;
CREATE TABLE fingerprints_v2 (
    data_time_ms INTEGER NOT NULL, series INTEGER NOT NULL, factor INTEGER NOT NULL, fingerprint INTEGER NOT NULL,
    PRIMARY KEY (data_time_ms, series, factor)
) WITHOUT ROWID;
INSERT INTO fingerprints_v2 SELECT f.data_time_ms, s.id, c.id, hj212_fingerprint(f.fingerprint)
    FROM fingerprints f JOIN series s ON s.mn = f.mn AND s.cn = f.cn JOIN factors c ON c.code = f.factor
    ORDER BY 1, 2, 3;
DROP TABLE fingerprints;
ALTER TABLE fingerprints_v2 RENAME TO fingerprints;
",
};

/// Makes [`HASH_FUNCTION`] callable on `conn` (for [`MIGRATION`]).
pub(crate) fn register_hash(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function(HASH_FUNCTION, 1, flags, |ctx| Ok(hash(&ctx.get::<String>(0)?)))
}

/// Whether a factor of a record was seen before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    New,
    /// Resent with the same values.
    Same,
    /// Resent with other values (possible tampering).
    Different,
}

/// A site's record of one CN at one DataTime, whose factors are fingerprinted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordKey<'a> {
    pub mn: &'a str,
    pub cn: u16,
    pub data_time_ms: i64,
}

/// The fingerprints with the ids they are keyed by. Ids added in a transaction that is rolled
/// back must be forgotten ([`Fingerprints::forget_ids`]).
#[derive(Debug, Default)]
pub(crate) struct Fingerprints {
    ids: Ids,
}

impl Fingerprints {
    /// Stores the fingerprint of `factor`'s fields (key, value) in `record`, or compares it
    /// with the one stored before.
    pub(crate) fn check<'f>(
        &mut self,
        tx: &Transaction<'_>,
        record: RecordKey<'_>,
        factor: &str,
        fields: impl Iterator<Item = (&'f str, &'f str)>,
    ) -> rusqlite::Result<Seen> {
        let series = self.ids.series(tx, record.mn, record.cn)?;
        let factor = self.ids.factor(tx, factor)?;
        let fingerprint = hash(&normalised(fields));
        let stored: Option<i64> = tx
            .prepare_cached(
                "SELECT fingerprint FROM fingerprints WHERE data_time_ms = ?1 AND series = ?2 AND factor = ?3",
            )?
            .query_row(params![record.data_time_ms, series, factor], |row| row.get(0))
            .optional()?;
        Ok(match stored {
            Some(stored) if stored == fingerprint => Seen::Same,
            Some(_) => Seen::Different,
            None => {
                tx.prepare_cached(
                    "INSERT INTO fingerprints (data_time_ms, series, factor, fingerprint) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![record.data_time_ms, series, factor, fingerprint])?;
                Seen::New
            }
        })
    }

    /// Drops the ids looked up: the transaction that added some of them was rolled back.
    pub(crate) fn forget_ids(&mut self) {
        self.ids.forget();
    }
}

/// Forgets fingerprints of data older than `before_ms` (resends that old are out of the repair window).
pub(crate) fn prune(tx: &Transaction<'_>, before_ms: i64) -> rusqlite::Result<usize> {
    tx.execute("DELETE FROM fingerprints WHERE data_time_ms < ?1", [before_ms])
}

/// A factor's fields, with numbers normalised ("12.30" and "12.3" are the same value). This
/// text is what the first release stored: [`MIGRATION`] hashes it into the same fingerprint.
fn normalised<'a>(fields: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut fields: Vec<String> = fields
        .map(|(key, value)| match value.trim().parse::<f64>() {
            Ok(number) => format!("{key}={number}"),
            Err(_) => format!("{key}={value}"),
        })
        .collect();
    fields.sort_unstable();
    fields.join(";")
}

/// The first 8 bytes of the text's SHA-256, as SQLite's integer.
fn hash(text: &str) -> i64 {
    let digest = Sha256::digest(text.as_bytes());
    let mut first = [0; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::{hash, normalised};

    #[test]
    fn fingerprints_ignore_order_and_number_formatting() {
        let a = normalised([("a21026-Avg", "12.30"), ("a21026-Flag", "N")].into_iter());
        let b = normalised([("a21026-Flag", "N"), ("a21026-Avg", "12.3")].into_iter());
        let c = normalised([("a21026-Flag", "N"), ("a21026-Avg", "12.4")].into_iter());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, "a21026-Avg=12.3;a21026-Flag=N", "the first release's text, which the migration hashes");
        assert_eq!(hash(&a), hash(&b));
        assert_ne!(hash(&a), hash(&c));
    }
}
