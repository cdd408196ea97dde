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

/// The nodes of a cluster whose engines follow the same stream (`[cluster] alerts_from =
/// "stream"`) queue the same messages: one node at a time delivers them for each consumer,
/// and tells the others how far it got, as an origin (the stream position behind a message).
/// The others move past what it delivered without sending it; when it is gone, the next
/// node sends what is after that point. A node's own messages (its reports) carry no origin
/// and every node delivers them.
pub trait ClusterDelivery: Send {
    /// Whether this node delivers the cluster's messages now (renewing its hold when due).
    fn delivering(&mut self) -> bool;
    /// Every message whose origin is at or below this was delivered (by whichever node).
    ///
    /// # Errors
    /// The cluster cannot be asked.
    fn delivered_through(&mut self) -> Result<u64, String>;
    /// This node delivered every message whose origin is at or below `origin`.
    ///
    /// # Errors
    /// The cluster cannot be told, or another node holds the delivery now.
    fn confirm(&mut self, origin: u64) -> Result<(), String>;
}

/// Who sends a message queued from outside the engine, in a cluster (see [`ClusterDelivery`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every node sends its own (and a single node, its messages).
    Node,
    /// The node delivering the cluster's messages sends it; the others drop theirs (every
    /// node writes the same report from the same stream). One the delivering node had not
    /// sent when it died is not sent by the next.
    Cluster,
}

/// The origin of a [`Scope::Cluster`] message: no stream position, sent by whichever node
/// delivers when it comes.
const ANY_ORIGIN: u64 = 0;

/// The outbox table of the alerts database, on its own connection, for one consumer (or for
/// none: a writer that only announces).
pub struct SqliteOutbox {
    conn: Connection,
    consumer: Option<String>,
    /// The consumer's persisted position: everything up to it is delivered (or given up).
    position: u64,
    /// In a cluster: who delivers the messages with an origin.
    cluster: Option<Box<dyn ClusterDelivery>>,
    /// The origin this node last confirmed to the cluster.
    confirmed: u64,
}

impl std::fmt::Debug for SqliteOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteOutbox")
            .field("consumer", &self.consumer)
            .field("position", &self.position)
            .field("cluster", &self.cluster.is_some())
            .finish_non_exhaustive()
    }
}

