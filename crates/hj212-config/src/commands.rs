//! `[commands]` (the downlink channel to loggers) and `[recovery]` (the gap-recovery sweep
//! that asks loggers for missing history), with their checks.

use serde::{Deserialize, Serialize};

/// Host commands sent to connected loggers (反控), one in flight per site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Commands {
    /// Commands waiting per site (queued, not yet sent); a POST beyond it answers 429.
    pub queue_per_site: usize,
    /// Commands waiting in all, across sites.
    pub queue_total: usize,
    /// A queued command not delivered within this time becomes `expired`.
    pub ttl_secs: u64,
    /// HJ 212-2017 §6.2 (Table 1: 10 s / 3 sends on mobile links): wait this long for the 9011.
    pub request_timeout_secs: u64,
    /// Sends of a request without a 9011 before it fails (the first send included).
    pub sends: u32,
    /// After the 9011, wait this long for the 9012 ...
    pub execution_timeout_secs: u64,
    /// ... plus this much per record a history request asks for (big ranges take long).
    pub execution_ms_per_record: u64,
    /// Finished commands kept per site in `commands.sqlite` for the API (older ones are pruned).
    pub keep_finished_per_site: usize,
}

impl Default for Commands {
    fn default() -> Self {
        Self {
            queue_per_site: 32,
            queue_total: 100_000,
            ttl_secs: 86_400,
            request_timeout_secs: 10,
            sends: 3,
            execution_timeout_secs: 60,
            execution_ms_per_record: 500,
            keep_finished_per_site: 1000,
        }
    }
}

/// Which record kinds the sweep fetches again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryBasis {
    /// Hourly records (CN 2061).
    Hour,
    /// Daily records (CN 2031).
    Day,
    /// Minute records (CN 2051).
    Minute,
}

/// Automatic gap recovery (主动补传): the daemon asks loggers for the records its rate
/// ledger is missing. A site's `[sites.recovery]` replaces the whole table for that site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Recovery {
    pub enabled: bool,
    /// How often the sweep looks for missing periods.
    pub interval_secs: u64,
    /// How far back it looks (never past the site's rate cutoff, after which a record no longer counts).
    pub lookback_hours: u32,
    /// A period is missing only this long after it ended (HJ 212 loggers send the hourly record after the hour).
    pub grace_minutes: u32,
    /// History requests per site and hour, at most.
    pub max_requests_per_site_hour: u32,
    /// Periods one request asks for, at most (neighbouring gaps are merged up to this).
    pub max_periods_per_request: u32,
    /// After a refusal (QnRtn != 1) or no answer, the site is left alone this long.
    pub backoff_secs: u64,
    /// Which records to recover.
    pub bases: Vec<RecoveryBasis>,
}

impl Default for Recovery {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 300,
            lookback_hours: 48,
            grace_minutes: 10,
            max_requests_per_site_hour: 6,
            max_periods_per_request: 24,
            backoff_secs: 3600,
            bases: vec![RecoveryBasis::Hour],
        }
    }
}

/// Checks `[commands]`, `[recovery]` and the sites' `[sites.recovery]`.
pub(crate) fn check_commands(config: &crate::Config, problem: &mut impl FnMut(&str, String)) {
    let commands = &config.commands;
    for (key, value) in [
        ("commands.queue_per_site", commands.queue_per_site),
        ("commands.queue_total", commands.queue_total),
        ("commands.keep_finished_per_site", commands.keep_finished_per_site),
        ("commands.sends", usize::try_from(commands.sends).unwrap_or(usize::MAX)),
    ] {
        if value == 0 {
            problem(key, "must be at least 1".to_owned());
        }
    }
    for (key, value) in [
        ("commands.ttl_secs", commands.ttl_secs),
        ("commands.request_timeout_secs", commands.request_timeout_secs),
        ("commands.execution_timeout_secs", commands.execution_timeout_secs),
    ] {
        if value == 0 {
            problem(key, "must be at least 1 second".to_owned());
        }
    }
    if commands.sends > 99 {
        problem("commands.sends", format!("{} is above 99 (HJ 212-2017 ReCount is 1-99)", commands.sends));
    }
    check_recovery("recovery", &config.recovery, problem);
    for site in &config.sites {
        if let Some(recovery) = &site.recovery {
            check_recovery(&format!("sites.{}.recovery", site.mn), recovery, problem);
        }
    }
}

fn check_recovery(key: &str, recovery: &Recovery, problem: &mut impl FnMut(&str, String)) {
    for (field, value) in [
        ("interval_secs", recovery.interval_secs),
        ("lookback_hours", u64::from(recovery.lookback_hours)),
        ("max_requests_per_site_hour", u64::from(recovery.max_requests_per_site_hour)),
        ("max_periods_per_request", u64::from(recovery.max_periods_per_request)),
    ] {
        if value == 0 {
            problem(&format!("{key}.{field}"), "must be at least 1".to_owned());
        }
    }
    if recovery.enabled && recovery.bases.is_empty() {
        problem(&format!("{key}.bases"), "is empty: name hour, day or minute, or set enabled = false".to_owned());
    }
}
