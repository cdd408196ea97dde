//! One connection to the upstream and the frames in flight on it. Each site keeps to one lane
//! (by its MN), so its frames reach the upstream in archive order.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hj212_config::Forward;
use hj212_follow::FollowError;

use crate::link::{Heard, Link};
use crate::target::Meters;

/// A frame written to the upstream, waiting for its 9014.
#[derive(Debug)]
pub(crate) struct Pending {
    pub seq: u64,
    pub qn: String,
    /// The MN the upstream's 9014 names (rewritten or the site's).
    pub mn: String,
    /// Kept for a resend on the same connection.
    pub bytes: Vec<u8>,
    pub sent: Instant,
    pub sends: u32,
    /// Acknowledged, or given up as refused by the upstream.
    pub done: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Lane {
    link: Option<Link>,
    pub in_flight: VecDeque<Pending>,
    /// Frames not yet written (one write per batch, not per frame).
    out: Vec<u8>,
    /// The archive record of the first of them.
    unsent: Option<u64>,
}

/// What the oldest frame's missing 9014 means.
pub(crate) enum Overdue {
    /// Not yet due.
    No,
    /// Later frames were acknowledged and this one not, on fewer sends than allowed: resent.
    Resent,
    /// Refused on every allowed send: given up (the rest is not held back for it).
    GivenUp { qn: String, sends: u32 },
}

impl Lane {
    /// Queues record `seq`'s `bytes` for the next write; `pending` when a 9014 is awaited.
    pub(crate) fn queue(&mut self, seq: u64, bytes: &[u8], pending: Option<Pending>) {
        self.unsent.get_or_insert(seq);
        self.out.extend_from_slice(bytes);
        self.in_flight.extend(pending);
    }

    /// The connection, made when there is none.
    pub(crate) fn link(&mut self, target: &Forward, meters: &Meters) -> Result<&mut Link, FollowError> {
        if self.link.is_none() {
            let timeout = Duration::from_secs(target.connect_timeout_secs);
            let link = Link::connect(&target.address, timeout)
                .map_err(|e| format!("forward {}: cannot connect to {}: {e}", target.name, target.address))?;
            tracing::info!(target = target.name, address = target.address, "forwarding: connected");
            meters.connected.increment(1.0);
            self.link = Some(link);
        }
        Ok(self.link.as_mut().expect("connected above"))
    }

    /// Writes what is queued.
    pub(crate) fn flush(&mut self, target: &Forward, meters: &Meters) -> Result<(), FollowError> {
        if !self.out.is_empty() {
            let out = std::mem::take(&mut self.out);
            self.link(target, meters)?.send(&out)?;
            // The buffer's capacity is kept for the next batch.
            self.out = out;
            self.out.clear();
            self.unsent = None;
        }
        Ok(())
    }

    /// Takes in what the upstream sent within `wait` (`None`: what is there): 9014s mark their
    /// frames; everything else is returned.
    pub(crate) fn hear(&mut self, wait: Option<Duration>, meters: &Meters) -> Result<Vec<Heard>, FollowError> {
        let Some(link) = self.link.as_mut() else { return Ok(Vec::new()) };
        let mut rest = Vec::new();
        for heard in link.hear(wait)? {
            let Heard::Ack { qn, mn } = &heard else {
                rest.push(heard);
                continue;
            };
            if let Some(pending) = self.in_flight.iter_mut().find(|p| !p.done && p.qn == *qn && p.mn == *mn) {
                pending.done = true;
                meters.acked.increment(1);
                meters.ack_seconds.record(pending.sent.elapsed().as_secs_f64());
            }
        }
        while self.in_flight.front().is_some_and(|p| p.done) {
            self.in_flight.pop_front();
        }
        Ok(rest)
    }

    /// Where this lane holds the position back: before its oldest unacknowledged or unwritten frame.
    pub(crate) fn holds_back(&self) -> Option<u64> {
        let oldest = match (self.in_flight.front().map(|p| p.seq), self.unsent) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        oldest.map(|seq| seq - 1)
    }

    /// How long the oldest frame has waited for its 9014.
    pub(crate) fn oldest_waited(&self) -> Option<Duration> {
        self.in_flight.front().map(|p| p.sent.elapsed())
    }

    /// Handles the oldest frame's overdue 9014 (HJ 212-2017 §6.4: resend, then give up after
    /// the allowed sends). A silent upstream (nothing later acknowledged either) is a broken
    /// link: an error, so the runner reconnects and resends from the position.
    pub(crate) fn overdue(&mut self, target: &Forward, meters: &Meters) -> Result<Overdue, FollowError> {
        let timeout = Duration::from_secs(target.ack_timeout_secs);
        if self.oldest_waited().is_none_or(|waited| waited < timeout) {
            return Ok(Overdue::No);
        }
        let later_acked = self.in_flight.iter().any(|p| p.done);
        let oldest = self.in_flight.front_mut().expect("waited above");
        if !later_acked {
            return Err(format!(
                "forward {}: no 9014 for QN {} within {} s; reconnecting and resending from the last acknowledged frame",
                target.name, oldest.qn, target.ack_timeout_secs
            )
            .into());
        }
        if oldest.sends >= target.resends {
            let given_up = Overdue::GivenUp { qn: oldest.qn.clone(), sends: oldest.sends };
            oldest.done = true;
            while self.in_flight.front().is_some_and(|p| p.done) {
                self.in_flight.pop_front();
            }
            meters.given_up.increment(1);
            return Ok(given_up);
        }
        oldest.sends += 1;
        oldest.sent = Instant::now();
        let bytes = oldest.bytes.clone();
        meters.resent.increment(1);
        self.link(target, meters)?.send(&bytes)?;
        Ok(Overdue::Resent)
    }

    /// Sends `bytes` now (answers to the upstream's requests).
    pub(crate) fn send(&mut self, bytes: &[u8], target: &Forward, meters: &Meters) -> Result<(), FollowError> {
        self.link(target, meters)?.send(bytes).map_err(Into::into)
    }

    /// Forgets the connection and what was in flight on it (resent from the position).
    pub(crate) fn reset(&mut self, meters: &Meters) {
        if self.link.take().is_some() {
            meters.connected.decrement(1.0);
        }
        meters.resent.increment(self.in_flight.len() as u64);
        self.in_flight.clear();
        self.out.clear();
        self.unsent = None;
    }
}
