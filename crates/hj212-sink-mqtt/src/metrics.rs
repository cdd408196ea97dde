//! The publisher's metrics (`hj212_mqtt_*`). No MN labels: alerts for one site show in the
//! outbox and the alert API, not as metric series.

use metrics::{Counter, Gauge, counter, describe_counter, describe_gauge, gauge};

pub const PUBLISHED: &str = "hj212_mqtt_published_total";
pub const PUBLISH_ERRORS: &str = "hj212_mqtt_publish_errors_total";
pub const CONNECTED: &str = "hj212_mqtt_connected";
pub const DELIVERED_SEQ: &str = "hj212_mqtt_outbox_delivered_seq";

/// Registers descriptions; call once at startup.
pub fn describe() {
    describe_counter!(
        PUBLISHED,
        "Outbox messages the MQTT broker acknowledged (PUBACK); re-sends after a reconnect count again"
    );
    describe_counter!(
        PUBLISH_ERRORS,
        "MQTT publish failures, by kind (connection: connect failed or connection lost, the messages are re-sent; \
         rejected: a message that can never be published, skipped; outbox: the outbox could not be read or updated)"
    );
    describe_gauge!(CONNECTED, "1 while the publisher has a broker connection (CONNACK received), else 0");
    describe_gauge!(DELIVERED_SEQ, "Outbox sequence number up to which every message is acknowledged by the broker");
    // At zero from the start (docs/metrics.md), also without [mqtt].
    counter!(PUBLISHED).increment(0);
    for kind in ["connection", "rejected", "outbox"] {
        counter!(PUBLISH_ERRORS, "kind" => kind).increment(0);
    }
}

#[derive(Debug, Clone)]
pub(crate) struct PublisherMetrics {
    pub published: Counter,
    pub connection_errors: Counter,
    pub rejected: Counter,
    pub outbox_errors: Counter,
    pub connected: Gauge,
    pub delivered_seq: Gauge,
}

impl Default for PublisherMetrics {
    fn default() -> Self {
        Self {
            published: counter!(PUBLISHED),
            connection_errors: counter!(PUBLISH_ERRORS, "kind" => "connection"),
            rejected: counter!(PUBLISH_ERRORS, "kind" => "rejected"),
            outbox_errors: counter!(PUBLISH_ERRORS, "kind" => "outbox"),
            connected: gauge!(CONNECTED),
            delivered_seq: gauge!(DELIVERED_SEQ),
        }
    }
}
