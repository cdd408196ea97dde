//! Which connections are let in. At most `max_connections` in all and
//! `max_connections_per_peer` from one IP address. Connections that have not sent an
//! authenticated frame yet are at most `max_unauthenticated`; when that cap or the total is
//! reached, the oldest unauthenticated connection of the address holding the most of them is
//! closed to admit the new one (like sshd's MaxStartups, but aimed at the crowd): so
//! thousands of silent sockets from one place cannot keep a logger elsewhere from connecting,
//! and a logger is never the one evicted while someone else holds more. When every slot is
//! held by an authenticated connection, new peers wait in the kernel backlog.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hj212_config::Limits;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics::AdmissionMetrics;

/// Why a connection was closed right after `accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its address already has `max_connections_per_peer` connections.
    PerPeer,
    /// Every slot is taken by an authenticated connection.
    Full,
}

impl Refusal {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::PerPeer => "per_peer",
            Self::Full => "max_connections",
        }
    }
}

/// An unauthenticated connection, evictable.
#[derive(Debug)]
struct Waiting {
    id: u64,
    evict: CancellationToken,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    /// Connections holding a slot (an evicted one gives its slot up at once).
    slots: usize,
    /// Connection tasks still running (evicted ones included).
    alive: usize,
    unauthenticated: usize,
    per_peer: HashMap<IpAddr, usize>,
    /// Unauthenticated connections by address, oldest first; only addresses that have some.
    waiting: HashMap<IpAddr, VecDeque<Waiting>>,
}

#[derive(Debug)]
pub(crate) struct Admission {
    max_total: usize,
    max_per_peer: usize,
    max_unauthenticated: usize,
    state: Mutex<State>,
    changed: Notify,
    metrics: AdmissionMetrics,
}

/// A connection's slot; given back when dropped.
#[derive(Debug)]
pub(crate) struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    peer: IpAddr,
    evict: CancellationToken,
    authenticated: bool,
}

impl Admission {
    pub(crate) fn new(limits: &Limits) -> Self {
        Self {
            max_total: limits.max_connections.max(1),
            max_per_peer: limits.max_connections_per_peer.max(1),
            max_unauthenticated: limits.max_unauthenticated.max(1),
            state: Mutex::new(State::default()),
            changed: Notify::new(),
            metrics: AdmissionMetrics::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits while every slot is held by an authenticated connection (nothing to evict):
    /// new peers then wait in the kernel backlog, as before there were evictions.
    pub(crate) async fn room(&self) {
        self.wait_until(|s| s.slots < self.max_total || s.unauthenticated > 0).await;
    }

    /// Waits until every connection task has finished.
    pub(crate) async fn finished(&self) {
        self.wait_until(|s| s.alive == 0).await;
    }

    async fn wait_until(&self, done: impl Fn(&State) -> bool) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if done(&self.lock()) {
                return;
            }
            changed.await;
        }
    }

    /// Lets a connection from `peer` in, evicting an unauthenticated one if need be.
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Ticket, Refusal> {
        let mut state = self.lock();
        if state.per_peer.get(&peer).is_some_and(|n| *n >= self.max_per_peer) {
            self.metrics.refused(Refusal::PerPeer);
            return Err(Refusal::PerPeer);
        }
        while state.slots >= self.max_total || state.unauthenticated >= self.max_unauthenticated {
            if !evict_one(&mut state) {
                self.metrics.refused(Refusal::Full);
                return Err(Refusal::Full);
            }
        }
        let id = state.next_id;
        state.next_id += 1;
        state.slots += 1;
        state.alive += 1;
        state.unauthenticated += 1;
        *state.per_peer.entry(peer).or_default() += 1;
        let evict = CancellationToken::new();
        state.waiting.entry(peer).or_default().push_back(Waiting { id, evict: evict.clone() });
        self.metrics.set_unauthenticated(state.unauthenticated);
        Ok(Ticket { admission: self.clone(), id, peer, evict, authenticated: false })
    }
}

/// Closes the oldest unauthenticated connection of the address holding the most of them
/// (the oldest of all among equals); false if there is none.
fn evict_one(state: &mut State) -> bool {
    let front = |queue: &VecDeque<Waiting>| queue.front().map_or(u64::MAX, |w| w.id);
    let Some(peer) = state
        .waiting
        .iter()
        .max_by(|a, b| a.1.len().cmp(&b.1.len()).then(front(b.1).cmp(&front(a.1))))
        .map(|(peer, _)| *peer)
    else {
        return false;
    };
    let Some(victim) = state.waiting.get_mut(&peer).and_then(VecDeque::pop_front) else {
        return false;
    };
    if state.waiting.get(&peer).is_some_and(VecDeque::is_empty) {
        state.waiting.remove(&peer);
    }
    victim.evict.cancel();
    state.unauthenticated -= 1;
    give_back_slot(state, peer);
    true
}

