//! The MQTT outbox, as the publisher sees it: pages of the `outbox` table in order, and
//! deletion of the acknowledged prefix.

use std::path::Path;

use hj212_sink_mqtt::{Outbox, OutboxError, OutboxMessage};
use rusqlite::Connection;

use crate::AlertsError;

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
}

#[expect(clippy::needless_pass_by_value, reason = "used as map_err(outbox_error)")]
fn outbox_error(e: rusqlite::Error) -> OutboxError {
    OutboxError(e.to_string())
}

impl Outbox for SqliteOutbox {
    fn pending(&mut self, after: u64, limit: usize) -> Result<Vec<OutboxMessage>, OutboxError> {
        let mut query = self
            .conn
            .prepare_cached("SELECT seq, topic, payload, retain FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2")
            .map_err(outbox_error)?;
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = query
            .query_map([after, limit], |row| {
                Ok(OutboxMessage {
                    seq: u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
                    topic: row.get(1)?,
                    payload: row.get(2)?,
                    retain: row.get(3)?,
                })
            })
            .map_err(outbox_error)?;
        rows.collect::<Result<_, _>>().map_err(outbox_error)
    }

    fn delivered(&mut self, up_to: u64) -> Result<(), OutboxError> {
        self.conn
            .prepare_cached("DELETE FROM outbox WHERE seq <= ?1")
            .and_then(|mut s| s.execute([i64::try_from(up_to).unwrap_or(i64::MAX)]))
            .map(drop)
            .map_err(outbox_error)
    }
}
