//! 传输率 / 有效率 / 有效传输率 from records, marks and rules.

use std::collections::{BTreeMap, BTreeSet};

use crate::period::{Basis, Range};

/// How a site is assessed. Defaults follow docs/compliance-rules.md §1.2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub basis: Basis,
    /// Records received later than period end + cutoff do not count (national scheme: 10-day repair window).
    pub cutoff_ms: i64,
    /// Target for 有效传输率 in hundredths of a percent (certification spec: 95.00 % → 9500).
    pub target_bp: u32,
    /// HJ 75-2017: an hourly value is valid only with >= 45 valid minutes (CEMS sites; `None` = rule off).
    pub min_valid_minutes: Option<u32>,
}

impl Default for Rules {
    fn default() -> Self {
        Self { basis: Basis::Hour, cutoff_ms: 10 * 86_400_000, target_bp: 9500, min_valid_minutes: None }
    }
}

/// One received record of one factor, as the rate needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub factor: String,
    /// DataTime (the period start for 2061/2031/2051), Unix ms.
    pub data_time_ms: i64,
    /// The data flag; absent counts as N.
    pub flag: Option<String>,
    pub received_ms: i64,
    /// Valid minutes behind an hourly value, when known (for the HJ 75-2017 45-minute rule).
    pub valid_minutes: Option<u32>,
}

/// A reported, evidenced stop (停产 / 停排 / 停运): periods wholly inside are not due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub range: Range,
    pub reason: String,
}

/// A rate in hundredths of a percent, from integer counts (rounded half up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub numerator: u64,
    pub denominator: u64,
}

impl Rate {
    /// Hundredths of a percent; `None` when nothing was due.
    pub fn basis_points(self) -> Option<u64> {
        (self.denominator > 0).then(|| (self.numerator * 20_000 + self.denominator) / (2 * self.denominator))
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.basis_points() {
            Some(bp) => write!(f, "{}.{:02}", bp / 100, bp % 100),
            None => f.write_str("n/a"),
        }
    }
}

/// The figures for one site over one range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub due: u64,
    pub received: u64,
    pub valid: u64,
    /// 传输率 = received / due
    pub transmission: Rate,
    /// 有效率 = valid / received
    pub validity: Rate,
    /// 有效传输率 = valid / due
    pub effective: Rate,
    pub meets_target: bool,
    /// Due (factor, period start) with no record received in time.
    pub missing: Vec<(String, i64)>,
    /// Received but invalid: (factor, period start, flag or reason).
    pub invalid: Vec<(String, i64, String)>,
}

/// Computes the rates for `factors` over `range`.
///
/// Due periods are those wholly inside `range` and not wholly inside a downtime mark.
/// A record counts once per (factor, period), the first copy received wins, and only if
/// received by period end + cutoff. A record is valid when its flag is N (or absent) and,
/// with the 45-minute rule on, its valid minutes reach the minimum.
pub fn compute<'r>(
    factors: &[String],
    range: Range,
    rules: &Rules,
    readings: impl IntoIterator<Item = &'r Reading>,
    marks: &[Mark],
) -> Report {
    let step = rules.basis.period_ms();
    let due_periods: BTreeSet<i64> =
        range.periods(rules.basis).filter(|start| !marks.iter().any(|m| m.range.covers(*start, step))).collect();
    // First copy received per (factor, period).
    let mut first: BTreeMap<(&str, i64), &Reading> = BTreeMap::new();
    for reading in readings {
        let start = rules.basis.period_start(reading.data_time_ms);
        let in_time = reading.received_ms < start + step + rules.cutoff_ms;
        if !factors.contains(&reading.factor) || !due_periods.contains(&start) || !in_time {
            continue;
        }
        first
            .entry((reading.factor.as_str(), start))
            .and_modify(|kept| {
                if reading.received_ms < kept.received_ms {
                    *kept = reading;
                }
            })
            .or_insert(reading);
    }
    let mut report = Report {
        due: (factors.len() * due_periods.len()) as u64,
        received: first.len() as u64,
        valid: 0,
        transmission: Rate { numerator: 0, denominator: 0 },
        validity: Rate { numerator: 0, denominator: 0 },
        effective: Rate { numerator: 0, denominator: 0 },
        meets_target: false,
        missing: Vec::new(),
        invalid: Vec::new(),
    };
    for factor in factors {
        for start in &due_periods {
            match first.get(&(factor.as_str(), *start)) {
                None => report.missing.push((factor.clone(), *start)),
                Some(reading) => match invalid_reason(reading, rules) {
                    None => report.valid += 1,
                    Some(reason) => report.invalid.push((factor.clone(), *start, reason)),
                },
            }
        }
    }
    report.transmission = Rate { numerator: report.received, denominator: report.due };
    report.validity = Rate { numerator: report.valid, denominator: report.received };
    report.effective = Rate { numerator: report.valid, denominator: report.due };
    report.meets_target = report.effective.basis_points().is_some_and(|bp| bp >= u64::from(rules.target_bp));
    report
}

