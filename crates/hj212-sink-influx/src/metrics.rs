//! The sink's metrics (`hj212_influx_*`).

use metrics::{Counter, counter, describe_counter};

pub const POINTS: &str = "hj212_influx_points_total";
pub const BATCHES: &str = "hj212_influx_batches_total";
pub const RETRIES: &str = "hj212_influx_retries_total";
pub const FAILURES: &str = "hj212_influx_failures_total";
pub const DEAD_LETTER: &str = "hj212_influx_dead_letter_points_total";

/// Registers descriptions; call once at startup.
pub fn describe() {
    describe_counter!(POINTS, "Points written to InfluxDB / VictoriaMetrics");
    describe_counter!(BATCHES, "Write requests that succeeded");
    describe_counter!(RETRIES, "Write requests retried after a retryable failure");
    describe_counter!(
        FAILURES,
        "Failed write requests, by kind (connect, timeout, server_error, throttled, unauthorized, misconfigured, rejected)"
    );
    describe_counter!(DEAD_LETTER, "Points parked in the dead-letter file after a 4xx");
    // At zero from the start (docs/metrics.md), also without [influx]: rate() and absent() need them.
    for name in [POINTS, BATCHES, RETRIES, DEAD_LETTER] {
        counter!(name).increment(0);
    }
    for kind in ["connect", "timeout", "server_error", "throttled", "unauthorized", "misconfigured", "rejected"] {
        counter!(FAILURES, "kind" => kind).increment(0);
    }
}

#[derive(Debug, Clone)]
pub(crate) struct SinkMetrics {
    pub points: Counter,
    pub batches: Counter,
    pub retries: Counter,
    pub dead_letter: Counter,
}

impl Default for SinkMetrics {
    fn default() -> Self {
        Self {
            points: counter!(POINTS),
            batches: counter!(BATCHES),
            retries: counter!(RETRIES),
            dead_letter: counter!(DEAD_LETTER),
        }
    }
}

impl SinkMetrics {
    pub fn failure(kind: &'static str) {
        counter!(FAILURES, "kind" => kind).increment(1);
    }
}
