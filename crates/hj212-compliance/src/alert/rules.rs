//! What the alert rules check, per site and factor. Built by the daemon from its config;
//! every number is a platform default (docs/compliance.md §3: no national thresholds)
//! that operators can change per site.

use std::collections::BTreeMap;

use crate::Basis;

/// Which average an exceedance limit applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LimitBasis {
    /// Valid hourly averages (CN=2061): flue gas, 排污许可 technical specification 12.2.1.
    #[default]
    Hour,
    /// Valid daily averages (CN=2031): wastewater and the incineration daily limits.
    Day,
}

impl LimitBasis {
    /// The CN carrying these averages.
    pub fn cn(self) -> u16 {
        match self {
            Self::Hour => 2061,
            Self::Day => 2031,
        }
    }
}

/// One factor's thresholds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FactorRules {
    /// Permitted upper limit (mg/m3, mg/L, ...), compared with valid averages of `basis`.
    pub max: Option<f64>,
    /// Permitted lower limit (e.g. pH 6).
    pub min: Option<f64>,
    pub basis: LimitBasis,
    /// Convert to this reference O2 (%) when the frame carries no Zs value.
    pub reference_o2: Option<f64>,
    /// Largest step between consecutive values of the site's series (突变); `None` = off.
    pub max_step: Option<f64>,
    /// The instrument's range; `None` = off.
    pub range: Option<(f64, f64)>,
}

/// The alert rules of one site.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteRules {
    /// The site's display name.
    pub name: String,
    /// The series value rules run on (the site's rate basis: 2061, 2031 or 2051 records).
    pub basis: Basis,
    /// Factors the value rules watch; empty = every factor reported.
    pub watched: Vec<String>,
    /// Limits and ranges by factor code.
    pub factors: BTreeMap<String, FactorRules>,
    /// The O2 factor used for conversions (HJ 212-2017 a19001).
    pub o2_factor: String,
    /// A flow or load factor: while it is 0 the source is stopped, and flat or zero values are expected.
    pub running_factor: Option<String>,
    /// An incident clears only once the value is back inside the limit by this fraction.
    pub hysteresis: f64,
    /// Pre-alert when a real-time value (CN=2011) is above the limit.
    pub early_warning: bool,
    /// Offline after this long without any authenticated frame (3 × expected interval).
    pub offline_after_ms: i64,
    /// A period's record is missing once the period ended this long ago (HH+10 min).
    pub record_grace_ms: i64,
    /// Identical values for this long make a flat line (恒值).
    pub flat_line_ms: i64,
    /// Zero while running for this long.
    pub zero_ms: i64,
    /// M, C or D flags for this long in a row.
    pub flag_run_ms: i64,
    /// |receive time − DataTime| of real-time data beyond this is clock drift.
    pub clock_drift_ms: i64,
    /// Consecutive drifting real-time frames before the alert (resends also look late).
    pub clock_drift_confirmations: u32,
    /// A tamper incident clears after this long without another conflicting resend.
    pub tamper_quiet_ms: i64,
}

impl Default for SiteRules {
    fn default() -> Self {
        Self {
            name: String::new(),
            basis: Basis::Hour,
            watched: Vec::new(),
            factors: BTreeMap::new(),
            o2_factor: "a19001".to_owned(),
            running_factor: None,
            hysteresis: 0.05,
            early_warning: false,
            offline_after_ms: 3 * 300_000,
            record_grace_ms: 600_000,
            flat_line_ms: 6 * 3_600_000,
            zero_ms: 2 * 3_600_000,
            flag_run_ms: 4 * 3_600_000,
            clock_drift_ms: 60_000,
            clock_drift_confirmations: 3,
            tamper_quiet_ms: 24 * 3_600_000,
        }
    }
}

impl SiteRules {
    /// The CN of the series the value rules run on.
    pub fn series_cn(&self) -> u16 {
        match self.basis {
            Basis::Hour => 2061,
            Basis::Day => 2031,
            Basis::Minute { .. } => 2051,
        }
    }

    /// Periods of the series covering `ms`, rounded up and at least `at_least`; 0 (the rule
    /// is off) when `ms` is 0. (A flat line needs two values however long a period is.)
    pub fn periods(&self, ms: i64, at_least: u32) -> u32 {
        if ms <= 0 {
            return 0;
        }
        let period = self.basis.period_ms();
        u32::try_from((ms + period - 1) / period).unwrap_or(u32::MAX).max(at_least)
    }

    pub fn watches(&self, factor: &str) -> bool {
        self.watched.is_empty() || self.watched.iter().any(|f| f == factor)
    }
}
