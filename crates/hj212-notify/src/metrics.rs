//! The channels' metrics (`hj212_notify_*`). Labelled by channel name (bounded: the names
//! are the config's `[[notify]]` tables), channel kind and outcome; never by MN.

use metrics::{Counter, Gauge, counter, describe_counter, describe_gauge, gauge};

pub const MESSAGES: &str = "hj212_notify_messages_total";
pub const ATTEMPT_ERRORS: &str = "hj212_notify_attempt_errors_total";
pub const PENDING: &str = "hj212_notify_pending_messages";
pub const UP: &str = "hj212_notify_up";

/// The `error` labels of [`ATTEMPT_ERRORS`].
pub const ERRORS: [&str; 7] = ["connect", "timeout", "status", "answer", "smtp", "render", "outbox"];

/// What became of an alert message on a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered on its own.
    Sent,
    /// Delivered merged into a digest (rate limit or the end of quiet hours).
    Digested,
    /// Not for this channel (sites, kinds, severities, states).
    SkippedRoute,
    /// Grouped under a fleet-wide alert (`inhibited_by`): that alert's message speaks for it.
    SkippedInhibited,
    /// Given up while the channel could not deliver: more than `max_pending` waited.
    GivenUp,
}

impl Outcome {
    pub const ALL: [Self; 5] = [Self::Sent, Self::Digested, Self::SkippedRoute, Self::SkippedInhibited, Self::GivenUp];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Digested => "digested",
            Self::SkippedRoute => "skipped_route",
            Self::SkippedInhibited => "skipped_inhibited",
            Self::GivenUp => "given_up",
        }
    }
}

/// Registers descriptions; call once at startup.
pub fn describe() {
    describe_counter!(
        MESSAGES,
        "Alert messages per notification channel by outcome (sent, digested, skipped_route, skipped_inhibited, \
         given_up: over max_pending while the channel was down)"
    );
    describe_counter!(
        ATTEMPT_ERRORS,
        "Failed delivery attempts per notification channel by error (connect, timeout, status, answer, smtp, \
         render); each is retried with backoff"
    );
    describe_gauge!(PENDING, "Outbox messages after the channel's delivery position");
    describe_gauge!(UP, "1 while the channel's last attempt succeeded (or none was needed), 0 while failing");
}

/// One channel's handles, created once.
#[derive(Debug, Clone)]
pub(crate) struct ChannelMetrics {
    name: String,
    kind: &'static str,
    pub pending: Gauge,
    pub up: Gauge,
}

impl ChannelMetrics {
    pub(crate) fn new(name: &str, kind: &'static str) -> Self {
        let metrics = Self {
            name: name.to_owned(),
            kind,
            pending: gauge!(PENDING, "channel" => name.to_owned()),
            up: gauge!(UP, "channel" => name.to_owned()),
        };
        // Every series at zero from the start, so rates and alert rules see them.
        for outcome in Outcome::ALL {
            metrics.messages(outcome).increment(0);
        }
        for error in ERRORS {
            counter!(ATTEMPT_ERRORS, "channel" => name.to_owned(), "kind" => kind, "error" => error).increment(0);
        }
        metrics.up.set(1.0);
        metrics
    }

    pub(crate) fn messages(&self, outcome: Outcome) -> Counter {
        counter!(MESSAGES, "channel" => self.name.clone(), "kind" => self.kind, "outcome" => outcome.as_str())
    }

    pub(crate) fn attempt_error(&self, error: &'static str) {
        counter!(ATTEMPT_ERRORS, "channel" => self.name.clone(), "kind" => self.kind, "error" => error).increment(1);
    }
}
