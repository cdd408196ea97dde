//! The alert engine's outbox as the MQTT publisher drains it: the two crates stay apart (the
//! alerts crate carries no MQTT client), joined here.

use hj212_alerts::SqliteOutbox;
use hj212_sink_mqtt::{Outbox, OutboxError, OutboxMessage};

/// `alerts.sqlite`'s outbox table, on the publisher's own connection.
pub(crate) struct AlertOutbox(pub SqliteOutbox);

#[expect(clippy::needless_pass_by_value, reason = "used as map_err(outbox_error)")]
fn outbox_error(e: hj212_alerts::AlertsError) -> OutboxError {
    OutboxError(e.to_string())
}

impl Outbox for AlertOutbox {
    fn pending(&mut self, after: u64, limit: usize) -> Result<Vec<OutboxMessage>, OutboxError> {
        let queued = self.0.pending(after, limit).map_err(outbox_error)?;
        Ok(queued
            .into_iter()
            .map(|m| OutboxMessage { seq: m.seq, topic: m.topic, payload: m.payload, retain: m.retain })
            .collect())
    }

    fn delivered(&mut self, up_to: u64) -> Result<(), OutboxError> {
        self.0.delivered(up_to).map_err(outbox_error)
    }
}

/// Who delivers the alert messages in a cluster (`[cluster] alerts_from = "stream"`).
pub(crate) struct ClusterOutbox(pub hj212_cluster::Delivery);

impl hj212_alerts::ClusterDelivery for ClusterOutbox {
    fn delivering(&mut self) -> bool {
        self.0.delivering()
    }

    fn delivered_through(&mut self) -> Result<u64, String> {
        self.0.delivered_through().map_err(|e| e.to_string())
    }

    fn confirm(&mut self, origin: u64) -> Result<(), String> {
        self.0.confirm(origin).map_err(|e| e.to_string())
    }
}
