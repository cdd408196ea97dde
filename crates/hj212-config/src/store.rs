//! `[store]`: the embedded store (`store.sqlite`), and how long it keeps readings.

use serde::{Deserialize, Serialize};

use crate::Config;

/// The embedded store.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Readings whose DataTime is older than this many days are deleted from the store (0 = keep
    /// them forever). The rate ledger, marks, visits and config history are kept; the archive
    /// (`[archive] retention_days`) still holds every frame, and `hj212-audit rebuild-ledger`
    /// rebuilds a full store from it.
    pub readings_retention_days: u32,
}

/// Days a period's readings stay needed after its rate cutoff: the daily record's own day,
/// and a day of margin for the deletion's hourly pace and time zones.
const AFTER_CUTOFF_DAYS: u32 = 2;
/// The monthly report on the 1st reads the previous month (up to 31 days), written the next
/// day at `[reports] daily_at`, with a day of margin.
const MONTHLY_REPORT_DAYS: u32 = 33;

/// Why the daemon reads readings back: each need in days with what needs it, longest first.
/// `[store] readings_retention_days` may not be shorter than any of them.
pub fn readings_needed(config: &Config) -> Vec<(u32, String)> {
    let mut needs = Vec::new();
    if config.reports.enabled {
        needs.push((
            MONTHLY_REPORT_DAYS,
            "the monthly report (reports.enabled) reads the previous month's readings on the 1st".to_owned(),
        ));
    }
    // docs/compliance.md §1.2: a record received by period end + cutoff_days (national 10-day repair window) counts.
    if let Some((i, site)) = config.sites.iter().enumerate().max_by_key(|(_, s)| s.rate.cutoff_days) {
        needs.push((
            site.rate.cutoff_days.saturating_add(AFTER_CUTOFF_DAYS),
            format!(
                "sites[{i}] ({}) counts records received up to rate.cutoff_days = {} days after their period, \
                 and its rate is computed from the readings of that time",
                site.mn, site.rate.cutoff_days
            ),
        ));
    }
    let recoveries = std::iter::once(("recovery".to_owned(), &config.recovery))
        .chain(
            config
                .sites
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.recovery.as_ref().map(|r| (format!("sites[{i}].recovery"), r))),
        )
        .filter(|(_, r)| r.enabled);
    if let Some((key, recovery)) = recoveries.max_by_key(|(_, r)| r.lookback_hours) {
        needs.push((
            recovery.lookback_hours.div_ceil(24).saturating_add(1),
            format!("{key}.lookback_hours = {} looks for missing periods in the readings", recovery.lookback_hours),
        ));
    }
    needs.sort_by_key(|need| std::cmp::Reverse(need.0));
    needs
}

/// Checks `[store]`.
pub(crate) fn check_store(config: &Config, problem: &mut impl FnMut(&str, String)) {
    let days = config.store.readings_retention_days;
    if days == 0 {
        return;
    }
    let short: Vec<String> = readings_needed(config)
        .into_iter()
        .filter(|(needed, _)| *needed > days)
        .map(|(needed, why)| format!("{needed} days: {why}"))
        .collect();
    if !short.is_empty() {
        problem(
            "store.readings_retention_days",
            format!(
                "{days} days is shorter than the daemon reads readings back ({}); raise it, or set 0 to keep readings",
                short.join("; ")
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, Recovery, Site, check};

    fn problems(config: &Config) -> Vec<String> {
        check(config).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_retention_shorter_than_the_reports_the_cutoff_or_recovery_is_refused_naming_why() {
        let mut config = Config::default();
        let mut site = Site::new("M1".to_owned(), "p");
        site.rate.cutoff_days = 40;
        config.sites.push(site);
        config.store.readings_retention_days = 10;
        let problems = problems(&config);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let problem = &problems[0];
        for part in [
            "store.readings_retention_days: 10 days is shorter",
            "42 days: sites[0] (M1) counts records received up to rate.cutoff_days = 40",
            "33 days: the monthly report",
        ] {
            assert!(problem.contains(part), "{part:?} in {problem}");
        }
        assert!(!problem.contains("recovery"), "48 hours are within 10 days: {problem}");

        config.store.readings_retention_days = 42;
        assert!(self::problems(&config).is_empty());

        config.sites[0].rate.cutoff_days = 10;
        config.reports.enabled = false;
        config.recovery = Recovery { lookback_hours: 24 * 30, ..Recovery::default() };
        config.store.readings_retention_days = 14;
        let problems = self::problems(&config);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("31 days: recovery.lookback_hours = 720"), "{}", problems[0]);
    }

    #[test]
    fn no_retention_and_a_long_one_pass() {
        let mut config = Config::default();
        config.sites.push(Site::new("M1".to_owned(), "p"));
        assert!(problems(&config).is_empty());
        config.store.readings_retention_days = 400;
        assert!(problems(&config).is_empty());
    }
}
