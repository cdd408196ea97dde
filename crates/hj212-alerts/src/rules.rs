//! Each configured site's alert rules, from its config (or the `[alerts]` defaults).

use std::collections::HashMap;

use hj212_compliance::Basis;
use hj212_compliance::alert::{FactorRules, LimitBasis, SiteRules};
use hj212_config::{AlertRules, Config, RateBasis, Site};

/// Rules by MN.
pub type RulesMap = HashMap<String, SiteRules>;

/// The rules of every configured site.
pub fn rules_map(config: &Config) -> RulesMap {
    config.sites.iter().map(|site| (site.mn.clone(), site_rules(site, &config.alerts))).collect()
}

fn ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

fn hours(h: u32) -> i64 {
    i64::from(h) * 3_600_000
}

/// One site's rules: its own `[sites.alerts]`, else the defaults.
pub fn site_rules(site: &Site, defaults: &AlertRules) -> SiteRules {
    let a = site.alerts.as_ref().unwrap_or(defaults);
    let basis = match site.rate.basis {
        RateBasis::Hour => Basis::Hour,
        RateBasis::Day => Basis::Day,
        RateBasis::Minute => Basis::Minute { interval: site.rate.minute_interval },
    };
    let factors = site
        .limits
        .iter()
        .map(|l| {
            let rules = FactorRules {
                max: l.max,
                min: l.min,
                basis: match l.basis {
                    hj212_config::LimitBasis::Hour => LimitBasis::Hour,
                    hj212_config::LimitBasis::Day => LimitBasis::Day,
                },
                reference_o2: l.reference_o2,
                max_step: l.max_step,
                range: l.range.map(|[low, high]| (low, high)),
            };
            (l.factor.clone(), rules)
        })
        .collect();
    SiteRules {
        name: site.name.clone(),
        basis,
        watched: site.factors.clone(),
        factors,
        o2_factor: a.o2_factor.clone(),
        running_factor: a.running_factor.clone(),
        hysteresis: f64::from(a.hysteresis_percent.0) / 10_000.0,
        early_warning: a.early_warning,
        offline_after_ms: ms(a.expected_interval_secs).saturating_mul(i64::from(a.offline_intervals)),
        record_grace_ms: i64::from(a.record_grace_minutes) * 60_000,
        flat_line_ms: hours(a.flat_line_hours),
        zero_ms: hours(a.zero_hours),
        flag_run_ms: hours(a.flag_run_hours),
        clock_drift_ms: ms(a.clock_drift_secs),
        clock_drift_confirmations: a.clock_drift_confirmations,
        tamper_quiet_ms: hours(a.tamper_quiet_hours),
    }
}
