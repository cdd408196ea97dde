//! One site's alert state and the rules applied to what it sends.

use std::collections::{BTreeMap, BTreeSet};

use super::incident::{Cause, Compared, Facts, Incidents, Transition, Update};
use super::kind::AlertKind;
use super::rules::SiteRules;
use crate::abnormal::{Change, ValueRules, ValueWatch};
use crate::exceedance::{self, Exceedance, Limit};

/// Periods remembered for the record-missing rule (two days of hourly records).
const RECENT_PERIODS: usize = 48;
/// Offsets of consecutive drifting frames agree within this; resent old data does not.
const DRIFT_AGREEMENT_MS: i64 = 5_000;
/// Platform rule: a wrong-password incident clears after an hour without another (clearing on
/// each good frame would let anyone who knows an MN raise an incident per frame).
const AUTH_QUIET_MS: i64 = 3_600_000;
/// docs/compliance.md §4.1 guard [P]: no conversion at O2 >= 20 %.
const O2_GUARD_PERCENT: f64 = 20.0;

/// One factor of one data record: `value` is Rtd for real-time data and Avg otherwise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    pub factor: &'a str,
    pub value: Option<f64>,
    /// The converted (折算) value the logger sent (ZsRtd / ZsAvg).
    pub zs: Option<f64>,
    pub flag: Option<&'a str>,
    /// A temperature or pressure: below zero is normal.
    pub signed: bool,
    /// The texts `value` and `zs` were parsed from, as sent: messages show their precision.
    pub text: Option<&'a str>,
    pub zs_text: Option<&'a str>,
}

/// An accepted data upload (CN 2011, 2051, 2061 or 2031).
#[derive(Debug, Clone, PartialEq)]
pub struct DataRecord<'a> {
    pub mn: &'a str,
    /// The frame's station type (ST), which picks the factor's unit in messages.
    pub st: Option<&'a str>,
    pub cn: u16,
    pub data_time_ms: i64,
    pub cause: Cause,
    pub samples: Vec<Sample<'a>>,
    /// Re-sent or backfilled (RF=1, or late): its DataTime says nothing about the logger's clock.
    pub resent: bool,
}

impl DataRecord<'_> {
    fn sample(&self, factor: &str) -> Option<&Sample<'_>> {
        self.samples.iter().find(|s| s.factor == factor)
    }
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct FactorState {
    watch: ValueWatch,
    exceedance: Exceedance,
    warning: Exceedance,
}

/// Everything the rules remember about one site (persisted between restarts).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SiteState {
    last_seen_ms: Option<i64>,
    /// The `last_seen_ms` last handed out for saving (not itself saved).
    #[serde(skip)]
    saved_seen_ms: Option<i64>,
    /// When the engine first watched this site: nothing before it is reported missing.
    watch_from_ms: Option<i64>,
    /// The next period start the record-missing rule checks.
    next_check_ms: Option<i64>,
    /// Period starts of the series that have a record (newest few).
    recent: BTreeSet<i64>,
    /// Period starts overdue without a record (newest few).
    missing: BTreeSet<i64>,
    factors: BTreeMap<String, FactorState>,
    /// Consecutive drifting real-time frames, and the last offset.
    drift: Option<(u32, i64)>,
    auth_failures: u32,
    last_auth_failure_ms: Option<i64>,
    conflicts: u32,
    last_conflict_ms: Option<i64>,
    incidents: Incidents,
}

fn keep_newest(set: &mut BTreeSet<i64>) {
    while set.len() > RECENT_PERIODS {
        set.pop_first();
    }
}

impl SiteState {
    /// The incidents open now.
    pub fn incidents(&self) -> &Incidents {
        &self.incidents
    }

    /// Whether the site has sent anything and is not offline.
    pub fn online(&self) -> bool {
        self.last_seen_ms.is_some() && !self.incidents.is_open(AlertKind::Offline, None)
    }

    pub fn last_seen_ms(&self) -> Option<i64> {
        self.last_seen_ms
    }

    /// Any authenticated frame: the site is online. Also says whether the new time is worth
    /// saving (a minute or more since the last one saved).
    pub(super) fn seen(&mut self, mn: &str, cause: Cause) -> (Vec<Transition>, bool) {
        let seen = self.last_seen_ms.map_or(cause.at_ms, |t| t.max(cause.at_ms));
        self.last_seen_ms = Some(seen);
        let save = self.saved_seen_ms.is_none_or(|saved| seen - saved >= 60_000);
        if save {
            self.saved_seen_ms = Some(seen);
        }
        (self.incidents.clear(mn, AlertKind::Offline, Facts::default(), cause).into_iter().collect(), save)
    }

