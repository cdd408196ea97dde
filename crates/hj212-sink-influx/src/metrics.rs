//! The sink's metrics (`hj212_influx_*`).

use metrics::{Counter, Gauge, counter, describe_counter, describe_gauge, gauge};

pub const POINTS: &str = "hj212_influx_points_total";
pub const BATCHES: &str = "hj212_influx_batches_total";
pub const RETRIES: &str = "hj212_influx_retries_total";
pub const FAILURES: &str = "hj212_influx_failures_total";
pub const DEAD_LETTER: &str = "hj212_influx_dead_letter_points_total";
pub const LAG_RECORDS: &str = "hj212_influx_lag_records";
pub const LAG_SECONDS: &str = "hj212_influx_lag_seconds";

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
    describe_gauge!(LAG_RECORDS, "Durable archive records the sink has not written yet");
    describe_gauge!(LAG_SECONDS, "Age of the oldest archive record the sink has not written yet");
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
    pub lag_records: Gauge,
    pub lag_seconds: Gauge,
}

impl Default for SinkMetrics {
    fn default() -> Self {
        Self {
            points: counter!(POINTS),
            batches: counter!(BATCHES),
            retries: counter!(RETRIES),
            dead_letter: counter!(DEAD_LETTER),
            lag_records: gauge!(LAG_RECORDS),
            lag_seconds: gauge!(LAG_SECONDS),
        }
    }
}

impl SinkMetrics {
    pub fn failure(kind: &'static str) {
        counter!(FAILURES, "kind" => kind).increment(1);
    }
}
