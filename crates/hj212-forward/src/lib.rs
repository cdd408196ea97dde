//! Forwarding (数据转发): one follower per `[[forward]]` target relays the accepted frames of
//! its sites and CNs to an upstream HJ 212 platform, byte for byte and per site in archive
//! order, and advances its position (`forward-NAME.cursor`) only past frames the upstream
//! acknowledged (or that were written, when no 9014 is asked). A broken link or a missing 9014
//! resends from that position: duplicates upstream stay within the window, with their
//! original QN, so the upstream's dedup recognises them.

mod history;
mod lane;
mod link;
mod pace;
mod relay;
mod rewrite;
mod target;

pub use relay::{Progress, Relay};
pub use target::{Forwarder, Notebook};

/// Metric names (docs/metrics.md).
pub mod metrics {
    pub const FRAMES: &str = "hj212_forward_frames_total";
    pub const CONNECTED: &str = "hj212_forward_connected";
    pub const ACK_SECONDS: &str = "hj212_forward_ack_seconds";
    /// From loopback (milliseconds) to a provincial platform over a slow link (seconds), up to the ack timeout.
    pub const ACK_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

    /// Registers their descriptions.
    pub fn describe() {
        metrics::describe_counter!(
            FRAMES,
            "Frames relayed to a forwarding target and what the upstream sent back, by target and outcome \
             (sent, acked, resent, given_up, history_answered, upstream_relayed, upstream_refused, upstream_other)"
        );
        metrics::describe_gauge!(CONNECTED, "Connections to the forwarding target that are up");
        metrics::describe_histogram!(ACK_SECONDS, "From a frame written to the upstream to its 9014");
    }
}
