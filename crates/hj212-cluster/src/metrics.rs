//! The publisher's and the stream reader's metrics (`hj212_cluster_*`; the acknowledgement wait's are hj212-server's).

use metrics::{Counter, counter, describe_counter, describe_gauge};

pub const STORED: &str = "hj212_cluster_stored_total";
pub const DUPLICATES: &str = "hj212_cluster_duplicates_total";
pub const RETRIES: &str = "hj212_cluster_retries_total";
pub const FOREIGN: &str = "hj212_cluster_foreign_messages_total";
pub const LEASE_HELD: &str = "hj212_cluster_lease_held";

/// Registers descriptions; call once at startup.
pub fn describe() {
    describe_counter!(STORED, "Records this node published that the cluster's stream stored");
    describe_counter!(
        DUPLICATES,
        "Records this node published that the stream already held (the other node's copy of a frame, or a republication)"
    );
    describe_counter!(RETRIES, "Publications retried after the stream did not acknowledge a batch");
    describe_counter!(
        FOREIGN,
        "Stream messages a reader of the stream skipped: not records published by hj212d (headers missing or unreadable)"
    );
    describe_gauge!(
        LEASE_HELD,
        "1 while this node runs the follower for the cluster (holds its lease), 0 while it stands by"
    );
    for name in [STORED, DUPLICATES, RETRIES, FOREIGN] {
        counter!(name).increment(0);
    }
}

#[derive(Debug, Clone)]
pub(crate) struct PublisherMetrics {
    pub stored: Counter,
    pub duplicates: Counter,
    pub retries: Counter,
}

impl Default for PublisherMetrics {
    fn default() -> Self {
        Self { stored: counter!(STORED), duplicates: counter!(DUPLICATES), retries: counter!(RETRIES) }
    }
}
