//! The messages of one connection that are handed to rumqttc and not yet part of the
//! acknowledged prefix, in seq order. Pure bookkeeping, no I/O.
//!
//! rumqttc numbers QoS 1 publishes itself (packet ids cycle through 1..=inflight) and reports
//! `Outgoing::Publish(pkid)` as each goes on the wire, in request order; a PUBACK names the
//! pkid. So the n-th `Outgoing::Publish` belongs to the n-th queued message, and a PUBACK to
//! the unacknowledged message that has its pkid (rumqttc never reuses a pkid still in flight).

use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Given to rumqttc, not on the wire yet.
    Queued,
    /// On the wire with this packet id, no PUBACK yet.
    Sent(u16),
    /// PUBACKed (or skipped as unpublishable), waiting for the ones before it.
    Done,
}

#[derive(Debug, Default)]
pub(crate) struct Window {
    slots: VecDeque<(u64, Slot)>,
    /// Every seq up to here is done.
    acked: u64,
    /// The highest seq handed to rumqttc (or skipped); the next outbox read starts after it.
    read: u64,
}

impl Window {
    /// Starts a connection: nothing in flight, resume right after the acknowledged prefix.
    pub fn reset(&mut self, acked: u64) {
        self.slots.clear();
        self.acked = acked;
        self.read = acked;
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn acked(&self) -> u64 {
        self.acked
    }

    pub fn read_position(&self) -> u64 {
        self.read
    }

    /// A message handed to rumqttc.
    pub fn queued(&mut self, seq: u64) {
        debug_assert!(seq > self.read, "outbox seqs go up");
        self.slots.push_back((seq, Slot::Queued));
        self.read = seq;
    }

    /// A message that can never be published: it counts as done so it cannot block the rest.
    pub fn skipped(&mut self, seq: u64) {
        self.slots.push_back((seq, Slot::Done));
        self.read = seq;
        self.advance();
    }

    /// rumqttc wrote the next queued message with this packet id.
    pub fn sent(&mut self, pkid: u16) {
        if let Some(slot) = self.slots.iter_mut().find(|(_, s)| *s == Slot::Queued) {
            slot.1 = Slot::Sent(pkid);
        }
    }

    /// A PUBACK; returns whether it matched a message (the acknowledged prefix may have grown).
    pub fn puback(&mut self, pkid: u16) -> bool {
        let Some(slot) = self.slots.iter_mut().find(|(_, s)| *s == Slot::Sent(pkid)) else { return false };
        slot.1 = Slot::Done;
        self.advance();
        true
    }

    fn advance(&mut self) {
        while let Some(&(seq, Slot::Done)) = self.slots.front() {
            self.acked = seq;
            self.slots.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window_with(seqs: &[u64]) -> Window {
        let mut w = Window::default();
        w.reset(0);
        for (i, &seq) in seqs.iter().enumerate() {
            w.queued(seq);
            w.sent(u16::try_from(i + 1).unwrap());
        }
        w
    }

    #[test]
    fn only_the_contiguous_prefix_is_acknowledged() {
        let mut w = window_with(&[1, 2, 3, 4]);
        assert!(w.puback(1) && w.puback(2) && w.puback(4));
        assert_eq!(w.acked(), 2);
        assert_eq!(w.len(), 2);
        assert!(w.puback(3));
        assert_eq!(w.acked(), 4);
        assert!(w.is_empty());
    }

    #[test]
    fn outbox_gaps_and_reused_packet_ids() {
        let mut w = Window::default();
        w.reset(10);
        w.queued(12);
        w.sent(1);
        w.queued(15);
        w.sent(2);
        assert!(w.puback(1));
        assert_eq!(w.acked(), 12);
        w.queued(16);
        w.sent(1); // pkid 1 again, now for seq 16
        assert!(w.puback(1));
        assert_eq!(w.acked(), 12, "15 is still out");
        assert!(!w.puback(1), "a stray PUBACK matches nothing");
        assert!(w.puback(2));
        assert_eq!(w.acked(), 16);
        assert_eq!(w.read_position(), 16);
    }

    #[test]
    fn skipped_messages_do_not_block_and_reset_resumes_after_the_prefix() {
        let mut w = window_with(&[1]);
        w.skipped(2);
        assert_eq!(w.acked(), 0);
        assert!(w.puback(1));
        assert_eq!(w.acked(), 2);
        w.queued(3);
        w.sent(2);
        w.reset(w.acked());
        assert!(w.is_empty());
        assert_eq!(w.read_position(), 2);
        assert!(!w.puback(2), "a PUBACK from the old connection matches nothing");
    }
}
