//! Per-site rate gauges for dashboards: today's and this month's 有效传输率 and the newest
//! DataTime, for configured sites only (never unknown MNs: the label set stays bounded).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hj212_compliance::Range;
use hj212_proto::time::BeijingTime;
use hj212_server::Shared;
use hj212_server::metrics::{SITE_EFFECTIVE_RATE, SITE_LAST_DATA_TIME};
use hj212_store::{Store, rules_for};
use tokio_util::sync::CancellationToken;

/// How often the gauges are recomputed.
const INTERVAL: Duration = Duration::from_secs(60);

/// Recomputes the gauges every minute until `shutdown`.
pub async fn run(shared: Arc<Shared>, store_path: PathBuf, shutdown: CancellationToken) {
    let mut exported: HashSet<String> = HashSet::new();
    loop {
        let sites: Vec<_> = shared.registry.snapshot().values().map(|e| e.config.clone()).collect();
        // A site removed on reload: its series go NaN (no value), so no rule keeps firing on them.
        let current: HashSet<String> = sites.iter().map(|s| s.mn.clone()).collect();
        for mn in exported.difference(&current) {
            metrics::gauge!(SITE_LAST_DATA_TIME, "mn" => mn.clone()).set(f64::NAN);
            for period in ["today", "month"] {
                metrics::gauge!(SITE_EFFECTIVE_RATE, "mn" => mn.clone(), "period" => period).set(f64::NAN);
            }
        }
        exported = current;
        let path = store_path.clone();
        let computed = tokio::task::spawn_blocking(move || compute(&path, &sites)).await;
        if let Ok(Err(error)) = computed {
            tracing::warn!(%error, "site rate gauges not updated");
        }
        for (mn, state) in sites_last_data(&shared) {
            metrics::gauge!(SITE_LAST_DATA_TIME, "mn" => mn).set(state as f64);
        }
        tokio::select! {
            () = tokio::time::sleep(INTERVAL) => {},
            () = shutdown.cancelled() => return,
        }
    }
}

fn sites_last_data(shared: &Shared) -> Vec<(String, i64)> {
    shared
        .registry
        .snapshot()
        .keys()
        .filter_map(|mn| {
            let state = shared.states.get(mn)?;
            let time = BeijingTime::parse(state.last_data_time.as_deref()?).ok()?;
            Some((mn.clone(), time.unix_millis() / 1000))
        })
        .collect()
}

fn compute(path: &std::path::Path, sites: &[hj212_config::Site]) -> Result<(), hj212_store::StoreError> {
    let store = Store::open(path)?;
    let now = hj212_archive::now_ms();
    let today = BeijingTime::from_unix_millis(now);
    let midnight = BeijingTime { hour: 0, minute: 0, second: 0, millis: 0, ..today }.unix_millis();
    let month_start = BeijingTime { day: 1, hour: 0, minute: 0, second: 0, millis: 0, ..today }.unix_millis();
    for site in sites.iter().filter(|s| !s.factors.is_empty()) {
        let rules = rules_for(site);
        // Today from the details; the month's whole days from the ledger when it can answer.
        let today_report = store.site_rate(site, &rules, Range { from_ms: midnight, to_ms: now }, now)?.report;
        let earlier = Range { from_ms: month_start, to_ms: midnight };
        let month_days = match store.site_summary(site, &rules, earlier, now)? {
            Some(report) => report,
            None => store.site_rate(site, &rules, earlier, now)?.report,
        };
        // Counts over disjoint ranges add up; the rate is taken from the sums.
        let month = (today_report.valid + month_days.valid, today_report.due + month_days.due);
        for (period, (valid, due)) in [("today", (today_report.valid, today_report.due)), ("month", month)] {
            let rate = hj212_compliance::Rate { numerator: valid, denominator: due };
            // Nothing due yet (the first hour of a day or month): no value, not the last period's.
            let value = rate.basis_points().map_or(f64::NAN, |bp| bp as f64 / 10_000.0);
            metrics::gauge!(SITE_EFFECTIVE_RATE, "mn" => site.mn.clone(), "period" => period).set(value);
        }
    }
    Ok(())
}
