//! Automatic gap recovery (主动补传): every `interval_secs` the sweep reads each connected
//! site's missing periods from the rate ledger (the store), merges neighbours into ranges and
//! queues one history request (2061 / 2031 / 2051, HJ 212-2017 Table 9) per site at a time,
//! oldest first, within the site's hourly budget. Only periods the logger has moved past are
//! asked for: ones before the newest record the store holds of the site (any of 2011, 2051,
//! 2061, 2031) by the grace at least; a logger still catching up (sending its own backlog) or
//! silent is left to its own backfill and the offline alert. A site that refuses (QnRtn != 1) or does not
//! answer is left alone for `backoff_secs`; a period is asked for at most
//! [`ATTEMPTS_PER_PERIOD`] times, and never again once the logger answered ExeRtn=100 (no data).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hj212_compliance::{Basis, Range, Rules};
use hj212_config::{Recovery, RecoveryBasis, Site};
use hj212_proto::time::BeijingTime;
use hj212_store::{Store, rules_for};
use metrics::{counter, describe_counter, describe_gauge, gauge};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::command::{Command, Origin, State};
use crate::hub::{Hub, now_ms};
use crate::spec::{CommandSpec, Exchange};

/// Times one period is asked for before it is left as missing (the logger may not hold it).
pub const ATTEMPTS_PER_PERIOD: u32 = 3;
/// Periods already received that a request may span to join two gaps: each costs a re-sent
/// record and its 9014, a separate request three frames (request, 9011, 9012).
const JOIN_ACROSS_HELD: i64 = 1;

/// What the API shows of a site's recovery.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SiteRecovery {
    /// History requests queued by the sweep.
    pub requests: u64,
    /// Of those, refused (QnRtn != 1) or never answered.
    pub refusals: u64,
    /// Records received in answer.
    pub records: u64,
    /// Periods the last sweep found missing (within the lookback).
    pub missing_periods: u64,
    /// Periods left missing after every attempt, or that the logger does not hold (ExeRtn=100).
    pub given_up_periods: u64,
    /// Until when (Unix ms) the site is left alone after a refusal or no answer.
    pub backoff_until_ms: Option<i64>,
    /// How the last request ended (`completed`, `rejected: QnRtn=2 ...`, `failed: ...`).
    pub last_outcome: Option<String>,
}

/// The sweep's memory of one site.
#[derive(Debug, Default)]
struct Memory {
    view: SiteRecovery,
    /// When requests were queued (the last hour's, for the budget).
    recent: VecDeque<i64>,
    /// Attempts per (CN, period start).
    attempts: HashMap<(u16, i64), u32>,
    /// The last request and the missing periods it asked for.
    last: Option<(u64, u16, Vec<i64>)>,
    /// No new request until the store has applied the archive up to here (the last answer).
    settle_seq: u64,
}

/// Every site's recovery state: the sweep's memory (held by the sweep while it runs) and the
/// views the API reads (each updated as its site is swept, so a read never waits for a sweep).
#[derive(Debug, Default)]
pub struct Board {
    memory: Mutex<HashMap<String, Memory>>,
    views: Mutex<HashMap<String, SiteRecovery>>,
}

impl Board {
    pub fn view(&self, mn: &str) -> Option<SiteRecovery> {
        self.views.lock().unwrap_or_else(PoisonError::into_inner).get(mn).cloned()
    }

    fn publish(&self, mn: &str, view: &SiteRecovery) {
        self.views.lock().unwrap_or_else(PoisonError::into_inner).insert(mn.to_owned(), view.clone());
    }
}

