//! The forwarder's metrics, one set per target (docs/metrics.md).

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

use crate::metrics::{ACK_SECONDS, CONNECTED, FRAMES};

#[derive(Debug)]
pub(crate) struct Meters {
    pub sent: Counter,
    pub acked: Counter,
    pub resent: Counter,
    pub given_up: Counter,
    pub other: Counter,
    pub history: Counter,
    pub relayed: Counter,
    pub refused: Counter,
    pub connected: Gauge,
    pub ack_seconds: Histogram,
}

impl Meters {
    pub(super) fn new(target: &str) -> Self {
        let frames = |outcome: &'static str| counter!(FRAMES, "target" => target.to_owned(), "outcome" => outcome);
        let meters = Self {
            sent: frames("sent"),
            acked: frames("acked"),
            resent: frames("resent"),
            given_up: frames("given_up"),
            other: frames("upstream_other"),
            history: frames("history_answered"),
            relayed: frames("upstream_relayed"),
            refused: frames("upstream_refused"),
            connected: gauge!(CONNECTED, "target" => target.to_owned()),
            ack_seconds: histogram!(ACK_SECONDS, "target" => target.to_owned()),
        };
        let counters = [&meters.sent, &meters.acked, &meters.resent, &meters.given_up, &meters.other];
        for counter in counters.into_iter().chain([&meters.history, &meters.relayed, &meters.refused]) {
            // Listed from the first scrape.
            counter.increment(0);
        }
        meters.connected.set(0.0);
        meters
    }
}
