//! The embedded default store: readings (one row per MN, CN and DataTime, holding every
//! factor of that record) in SQLite, materialised from the archive. The archive is the source of truth: the store
//! remembers the last archive sequence number it applied and catches up from there, so it
//! may lag (and be rebuilt) but never loses an acknowledged reading.

mod appended;
mod apply;
mod bound;
mod feed;
mod history;
pub mod ids;
mod ledger;
mod mark_view;
mod packed;
mod rate;
mod readings;
mod report_queries;
mod retention;
pub mod schema;
mod source;
mod v5;
mod v7;
mod visits;

use std::path::Path;

use ids::SERIES_OF;
use rusqlite::{Connection, OptionalExtension, params};

pub use bound::parse_bound;
pub use feed::StoreFollower;
pub use history::{Stretch, config_records};
pub use hj212_follow::MarkRequest;
pub use hj212_follow::VisitRequest;
pub use rate::{CSV_HEADER, Evidence, MarkRecord, config_hash, rules_for, rules_with_basis, summary_json};
pub use readings::Reading;
pub use report_queries::PeriodValue;
pub use retention::Pruned;
pub use schema::SchemaError;
pub use source::ARCHIVE_SOURCE;
pub use visits::VisitRecord;

/// The store cannot be opened or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("store database {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error("store database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("reading the archive: {0}")]
    Archive(#[from] std::io::Error),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// The range reaches back past `[store] readings_retention_days`.
    #[error(
        "the store's readings with DataTime before {} were deleted ([store] readings_retention_days): rates of \
         whole days before it come from the ledger (GET /api/v1/rates); for the lists and the values, rebuild a store \
         from the archive (hj212-audit rebuild-ledger --out FILE) and ask it (hj212-audit rate --store FILE)",
        hj212_proto::time::BeijingTime::from_unix_millis(*before_ms).to_rfc3339()
    )]
    ReadingsDeleted { before_ms: i64 },
    /// Fed from a source other than the one it was built from (`[cluster] store_from`
    /// changed): its positions would mean other records.
    #[error(
        "the store was built from {held} and is now to be fed from {wanted}: its positions name records of the \
         other; move store.sqlite aside (it is rebuilt from the new source), or set [cluster] store_from back"
    )]
    OtherSource { held: String, wanted: String },
}

impl StoreError {
    /// The schema problem, when the file's version is not one this build can use.
    #[must_use]
    pub fn schema(&self) -> Option<&SchemaError> {
        match self {
            Self::Schema(e) => Some(e),
            _ => None,
        }
    }
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Archive records looked at.
    pub records: usize,
    /// Reading rows inserted.
    pub rows: usize,
    /// Rows not inserted because that (MN, CN, DataTime, factor) was already stored.
    pub duplicates: usize,
}