/// Where the sweep reads what it needs, all shared with the daemon.
pub struct Sweep {
    pub hub: Arc<Hub>,
    pub board: Arc<Board>,
    /// The store (`store.sqlite`), read-only.
    pub store: PathBuf,
    /// `[recovery]`; a site's `[sites.recovery]` replaces it.
    pub defaults: Recovery,
    /// The current site list (reloaded on SIGHUP).
    pub sites: Box<dyn Fn() -> Vec<Site> + Send + Sync>,
    /// The newest position the store follows now: the archive's durable sequence number, or
    /// the cluster stream's last (`[cluster] store_from = "stream"`).
    pub durable_seq: Box<dyn Fn() -> u64 + Send + Sync>,
    /// In a cluster whose stores follow the stream (every node sees the same gaps): whether
    /// this node may ask a site (no other node asked it lately). None: a single node asks.
    pub claim: Option<Claim>,
}

/// Whether this node may ask a site (by MN) for its history now.
pub type Claim = Box<dyn Fn(&str) -> bool + Send + Sync>;

impl std::fmt::Debug for Sweep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sweep").field("store", &self.store).field("defaults", &self.defaults).finish_non_exhaustive()
    }
}

impl Sweep {
    /// Sweeps every `defaults.interval_secs` until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        describe();
        let interval = Duration::from_secs(self.defaults.interval_secs.max(1));
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = shutdown.cancelled() => return,
            }
            let sweep = self.clone();
            if let Ok(Err(error)) = tokio::task::spawn_blocking(move || sweep.once(now_ms())).await {
                tracing::warn!(%error, "gap recovery: cannot read the rate ledger; trying again next sweep");
            }
        }
    }

    /// One sweep over every site at `now_ms`.
    ///
    /// # Errors
    /// The store cannot be read.
    pub fn once(&self, now_ms: i64) -> Result<(), hj212_store::StoreError> {
        let sites = (self.sites)();
        sweep(self, &sites, now_ms)
    }
}

fn sweep(sweep: &Sweep, sites: &[Site], now_ms: i64) -> Result<(), hj212_store::StoreError> {
    let (hub, board, defaults, store) = (&sweep.hub, &sweep.board, &sweep.defaults, &sweep.store);
    if !store.exists() {
        return Ok(());
    }
    let store = Store::open_read_only(store)?;
    let applied = store.applied_seq()?;
    let mut memory = board.memory.lock().unwrap_or_else(PoisonError::into_inner);
    let mut missing_total = 0;
    for site in sites {
        let settings = site.recovery.as_ref().unwrap_or(defaults);
        if !settings.enabled || site.factors.is_empty() {
            continue;
        }
        let memory = memory.entry(site.mn.clone()).or_default();
        if learn(hub, memory, settings, now_ms) {
            // Its answer is in the archive up to here at most; until the store has it, the
            // ledger still shows the periods missing.
            memory.settle_seq = (sweep.durable_seq)();
        }
        let wanted = wanted(&store, site, settings, memory, now_ms)?;
        missing_total += memory.view.missing_periods;
        if applied >= memory.settle_seq {
            let claim = |mn: &str| sweep.claim.as_ref().is_none_or(|claim| claim(mn));
            request(hub, site, settings, memory, wanted, now_ms, &claim);
        }
        board.publish(&site.mn, &memory.view);
    }
    gauge!("hj212_recovery_missing_periods").set(missing_total as f64);
    Ok(())
}

/// Queues the history request `wanted` for `site`, if the site is connected, free, not backed
/// off, within its hourly budget and (in a cluster) not being asked by another node.
fn request(
    hub: &Hub,
    site: &Site,
    settings: &Recovery,
    memory: &mut Memory,
    wanted: Option<Wanted>,
    now_ms: i64,
    claim: &dyn Fn(&str) -> bool,
) {
    let Some((cn, periods, range)) = wanted else { return };
    if !hub.is_connected(&site.mn)
        || hub.has_pending(&site.mn, Origin::Recovery)
        || memory.view.backoff_until_ms.is_some_and(|until| until > now_ms)
    {
        return;
    }
    memory.recent.retain(|at| now_ms - at < 3_600_000);
    if memory.recent.len() >= settings.max_requests_per_site_hour as usize || !claim(&site.mn) {
        return;
    }
    match hub.submit(&site.mn, history_spec(cn, range), Origin::Recovery, None, now_ms) {
        Ok(command) => {
            for period in &periods {
                *memory.attempts.entry((cn, *period)).or_default() += 1;
            }
            memory.recent.push_back(now_ms);
            memory.view.requests += 1;
            memory.last = Some((command.id, cn, periods));
            counter!("hj212_recovery_requests_total", "outcome" => "queued").increment(1);
        }
        Err(error) => tracing::debug!(mn = %site.mn, %error, "gap recovery: request not queued"),
    }
}

