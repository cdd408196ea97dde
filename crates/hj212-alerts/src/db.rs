//! The alerts database (`data_dir/alerts.sqlite`): alerts and their messages, the MQTT
//! outbox, each site's rule state and the archive position, all written in one
//! transaction per batch, so a crash never separates an alert from the state that raised it.

use std::path::Path;

use hj212_compliance::alert::{AlertState, FleetState, SiteState, Transition};
use hj212_store::schema::{Migration, Schema};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::{AlertsError, fingerprints};

/// The tables at the newest version.
const TABLES: &str = "
CREATE TABLE alerts (
    alert_id TEXT PRIMARY KEY,
    mn TEXT NOT NULL,
    kind TEXT NOT NULL,
    factor TEXT,
    severity TEXT NOT NULL,
    active INTEGER NOT NULL,          -- 1 until cleared
    opened_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    cleared_ms INTEGER,
    value REAL,
    limit_value REAL,
    data_time_ms INTEGER,
    messages INTEGER NOT NULL,        -- messages sent for it (raised, updates, cleared)
    acked_ms INTEGER,
    acked_by TEXT,
    ack_note TEXT
);
CREATE INDEX alerts_by_site ON alerts (mn, opened_ms);
CREATE INDEX alerts_active ON alerts (active, opened_ms);
CREATE TABLE alert_messages (
    message_id TEXT PRIMARY KEY,
    alert_id TEXT NOT NULL,
    state TEXT NOT NULL,
    detected_ms INTEGER NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL,
    status_of TEXT,                   -- the MN of a retained status message (superseded by the next)
    origin INTEGER                    -- the engine's position behind it; NULL: this node's own message
);
CREATE TABLE outbox_consumers (name TEXT PRIMARY KEY, delivered_seq INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE alert_sites (mn TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE alert_progress (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

/// What the engine follows (one row, key `source`): `archive`, or a cluster's stream.
const SOURCE_TABLE: &str = "CREATE TABLE alert_source (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;";

/// 4 -> 5: what each message came from, so that the nodes of a cluster deliver each once.
const ORIGIN_MIGRATION: Migration = Migration {
    change: "outbox origins and the engine's source (a cluster's nodes deliver each alert once)",
    sql: "ALTER TABLE outbox ADD COLUMN origin INTEGER;
CREATE TABLE alert_source (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;",
};

/// The fleet rule's state (one row, key `fleet`): the open fleet outage and the sites in it.
const FLEET_TABLE: &str = "CREATE TABLE alert_fleet (key TEXT PRIMARY KEY, state TEXT NOT NULL);";

/// 2 -> 3: the fleet-outage grouping's state (a new table; nothing else changes).
const FLEET_MIGRATION: Migration =
    Migration { change: "add the fleet-outage grouping's state (table alert_fleet)", sql: FLEET_TABLE };

/// The alerts database: version 1 is the first release's (which recorded no `user_version`),
/// version 2 keys the tamper fingerprints by integers, version 3 adds the fleet state, version 4
/// gives each outbox consumer (MQTT, each `[[notify]]` channel) its own delivery position,
/// version 5 records each message's origin and the engine's source.
pub const SCHEMA: Schema = Schema {
    file: "alerts database",
    marker_table: "alerts",
    create: &[TABLES, hj212_store::ids::TABLES, fingerprints::TABLE, FLEET_TABLE, SOURCE_TABLE],
    migrations: &[fingerprints::MIGRATION, FLEET_MIGRATION, crate::outbox::MIGRATION, ORIGIN_MIGRATION],
    // Versions 2 to 5 changed only the engine's own tables and the outbox's consumers:
    // readers read version 1 as it is.
    readable_since: 1,
};

/// Opens the database with WAL and a busy timeout (the admin API writes acks concurrently),
/// migrating it to the newest schema version.
///
/// # Errors
/// [`AlertsError::Open`] naming the file; [`AlertsError::Schema`] when it was written by a
/// later release (nothing is changed then), is not an alerts database, or cannot be migrated.
pub fn open(path: &Path) -> Result<Connection, AlertsError> {
    let open_error = |source| AlertsError::Open { path: path.display().to_string(), source };
    let mut conn = Connection::open(path).map_err(open_error)?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(open_error)?;
    fingerprints::register_hash(&conn).map_err(open_error)?;
    SCHEMA.prepare(&mut conn, path)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(open_error)?;
    // FULL: an outbox message may be published as soon as its transaction commits, so the
    // commit must survive a power cut (a replay would give clock-rule alerts new ids).
    conn.pragma_update(None, "synchronous", "FULL").map_err(open_error)?;
    // A 32 MiB page cache, as the store's (SQLite's default is 2 MiB): a batch from 1,000
    // sites rewrites 1,000 site states and their fingerprints' pages; with 2 MiB the pages
    // spilled to the WAL before the commit.
    conn.pragma_update(None, "cache_size", -32_768).map_err(open_error)?;
    Ok(conn)
}

/// The last archive sequence number the engine consumed (0 when none).
///
/// # Errors
/// SQL errors.
pub fn applied_seq(conn: &Connection) -> Result<u64, AlertsError> {
    let value: Option<i64> = conn
        .query_row("SELECT value FROM alert_progress WHERE key = 'applied_seq'", [], |row| row.get(0))
        .optional()?;
    Ok(value.and_then(|v| u64::try_from(v).ok()).unwrap_or(0))
}

/// What the engine was fed from: [`ARCHIVE_SOURCE`] unless a cluster's stream claimed it.
///
/// # Errors
/// SQL errors.
pub(crate) fn source(conn: &Connection) -> Result<String, AlertsError> {
    let held: Option<String> =
        conn.query_row("SELECT value FROM alert_source WHERE key = 'source'", [], |row| row.get(0)).optional()?;
    Ok(held.unwrap_or_else(|| ARCHIVE_SOURCE.to_owned()))
}

/// The source of an engine that no cluster's stream claimed.
pub const ARCHIVE_SOURCE: &str = "archive";

/// Makes `source` what the engine follows: a new database takes it; one built from another
/// source is refused (its positions and alert ids belong to that source).
///
/// # Errors
/// [`AlertsError::OtherSource`] naming both; SQL errors.
pub fn claim_source(path: &Path, source: &str) -> Result<(), AlertsError> {
    let conn = open(path)?;
    let held = self::source(&conn)?;
    if held != source && has_progress(&conn)? && applied_seq(&conn)? > 0 {
        return Err(AlertsError::OtherSource { held, wanted: source.to_owned() });
    }
    conn.execute(
        "INSERT INTO alert_source (key, value) VALUES ('source', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [source],
    )?;
    Ok(())
}

/// Whether the engine has ever recorded its position (false for a new database).
///
/// # Errors
/// SQL errors.
pub(crate) fn has_progress(conn: &Connection) -> Result<bool, AlertsError> {
    Ok(conn.query_row("SELECT 1 FROM alert_progress WHERE key = 'applied_seq'", [], |_| Ok(())).optional()?.is_some())
}

pub(crate) fn set_applied_seq(tx: &Transaction<'_>, seq: u64) -> Result<(), AlertsError> {
    tx.execute(
        "INSERT INTO alert_progress (key, value) VALUES ('applied_seq', ?1)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [i64::try_from(seq).unwrap_or(i64::MAX)],
    )?;
    Ok(())
}

/// Every site's persisted rule state.
///
/// # Errors
/// SQL errors, or a state that does not parse (named by MN).
pub(crate) fn site_states(conn: &Connection) -> Result<Vec<(String, SiteState)>, AlertsError> {
    let mut query = conn.prepare("SELECT mn, state FROM alert_sites")?;
    let rows = query.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))?;
    let mut states = Vec::new();
    for row in rows {
        let (mn, json) = row?;
        let state =
            serde_json::from_str(&json).map_err(|e| AlertsError::State { mn: mn.clone(), message: e.to_string() })?;
        states.push((mn, state));
    }
    Ok(states)
}

pub(crate) fn save_site(tx: &Transaction<'_>, mn: &str, state: &SiteState) -> Result<(), AlertsError> {
    let json =
        serde_json::to_string(state).map_err(|e| AlertsError::State { mn: mn.to_owned(), message: e.to_string() })?;
    tx.prepare_cached(
        "INSERT INTO alert_sites (mn, state) VALUES (?1, ?2) ON CONFLICT(mn) DO UPDATE SET state = excluded.state",
    )?
    .execute(params![mn, json])?;
    Ok(())
}

/// The fleet rule's persisted state, if any.
///
/// # Errors
/// SQL errors, or a state that does not parse.
pub(crate) fn fleet_state(conn: &Connection) -> Result<Option<FleetState>, AlertsError> {
    let json: Option<String> =
        conn.query_row("SELECT state FROM alert_fleet WHERE key = 'fleet'", [], |row| row.get(0)).optional()?;
    json.map(|json| {
        serde_json::from_str(&json).map_err(|e| AlertsError::State { mn: "fleet".to_owned(), message: e.to_string() })
    })
    .transpose()
}

pub(crate) fn save_fleet(tx: &Transaction<'_>, state: &FleetState) -> Result<(), AlertsError> {
    let json = serde_json::to_string(state)
        .map_err(|e| AlertsError::State { mn: "fleet".to_owned(), message: e.to_string() })?;
    tx.execute(
        "INSERT INTO alert_fleet (key, state) VALUES ('fleet', ?1) ON CONFLICT(key) DO UPDATE SET state = excluded.state",
        [json],
    )?;
    Ok(())
}

/// Records one transition; false when this message was already recorded (a replay).
pub(crate) fn record(tx: &Transaction<'_>, t: &Transition, payload: &str) -> Result<bool, AlertsError> {
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO alert_messages (message_id, alert_id, state, detected_ms, payload)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![t.message_id(), t.alert_id, t.state.as_str(), t.detected_ms, payload])?;
    if inserted == 0 {
        return Ok(false);
    }
    let cleared = (t.state == AlertState::Cleared).then_some(t.detected_ms);
    tx.prepare_cached(
        "INSERT INTO alerts (alert_id, mn, kind, factor, severity, active, opened_ms, updated_ms, cleared_ms,
                             value, limit_value, data_time_ms, messages)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT(alert_id) DO UPDATE SET
             active = excluded.active, updated_ms = excluded.updated_ms, cleared_ms = excluded.cleared_ms,
             value = excluded.value, limit_value = COALESCE(excluded.limit_value, alerts.limit_value),
             data_time_ms = COALESCE(excluded.data_time_ms, alerts.data_time_ms), messages = excluded.messages,
             factor = COALESCE(alerts.factor, excluded.factor)",
    )?
    .execute(params![
        t.alert_id,
        t.mn,
        t.kind.as_str(),
        t.factor,
        t.severity.as_str(),
        t.state != AlertState::Cleared,
        t.opened_ms,
        t.detected_ms,
        cleared,
        t.value,
        t.limit,
        t.data_time_ms,
        t.n,
    ])?;
    Ok(true)
}

