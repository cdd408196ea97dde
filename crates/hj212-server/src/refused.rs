//! Refused traffic and resends, budgeted per peer (IP address) and interval. Within the
//! budget every chunk is archived in full, as before; beyond it a chunk is only counted, and
//! at the end of the interval each peer's counts become one summary record. So a peer that
//! sends garbage or replays one frame costs the disk at most its budget plus one short record
//! per interval, however many connections it opens.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hj212_archive::{Kind, NewRecord, Verdict, now_ms};
use hj212_config::Limits;
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::metrics::RefusedMetrics;

/// Bytes of the first summarised chunk kept in its summary (enough to recognise a protocol).
const FIRST_BYTES: usize = 64;

/// The verdicts that can be summarised, in the order of their counters.
pub(crate) const SUMMARISABLE: [Verdict; 9] = [
    Verdict::Duplicate,
    Verdict::UnknownMn,
    Verdict::BadPassword,
    Verdict::BadCrc,
    Verdict::ParseError,
    Verdict::BadTimestamp,
    Verdict::Unframed,
    Verdict::DecryptOrCrc,
    Verdict::NotEncrypted,
];

/// How a chunk is budgeted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rule<'a> {
    /// Archived in full while the peer's and the total budget last.
    Budget,
    /// Archived in full regardless (a resend whose original is not on disk yet); still counts.
    Keep,
    /// A wrong password for this configured MN: besides the budget, the first one per MN and
    /// interval is kept (while such frames stay within the total budget again), so the
    /// auth-failure alert, which reads it, fires under a flood too.
    WrongPassword(&'a str),
}

/// One peer's refused traffic in the current interval.
#[derive(Debug, Default)]
struct Tally {
    kept_bytes: u64,
    summarised_bytes: u64,
    summarised: [u64; SUMMARISABLE.len()],
    /// When the first summarised chunk arrived, and its first bytes.
    first: Option<(i64, Vec<u8>)>,
}

#[derive(Debug)]
struct State {
    since_ms: i64,
    kept_bytes: u64,
    /// Bytes of wrong-password frames kept beyond the budgets (at most `total` too).
    exempt_bytes: u64,
    peers: HashMap<IpAddr, Tally>,
    /// Peers beyond `refused_peers`, together.
    others: Tally,
    /// Configured MNs whose wrong-password frame was kept this interval.
    password_mns: HashSet<String>,
}

/// The per-peer budgets of the current interval.
#[derive(Debug)]
pub(crate) struct RefusedLog {
    per_peer: u64,
    total: u64,
    peers: usize,
    state: Mutex<State>,
    metrics: RefusedMetrics,
}

impl RefusedLog {
    pub(crate) fn new(limits: &Limits) -> Self {
        let state = State {
            since_ms: now_ms(),
            kept_bytes: 0,
            exempt_bytes: 0,
            peers: HashMap::new(),
            others: Tally::default(),
            password_mns: HashSet::new(),
        };
        Self {
            per_peer: limits.refused_bytes_per_peer,
            total: limits.refused_bytes_total,
            peers: limits.refused_peers.max(1),
            state: Mutex::new(state),
            metrics: RefusedMetrics::default(),
        }
    }

    /// True if the chunk is to be archived in full; otherwise it has been counted for the
    /// peer's summary.
    pub(crate) fn admit(&self, peer: IpAddr, verdict: Verdict, data: &[u8], rule: Rule<'_>, now_ms: i64) -> bool {
        let len = data.len() as u64;
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let State { kept_bytes, exempt_bytes, peers, others, password_mns, .. } = &mut *guard;
        let tally = if peers.len() < self.peers || peers.contains_key(&peer) {
            peers.entry(peer).or_default()
        } else {
            self.metrics.untracked.increment(1);
            others
        };
        let within = tally.kept_bytes + len <= self.per_peer && *kept_bytes + len <= self.total;
        let exempt = !within
            && match rule {
                Rule::WrongPassword(mn) => {
                    *exempt_bytes + len <= self.total
                        && !password_mns.contains(mn)
                        && password_mns.insert(mn.to_owned())
                }
                Rule::Budget | Rule::Keep => false,
            };
        if within || exempt || matches!(rule, Rule::Keep) {
            tally.kept_bytes += len;
            if exempt {
                *exempt_bytes += len;
            } else {
                *kept_bytes += len;
            }
            self.metrics.kept_bytes.increment(len);
            return true;
        }
        let index = SUMMARISABLE.iter().position(|v| *v == verdict).unwrap_or(0);
        tally.summarised[index] += 1;
        tally.summarised_bytes += len;
        tally.first.get_or_insert_with(|| (now_ms, data[..data.len().min(FIRST_BYTES)].to_vec()));
        self.metrics.summarised(index, len);
        false
    }