/// Takes in how the site's last request ended; true when it just has.
fn learn(hub: &Hub, memory: &mut Memory, settings: &Recovery, now_ms: i64) -> bool {
    let Some((id, cn, periods)) = memory.last.take() else { return false };
    let command = match hub.get(id) {
        Ok(Some(command)) if command.state.is_final() => command,
        Ok(Some(_)) => {
            memory.last = Some((id, cn, periods));
            return false;
        }
        _ => return false,
    };
    memory.view.records += command.records;
    counter!("hj212_recovery_records_total").increment(command.records);
    let outcome = outcome(&command);
    counter!("hj212_recovery_requests_total", "outcome" => outcome).increment(1);
    memory.view.last_outcome =
        Some(command.reason.as_ref().map_or_else(|| outcome.to_owned(), |r| format!("{outcome}: {r}")));
    let answered = command.qn_rtn == Some(1) || command.exe_rtn.is_some();
    if !answered || command.state == State::Rejected {
        memory.view.refusals += 1;
        memory.view.backoff_until_ms = Some(now_ms + i64::try_from(settings.backoff_secs * 1000).unwrap_or(i64::MAX));
    }
    if command.exe_rtn == Some(100) {
        // The logger does not hold them: asking again cannot help.
        for period in periods {
            memory.attempts.insert((cn, period), ATTEMPTS_PER_PERIOD);
        }
    }
    true
}

fn outcome(command: &Command) -> &'static str {
    match (command.state, command.exe_rtn) {
        (State::Completed, _) => "completed",
        (State::Failed, Some(100)) => "no_data",
        (State::Rejected, _) => "refused",
        (State::Failed, None) => "no_answer",
        (State::Failed, Some(_)) => "failed",
        _ => "expired",
    }
}

/// A history request to make: its CN, the missing periods it covers, and its range (inclusive period starts).
type Wanted = (u16, Vec<i64>, (i64, i64));

/// The oldest range of missing periods worth asking for.
fn wanted(
    store: &Store,
    site: &Site,
    settings: &Recovery,
    memory: &mut Memory,
    now_ms: i64,
) -> Result<Option<Wanted>, hj212_store::StoreError> {
    let mut first = None;
    memory.view.missing_periods = 0;
    memory.view.given_up_periods = 0;
    let Some(newest) = store.newest_data_time(&site.mn)? else { return Ok(None) };
    let grace_ms = i64::from(settings.grace_minutes) * 60_000;
    for basis in &settings.bases {
        let (cn, rules) = rules_of(site, *basis);
        let cutoff_from = now_ms - rules.cutoff_ms;
        let lookback_from = now_ms - i64::from(settings.lookback_hours) * 3_600_000;
        // HJ 212: a period's record comes after the period ends; asking before the grace is over
        // would be early, and so would asking for periods the logger has not reached itself.
        let until = (now_ms - grace_ms).min(newest - grace_ms);
        let range = Range { from_ms: cutoff_from.max(lookback_from), to_ms: until };
        if range.to_ms <= range.from_ms {
            continue;
        }
        let evidence = store.site_rate(site, &rules, range, until)?;
        let periods: BTreeSet<i64> = evidence.report.missing.iter().map(|(_, period)| *period).collect();
        memory.view.missing_periods += periods.len() as u64;
        let mut open = Vec::new();
        for period in periods {
            if memory.attempts.get(&(cn, period)).copied().unwrap_or(0) >= ATTEMPTS_PER_PERIOD {
                memory.view.given_up_periods += 1;
            } else {
                open.push(period);
            }
        }
        if first.is_none()
            && let Some(periods) = first_range(&open, rules.basis.period_ms(), settings.max_periods_per_request)
        {
            let range = (periods[0], *periods.last().expect("not empty"));
            first = Some((cn, periods, range));
        }
    }
    Ok(first)
}