/// A message for the outbox: `status_of` for a site's retained status, which supersedes its
/// older status messages still waiting (only the newest status matters; this bounds them to
/// one per site); `origin` for the engine's messages (see [`crate::ClusterDelivery`]).
pub(crate) struct Message<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub status_of: Option<&'a str>,
    pub origin: Option<u64>,
}

/// Who acknowledged which alert, when, and why.
#[derive(Debug, Clone, Copy)]
pub struct Acknowledgement<'a> {
    pub alert_id: &'a str,
    pub by: &'a str,
    pub note: &'a str,
    pub at_ms: i64,
}

/// Acknowledges an alert once (a second acknowledgement keeps the first). True when this one
/// took effect; false when the alert was acknowledged before or is unknown here.
pub(crate) fn acknowledge(conn: &Connection, ack: &Acknowledgement<'_>) -> Result<bool, AlertsError> {
    let changed = conn
        .prepare_cached(
            "UPDATE alerts SET acked_ms = ?2, acked_by = ?3, ack_note = ?4 WHERE alert_id = ?1 AND acked_ms IS NULL",
        )?
        .execute(params![ack.alert_id, ack.at_ms, ack.by, ack.note])?;
    Ok(changed > 0)
}

/// Queues a message for the broker and the notification channels; returns its seq.
pub(crate) fn enqueue(tx: &Transaction<'_>, message: &Message<'_>) -> Result<u64, AlertsError> {
    if let Some(mn) = message.status_of {
        tx.prepare_cached("DELETE FROM outbox WHERE status_of = ?1")?.execute([mn])?;
    }
    let origin = message.origin.map(|o| i64::try_from(o).unwrap_or(i64::MAX));
    tx.prepare_cached("INSERT INTO outbox (topic, payload, retain, status_of, origin) VALUES (?1, ?2, ?3, ?4, ?5)")?
        .execute(params![message.topic, message.payload, message.status_of.is_some(), message.status_of, origin])?;
    Ok(u64::try_from(tx.last_insert_rowid()).unwrap_or(0))
}