/// The store's tables at the newest version (with [`ids::TABLES`] and [`ledger::TABLES`]).
const TABLES: &str = "
-- Keyed by the instant: one B-tree serves both the first-copy rule and the time ranges the
-- rates read (a second index on the time cost the store 40% of its insert rate). One row per
-- record: its factors packed in one column (packed.rs), a sixth of the rows of one per factor.
CREATE TABLE readings (
    series INTEGER NOT NULL,        -- series.id: the site (MN) and CN
    data_time_ms INTEGER NOT NULL,  -- DataTime (Beijing time as sent), Unix milliseconds (UTC)
    archive_seq INTEGER NOT NULL,   -- the archive record this row came from
    received INTEGER NOT NULL,      -- receipt time minus data_time_ms, milliseconds
    factors BLOB NOT NULL,          -- per factor: id, flag, the fields as sent (readings.rs), and the
                                    -- record and receipt of a factor a later record added (packed.rs)
    PRIMARY KEY (series, data_time_ms)
) WITHOUT ROWID;
CREATE TABLE marks (
    seq INTEGER PRIMARY KEY,        -- the archive record of the mark
    mn TEXT NOT NULL,
    from_ms INTEGER NOT NULL,
    to_ms INTEGER NOT NULL,
    supersedes INTEGER,
    created_ms INTEGER NOT NULL,
    mark TEXT NOT NULL              -- the mark as submitted (JSON)
);
CREATE TABLE store_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE visits (
    seq INTEGER PRIMARY KEY,        -- the archive record of the visit
    mn TEXT NOT NULL,
    arrived_ms INTEGER NOT NULL,
    alert_id TEXT,
    supersedes INTEGER,
    created_ms INTEGER NOT NULL,
    visit TEXT NOT NULL             -- the visit as submitted (JSON)
);
CREATE INDEX visits_by_site ON visits (mn, arrived_ms);
CREATE TABLE config_history (
    seq INTEGER PRIMARY KEY,        -- the archive record of a site's rules
    mn TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    hash TEXT NOT NULL,
    record TEXT NOT NULL            -- the rules as archived (JSON)
);
CREATE INDEX config_history_by_site ON config_history (mn, seq);
-- Changed copies: a factor of an accepted record whose (mn, cn, data_time, factor) was already
-- stored from an earlier record, with other values or flag. The evidence keeps the first copy;
-- readers that show values (the time-series sink) ask here so they show the same one.
CREATE TABLE changed_copies (
    archive_seq INTEGER NOT NULL,   -- the record of the later copy
    factor INTEGER NOT NULL,        -- factors.id
    first_seq INTEGER NOT NULL,     -- the record whose copy is stored
    data_time_ms INTEGER NOT NULL,  -- their DataTime: deleted with the readings (readings_retention_days)
    PRIMARY KEY (archive_seq, factor)
) WITHOUT ROWID;
";

/// The store database: version 1 is the first release's (no `user_version`), version 2
/// adds `changed_copies`, version 3 keys readings by their instant, version 4 adds `visits` and
/// `config_history`, version 5 makes the readings compact (integer keys for MN and factor, see
/// `v5.rs`), version 6 keys the rate ledger by time before factor, version 7 packs a record's
/// factors in one row (`v7.rs`).
pub const SCHEMA: schema::Schema = schema::Schema {
    file: "store database",
    marker_table: "readings",
    create: &[ids::TABLES, TABLES, ledger::TABLES],
    migrations: &[
        schema::Migration {
            // 1 -> 2: the changed-copies table (first copy wins in the time-series sink). Records
            // applied before the upgrade are not listed in it: the earlier release wrote every
            // copy to the time-series database, and the few the sink had not written yet when it
            // stopped are written the same way. IF NOT EXISTS: a data dir of a development build
            // between that release and schema versions already has the table.
            change: "changed_copies table added",
            sql: "CREATE TABLE IF NOT EXISTS changed_copies (
            archive_seq INTEGER NOT NULL,
            factor TEXT NOT NULL,
            first_seq INTEGER NOT NULL,
            PRIMARY KEY (archive_seq, factor)
        ) WITHOUT ROWID;",
        },
        schema::Migration {
            // 2 -> 3: readings keyed by (mn, cn, data_time_ms, factor), the time index dropped.
            // The table is copied once (about a minute per ten million readings on a small
            // machine; the daemon starts serving after it). Of two rows of one instant, the
            // earlier record's is kept: the first copy wins, as at insert.
            change: "readings keyed by their instant (time index dropped; the table is copied)",
            sql: "CREATE TABLE readings_v3 (
            mn TEXT NOT NULL, cn INTEGER NOT NULL, data_time TEXT NOT NULL, data_time_ms INTEGER NOT NULL,
            factor TEXT NOT NULL, rtd TEXT, min TEXT, avg TEXT, max TEXT, cou TEXT,
            zs_rtd TEXT, zs_min TEXT, zs_avg TEXT, zs_max TEXT, flag TEXT, eflag TEXT, sample_time TEXT,
            other TEXT, marks INTEGER NOT NULL, received_ms INTEGER NOT NULL, archive_seq INTEGER NOT NULL, st TEXT,
            PRIMARY KEY (mn, cn, data_time_ms, factor)
        ) WITHOUT ROWID;
        INSERT OR IGNORE INTO readings_v3 SELECT mn, cn, data_time, data_time_ms, factor, rtd, min, avg, max,
            cou, zs_rtd, zs_min, zs_avg, zs_max, flag, eflag, sample_time, other, marks, received_ms, archive_seq, st
            FROM readings ORDER BY mn, cn, data_time_ms, factor, archive_seq;
        DROP TABLE readings;
        ALTER TABLE readings_v3 RENAME TO readings;",
        },
        schema::Migration {
            // 3 -> 4: service visits and the config history (an earlier release archived neither).
            change: "visits and config_history tables added",
            sql: "CREATE TABLE visits (
            seq INTEGER PRIMARY KEY, mn TEXT NOT NULL, arrived_ms INTEGER NOT NULL, alert_id TEXT,
            supersedes INTEGER, created_ms INTEGER NOT NULL, visit TEXT NOT NULL
        );
        CREATE INDEX visits_by_site ON visits (mn, arrived_ms);
        CREATE TABLE config_history (
            seq INTEGER PRIMARY KEY, mn TEXT NOT NULL, time_ms INTEGER NOT NULL, hash TEXT NOT NULL, record TEXT NOT NULL
        );
        CREATE INDEX config_history_by_site ON config_history (mn, seq);",
        },
        v5::MIGRATION,
        ledger::MIGRATION,
        v7::MIGRATION,
    ],
    // Readers decode the packed rows of version 7.
    readable_since: 7,
};

