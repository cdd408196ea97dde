//! Every site's effective rate today and this month, for the fleet page. Computing them takes
//! about a millisecond per site-month from the rate ledger (seconds for 10,000 sites), so
//! pages show the last figures and a refresh runs in the background, at most one at a time and
//! at most once per [`REFRESH_AFTER`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hj212_compliance::Range;
use hj212_proto::time::BeijingTime;
use hj212_store::Store;

use crate::AppState;

/// Figures older than this are computed again when a page asks.
const REFRESH_AFTER: Duration = Duration::from_secs(60);

const DAY_MS: i64 = 86_400_000;

/// One site's effective rates (hundredths of a percent; `None`: nothing due yet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SiteRates {
    pub today: Option<u64>,
    pub month: Option<u64>,
}

/// The figures of every site and when they were computed.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub computed_ms: i64,
    pub by_mn: HashMap<String, SiteRates>,
}

#[derive(Debug, Default)]
pub(crate) struct FleetRates {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    snapshot: std::sync::Arc<Snapshot>,
    started: Option<Instant>,
    running: bool,
}

impl FleetRates {
    /// The latest figures; starts a refresh in the background when they are old.
    pub(crate) fn get(&self, state: &AppState) -> std::sync::Arc<Snapshot> {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let old = inner.started.is_none_or(|t| t.elapsed() >= REFRESH_AFTER);
        if old && !inner.running {
            inner.running = true;
            inner.started = Some(Instant::now());
            let state = state.clone();
            tokio::spawn(async move { refresh(state).await });
        }
        inner.snapshot.clone()
    }

    fn finished(&self, snapshot: Option<Snapshot>) {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.running = false;
        if let Some(snapshot) = snapshot {
            inner.snapshot = std::sync::Arc::new(snapshot);
        }
    }
}

async fn refresh(state: AppState) {
    let Some(console) = state.console.clone() else { return };
    let sites: Vec<_> = state.shared.registry.snapshot().values().cloned().collect();
    let path = state.data_dir.store();
    let computed = state
        .queries
        .run(move || {
            let now = hj212_archive::now_ms();
            let (today, month) = (day_of(now), month_of(now));
            let store = Store::open(&path)?;
            let mut by_mn = HashMap::with_capacity(sites.len());
            for entry in &sites {
                let rules = hj212_store::rules_for(&entry.config);
                let effective = |range| -> Result<Option<u64>, hj212_store::StoreError> {
                    let report = match store.site_summary(&entry.config, &rules, range, now)? {
                        Some(report) => report,
                        None => store.site_rate(&entry.config, &rules, range, now)?.report,
                    };
                    Ok(report.effective.basis_points())
                };
                by_mn.insert(entry.mn.clone(), SiteRates { today: effective(today)?, month: effective(month)? });
            }
            Ok::<_, hj212_store::StoreError>(Snapshot { computed_ms: now, by_mn })
        })
        .await;
    match computed {
        Ok(snapshot) => console.rates.finished(Some(snapshot)),
        Err(error) => {
            tracing::warn!(
                error = error.message(),
                "the console's fleet rates were not computed; retried on a later page"
            );
            console.rates.finished(None);
        }
    }
}

/// Today, Beijing time.
fn day_of(now_ms: i64) -> Range {
    let now = BeijingTime::from_unix_millis(now_ms);
    let from_ms = BeijingTime { hour: 0, minute: 0, second: 0, millis: 0, ..now }.unix_millis();
    Range { from_ms, to_ms: from_ms + DAY_MS }
}

/// This month, Beijing time.
fn month_of(now_ms: i64) -> Range {
    let now = BeijingTime::from_unix_millis(now_ms);
    let first = BeijingTime { day: 1, hour: 0, minute: 0, second: 0, millis: 0, ..now };
    let (year, month) = if now.month == 12 { (now.year + 1, 1) } else { (now.year, now.month + 1) };
    Range { from_ms: first.unix_millis(), to_ms: BeijingTime { year, month, ..first }.unix_millis() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn today_and_this_month_are_beijing_days() {
        // 2026-12-31 23:30 Beijing time.
        let now = BeijingTime::parse("20261231233000").unwrap().unix_millis();
        let day = day_of(now);
        assert_eq!(BeijingTime::from_unix_millis(day.from_ms).to_seconds_string(), "20261231000000");
        assert_eq!(day.to_ms - day.from_ms, DAY_MS);
        let month = month_of(now);
        assert_eq!(BeijingTime::from_unix_millis(month.from_ms).to_seconds_string(), "20261201000000");
        assert_eq!(BeijingTime::from_unix_millis(month.to_ms).to_seconds_string(), "20270101000000");
    }
}
