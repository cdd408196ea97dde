//! What the publisher drains: a persistent outbox owned by someone else (an SQLite table in
//! hj212d). The publisher only reads pages of it and reports the acknowledged prefix.

/// One message waiting in the persistent outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Strictly increasing outbox sequence number; delivery order.
    pub seq: u64,
    /// Topic below the prefix, e.g. "alerts/88888880000001/exceedance" or "status/88888880000001".
    pub topic: String,
    pub payload: Vec<u8>,
    /// Published with the MQTT retain flag (the per-site status topic).
    pub retain: bool,
}

/// The persistent outbox the publisher drains. Methods block (SQLite); the publisher calls them
/// from `tokio::task::spawn_blocking`.
pub trait Outbox: Send + 'static {
    /// Up to `limit` messages with seq > after, in seq order.
    ///
    /// # Errors
    /// When the outbox cannot be read; the publisher retries after a pause.
    fn pending(&mut self, after: u64, limit: usize) -> Result<Vec<OutboxMessage>, OutboxError>;

    /// Every message with seq <= up_to has been acknowledged by the broker (PUBACK); it may be deleted.
    ///
    /// # Errors
    /// When the outbox cannot be written; the publisher reports the same position again later.
    fn delivered(&mut self, up_to: u64) -> Result<(), OutboxError>;
}

/// An outbox read or write failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("outbox: {0}")]
pub struct OutboxError(pub String);