/// A page row with its origin.
type Row = (Queued, Option<u64>);

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
        Ok(Self { conn: crate::db::open(path)?, consumer: None, position: 0, cluster: None, confirmed: 0 })
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
        Ok(Self { conn, consumer: Some(name.to_owned()), position: to_u64(position), cluster: None, confirmed: 0 })
    }

    /// Delivers the cluster's messages only while `cluster` says this node does.
    #[must_use]
    pub fn in_cluster(mut self, cluster: Box<dyn ClusterDelivery>) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// The consumer's name (empty without one).
    pub fn consumer(&self) -> &str {
        self.consumer.as_deref().unwrap_or_default()
    }

    /// Queues one message from outside the alert engine (a report written), after the alerts
    /// queued so far; returns its seq.
    ///
    /// # Errors
    /// [`AlertsError::Sql`] when it cannot be written.
    pub fn announce(&mut self, topic: &str, payload: &[u8], scope: Scope) -> Result<u64, AlertsError> {
        let tx = self.conn.transaction()?;
        let origin = match scope {
            Scope::Node => None,
            Scope::Cluster => Some(ANY_ORIGIN),
        };
        let message = crate::db::Message { topic, payload, status_of: None, origin };
        let seq = crate::db::enqueue(&tx, &message)?;
        tx.commit()?;
        Ok(seq)
    }

    /// The consumer's persisted position (0 without a consumer).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Up to `limit` messages with seq > after (and past the consumer's position), in seq order.
    /// In a cluster, without what another node delivered, and nothing of the cluster's while
    /// another node delivers (see [`ClusterDelivery`]).
    ///
    /// # Errors
    /// [`AlertsError::Sql`] when the table cannot be read; [`AlertsError::Cluster`] when the
    /// cluster cannot be asked.
    pub fn pending(&mut self, after: u64, limit: usize) -> Result<Vec<Queued>, AlertsError> {
        let Some(cluster) = self.cluster.as_mut() else {
            return Ok(self.page(after, limit)?.into_iter().map(|(message, _)| message).collect());
        };
        let delivering = cluster.delivering();
        let through = cluster.delivered_through().map_err(AlertsError::Cluster)?;
        loop {
            let rows = self.page(after, limit)?;
            let Some(last) = rows.last().map(|(message, _)| message.seq) else {
                if delivering {
                    self.confirm(through)?;
                }
                return Ok(Vec::new());
            };
            let mut page = Vec::new();
            let mut waiting = false;
            for (message, origin) in rows {
                match origin {
                    Some(ANY_ORIGIN) if delivering => page.push(message),
                    Some(ANY_ORIGIN) => {} // the delivering node sends its own copy
                    Some(origin) if origin <= through => {} // delivered by the node that delivered then
                    // Another node delivers it; what follows waits behind it (positions are prefixes).
                    Some(_) if !delivering => {
                        waiting = true;
                        break;
                    }
                    _ => page.push(message),
                }
            }
            if !page.is_empty() || waiting {
                return Ok(page);
            }
            // A whole page another node delivered: this consumer moves past it.
            self.delivered(last)?;
        }
    }

    fn page(&mut self, after: u64, limit: usize) -> Result<Vec<Row>, AlertsError> {
        let mut query = self.conn.prepare_cached(
            "SELECT seq, topic, payload, retain, origin FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let after = to_i64(after.max(self.position));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = query.query_map([after, limit], |row| {
            let message = Queued {
                seq: to_u64(row.get::<_, i64>(0)?),
                topic: row.get(1)?,
                payload: row.get(2)?,
                retain: row.get(3)?,
            };
            Ok((message, row.get::<_, Option<i64>>(4)?.map(to_u64)))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Tells the cluster how far this node delivered: every origin below the oldest message
    /// still waiting, or the engine's position when none waits (and never less than `through`,
    /// what the nodes delivered before).
    fn confirm(&mut self, through: u64) -> Result<(), AlertsError> {
        let Some(cluster) = self.cluster.as_mut() else { return Ok(()) };
        let tx = self.conn.transaction()?;
        let waiting: Option<i64> = tx
            .prepare_cached("SELECT MIN(origin) FROM outbox WHERE seq > ?1 AND origin > 0")?
            .query_row([to_i64(self.position)], |row| row.get(0))?;
        let origin = match waiting {
            Some(oldest) => to_u64(oldest).saturating_sub(1),
            None => crate::db::applied_seq(&tx)?,
        }
        .max(through);
        drop(tx);
        if origin > self.confirmed {
            cluster.confirm(origin).map_err(AlertsError::Cluster)?;
            self.confirmed = origin;
        }
        Ok(())
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
        if let Some(cluster) = self.cluster.as_mut()
            && cluster.delivering()
        {
            let through = cluster.delivered_through().map_err(AlertsError::Cluster)?;
            self.confirm(through)?;
        }
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
            outbox.announce(&format!("alerts/{i}"), b"{}", Scope::Node).unwrap();
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

    /// The cluster as two nodes see it: who delivers, and how far.
    #[derive(Default)]
    struct Cluster {
        holder: &'static str,
        through: u64,
    }

    struct Node(&'static str, std::sync::Arc<std::sync::Mutex<Cluster>>);

    impl ClusterDelivery for Node {
        fn delivering(&mut self) -> bool {
            self.1.lock().unwrap().holder == self.0
        }
        fn delivered_through(&mut self) -> Result<u64, String> {
            Ok(self.1.lock().unwrap().through)
        }
        fn confirm(&mut self, origin: u64) -> Result<(), String> {
            let mut cluster = self.1.lock().unwrap();
            if cluster.holder != self.0 {
                return Err("another node delivers".into());
            }
            cluster.through = cluster.through.max(origin);
            Ok(())
        }
    }

    /// One node's engine queues `(topic, origin)` and reaches `applied`.
    fn engine_queues(path: &Path, messages: &[(&str, Option<u64>)], applied: u64) {
        let mut conn = crate::db::open(path).unwrap();
        let tx = conn.transaction().unwrap();
        for (topic, origin) in messages {
            let message = crate::db::Message { topic, payload: b"{}", status_of: None, origin: *origin };
            crate::db::enqueue(&tx, &message).unwrap();
        }
        crate::db::set_applied_seq(&tx, applied).unwrap();
        tx.commit().unwrap();
    }

    fn deliver(outbox: &mut SqliteOutbox) -> Vec<String> {
        let page = outbox.pending(0, 100).unwrap();
        if let Some(last) = page.last() {
            outbox.delivered(last.seq).unwrap();
        }
        page.into_iter().map(|m| m.topic).collect()
    }

    #[test]
    fn the_nodes_of_a_cluster_deliver_each_message_once() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = std::sync::Arc::new(std::sync::Mutex::new(Cluster { holder: "a", through: 0 }));
        let mut outboxes = ["a", "b"].map(|node| {
            let db = dir.path().join(format!("{node}.sqlite"));
            register_consumers(&db, &["mqtt"]).unwrap();
            let outbox = SqliteOutbox::open_for(&db, "mqtt").unwrap();
            (db, outbox.in_cluster(Box::new(Node(node, cluster.clone()))))
        });
        // Both engines follow the stream: the same alerts, from the same records; b's clock
        // raised one that a's did not, and b has a report of its own.
        engine_queues(&outboxes[0].0, &[("alerts/x/1", Some(10)), ("alerts/x/2", Some(12))], 20);
        engine_queues(&outboxes[1].0, &[("alerts/x/1", Some(10)), ("clock/b", Some(11)), ("report/b", None)], 15);
        // Both wrote the same daily report: the delivering node announces it.
        for (db, _) in &outboxes {
            SqliteOutbox::open(db).unwrap().announce("reports/daily", b"{}", Scope::Cluster).unwrap();
        }
        assert_eq!(deliver(&mut outboxes[1].1), Vec::<String>::new(), "b waits: a delivers the cluster's messages");
        assert_eq!(deliver(&mut outboxes[0].1), ["alerts/x/1", "alerts/x/2", "reports/daily"]);
        assert_eq!(cluster.lock().unwrap().through, 20, "a is through its engine's position");
        assert_eq!(deliver(&mut outboxes[1].1), ["report/b"], "b's own message; a delivered the rest");
        assert_eq!(deliver(&mut outboxes[1].1), Vec::<String>::new(), "and b's copy of the report is a's to send");
        assert_eq!(outboxes[1].1.backlog().unwrap(), 0);

        // a goes quiet having queued two more, one delivered before it died.
        engine_queues(&outboxes[0].0, &[("alerts/x/3", Some(21)), ("alerts/x/4", Some(25))], 25);
        let page = outboxes[0].1.pending(0, 1).unwrap();
        outboxes[0].1.delivered(page[0].seq).unwrap();
        assert_eq!(cluster.lock().unwrap().through, 24, "the oldest waiting came from 25");
        engine_queues(&outboxes[1].0, &[("alerts/x/3", Some(21)), ("alerts/x/4", Some(25))], 25);
        assert_eq!(deliver(&mut outboxes[1].1), Vec::<String>::new());
        cluster.lock().unwrap().holder = "b";
        assert_eq!(deliver(&mut outboxes[1].1), ["alerts/x/4"], "b takes over after what a delivered");
        assert_eq!(deliver(&mut outboxes[0].1), Vec::<String>::new(), "a, back, sends nothing b delivered");
        assert_eq!(outboxes[0].1.backlog().unwrap(), 0);
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
