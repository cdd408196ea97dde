//! Bounded reassembly of split messages (Flag D bit, PNUM/PNO; HJ 212-2017 App. C tables C.49-C.50).
//!
//! Each packet is a complete frame with its own QN and is answered on its own; the
//! standard gives no reassembly key beyond MN, CN, DataTime and PNUM, so that is the key.
//! Memory is bounded: at most `max_pending` open messages of at most `max_parts` packets;
//! when full, the oldest open message is given up and handed back.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::{Duration, Instant};

/// Identifies the packets of one split message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SplitKey {
    pub mn: String,
    pub cn: u16,
    pub data_time: Option<String>,
    pub pnum: u16,
}

/// Limits of the reassembler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitLimits {
    /// Open messages held at once.
    pub max_pending: usize,
    /// Largest PNUM accepted.
    pub max_parts: u16,
    /// How long an incomplete message is kept after its first packet.
    pub timeout: Duration,
}

impl Default for SplitLimits {
    fn default() -> Self {
        Self { max_pending: 1024, max_parts: 100, timeout: Duration::from_secs(300) }
    }
}

/// A packet that cannot belong to a split message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SplitError {
    #[error("PNO {pno} is outside 1..={pnum}")]
    PnoOutOfRange { pno: u16, pnum: u16 },
    #[error("PNUM {pnum} exceeds the limit of {max}")]
    TooManyParts { pnum: u16, max: u16 },
}

/// What a push produced.
#[derive(Debug, PartialEq, Eq)]
pub struct Pushed<T> {
    /// All packets of the message, in PNO order, when this push completed it.
    pub complete: Option<Vec<T>>,
    /// An older incomplete message given up to make room: its key and the packets it had.
    pub evicted: Option<(SplitKey, Vec<T>)>,
}

#[derive(Debug)]
struct Pending<T> {
    first_seen: Instant,
    parts: Vec<Option<T>>,
    received: u16,
}

impl<T> Pending<T> {
    fn into_received(self) -> Vec<T> {
        self.parts.into_iter().flatten().collect()
    }
}

/// Collects split packets until each message is whole or times out.
#[derive(Debug)]
pub struct Reassembler<T> {
    limits: SplitLimits,
    pending: HashMap<SplitKey, Pending<T>>,
}

impl<T> Reassembler<T> {
    pub fn new(limits: SplitLimits) -> Self {
        Self { limits, pending: HashMap::new() }
    }

    /// Open messages.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Adds packet `pno` of `key`; a repeated PNO replaces the earlier copy.
    ///
    /// # Errors
    /// [`SplitError`] when PNO or PNUM is impossible or over the limit.
    pub fn push(&mut self, key: SplitKey, pno: u16, packet: T, now: Instant) -> Result<Pushed<T>, SplitError> {
        let pnum = key.pnum;
        if pnum > self.limits.max_parts {
            return Err(SplitError::TooManyParts { pnum, max: self.limits.max_parts });
        }
        if pno == 0 || pno > pnum {
            return Err(SplitError::PnoOutOfRange { pno, pnum });
        }
        let mut evicted = None;
        if !self.pending.contains_key(&key) && self.pending.len() >= self.limits.max_pending {
            evicted = self.evict_oldest();
        }
        let mut entry = match self.pending.entry(key) {
            Entry::Occupied(entry) => entry,
            Entry::Vacant(entry) => {
                entry.insert_entry(Pending { first_seen: now, parts: (0..pnum).map(|_| None).collect(), received: 0 })
            }
        };
        let pending = entry.get_mut();
        let slot = &mut pending.parts[usize::from(pno - 1)];
        if slot.is_none() {
            pending.received += 1;
        }
        *slot = Some(packet);
        let complete = (pending.received == pnum).then(|| entry.remove().into_received());
        Ok(Pushed { complete, evicted })
    }

    /// Gives up messages older than the timeout, returning what each had received.
    pub fn expire(&mut self, now: Instant) -> Vec<(SplitKey, Vec<T>)> {
        let timeout = self.limits.timeout;
        let expired: Vec<SplitKey> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.first_seen) >= timeout)
            .map(|(k, _)| k.clone())
            .collect();
        expired.into_iter().filter_map(|k| self.pending.remove(&k).map(|p| (k, p.into_received()))).collect()
    }

    fn evict_oldest(&mut self) -> Option<(SplitKey, Vec<T>)> {
        let oldest = self.pending.iter().min_by_key(|(_, p)| p.first_seen).map(|(k, _)| k.clone())?;
        self.pending.remove(&oldest).map(|p| (oldest, p.into_received()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(dt: &str, pnum: u16) -> SplitKey {
        SplitKey { mn: "M".into(), cn: 2061, data_time: Some(dt.into()), pnum }
    }

    #[test]
    fn completes_in_pno_order_whatever_the_arrival_order() {
        let mut r = Reassembler::new(SplitLimits::default());
        let now = Instant::now();
        assert_eq!(r.push(key("a", 3), 3, "c", now).unwrap().complete, None);
        assert_eq!(r.push(key("a", 3), 1, "a", now).unwrap().complete, None);
        assert_eq!(r.push(key("a", 3), 1, "a2", now).unwrap().complete, None);
        assert_eq!(r.push(key("a", 3), 2, "b", now).unwrap().complete, Some(vec!["a2", "b", "c"]));
        assert!(r.is_empty());
    }

    #[test]
    fn bounded_and_expiring() {
        let limits = SplitLimits { max_pending: 2, max_parts: 4, timeout: Duration::from_secs(10) };
        let mut r = Reassembler::new(limits);
        let t0 = Instant::now();
        r.push(key("a", 2), 1, 1, t0).unwrap();
        r.push(key("b", 2), 1, 2, t0 + Duration::from_secs(1)).unwrap();
        let pushed = r.push(key("c", 2), 1, 3, t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(pushed.evicted, Some((key("a", 2), vec![1])));
        assert_eq!(r.len(), 2);
        let expired = r.expire(t0 + Duration::from_secs(11));
        assert_eq!(expired, vec![(key("b", 2), vec![2])]);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn rejects_impossible_numbers() {
        let mut r = Reassembler::new(SplitLimits { max_parts: 4, ..SplitLimits::default() });
        let now = Instant::now();
        assert_eq!(r.push(key("a", 2), 0, (), now).unwrap_err().to_string(), "PNO 0 is outside 1..=2");
        assert_eq!(r.push(key("a", 2), 3, (), now).unwrap_err(), SplitError::PnoOutOfRange { pno: 3, pnum: 2 });
        assert_eq!(r.push(key("a", 5), 1, (), now).unwrap_err().to_string(), "PNUM 5 exceeds the limit of 4");
    }
}
