//! The MQTT outbox, as the publisher sees it: pages of the `outbox` table in order, and
//! deletion of the acknowledged prefix. The daemon adapts it to the publisher's trait, so this
//! crate (and the offline auditor that reads alerts) carries no MQTT client.

use std::path::Path;

use rusqlite::Connection;

use crate::AlertsError;

/// A message waiting for the broker, in `seq` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub seq: u64,
    /// Below the configured topic prefix.
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// The outbox table of the alerts database, on its own connection.
#[derive(Debug)]
pub struct SqliteOutbox {
    conn: Connection,
}

impl SqliteOutbox {
    /// Opens the alerts database at `path` for the publisher.
    ///
    /// # Errors
    /// [`AlertsError::Open`] naming the file.
    pub fn open(path: &Path) -> Result<Self, AlertsError> {
        Ok(Self { conn: crate::db::open(path)? })
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
}

impl SqliteOutbox {
    /// Up to `limit` messages with seq > after, in seq order.
    ///
    /// # Errors
    /// [`AlertsError::Sql`] when the table cannot be read.
    pub fn pending(&mut self, after: u64, limit: usize) -> Result<Vec<Queued>, AlertsError> {
        let mut query = self
            .conn
            .prepare_cached("SELECT seq, topic, payload, retain FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = query.query_map([after, limit], |row| {
            Ok(Queued {
                seq: u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
                topic: row.get(1)?,
                payload: row.get(2)?,
                retain: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes every message with seq <= up_to: the broker acknowledged them all.
    ///
    /// # Errors
    /// [`AlertsError::Sql`] when the table cannot be written.
    pub fn delivered(&mut self, up_to: u64) -> Result<(), AlertsError> {
        self.conn
            .prepare_cached("DELETE FROM outbox WHERE seq <= ?1")?
            .execute([i64::try_from(up_to).unwrap_or(i64::MAX)])?;
        Ok(())
    }
}
