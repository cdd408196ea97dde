//! `commands.sqlite`: every command and its state, so the queue survives a restart and the
//! API can show finished commands. The archive holds the evidence (every command sent and
//! every answer); this file holds the state machine's progress. WAL with synchronous=NORMAL:
//! a power cut may lose the last transitions (never a queued command the API acknowledged,
//! whose insert is synchronous=FULL).

use std::path::Path;

use hj212_store::schema::{Migration, Schema};
use rusqlite::{Connection, OptionalExtension, params};

use crate::command::{Command, Origin, State};
use crate::spec::{CommandSpec, Exchange};

const TABLES: &str = "
CREATE TABLE commands (
    id INTEGER PRIMARY KEY,
    mn TEXT NOT NULL,
    cn INTEGER NOT NULL,
    cp TEXT NOT NULL,
    exchange TEXT NOT NULL,
    records_asked INTEGER NOT NULL,
    origin TEXT NOT NULL,
    state TEXT NOT NULL,
    qn TEXT,
    qn_rtn INTEGER,
    exe_rtn INTEGER,
    sends INTEGER NOT NULL,
    records INTEGER NOT NULL,
    reason TEXT,
    created_ms INTEGER NOT NULL,
    sent_ms INTEGER,
    accepted_ms INTEGER,
    finished_ms INTEGER,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX commands_by_site ON commands (mn, id);
CREATE INDEX commands_unfinished ON commands (state) WHERE state IN ('queued', 'sent', 'accepted');
";

/// The commands database, version 1.
pub const SCHEMA: Schema = Schema {
    file: "commands database",
    marker_table: "commands",
    create: &[TABLES],
    migrations: &[] as &[Migration],
    readable_since: 1,
};

/// Errors of the commands database, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error("commands database {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error(transparent)]
    Schema(#[from] hj212_store::SchemaError),
    #[error("commands database: {0}")]
    Sql(#[from] rusqlite::Error),
}

impl BookError {
    /// The schema problem, when the file is of a later release or not hj212d's.
    pub fn schema(&self) -> Option<&hj212_store::SchemaError> {
        match self {
            Self::Schema(error) => Some(error),
            _ => None,
        }
    }
}

/// The open database.
#[derive(Debug)]
pub struct Book {
    conn: Connection,
}

const COLUMNS: &str = "id, mn, cn, cp, exchange, records_asked, origin, state, qn, qn_rtn, exe_rtn, sends, records, \
                       reason, created_ms, sent_ms, accepted_ms, finished_ms, expires_ms";

impl Book {
    /// Opens (creating or migrating) the database at `path`.
    ///
    /// # Errors
    /// [`BookError`] naming the file.
    pub fn open(path: &Path) -> Result<Self, BookError> {
        let open_error = |source| BookError::Open { path: path.display().to_string(), source };
        let mut conn = Connection::open(path).map_err(open_error)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(open_error)?;
        SCHEMA.prepare(&mut conn, path)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(open_error)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(open_error)?;
        Ok(Self { conn })
    }

    /// The highest id given so far (0 for a new file).
    ///
    /// # Errors
    /// SQL errors.
    pub fn last_id(&self) -> Result<u64, BookError> {
        let id: Option<i64> = self.conn.query_row("SELECT MAX(id) FROM commands", [], |row| row.get(0))?;
        Ok(id.and_then(|id| u64::try_from(id).ok()).unwrap_or(0))
    }

    /// A new command, on disk before the API answers 202.
    ///
    /// # Errors
    /// SQL errors.
    pub fn insert(&self, command: &Command) -> Result<(), BookError> {
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        let result = self.save(command);
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        result
    }

    /// Writes a command's current state.
    ///
    /// # Errors
    /// SQL errors.
    pub fn save(&self, command: &Command) -> Result<(), BookError> {
        let cp = serde_json::to_string(&command.spec.cp).unwrap_or_else(|_| "[]".into());
        let exchange = match command.spec.exchange {
            Exchange::Request => "request",
            Exchange::Notification => "notification",
        };
        self.conn
            .prepare_cached(&format!(
                "INSERT OR REPLACE INTO commands ({COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
            ))?
            .execute(params![
                i64::try_from(command.id).unwrap_or(i64::MAX),
                command.mn,
                command.spec.cn,
                cp,
                exchange,
                i64::try_from(command.spec.records_asked).unwrap_or(i64::MAX),
                command.origin.as_str(),
                command.state.as_str(),
                command.qn,
                command.qn_rtn,
                command.exe_rtn,
                command.sends,
                i64::try_from(command.records).unwrap_or(i64::MAX),
                command.reason,
                command.created_ms,
                command.sent_ms,
                command.accepted_ms,
                command.finished_ms,
                command.expires_ms,
            ])?;
        Ok(())
    }

    /// One command by id.
    ///
    /// # Errors
    /// SQL errors.
    pub fn get(&self, id: u64) -> Result<Option<Command>, BookError> {
        let sql = format!("SELECT {COLUMNS} FROM commands WHERE id = ?1");
        Ok(self.conn.query_row(&sql, [i64::try_from(id).unwrap_or(i64::MAX)], row_to_command).optional()?)
    }

    /// A site's commands, newest first, at most `limit`.
    ///
    /// # Errors
    /// SQL errors.
    pub fn of_site(&self, mn: &str, limit: usize) -> Result<Vec<Command>, BookError> {
        let sql = format!("SELECT {COLUMNS} FROM commands WHERE mn = ?1 ORDER BY id DESC LIMIT ?2");
        let mut query = self.conn.prepare_cached(&sql)?;
        let rows = query.query_map(params![mn, i64::try_from(limit).unwrap_or(i64::MAX)], row_to_command)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Commands not finished when the daemon stopped, oldest first.
    ///
    /// # Errors
    /// SQL errors.
    pub fn unfinished(&self) -> Result<Vec<Command>, BookError> {
        let sql = format!("SELECT {COLUMNS} FROM commands WHERE state IN ('queued', 'sent', 'accepted') ORDER BY id");
        let mut query = self.conn.prepare(&sql)?;
        let rows = query.query_map([], row_to_command)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes a site's finished commands beyond the newest `keep`.
    ///
    /// # Errors
    /// SQL errors.
    pub fn prune(&self, mn: &str, keep: usize) -> Result<usize, BookError> {
        Ok(self.conn.execute(
            "DELETE FROM commands WHERE mn = ?1 AND state NOT IN ('queued', 'sent', 'accepted') AND id NOT IN
             (SELECT id FROM commands WHERE mn = ?1 ORDER BY id DESC LIMIT ?2)",
            params![mn, i64::try_from(keep).unwrap_or(i64::MAX)],
        )?)
    }
}

fn row_to_command(row: &rusqlite::Row<'_>) -> rusqlite::Result<Command> {
    let count = |i: usize| row.get::<_, i64>(i).map(|v| u64::try_from(v).unwrap_or(0));
    let cp: String = row.get(3)?;
    let exchange: String = row.get(4)?;
    let state: String = row.get(7)?;
    Ok(Command {
        id: count(0)?,
        mn: row.get(1)?,
        spec: CommandSpec {
            cn: row.get(2)?,
            cp: serde_json::from_str(&cp).unwrap_or_default(),
            exchange: if exchange == "notification" { Exchange::Notification } else { Exchange::Request },
            records_asked: count(5)?,
        },
        origin: Origin::parse(&row.get::<_, String>(6)?),
        state: State::parse(&state).unwrap_or(State::Failed),
        qn: row.get(8)?,
        qn_rtn: row.get(9)?,
        exe_rtn: row.get(10)?,
        sends: row.get(11)?,
        records: count(12)?,
        reason: row.get(13)?,
        created_ms: row.get(14)?,
        sent_ms: row.get(15)?,
        accepted_ms: row.get(16)?,
        finished_ms: row.get(17)?,
        expires_ms: row.get(18)?,
    })
}

/// The gap-recovery requests of `mn` created in `[from_ms, to_ms)`, by state: how many, and
/// the records they brought (for the reports; finished ones beyond `keep_finished_per_site`
/// are pruned and not counted).
///
/// # Errors
/// SQL errors.
pub fn recovery_requests(
    conn: &Connection,
    mn: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<(String, u64, u64)>, BookError> {
    let mut query = conn.prepare_cached(
        "SELECT state, COUNT(*), SUM(records) FROM commands
         WHERE mn = ?1 AND origin = 'recovery' AND created_ms >= ?2 AND created_ms < ?3 GROUP BY state ORDER BY state",
    )?;
    let rows = query.query_map(params![mn, from_ms, to_ms], |row| {
        let count: i64 = row.get(1)?;
        let records: Option<i64> = row.get(2)?;
        Ok((row.get(0)?, u64::try_from(count).unwrap_or(0), u64::try_from(records.unwrap_or(0)).unwrap_or(0)))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