/// The active alerts of one site, for its retained status: (alert_id, kind, factor, severity, opened_ms).
pub(crate) fn active_of(tx: &Transaction<'_>, mn: &str) -> Result<Vec<serde_json::Value>, AlertsError> {
    let mut query = tx.prepare_cached(
        "SELECT alert_id, kind, factor, severity, opened_ms FROM alerts WHERE mn = ?1 AND active = 1 ORDER BY opened_ms",
    )?;
    let rows = query.query_map([mn], |row| {
        Ok(serde_json::json!({
            "alert_id": row.get::<_, String>(0)?,
            "kind": row.get::<_, String>(1)?,
            "factor": row.get::<_, Option<String>>(2)?,
            "severity": row.get::<_, String>(3)?,
            "opened_at": crate::payload::beijing(row.get(4)?),
        }))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Active alerts by kind (for the gauges at start).
///
/// # Errors
/// SQL errors.
pub(crate) fn active_counts(conn: &Connection) -> Result<Vec<(String, u64)>, AlertsError> {
    let mut query = conn.prepare("SELECT kind, COUNT(*) FROM alerts WHERE active = 1 GROUP BY kind")?;
    let rows = query.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))?;
    let mut counts = Vec::new();
    for row in rows {
        let (kind, n) = row?;
        counts.push((kind, u64::try_from(n).unwrap_or(0)));
    }
    Ok(counts)
}

/// Messages waiting for the broker.
///
/// # Errors
/// SQL errors.
pub(crate) fn outbox_depth(conn: &Connection) -> Result<u64, AlertsError> {
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM outbox", [], |row| row.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}
