//! The alert engine's metrics (`hj212_alerts_*`). Labels are bounded sets (kind, state).

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

pub const ALERTS: &str = "hj212_alerts_total";
pub const ACTIVE: &str = "hj212_alerts_active";
pub const OUTBOX: &str = "hj212_alerts_outbox_messages";
pub const ERRORS: &str = "hj212_alerts_errors_total";
pub const DETECTION: &str = "hj212_alerts_detection_seconds";

/// Buckets of [`DETECTION`]: the target is well under a second.
pub const DETECTION_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0];

/// Registers descriptions; call once at startup.
pub fn describe() {
    describe_counter!(ALERTS, "Alert messages, by kind and state (raised, updated, cleared)");
    describe_gauge!(ACTIVE, "Alerts active now, by kind");
    describe_gauge!(OUTBOX, "Alert and status messages waiting for the MQTT broker");
    describe_counter!(ERRORS, "Alert engine batches that failed (database errors) and were retried");
    describe_histogram!(DETECTION, "From a frame's arrival (archive time) to its alert being stored and queued");
    // At zero from the start (docs/metrics.md): every kind and state, so rate() sees the first alert.
    for kind in hj212_compliance::alert::AlertKind::ALL {
        for state in hj212_compliance::alert::AlertState::ALL {
            counter!(ALERTS, "kind" => kind.as_str(), "state" => state.as_str()).increment(0);
        }
    }
    counter!(ERRORS).increment(0);
}

pub(crate) fn message(kind: &'static str, state: &'static str) {
    counter!(ALERTS, "kind" => kind, "state" => state).increment(1);
}

pub(crate) fn active(kind: &'static str, count: f64) {
    gauge!(ACTIVE, "kind" => kind).set(count);
}

pub(crate) fn detection(seconds: f64) {
    histogram!(DETECTION).record(seconds);
}

pub(crate) fn outbox(depth: u64) {
    gauge!(OUTBOX).set(depth as f64);
}

pub(crate) fn error() {
    counter!(ERRORS).increment(1);
}