    /// Ends the interval: one summary record per peer that went over its budget; budgets
    /// start again.
    pub(crate) fn take(&self, now_ms: i64) -> Vec<NewRecord> {
        let (since_ms, peers, others) = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.kept_bytes = 0;
            state.exempt_bytes = 0;
            state.password_mns.clear();
            let since = std::mem::replace(&mut state.since_ms, now_ms);
            (since, std::mem::take(&mut state.peers), std::mem::take(&mut state.others))
        };
        let mut records: Vec<NewRecord> = peers
            .into_iter()
            .map(|(ip, tally)| (ip.to_string(), tally))
            .chain(std::iter::once(("other".to_owned(), others)))
            .filter_map(|(peer, tally)| tally.summary(peer, since_ms, now_ms))
            .collect();
        records.sort_by_key(|r| r.time_ms);
        records
    }
}

impl Tally {
    fn summary(self, peer: String, since_ms: i64, now_ms: i64) -> Option<NewRecord> {
        let (first_ms, first) = self.first?;
        let counts: serde_json::Map<String, serde_json::Value> = SUMMARISABLE
            .iter()
            .zip(self.summarised)
            .filter(|(_, n)| *n > 0)
            .map(|(verdict, n)| (verdict.as_str().to_owned(), n.into()))
            .collect();
        // As text with escapes, not hex: the auditor's export masks `PW=` in it as in frames.
        let summary = serde_json::json!({
            "peer": peer,
            "from_ms": since_ms,
            "to_ms": now_ms,
            "summarised": counts,
            "summarised_bytes": self.summarised_bytes,
            "kept_bytes": self.kept_bytes,
            "first_ms": first_ms,
            "first_bytes": first.escape_ascii().to_string(),
        });
        Some(NewRecord {
            kind: Kind::Received,
            verdict: Verdict::RefusedSummary,
            flags: 0,
            time_ms: first_ms.max(since_ms),
            peer,
            data: summary.to_string().into_bytes(),
        })
    }
}

/// Appends the summaries at the end of every interval, and of the last one once the
/// connections have finished at shutdown.
pub(crate) async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let period = Duration::from_secs(shared.limits.refused_interval_secs.max(1));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => append(&shared).await,
            () = shutdown.cancelled() => break,
        }
    }
    shared.admission.finished().await;
    append(&shared).await;
}