/// HJ 212-2017 Table 8: only N is normal; F, M, S, D, C, T, B and unknown flags are invalid.
fn invalid_reason(reading: &Reading, rules: &Rules) -> Option<String> {
    let flag = reading.flag.as_deref().unwrap_or("N");
    if flag != "N" {
        return Some(format!("flag {flag}"));
    }
    match (rules.min_valid_minutes, reading.valid_minutes) {
        (Some(min), Some(minutes)) if minutes < min => Some(format!("{minutes} valid minutes (< {min})")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-01T00:00:00+08:00, a 30-day month: 720 hours.
    const NOV_1: i64 = 1_793_462_400_000;
    const HOUR: i64 = 3_600_000;

    fn month() -> Range {
        Range { from_ms: NOV_1, to_ms: NOV_1 + 720 * HOUR }
    }

    fn reading(factor: &str, hour: i64, flag: &str) -> Reading {
        Reading {
            factor: factor.into(),
            data_time_ms: NOV_1 + hour * HOUR,
            flag: Some(flag.into()),
            received_ms: NOV_1 + (hour + 1) * HOUR + 60_000,
            valid_minutes: None,
        }
    }

    /// docs/compliance-rules.md §1.3: 3 factors, 720 h, a 48 h evidenced shutdown, 26 records
    /// never arrived, 3 duplicates, 40 invalid hours.
    fn worked_example() -> (Vec<String>, Vec<Reading>, Mark) {
        let factors: Vec<String> = ["a21026", "a21002", "a34013"].map(String::from).to_vec();
        let shutdown = Mark {
            range: Range { from_ms: NOV_1 + 100 * HOUR, to_ms: NOV_1 + 148 * HOUR },
            reason: "planned shutdown".into(),
        };
        let mut readings = Vec::new();
        let mut skipped = 0;
        let mut flagged = 0;
        for (f, factor) in factors.iter().enumerate() {
            for hour in 0..720 {
                let in_shutdown = (100..148).contains(&hour);
                if in_shutdown {
                    readings.push(reading(factor, hour, "F"));
                    continue;
                }
                if skipped < 26 && f == 0 && hour % 20 == 3 {
                    skipped += 1;
                    continue;
                }
                let flag = if flagged < 40 && f == 1 && hour % 15 == 7 {
                    flagged += 1;
                    "D"
                } else {
                    "N"
                };
                readings.push(reading(factor, hour, flag));
            }
        }
        // Three resends of records already received.
        readings.push(reading("a34013", 10, "N"));
        readings.push(reading("a34013", 11, "N"));
        readings.push(reading("a21002", 12, "N"));
        assert_eq!((skipped, flagged), (26, 40));
        (factors, readings, shutdown)
    }

    #[test]
    fn worked_example_with_the_shutdown_reported() {
        let (factors, readings, shutdown) = worked_example();
        let report = compute(&factors, month(), &Rules::default(), &readings, &[shutdown]);
        assert_eq!((report.due, report.received, report.valid), (2016, 1990, 1950));
        assert_eq!(report.transmission.to_string(), "98.71");
        assert_eq!(report.validity.to_string(), "97.99");
        assert_eq!(report.effective.to_string(), "96.73");
        assert!(report.meets_target);
        assert_eq!((report.missing.len(), report.invalid.len()), (26, 40));
        assert_eq!(report.invalid[0].2, "flag D");
    }

    #[test]
    fn worked_example_without_the_shutdown_reported() {
        let (factors, readings, _) = worked_example();
        let report = compute(&factors, month(), &Rules::default(), &readings, &[]);
        assert_eq!((report.due, report.valid), (2160, 1950));
        assert_eq!(report.effective.to_string(), "90.28");
        assert!(!report.meets_target);
    }

    #[test]
    fn late_records_count_only_within_the_cutoff() {
        let factors = vec!["w01018".to_owned()];
        let range = Range { from_ms: NOV_1, to_ms: NOV_1 + 2 * HOUR };
        let mut on_time = reading("w01018", 0, "N");
        on_time.received_ms = NOV_1 + HOUR + 10 * 86_400_000 - 1;
        let mut too_late = reading("w01018", 1, "N");
        too_late.received_ms = NOV_1 + 2 * HOUR + 10 * 86_400_000;
        let report = compute(&factors, range, &Rules::default(), &[on_time, too_late], &[]);
        assert_eq!((report.due, report.received), (2, 1));
        assert_eq!(report.missing, [("w01018".to_owned(), NOV_1 + HOUR)]);
    }

    #[test]
    fn the_45_minute_rule_and_absent_flags() {
        let factors = vec!["a21026".to_owned()];
        let range = Range { from_ms: NOV_1, to_ms: NOV_1 + 2 * HOUR };
        let mut short = reading("a21026", 0, "N");
        short.valid_minutes = Some(44);
        let mut unflagged = reading("a21026", 1, "N");
        unflagged.flag = None;
        unflagged.valid_minutes = Some(45);
        let cems = Rules { min_valid_minutes: Some(45), ..Rules::default() };
        let report = compute(&factors, range, &cems, &[short.clone(), unflagged.clone()], &[]);
        assert_eq!(report.valid, 1);
        assert_eq!(report.invalid[0].2, "44 valid minutes (< 45)");
        assert_eq!(compute(&factors, range, &Rules::default(), &[short, unflagged], &[]).valid, 2);
    }

    #[test]
    fn nothing_due_is_not_a_rate() {
        let report = compute(&["x".to_owned()], Range { from_ms: NOV_1, to_ms: NOV_1 }, &Rules::default(), &[], &[]);
        assert_eq!((report.effective.to_string(), report.meets_target), ("n/a".to_owned(), false));
    }
}