    /// A frame with this site's MN and a wrong password.
    pub(super) fn auth_failure(&mut self, mn: &str, cause: Cause) -> Option<Transition> {
        self.auth_failures += 1;
        self.last_auth_failure_ms = Some(cause.at_ms);
        let facts = Facts { value: Some(f64::from(self.auth_failures)), ..Facts::default() };
        self.incidents.raise(mn, AlertKind::AuthFailure, facts, cause, Update::Never)
    }

    /// A resend of a stored record with a different value for `factor`.
    pub(super) fn conflict(&mut self, mn: &str, factor: &str, data_time_ms: i64, cause: Cause) -> Option<Transition> {
        self.conflicts += 1;
        self.last_conflict_ms = Some(cause.at_ms);
        // Site-level: every conflicting resend is reported, as an update with the count.
        let facts =
            Facts { value: Some(f64::from(self.conflicts)), data_time_ms: Some(data_time_ms), ..Facts::default() };
        let mut transition = self.incidents.raise(mn, AlertKind::Tamper, facts, cause, Update::WhenLarger);
        if let Some(t) = &mut transition {
            t.factor = Some(factor.to_owned());
        }
        transition
    }

    /// An accepted data upload; also says whether the state changed (to be saved).
    pub(super) fn data(&mut self, record: &DataRecord<'_>, rules: &SiteRules) -> (Vec<Transition>, bool) {
        let mut out = Vec::new();
        let mut changed = false;
        if record.cn == rules.series_cn() {
            self.record_arrived(record, rules, &mut out);
            self.watch_values(record, rules, &mut out);
            changed = true;
        }
        let judged =
            rules.factors.values().any(|f| f.basis.cn() == record.cn) || (record.cn == 2011 && rules.early_warning);
        if judged {
            self.exceedances(record, rules, &mut out);
            changed = true;
        }
        if record.cn == 2011 && !record.resent {
            let before = self.drift;
            self.clock(record, rules, &mut out);
            changed |= before != self.drift;
        }
        (out, changed)
    }

    fn record_arrived(&mut self, record: &DataRecord<'_>, rules: &SiteRules, out: &mut Vec<Transition>) {
        let period = rules.basis.period_start(record.data_time_ms);
        self.recent.insert(period);
        keep_newest(&mut self.recent);
        if self.missing.remove(&period) && self.missing.is_empty() {
            let facts = Facts { value: Some(0.0), data_time_ms: Some(period), ..Facts::default() };
            out.extend(self.incidents.clear(record.mn, AlertKind::RecordMissing, facts, record.cause));
        }
    }

    fn watch_values(&mut self, record: &DataRecord<'_>, rules: &SiteRules, out: &mut Vec<Transition>) {
        // Flat or zero values are expected while the source is stopped (flow 0).
        let running = rules
            .running_factor
            .as_deref()
            .and_then(|f| record.sample(f))
            .and_then(|s| s.value)
            .is_none_or(|flow| flow > 0.0);
        for sample in &record.samples {
            let Some(value) = sample.value.filter(|_| rules.watches(sample.factor)) else {
                continue;
            };
            let limits = rules.factors.get(sample.factor);
            let value_rules = ValueRules {
                flat_line_periods: rules.periods(rules.flat_line_ms, 2),
                zero_periods: rules.periods(rules.zero_ms, 1),
                flag_run_periods: rules.periods(rules.flag_run_ms, 1),
                max_step: limits.and_then(|l| l.max_step),
                range: limits.and_then(|l| l.range),
                negative: !sample.signed,
            };
            let state = self.factors.entry(sample.factor.to_owned()).or_default();
            for change in state.watch.observe(value, sample.flag, running, &value_rules) {
                let facts = Facts {
                    factor: Some(sample.factor),
                    value: Some(value),
                    data_time_ms: Some(record.data_time_ms),
                    decimals: sample.text.and_then(super::text::decimals),
                    flag: sample.flag,
                    st: record.st,
                    ..Facts::default()
                };
                out.extend(match change {
                    Change::Raised(kind) => self.incidents.raise(record.mn, kind, facts, record.cause, Update::Never),
                    Change::Cleared(kind) => self.incidents.clear(record.mn, kind, facts, record.cause),
                });
            }
        }
    }