fn give_back_slot(state: &mut State, peer: IpAddr) {
    state.slots -= 1;
    if let Some(n) = state.per_peer.get_mut(&peer) {
        *n -= 1;
        if *n == 0 {
            state.per_peer.remove(&peer);
        }
    }
}

impl Ticket {
    /// Cancelled when this connection is evicted to admit another.
    pub(crate) fn evicted(&self) -> &CancellationToken {
        &self.evict
    }

    /// The connection has sent an authenticated frame: it is no longer evictable.
    pub(crate) fn authenticated(&mut self) {
        if std::mem::replace(&mut self.authenticated, true) {
            return;
        }
        let mut state = self.admission.lock();
        if self.evict.is_cancelled() {
            return;
        }
        remove_waiting(&mut state, self.peer, self.id);
        self.admission.metrics.set_unauthenticated(state.unauthenticated);
    }
}

fn remove_waiting(state: &mut State, peer: IpAddr, id: u64) {
    if let Some(queue) = state.waiting.get_mut(&peer) {
        queue.retain(|w| w.id != id);
        if queue.is_empty() {
            state.waiting.remove(&peer);
        }
        state.unauthenticated -= 1;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let admission = &self.admission;
        let mut state = admission.lock();
        state.alive -= 1;
        // An evicted connection gave its slot up when it was evicted.
        if !self.evict.is_cancelled() {
            if !self.authenticated {
                remove_waiting(&mut state, self.peer, self.id);
            }
            give_back_slot(&mut state, self.peer);
        }
        admission.metrics.set_unauthenticated(state.unauthenticated);
        drop(state);
        admission.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(total: usize, per_peer: usize, unauthenticated: usize) -> Arc<Admission> {
        let limits = Limits {
            max_connections: total,
            max_connections_per_peer: per_peer,
            max_unauthenticated: unauthenticated,
            ..Limits::default()
        };
        Arc::new(Admission::new(&limits))
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn the_crowd_is_evicted_not_the_newcomer() {
        let admission = admission(100, 100, 3);
        let crowd: Vec<Ticket> = (0..3).map(|_| admission.admit(ip(2)).unwrap()).collect();
        let logger = admission.admit(ip(1)).unwrap();
        assert!(crowd[0].evicted().is_cancelled(), "the oldest of the address with the most goes");
        assert!(!crowd[1].evicted().is_cancelled());
        // More from the crowd evict the crowd's own, never the logger (one waiting).
        let more: Vec<Ticket> = (0..5).map(|_| admission.admit(ip(2)).unwrap()).collect();
        assert!(!logger.evicted().is_cancelled());
        assert!(crowd[1].evicted().is_cancelled() && crowd[2].evicted().is_cancelled());
        assert_eq!(more.iter().filter(|t| t.evicted().is_cancelled()).count(), 3);
        assert_eq!(admission.lock().unauthenticated, 3);
    }

    #[test]
    fn authenticated_connections_are_kept_and_fill_the_total() {
        let admission = admission(2, 10, 10);
        let mut a = admission.admit(ip(1)).unwrap();
        a.authenticated();
        let b = admission.admit(ip(2)).unwrap();
        let c = admission.admit(ip(3)).unwrap();
        assert!(b.evicted().is_cancelled(), "the total is full: an unauthenticated one makes room");
        assert!(!a.evicted().is_cancelled());
        let mut c = c;
        c.authenticated();
        assert_eq!(admission.admit(ip(4)).unwrap_err(), Refusal::Full);
        drop(a);
        assert!(admission.admit(ip(4)).is_ok(), "a slot was given back");
        drop((b, c));
        let state = admission.lock();
        assert_eq!((state.slots, state.alive, state.unauthenticated), (0, 0, 0));
        assert!(state.per_peer.is_empty() && state.waiting.is_empty());
    }

    #[test]
    fn one_address_has_at_most_its_share() {
        let admission = admission(100, 2, 100);
        let _held = [admission.admit(ip(1)).unwrap(), admission.admit(ip(1)).unwrap()];
        assert_eq!(admission.admit(ip(1)).unwrap_err(), Refusal::PerPeer);
        assert!(admission.admit(ip(2)).is_ok());
    }
}