/// Opens one of the daemon's SQLite files (WAL mode) for reading only, as the auditor's CLI
/// and other readers outside the daemon must: nothing is created or written in its directory.
///
/// While the daemon has the file open, its `-wal` and `-shm` files exist and the connection
/// shares them (it sees every committed transaction). Without a `-wal` file every change is
/// in the main file and nobody is writing: a plain read-only open would create `-wal` and
/// `-shm` files and leave them behind, so the file is opened `immutable` instead (no locks,
/// no side files). A daemon started during such a read writes to its own new WAL; only a
/// checkpoint in those moments could disturb the read (SQLite checkpoints after 1000 pages).
///
/// # Errors
/// SQLite errors, e.g. when the file does not exist or the path is not UTF-8.
pub fn read_only_connection(path: &Path) -> rusqlite::Result<Connection> {
    use rusqlite::OpenFlags;
    let text = path.to_str().ok_or_else(|| rusqlite::Error::InvalidPath(path.to_path_buf()))?;
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let live = Path::new(&wal).exists();
    // URI syntax: `%`, `?` and `#` in the path must be escaped.
    let escaped = text.replace('%', "%25").replace('?', "%3F").replace('#', "%23");
    let uri = format!("file:{escaped}?mode=ro{}", if live { "" } else { "&immutable=1" });
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(uri, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

/// The embedded store.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    /// The writer's dictionary ids (readers look them up in their queries).
    ids: ids::Ids,
    /// The readings' retention: where the sweep is and when it runs next (`retention.rs`).
    sweep: retention::Sweep,
}

impl Store {
    /// Opens (or creates) the database at `path`, migrating it to the newest schema version
    /// (see [`schema`]).
    ///
    /// # Errors
    /// [`StoreError::Open`] naming the file; [`StoreError::Schema`] when it was written by a
    /// later release (nothing is changed then), is not a store, or cannot be migrated.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_error = |source| StoreError::Open { path: path.display().to_string(), source };
        // rusqlite's busy timeout (5 s): a second opener waits for a migration in progress.
        let mut conn = Connection::open(path).map_err(open_error)?;
        v7::register_pack(&conn).map_err(open_error)?;
        SCHEMA.prepare(&mut conn, path)?;
        // WAL and synchronous=NORMAL: the archive is the durable copy; a store that loses
        // its last transactions in a power cut replays them from the archive.
        conn.pragma_update(None, "journal_mode", "WAL").map_err(open_error)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(open_error)?;
        // A 32 MiB page cache (SQLite's default is 2 MiB): the readings' hot leaves and inner
        // pages stay in memory (the load benchmark sustained 38,500 frames/s instead of 33,600).
        // A longer WAL between checkpoints was tried and dropped: its bigger checkpoint fsyncs
        // slowed the archive's (e2e acknowledgements -15%).
        conn.pragma_update(None, "cache_size", -32_768).map_err(open_error)?;
        Ok(Self { conn, ids: ids::Ids::default(), sweep: retention::Sweep::default() })
    }

    /// Opens a new database at `path` to be filled in one go (`hj212-audit rebuild-ledger`):
    /// nothing is fsynced (after a crash the file is rebuilt again, not used) and the page
    /// cache is 256 MiB, as the records of a fleet spread each transaction over every site's
    /// pages.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn open_bulk(path: &Path) -> Result<Self, StoreError> {
        let store = Self::open(path)?;
        let open_error = |source| StoreError::Open { path: path.display().to_string(), source };
        store.conn.pragma_update(None, "synchronous", "OFF").map_err(open_error)?;
        store.conn.pragma_update(None, "cache_size", -262_144).map_err(open_error)?;
        Ok(store)
    }

    /// Opens the database at `path` for reading only, creating and changing nothing in its
    /// directory, whether or not the daemon has it open (see [`read_only_connection`]).
    ///
    /// # Errors
    /// [`StoreError::Open`] naming the file, e.g. when it does not exist;
    /// [`StoreError::Schema`] when its schema version is not this build's (it is not migrated
    /// here: the message says what to do).
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let conn = read_only_connection(path)
            .map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
        SCHEMA.check(&conn, path)?;
        Ok(Self { conn, ids: ids::Ids::default(), sweep: retention::Sweep::default() })
    }

    /// The last archive sequence number applied (0 when none).
    ///
    /// # Errors
    /// SQL errors.
    pub fn applied_seq(&self) -> Result<u64, StoreError> {
        let value: Option<i64> = self
            .conn
            .query_row("SELECT value FROM store_state WHERE key = 'applied_seq'", [], |row| row.get(0))
            .optional()?;
        Ok(value.map_or(0, |v| u64::try_from(v).unwrap_or(0)))
    }

    /// Readings of one site, oldest DataTime first (for the API and tests).
    ///
    /// # Errors
    /// SQL errors.
    pub fn readings(&self, mn: &str) -> Result<Vec<Reading>, StoreError> {
        let codes = ids::FactorCodes::read(&self.conn)?;
        let mut query = self.conn.prepare(
            "SELECT s.cn, r.data_time_ms, r.archive_seq, r.received, r.factors FROM series s
             JOIN readings r ON r.series = s.id WHERE s.mn = ?1 ORDER BY r.data_time_ms, s.cn",
        )?;
        let mut rows = query.query([mn])?;
        let mut readings = Vec::new();
        while let Some(row) = rows.next()? {
            push_row_readings(row, mn, &codes, &mut readings)?;
        }
        Ok(readings)
    }

    /// The readings of `mn`'s newest record (real-time, minute, hourly or daily; by DataTime,
    /// real-time first on a tie): what a site shows as its latest values.
    ///
    /// # Errors
    /// SQL errors.
    pub fn latest_readings(&self, mn: &str) -> Result<Vec<Reading>, StoreError> {
        let codes = ids::FactorCodes::read(&self.conn)?;
        let mut query = self.conn.prepare_cached(&format!(
            "SELECT ?2, data_time_ms, archive_seq, received, factors FROM readings WHERE series = {SERIES_OF}
             ORDER BY data_time_ms DESC LIMIT 1"
        ))?;
        let mut newest: Vec<Reading> = Vec::new();
        for cn in [2011, 2051, 2061, 2031] {
            let mut rows = query.query(params![mn, cn])?;
            if let Some(row) = rows.next()? {
                let data_time_ms: i64 = row.get(1)?;
                if newest.first().is_none_or(|r| r.data_time_ms < data_time_ms) {
                    newest.clear();
                    push_row_readings(row, mn, &codes, &mut newest)?;
                }
            }
        }
        Ok(newest)
    }

    /// The changed copies among archive records `from_seq..=to_seq`: (record, factor) pairs
    /// whose values or flag differ from those stored from an earlier record (first copy wins).
    /// A later copy with the same values is not listed.
    ///
    /// # Errors
    /// SQL errors.
    pub fn changed_copies(&self, from_seq: u64, to_seq: u64) -> Result<Vec<(u64, String)>, StoreError> {
        let bound = |seq: u64| i64::try_from(seq).unwrap_or(i64::MAX);
        let mut query = self.conn.prepare_cached(
            "SELECT c.archive_seq, f.code FROM changed_copies c JOIN factors f ON f.id = c.factor
             WHERE c.archive_seq >= ?1 AND c.archive_seq <= ?2",
        )?;
        let rows = query.query_map(params![bound(from_seq), bound(to_seq)], |row| {
            Ok((u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0), row.get(1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest DataTime stored for `mn` among its real-time, minute, hourly and daily
    /// records: how far the logger has come (one index seek per CN).
    ///
    /// # Errors
    /// SQL errors.
    pub fn newest_data_time(&self, mn: &str) -> Result<Option<i64>, StoreError> {
        let mut query = self.conn.prepare_cached(&format!(
            "SELECT data_time_ms FROM readings WHERE series = {SERIES_OF} ORDER BY data_time_ms DESC LIMIT 1"
        ))?;
        let mut newest = None;
        for cn in [2011, 2051, 2061, 2031] {
            let time: Option<i64> = query.query_row(params![mn, cn], |row| row.get(0)).optional()?;
            newest = newest.max(time);
        }
        Ok(newest)
    }

    /// The archive records holding `mn`'s `cn` records with DataTime in `from_ms..=to_ms` (the
    /// first copy of each), oldest DataTime first, at most `limit`: what answers a history
    /// request from the archive.
    ///
    /// # Errors
    /// SQL errors.
    pub fn records_in(
        &self,
        mn: &str,
        cn: u16,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> Result<Vec<u64>, StoreError> {
        // A row's record is the first of its DataTime (records are applied in order).
        let mut query = self.conn.prepare_cached(&format!(
            "SELECT archive_seq FROM readings WHERE series = {SERIES_OF}
                 AND data_time_ms >= ?3 AND data_time_ms <= ?4 ORDER BY data_time_ms LIMIT ?5"
        ))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = query.query_map(params![mn, cn, from_ms, to_ms, limit], |row| row.get::<_, i64>(0))?;
        Ok(rows.map(|seq| seq.map(|s| u64::try_from(s).unwrap_or(0))).collect::<Result<_, _>>()?)
    }

    /// Readings stored (every factor of every row: reads the whole table).
    ///
    /// # Errors
    /// SQL errors.
    pub fn count(&self) -> Result<u64, StoreError> {
        let mut query = self.conn.prepare("SELECT factors FROM readings")?;
        let mut rows = query.query([])?;
        let mut count = 0;
        while let Some(row) = rows.next()? {
            count += packed::entries_at(row, 0)?.len() as u64;
        }
        Ok(count)
    }
}

/// Appends the readings of one `readings` row selected as (cn, data_time_ms, archive_seq,
/// received, factors), in factor order.
fn push_row_readings(
    row: &rusqlite::Row<'_>,
    mn: &str,
    codes: &ids::FactorCodes,
    readings: &mut Vec<Reading>,
) -> Result<(), StoreError> {
    let (cn, data_time_ms) = (row.get(0)?, row.get(1)?);
    let receipt = packed::Receipt { seq: row.get(2)?, received: row.get(3)? };
    let first = readings.len();
    for entry in packed::entries_at(row, 4)? {
        let code = codes.code(entry.factor)?;
        readings.push(Reading::of_entry(mn, cn, data_time_ms, receipt, &entry, code));
    }
    readings[first..].sort_by(|a: &Reading, b| a.factor.cmp(&b.factor));
    Ok(())
}