/// The oldest run of `missing` (sorted period starts) joined across at most
/// [`JOIN_ACROSS_HELD`] received periods and spanning at most `max_periods`.
fn first_range(missing: &[i64], step: i64, max_periods: u32) -> Option<Vec<i64>> {
    let (&start, rest) = missing.split_first()?;
    let mut taken = vec![start];
    for &period in rest {
        let last = *taken.last().expect("not empty");
        let held_between = (period - last) / step - 1;
        let span = (period - start) / step + 1;
        if held_between > JOIN_ACROSS_HELD || span > i64::from(max_periods) {
            break;
        }
        taken.push(period);
    }
    Some(taken)
}

fn rules_of(site: &Site, basis: RecoveryBasis) -> (u16, Rules) {
    let mut rules = rules_for(site);
    let (cn, basis) = match basis {
        RecoveryBasis::Hour => (2061, Basis::Hour),
        RecoveryBasis::Day => (2031, Basis::Day),
        RecoveryBasis::Minute => (2051, Basis::Minute { interval: site.rate.minute_interval }),
    };
    rules.basis = basis;
    // Whether a recovered record is valid is the ledger's business; here only presence counts.
    rules.min_valid_minutes = None;
    (cn, rules)
}

fn history_spec(cn: u16, (begin, end): (i64, i64)) -> CommandSpec {
    let time = |ms| BeijingTime::from_unix_millis(ms).to_seconds_string();
    let cp = vec![("BeginTime".to_owned(), time(begin)), ("EndTime".to_owned(), time(end))];
    let step = match cn {
        2031 => 86_400_000,
        2051 => 60_000,
        _ => 3_600_000,
    };
    let records_asked = u64::try_from((end - begin) / step + 1).unwrap_or(1);
    CommandSpec { cn, cp, exchange: Exchange::Request, records_asked }
}

/// The sweep's counters at zero (called when the hub opens, before the first scrape).
pub(crate) fn zero() {
    for outcome in ["queued", "completed", "refused", "no_answer", "no_data", "failed", "expired"] {
        counter!("hj212_recovery_requests_total", "outcome" => outcome).increment(0);
    }
    counter!("hj212_recovery_records_total").increment(0);
}

fn describe() {
    describe_counter!(
        "hj212_recovery_requests_total",
        "Gap-recovery history requests: queued, and how each ended (completed, refused, no_answer, no_data, failed, expired)"
    );
    describe_counter!("hj212_recovery_records_total", "Records received in answer to gap-recovery requests");
    describe_gauge!(
        "hj212_recovery_missing_periods",
        "Missing periods within the recovery lookback, all sites, at the last sweep"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn neighbours_join_across_few_held_periods() {
        assert_eq!(first_range(&[0, H, 2 * H], H, 24), Some(vec![0, H, 2 * H]));
        // One held period between: joined (its record and 9014 cost less than a second request).
        assert_eq!(first_range(&[0, 2 * H], H, 24), Some(vec![0, 2 * H]));
        assert_eq!(first_range(&[0, 3 * H, 4 * H], H, 24), Some(vec![0]));
        assert_eq!(first_range(&[0, H, 2 * H, 3 * H], H, 2), Some(vec![0, H]));
        assert_eq!(first_range(&[], H, 24), None);
    }

    #[test]
    fn history_request_names_inclusive_period_starts() {
        let begin = BeijingTime::parse("20261101030000").unwrap().unix_millis();
        let spec = history_spec(2061, (begin, begin + 2 * H));
        assert_eq!(spec.cp_text(), "BeginTime=20261101030000;EndTime=20261101050000");
        assert_eq!(spec.records_asked, 3);
    }
}