    /// Valid averages against the limits (排污许可 technical specification 12.2.1: every valid
    /// hourly average; daily for wastewater), and real-time values for the optional pre-alert.
    fn exceedances(&mut self, record: &DataRecord<'_>, rules: &SiteRules, out: &mut Vec<Transition>) {
        let early = record.cn == 2011 && rules.early_warning;
        for (factor, limits) in &rules.factors {
            if limits.max.is_none() && limits.min.is_none() {
                continue;
            }
            if record.cn != limits.basis.cn() && !early {
                continue;
            }
            let Some(sample) = record.sample(factor) else { continue };
            // 2022 marking rule: data marked invalid (any flag but N) is not judged for 超标.
            if sample.flag.is_some_and(|f| f != "N") {
                continue;
            }
            let Some((value, compared)) = self.comparable(record, sample, limits.reference_o2, rules, out, !early)
            else {
                continue;
            };
            let limit = Limit { max: limits.max, min: limits.min, hysteresis: rules.hysteresis };
            let (kind, state) = {
                let state = self.factors.entry(factor.clone()).or_default();
                if early {
                    (AlertKind::ExceedanceWarning, &mut state.warning)
                } else {
                    (AlertKind::Exceedance, &mut state.exceedance)
                }
            };
            let Some(change) = state.observe(value, &limit) else { continue };
            let (value, limit, cleared) = match change {
                exceedance::Transition::Raised { value, limit } | exceedance::Transition::Updated { value, limit } => {
                    (value, limit, false)
                }
                exceedance::Transition::Cleared { value, limit } => (value, limit, true),
            };
            // The precision of the text compared (for a converted value, the measured text's).
            let text = if matches!(compared, Compared::Logger { .. }) { sample.zs_text } else { sample.text };
            let facts = Facts {
                factor: Some(factor),
                value: Some(value),
                limit: Some(limit),
                data_time_ms: Some(record.data_time_ms),
                decimals: text.and_then(super::text::decimals),
                compared: Some(compared),
                flag: None,
                st: record.st,
            };
            out.extend(if cleared {
                self.incidents.clear(record.mn, kind, facts, record.cause)
            } else {
                self.incidents.raise(record.mn, kind, facts, record.cause, Update::Always)
            });
        }
    }

    /// The value to compare with the limit: the logger's converted value if sent, else the
    /// measured one converted to the reference O2 when the site sets one, else as measured.
    fn comparable(
        &mut self,
        record: &DataRecord<'_>,
        sample: &Sample<'_>,
        reference_o2: Option<f64>,
        rules: &SiteRules,
        out: &mut Vec<Transition>,
        report_o2: bool,
    ) -> Option<(f64, Compared)> {
        if let Some(zs) = sample.zs {
            return Some((zs, Compared::Logger { field: if record.cn == 2011 { "ZsRtd" } else { "ZsAvg" } }));
        }
        let measured = sample.value?;
        let o2_sample = record.sample(&rules.o2_factor);
        let (Some(reference), Some(o2)) = (reference_o2, o2_sample.and_then(|s| s.value)) else {
            return Some((measured, Compared::Measured));
        };
        let facts = Facts {
            factor: Some(&rules.o2_factor),
            value: Some(o2),
            limit: Some(O2_GUARD_PERCENT),
            data_time_ms: Some(record.data_time_ms),
            decimals: o2_sample.and_then(|s| s.text).and_then(super::text::decimals),
            st: record.st,
            ..Facts::default()
        };
        let converted = exceedance::converted(measured, o2, reference).ok();
        if report_o2 {
            out.extend(if converted.is_some() {
                self.incidents.clear(record.mn, AlertKind::ImplausibleO2, facts, record.cause)
            } else {
                self.incidents.raise(record.mn, AlertKind::ImplausibleO2, facts, record.cause, Update::Never)
            });
        }
        converted.map(|value| (value, Compared::ReferenceO2 { reference, o2, measured }))
    }

    /// |receive time − DataTime| of real-time data (docs/compliance.md §3: > 60 s).
    fn clock(&mut self, record: &DataRecord<'_>, rules: &SiteRules, out: &mut Vec<Transition>) {
        let offset = record.cause.at_ms - record.data_time_ms;
        let facts = Facts {
            value: Some(offset as f64 / 1000.0),
            limit: Some(rules.clock_drift_ms as f64 / 1000.0),
            data_time_ms: Some(record.data_time_ms),
            ..Facts::default()
        };
        if offset.abs() <= rules.clock_drift_ms {
            self.drift = None;
            out.extend(self.incidents.clear(record.mn, AlertKind::ClockDrift, facts, record.cause));
            return;
        }
        let run = match self.drift {
            Some((run, last)) if (offset - last).abs() <= DRIFT_AGREEMENT_MS => run + 1,
            _ => 1,
        };
        self.drift = Some((run, offset));
        if run >= rules.clock_drift_confirmations.max(1) {
            out.extend(self.incidents.raise(record.mn, AlertKind::ClockDrift, facts, record.cause, Update::Never));
        }
    }

