//! The outbox, as its consumers see it: pages of the `outbox` table in order, and each
//! consumer's delivery position. One outbox feeds several consumers (the MQTT publisher and
//! each `[[notify]]` channel); each keeps its own position in `outbox_consumers`, and a row is
//! deleted only once every registered consumer is past it. The daemon adapts it to the MQTT
//! publisher's trait, so this crate (and the offline auditor that reads alerts) carries no
//! MQTT client.
//!
//! Example: MQTT at 120 and a webhook down at 80: rows 81-120 stay for the webhook, MQTT reads
//! from 121. When the webhook comes back and delivers up to 120, rows up to 120 are deleted.

use std::path::Path;

use hj212_store::schema::Migration;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::AlertsError;

/// The MQTT publisher's name among the consumers (a `[[notify]]` channel may not take it).
pub const MQTT_CONSUMER: &str = "mqtt";

/// 3 -> 4: consumers with their own positions. Until then the MQTT publisher was the only
/// consumer and deleted what it delivered, so it starts just before the oldest row left.
pub(crate) const MIGRATION: Migration = Migration {
    change: "outbox consumers: MQTT and each notification channel keep their own delivery position",
    sql: "
CREATE TABLE outbox_consumers (name TEXT PRIMARY KEY, delivered_seq INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO outbox_consumers (name, delivered_seq) VALUES ('mqtt', COALESCE(
    (SELECT MIN(seq) - 1 FROM outbox),
    (SELECT seq FROM sqlite_sequence WHERE name = 'outbox'),
    0));
",
};

/// A message waiting for a consumer, in `seq` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub seq: u64,
    /// Below the configured topic prefix.
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// The outbox table of the alerts database, on its own connection, for one consumer (or for
/// none: a writer that only announces).
#[derive(Debug)]
pub struct SqliteOutbox {
    conn: Connection,
    consumer: Option<String>,
    /// The consumer's persisted position: everything up to it is delivered (or given up).
    position: u64,
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Makes `consumers` the set of consumers, as configured at this start: a consumer that is
/// new starts after the newest message (it is not sent the backlog of others); one that is no
/// longer configured is forgotten and holds no rows; rows every consumer has are deleted.
///
/// # Errors
/// [`AlertsError`] when the database cannot be opened or written.
pub fn register_consumers(path: &Path, consumers: &[&str]) -> Result<(), AlertsError> {
    let mut conn = crate::db::open(path)?;
    let tx = conn.transaction()?;
    let known: Vec<String> = {
        let mut query = tx.prepare("SELECT name FROM outbox_consumers")?;
        query.query_map([], |row| row.get(0))?.collect::<Result<_, _>>()?
    };
    for gone in known.iter().filter(|k| !consumers.contains(&k.as_str())) {
        tx.execute("DELETE FROM outbox_consumers WHERE name = ?1", [gone])?;
        tracing::info!(consumer = %gone, "outbox consumer no longer configured: its messages are not kept for it");
    }
    let newest = newest_seq(&tx)?;
    for name in consumers.iter().filter(|c| !known.iter().any(|k| k == *c)) {
        tx.execute(
            "INSERT INTO outbox_consumers (name, delivered_seq) VALUES (?1, ?2)",
            params![name, to_i64(newest)],
        )?;
    }
    prune(&tx)?;
    tx.commit()?;
    Ok(())
}

/// The newest seq ever queued (AUTOINCREMENT keeps it when the table is empty).
fn newest_seq(conn: &Connection) -> Result<u64, AlertsError> {
    let seq: Option<i64> =
        conn.query_row("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'", [], |row| row.get(0)).optional()?;
    Ok(seq.map_or(0, to_u64))
}

/// Deletes the rows every consumer has; with no consumer, every row (a consumer configured
/// later starts after the newest message, so nobody would ever read them).
fn prune(tx: &Transaction<'_>) -> Result<(), AlertsError> {
    tx.prepare_cached(
        "DELETE FROM outbox WHERE seq <= COALESCE((SELECT MIN(delivered_seq) FROM outbox_consumers),
                                                  (SELECT seq FROM sqlite_sequence WHERE name = 'outbox'))",
    )?
    .execute([])?;
    Ok(())
}

impl SqliteOutbox {
    /// Opens the alerts database at `path` to queue messages only (no consumer position).
    ///
    /// # Errors
    /// [`AlertsError::Open`] naming the file.
    pub fn open(path: &Path) -> Result<Self, AlertsError> {
        Ok(Self { conn: crate::db::open(path)?, consumer: None, position: 0 })
    }

    /// Opens the outbox for the consumer `name` (registered with [`register_consumers`]),
    /// at its persisted position.
    ///
    /// # Errors
    /// [`AlertsError::Open`] naming the file, [`AlertsError::Consumer`] when `name` is not
    /// registered.
    pub fn open_for(path: &Path, name: &str) -> Result<Self, AlertsError> {
        let conn = crate::db::open(path)?;
        // A consumer's position lost to a power cut only means messages sent again (at least
        // once), so its commits need not wait for the disk (WAL: synchronous is per connection).
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let position: Option<i64> = conn
            .query_row("SELECT delivered_seq FROM outbox_consumers WHERE name = ?1", [name], |row| row.get(0))
            .optional()?;
        let position = position.ok_or_else(|| AlertsError::Consumer(name.to_owned()))?;
        Ok(Self { conn, consumer: Some(name.to_owned()), position: to_u64(position) })
    }

    /// Queues one message from outside the alert engine (a report written), after the alerts
    /// queued so far; returns its seq.
    ///
    /// # Errors
    /// [`AlertsError::Sql`] when it cannot be written.
    pub fn announce(&mut self, topic: &str, payload: &[u8]) -> Result<u64, AlertsError> {
        let tx = self.conn.transaction()?;
        let seq = crate::db::enqueue(&tx, topic, payload, None)?;
        tx.commit()?;
        Ok(seq)
    }

    /// The consumer's persisted position (0 without a consumer).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Up to `limit` messages with seq > after (and past the consumer's position), in seq order.
    ///
    /// # Errors
    /// [`AlertsError::Sql`] when the table cannot be read.
    pub fn pending(&mut self, after: u64, limit: usize) -> Result<Vec<Queued>, AlertsError> {
        let mut query = self
            .conn
            .prepare_cached("SELECT seq, topic, payload, retain FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let after = to_i64(after.max(self.position));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = query.query_map([after, limit], |row| {
            Ok(Queued {
                seq: to_u64(row.get::<_, i64>(0)?),
                topic: row.get(1)?,
                payload: row.get(2)?,
                retain: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The consumer has every message with seq <= up_to: its position moves there (never
    /// back), and rows every consumer has are deleted.
    ///
    /// # Errors
    /// [`AlertsError::Consumer`] without a consumer; [`AlertsError::Sql`] when the table
    /// cannot be written.
    pub fn delivered(&mut self, up_to: u64) -> Result<(), AlertsError> {
        let Some(name) = &self.consumer else { return Err(AlertsError::Consumer(String::new())) };
        if up_to <= self.position {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        tx.prepare_cached("UPDATE outbox_consumers SET delivered_seq = MAX(delivered_seq, ?2) WHERE name = ?1")?
            .execute(params![name, to_i64(up_to)])?;
        prune(&tx)?;
        tx.commit()?;
        self.position = up_to;
        Ok(())
    }

    /// Messages after the consumer's position.
    ///
    /// # Errors
    /// [`AlertsError::Sql`] when the table cannot be read.
    pub fn backlog(&mut self) -> Result<u64, AlertsError> {
        let n: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM outbox WHERE seq > ?1")?
            .query_row([to_i64(self.position)], |row| row.get(0))?;
        Ok(to_u64(n))
    }

    /// Keeps at most `max` messages for this consumer: when more wait, the position moves to
    /// leave the newest `max`, and the number of messages given up is returned.
    ///
    /// # Errors
    /// As [`SqliteOutbox::delivered`].
    pub fn keep_newest(&mut self, max: u64) -> Result<u64, AlertsError> {
        let cut: Option<i64> = self
            .conn
            .prepare_cached("SELECT seq FROM outbox WHERE seq > ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2")?
            .query_row([to_i64(self.position), to_i64(max)], |row| row.get(0))
            .optional()?;
        let Some(cut) = cut.map(to_u64) else { return Ok(0) };
        let given_up: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM outbox WHERE seq > ?1 AND seq <= ?2")?
            .query_row([to_i64(self.position), to_i64(cut)], |row| row.get(0))?;
        self.delivered(cut)?;
        Ok(to_u64(given_up))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(path: &Path, n: usize) {
        let mut outbox = SqliteOutbox::open(path).unwrap();
        for i in 0..n {
            outbox.announce(&format!("alerts/{i}"), b"{}").unwrap();
        }
    }

    #[test]
    fn a_row_stays_until_every_consumer_has_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("alerts.sqlite");
        register_consumers(&db, &["mqtt", "duty"]).unwrap();
        queue(&db, 5);
        let (mut mqtt, mut duty) =
            (SqliteOutbox::open_for(&db, "mqtt").unwrap(), SqliteOutbox::open_for(&db, "duty").unwrap());
        mqtt.delivered(5).unwrap();
        assert_eq!(mqtt.pending(0, 10).unwrap().len(), 0, "MQTT goes on from its own position");
        assert_eq!(duty.pending(0, 10).unwrap().len(), 5, "the channel that is behind keeps its messages");
        duty.delivered(2).unwrap();
        assert_eq!(SqliteOutbox::open(&db).unwrap().pending(0, 10).unwrap().len(), 3, "rows both have are deleted");

        // Restart: positions persist; a channel removed from the config holds nothing.
        let duty = SqliteOutbox::open_for(&db, "duty").unwrap();
        assert_eq!(duty.position(), 2);
        register_consumers(&db, &["mqtt", "night"]).unwrap();
        assert_eq!(SqliteOutbox::open(&db).unwrap().pending(0, 10).unwrap().len(), 0);
        assert!(SqliteOutbox::open_for(&db, "duty").is_err(), "forgotten");
        assert_eq!(SqliteOutbox::open_for(&db, "night").unwrap().position(), 5, "a new channel starts at the newest");
        queue(&db, 2);
        register_consumers(&db, &[]).unwrap();
        assert!(SqliteOutbox::open(&db).unwrap().pending(0, 10).unwrap().is_empty(), "nobody left to read them");
    }

    #[test]
    fn a_consumer_keeps_at_most_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("alerts.sqlite");
        register_consumers(&db, &["duty"]).unwrap();
        queue(&db, 10);
        let mut duty = SqliteOutbox::open_for(&db, "duty").unwrap();
        assert_eq!(duty.keep_newest(4).unwrap(), 6, "the 6 oldest are given up");
        assert_eq!(duty.pending(0, 100).unwrap().iter().map(|m| m.seq).collect::<Vec<_>>(), [7, 8, 9, 10]);
        assert_eq!(duty.keep_newest(4).unwrap(), 0);
        assert_eq!(duty.backlog().unwrap(), 4);
    }
}
