//! The command channel's metrics (docs/metrics.md).

use metrics::{Counter, Gauge, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

use crate::command::{Command, State};

/// From queued to completed, per completed command.
pub const ROUND_TRIP: &str = "hj212_command_round_trip_seconds";
/// Its buckets: loopback answers take milliseconds, history over a mobile link up to minutes.
pub const ROUND_TRIP_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 600.0];

/// Handles for the per-event counters and gauges.
#[derive(Debug)]
pub(crate) struct CommandMetrics {
    pub queued: Gauge,
    pub in_flight: Gauge,
    pub resends: Counter,
    pub records: Counter,
    pub book_errors: Counter,
}

impl Default for CommandMetrics {
    fn default() -> Self {
        describe();
        zero();
        Self {
            queued: gauge!("hj212_commands_queued"),
            in_flight: gauge!("hj212_commands_in_flight"),
            resends: counter!("hj212_command_resends_total"),
            records: counter!("hj212_command_records_total"),
            book_errors: counter!("hj212_command_book_errors_total"),
        }
    }
}

impl CommandMetrics {
    pub(crate) fn finished(command: &Command) {
        let cn = format!("{:04}", command.spec.cn);
        counter!("hj212_commands_total", "cn" => cn, "state" => command.state.as_str(), "origin" => command.origin.as_str())
            .increment(1);
        if command.state == State::Completed {
            let seconds = (command.finished_ms.unwrap_or(command.created_ms) - command.created_ms) as f64 / 1000.0;
            histogram!(ROUND_TRIP).record(seconds.max(0.0));
        }
    }

    pub(crate) fn reply(cn: &'static str, outcome: &'static str) {
        counter!("hj212_command_replies_total", "cn" => cn, "outcome" => outcome).increment(1);
    }

    pub(crate) fn refused(reason: &'static str) {
        counter!("hj212_commands_refused_total", "reason" => reason).increment(1);
    }
}

fn describe() {
    describe_gauge!("hj212_commands_queued", "Host commands waiting for their site's connection and turn");
    describe_gauge!("hj212_commands_in_flight", "Host commands sent and not yet answered (one per site at most)");
    describe_counter!("hj212_commands_total", "Host commands finished, by CN, final state and origin (api, recovery)");
    describe_counter!(
        "hj212_command_replies_total",
        "9011/9012/9013 answers from loggers, by outcome (matched, unknown_qn, before_9011, unexpected)"
    );
    describe_counter!(
        "hj212_command_resends_total",
        "Host commands sent again after no 9011 within the request timeout"
    );
    describe_counter!("hj212_command_records_total", "Records received in answer to history requests");
    describe_counter!("hj212_commands_refused_total", "Commands refused at submission, by reason (queue full)");
    describe_counter!("hj212_command_book_errors_total", "Failures to save a command's state to commands.sqlite");
    describe_histogram!(ROUND_TRIP, "From queued to completed, per completed command");
}

/// The counters at zero, so the first scrape lists them (rate() and absent() need a series).
fn zero() {
    for origin in ["api", "recovery"] {
        for state in ["rejected", "completed", "failed", "expired", "cancelled"] {
            counter!("hj212_commands_total", "cn" => "2061", "state" => state, "origin" => origin).increment(0);
        }
    }
    for (cn, outcome) in [("9011", "matched"), ("9011", "unknown_qn"), ("9012", "before_9011"), ("9013", "unexpected")]
    {
        counter!("hj212_command_replies_total", "cn" => cn, "outcome" => outcome).increment(0);
    }
    for reason in ["site_queue_full", "queue_full"] {
        counter!("hj212_commands_refused_total", "reason" => reason).increment(0);
    }
    for name in ["hj212_command_resends_total", "hj212_command_records_total", "hj212_command_book_errors_total"] {
        counter!(name).increment(0);
    }
    crate::recovery::zero();
}