    /// Time passing: offline, overdue records and quiet tamper incidents. Returns whether
    /// the state changed, with the transitions.
    pub(super) fn tick(&mut self, mn: &str, now_ms: i64, rules: &SiteRules) -> (bool, Vec<Transition>) {
        let mut out = Vec::new();
        let before = (self.watch_from_ms, self.next_check_ms, self.missing.len());
        let watch_from = *self.watch_from_ms.get_or_insert(now_ms);
        let cause = Cause { at_ms: now_ms, seq: 0 };
        let silent_since = self.last_seen_ms.unwrap_or(watch_from);
        if now_ms - silent_since > rules.offline_after_ms {
            let facts = Facts {
                value: Some(((now_ms - silent_since) / 1000) as f64),
                limit: Some((rules.offline_after_ms / 1000) as f64),
                data_time_ms: self.last_seen_ms,
                ..Facts::default()
            };
            out.extend(self.incidents.raise(mn, AlertKind::Offline, facts, cause, Update::Never));
        }
        self.check_records(mn, now_ms, watch_from, rules, cause, &mut out);
        let auth_quiet = self.last_auth_failure_ms.is_some_and(|t| now_ms - t > AUTH_QUIET_MS);
        if auth_quiet && self.incidents.is_open(AlertKind::AuthFailure, None) {
            let facts = Facts { value: Some(f64::from(self.auth_failures)), ..Facts::default() };
            out.extend(self.incidents.clear(mn, AlertKind::AuthFailure, facts, cause));
            self.auth_failures = 0;
        }
        let quiet = self.last_conflict_ms.is_some_and(|t| now_ms - t > rules.tamper_quiet_ms);
        if quiet && self.incidents.is_open(AlertKind::Tamper, None) {
            let facts = Facts { value: Some(f64::from(self.conflicts)), ..Facts::default() };
            out.extend(self.incidents.clear(mn, AlertKind::Tamper, facts, cause));
            self.conflicts = 0;
        }
        let changed = !out.is_empty() || before != (self.watch_from_ms, self.next_check_ms, self.missing.len());
        (changed, out)
    }

    /// HH+10 min rule: a period's record not in by its end plus the grace is missing.
    fn check_records(
        &mut self,
        mn: &str,
        now_ms: i64,
        watch_from: i64,
        rules: &SiteRules,
        cause: Cause,
        out: &mut Vec<Transition>,
    ) {
        let period = rules.basis.period_ms();
        let horizon = rules.basis.period_start(now_ms) - period * i64::try_from(RECENT_PERIODS).unwrap_or(i64::MAX);
        // Aligned on the basis's periods (it may have changed since the last check).
        let start = self.next_check_ms.unwrap_or(watch_from);
        let mut next = rules.basis.period_start(start).max(horizon);
        // Periods older than the horizon are no longer tracked (the rate report has them).
        let tracked = self.missing.len();
        self.missing.retain(|p| *p >= horizon);
        if tracked > 0 && self.missing.is_empty() {
            let facts = Facts { value: Some(0.0), ..Facts::default() };
            out.extend(self.incidents.clear(mn, AlertKind::RecordMissing, facts, cause));
        }
        let before = self.missing.len();
        while next + period + rules.record_grace_ms <= now_ms {
            if !self.recent.contains(&next) {
                self.missing.insert(next);
            }
            next += period;
        }
        self.next_check_ms = Some(next);
        keep_newest(&mut self.missing);
        // Grouping: an offline site's missing records are its offline alert, not one more
        // message; they are still tracked (the rate counts them) and reported once it is back.
        if self.incidents.is_open(AlertKind::Offline, None) || self.missing.is_empty() {
            return;
        }
        let unreported = !self.incidents.is_open(AlertKind::RecordMissing, None);
        if self.missing.len() > before || unreported {
            let facts = Facts {
                value: Some(self.missing.len() as f64),
                data_time_ms: self.missing.last().copied(),
                ..Facts::default()
            };
            out.extend(self.incidents.raise(mn, AlertKind::RecordMissing, facts, cause, Update::WhenLarger));
        }
    }
}
