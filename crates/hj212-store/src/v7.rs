//! Schema version 7: one readings row per record (series, DataTime), its factors packed in one
//! column (`packed.rs`) instead of one row per factor. The migration packs each instant's rows
//! with an SQL aggregate ([`register_pack`]); every value, flag, record and receipt time is kept.

use rusqlite::Connection;
use rusqlite::functions::{Aggregate, Context, FunctionFlags};

use crate::packed::{self, Entry, Receipt};
use crate::schema::Migration;

/// The SQL aggregate [`MIGRATION`] packs an instant's rows with.
const PACK_FUNCTION: &str = "hj212_pack_readings";

/// 6 -> 7. The row of an instant is its earliest record's (`MIN(archive_seq)`; SQLite takes the
/// bare `received` from that row); factors of later records keep their own.
pub(crate) const MIGRATION: Migration = Migration {
    change: "one readings row per record, its factors packed in one column (the table is copied)",
    sql: "
CREATE TABLE readings_v7 (
    series INTEGER NOT NULL, data_time_ms INTEGER NOT NULL, archive_seq INTEGER NOT NULL,
    received INTEGER NOT NULL, factors BLOB NOT NULL,
    PRIMARY KEY (series, data_time_ms)
) WITHOUT ROWID;
INSERT INTO readings_v7 SELECT series, data_time_ms, MIN(archive_seq), received,
    hj212_pack_readings(factor, flag, v, archive_seq, received)
    FROM readings GROUP BY series, data_time_ms ORDER BY series, data_time_ms;
DROP TABLE readings;
ALTER TABLE readings_v7 RENAME TO readings;
",
};

/// Makes [`PACK_FUNCTION`] callable on `conn` (for [`MIGRATION`]).
pub(crate) fn register_pack(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_aggregate_function(PACK_FUNCTION, 5, flags, Pack)
}

/// One version-6 row: factor, flag, fields, record, receipt.
type OldRow = (i64, Option<String>, Option<String>, Receipt);

struct Pack;

impl Aggregate<Vec<OldRow>, Vec<u8>> for Pack {
    fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<Vec<OldRow>> {
        Ok(Vec::new())
    }

    fn step(&self, ctx: &mut Context<'_>, rows: &mut Vec<OldRow>) -> rusqlite::Result<()> {
        rows.push((ctx.get(0)?, ctx.get(1)?, ctx.get(2)?, Receipt { seq: ctx.get(3)?, received: ctx.get(4)? }));
        Ok(())
    }

    fn finalize(&self, _: &mut Context<'_>, rows: Option<Vec<OldRow>>) -> rusqlite::Result<Vec<u8>> {
        let rows = rows.unwrap_or_default();
        let mut column = Vec::new();
        let Some(first) = rows.iter().map(|row| row.3).min_by_key(|receipt| receipt.seq) else {
            return Ok(column);
        };
        for (factor, flag, v, receipt) in &rows {
            let own = (*receipt != first).then_some(*receipt);
            packed::push(&mut column, &Entry { factor: *factor, flag: flag.as_deref(), v: v.as_deref(), own });
        }
        Ok(column)
    }
}
