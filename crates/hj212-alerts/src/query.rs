//! Reading and acknowledging stored alerts (the admin API and the audit CLI).

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

use crate::AlertsError;
pub use crate::db::Acknowledgement;
use crate::payload::beijing;

/// Which alerts to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only active ones (not cleared).
    pub active_only: bool,
    pub mn: Option<String>,
    /// Alerts overlapping [from, to): opened before `to` and not cleared before `from`.
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// At most this many, newest first.
    pub limit: usize,
}

/// Opens the alerts database for reading or acknowledging (the daemon's admin API).
///
/// # Errors
/// [`AlertsError::Open`] naming the file; [`AlertsError::Schema`] when its schema version is
/// not one this build can use.
pub fn open(path: &Path) -> Result<Connection, AlertsError> {
    crate::db::open(path)
}

/// Opens the alerts database for reading only, as the auditor's CLI must
/// ([`hj212_store::read_only_connection`]): nothing is created, written or migrated.
///
/// # Errors
/// [`AlertsError::Open`] naming the file; [`AlertsError::Schema`] when its schema version is
/// not this build's (the message says what to do).
pub fn open_read_only(path: &Path) -> Result<Connection, AlertsError> {
    let conn = hj212_store::read_only_connection(path)
        .map_err(|source| AlertsError::Open { path: path.display().to_string(), source })?;
    crate::db::SCHEMA.check(&conn, path)?;
    Ok(conn)
}

const COLUMNS: &str = "alert_id, mn, kind, factor, severity, active, opened_ms, updated_ms, cleared_ms, value,
                       limit_value, data_time_ms, messages, acked_ms, acked_by, ack_note";

fn row_json(row: &rusqlite::Row<'_>) -> rusqlite::Result<Value> {
    let time = |i: usize| -> rusqlite::Result<Option<String>> { Ok(row.get::<_, Option<i64>>(i)?.map(beijing)) };
    Ok(json!({
        "alert_id": row.get::<_, String>(0)?,
        "mn": row.get::<_, String>(1)?,
        "kind": row.get::<_, String>(2)?,
        "factor": row.get::<_, Option<String>>(3)?,
        "severity": row.get::<_, String>(4)?,
        "state": if row.get::<_, bool>(5)? { "active" } else { "cleared" },
        "opened_at": time(6)?,
        "updated_at": time(7)?,
        "cleared_at": time(8)?,
        "value": row.get::<_, Option<f64>>(9)?,
        "limit": row.get::<_, Option<f64>>(10)?,
        "data_time": time(11)?,
        "messages": row.get::<_, i64>(12)?,
        "acked_at": time(13)?,
        "acked_by": row.get::<_, Option<String>>(14)?,
        "ack_note": row.get::<_, Option<String>>(15)?,
    }))
}

/// Alerts matching `filter`, newest first.
///
/// # Errors
/// SQL errors.
pub fn list(conn: &Connection, filter: &Filter) -> Result<Vec<Value>, AlertsError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM alerts
         WHERE (?1 = 0 OR active = 1) AND (?2 IS NULL OR mn = ?2) AND (?3 IS NULL OR opened_ms < ?3)
           AND (?4 IS NULL OR cleared_ms IS NULL OR cleared_ms >= ?4)
         ORDER BY opened_ms DESC, alert_id LIMIT ?5"
    );
    let mut query = conn.prepare(&sql)?;
    let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
    let rows =
        query.query_map(params![filter.active_only, filter.mn, filter.to_ms, filter.from_ms, limit], row_json)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Acknowledges an alert (once: a second ack keeps the first): the alert, and whether this
/// acknowledgement took effect (to be archived). `None` when there is no such alert.
///
/// # Errors
/// SQL errors.
pub fn ack(conn: &Connection, ack: &Acknowledgement<'_>) -> Result<Option<(Value, bool)>, AlertsError> {
    let took_effect = crate::db::acknowledge(conn, ack)?;
    Ok(get(conn, ack.alert_id)?.map(|alert| (alert, took_effect)))
}

/// One alert's life, for the reports.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertLife {
    pub alert_id: String,
    pub kind: String,
    pub factor: Option<String>,
    pub opened_ms: i64,
    pub acked_ms: Option<i64>,
    pub cleared_ms: Option<i64>,
    pub value: Option<f64>,
    pub limit: Option<f64>,
}

/// The alerts of `mn` opened in `[from_ms, to_ms)`, oldest first.
///
/// # Errors
/// SQL errors.
pub fn opened_in(conn: &Connection, mn: &str, from_ms: i64, to_ms: i64) -> Result<Vec<AlertLife>, AlertsError> {
    let mut query = conn.prepare_cached(
        "SELECT alert_id, kind, factor, opened_ms, acked_ms, cleared_ms, value, limit_value FROM alerts
         WHERE mn = ?1 AND opened_ms >= ?2 AND opened_ms < ?3 ORDER BY opened_ms, alert_id",
    )?;
    let rows = query.query_map(params![mn, from_ms, to_ms], |row| {
        Ok(AlertLife {
            alert_id: row.get(0)?,
            kind: row.get(1)?,
            factor: row.get(2)?,
            opened_ms: row.get(3)?,
            acked_ms: row.get(4)?,
            cleared_ms: row.get(5)?,
            value: row.get(6)?,
            limit: row.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// When an alert of a site opened and was acknowledged, for service times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertTimes {
    pub mn: String,
    pub opened_ms: i64,
    pub acked_ms: Option<i64>,
}

/// The times of one alert. `None` when there is no such alert.
///
/// # Errors
/// SQL errors.
pub fn times(conn: &Connection, alert_id: &str) -> Result<Option<AlertTimes>, AlertsError> {
    let mut query = conn.prepare_cached("SELECT mn, opened_ms, acked_ms FROM alerts WHERE alert_id = ?1")?;
    let row = query
        .query_row([alert_id], |row| Ok(AlertTimes { mn: row.get(0)?, opened_ms: row.get(1)?, acked_ms: row.get(2)? }));
    Ok(row.optional()?)
}

/// One alert, as listed. `None` when there is no such alert.
///
/// # Errors
/// SQL errors.
pub fn get(conn: &Connection, alert_id: &str) -> Result<Option<Value>, AlertsError> {
    let sql = format!("SELECT {COLUMNS} FROM alerts WHERE alert_id = ?1");
    Ok(conn.query_row(&sql, [alert_id], row_json).optional()?)
}