async fn append(shared: &Shared) {
    let records = shared.refused.take(now_ms());
    let mut pending = Vec::with_capacity(records.len());
    for record in records {
        match shared.archive.submit(record).await {
            Ok(p) => pending.push(p),
            Err(error) => {
                tracing::error!(%error, "cannot archive a refused-traffic summary");
                break;
            }
        }
    }
    for p in pending {
        match p.durable().await {
            Ok(_) => shared.refused.metrics.summaries.increment(1),
            Err(error) => tracing::error!(%error, "cannot archive a refused-traffic summary"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(per_peer: u64, total: u64, peers: usize) -> RefusedLog {
        let limits = Limits {
            refused_bytes_per_peer: per_peer,
            refused_bytes_total: total,
            refused_peers: peers,
            ..Limits::default()
        };
        RefusedLog::new(&limits)
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn summary(record: &NewRecord) -> serde_json::Value {
        serde_json::from_slice(&record.data).unwrap()
    }

    #[test]
    fn a_peer_is_kept_in_full_up_to_its_budget_then_summarised_once() {
        let log = log(100, 1000, 10);
        let chunk = [b'x'; 40];
        let kept: Vec<bool> =
            (0..5).map(|i| log.admit(ip(2), Verdict::Unframed, &chunk, Rule::Budget, 1000 + i)).collect();
        assert_eq!(kept, [true, true, false, false, false], "80 of 100 bytes kept; 120 would not fit");
        assert!(log.admit(ip(3), Verdict::BadCrc, &chunk, Rule::Budget, 2000), "another peer has its own budget");
        assert!(!log.admit(ip(2), Verdict::Duplicate, &chunk, Rule::Budget, 3000));
        let records = log.take(5000);
        assert_eq!(records.len(), 1, "peer 3 stayed within its budget: no summary");
        let s = summary(&records[0]);
        assert_eq!((records[0].peer.as_str(), records[0].verdict), ("127.0.0.2", Verdict::RefusedSummary));
        assert_eq!(s["summarised"], serde_json::json!({"duplicate": 1, "unframed": 3}));
        assert_eq!((s["summarised_bytes"].as_u64(), s["kept_bytes"].as_u64()), (Some(160), Some(80)));
        assert_eq!((s["first_ms"].as_i64(), s["first_bytes"].as_str()), (Some(1002), Some("x".repeat(40).as_str())));
        assert!(log.admit(ip(2), Verdict::Unframed, &chunk, Rule::Budget, 6000), "a new interval, a new budget");
        assert!(log.take(7000).is_empty());
    }

    #[test]
    fn the_total_budget_and_the_peer_cap_bound_everything() {
        let log = log(100, 150, 2);
        let chunk = [0u8; 60];
        assert!(log.admit(ip(1), Verdict::Unframed, &chunk, Rule::Budget, 1));
        assert!(log.admit(ip(2), Verdict::Unframed, &chunk, Rule::Budget, 2));
        assert!(!log.admit(ip(2), Verdict::Unframed, &chunk, Rule::Budget, 3), "the total budget is spent");
        for last in 3..200 {
            assert!(!log.admit(ip(last), Verdict::Unframed, &chunk, Rule::Budget, 4));
        }
        let records = log.take(10);
        let peers: Vec<&str> = records.iter().map(|r| r.peer.as_str()).collect();
        assert_eq!(peers, ["127.0.0.2", "other"], "peers beyond the cap share one summary");
        assert_eq!(summary(&records[1])["summarised"]["unframed"], 197);
        assert_eq!(summary(&records[0])["first_bytes"].as_str().unwrap(), "\\x00".repeat(60));
    }

    #[test]
    fn the_first_wrong_password_per_mn_is_kept_and_pending_resends_always() {
        let log = log(0, 1000, 10);
        let frame = b"##0010QN=1;PW=1;MN=M1;CP=&&&&0000\r\n";
        assert!(log.admit(ip(1), Verdict::BadPassword, frame, Rule::WrongPassword("M1"), 1));
        assert!(!log.admit(ip(1), Verdict::BadPassword, frame, Rule::WrongPassword("M1"), 2));
        assert!(log.admit(ip(2), Verdict::BadPassword, frame, Rule::WrongPassword("M2"), 3));
        assert!(log.admit(ip(1), Verdict::Duplicate, frame, Rule::Keep, 4));
        assert!(!log.admit(ip(1), Verdict::Duplicate, frame, Rule::Budget, 5));
        assert_eq!(log.take(6).len(), 1);
        assert!(log.admit(ip(1), Verdict::BadPassword, frame, Rule::WrongPassword("M1"), 7), "once per interval");
    }

    #[test]
    fn kept_wrong_passwords_are_bounded_by_the_total_budget_too() {
        let log = log(0, 100, 10);
        let frame = [b'#'; 40];
        let kept: Vec<bool> = ["M1", "M2", "M3"]
            .iter()
            .map(|mn| log.admit(ip(1), Verdict::BadPassword, &frame, Rule::WrongPassword(mn), 1))
            .collect();
        assert_eq!(kept, [true, true, false], "a flood over many known MNs is bounded");
    }
}
