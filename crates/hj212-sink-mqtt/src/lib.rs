//! The alert sink: drains a persistent outbox (owned elsewhere, an SQLite table in hj212d)
//! to an MQTT broker with QoS 1, in outbox order, at least once. It owns its reconnects and
//! metrics; it never decides what is alarming (hj212-compliance does) nor what goes in the
//! outbox. A broker outage delays messages, never loses or reorders them: the outbox only
//! forgets a message once the broker has acknowledged it and every message before it. How
//! the order survives reconnects is explained in [`publisher`](crate::run_publisher)'s module.
//!
//! mqtts:// needs the `tls` feature (rustls with ring); see `tls.rs`.

pub mod metrics;
mod outbox;
mod publisher;
mod settings;
#[cfg(feature = "tls")]
mod tls;
mod window;

pub use outbox::{Outbox, OutboxError, OutboxMessage};
pub use publisher::{PublisherStatus, run_publisher};
pub use settings::{MAX_PACKET_BYTES, MqttError, MqttSettings};
