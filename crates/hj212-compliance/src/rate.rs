//! 传输率 / 有效率 / 有效传输率 from records, marks and rules.

use std::collections::{BTreeMap, BTreeSet};

use crate::period::{Basis, Range};

/// How a site is assessed. Defaults follow docs/compliance.md §1.2.
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
    /// Due periods whose records all arrived after the cutoff: kept, not received (see [`compute`]).
    pub late: u64,
    /// 传输率 = received / due
    pub transmission: Rate,
    /// 有效率 = valid / received
    pub validity: Rate,
    /// 有效传输率 = valid / due
    pub effective: Rate,
    pub meets_target: bool,
    /// Due (factor, period start) with no record received at all.
    pub missing: Vec<(String, i64)>,
    /// Received but invalid: (factor, period start, flag or reason).
    pub invalid: Vec<(String, i64, String)>,
    /// The `late` periods: (factor, period start, when its first copy was received).
    pub late_periods: Vec<(String, i64, i64)>,
    /// Where the evaluation ended: the range's end, or the end of the last period ended by
    /// `now` when that came first (periods that had not ended by `now` are not due yet).
    pub evaluated_to_ms: i64,
}

impl Report {
    /// A report from counts alone, without the lists (the ledger's sums).
    pub fn from_counts(due: u64, received: u64, valid: u64, late: u64, evaluated_to_ms: i64, rules: &Rules) -> Self {
        let effective = Rate { numerator: valid, denominator: due };
        Self {
            due,
            received,
            valid,
            late,
            transmission: Rate { numerator: received, denominator: due },
            validity: Rate { numerator: valid, denominator: received },
            effective,
            meets_target: effective.basis_points().is_some_and(|bp| bp >= u64::from(rules.target_bp)),
            missing: Vec::new(),
            invalid: Vec::new(),
            late_periods: Vec::new(),
            evaluated_to_ms,
        }
    }
}

/// The part of `range` that can be due at `now`: it ends with the last period of `basis`
/// that has ended by `now`, if that is earlier than the range's end.
pub fn evaluated(range: Range, basis: Basis, now_ms: i64) -> Range {
    Range { from_ms: range.from_ms, to_ms: range.to_ms.min(basis.period_start(now_ms)).max(range.from_ms) }
}

/// Computes the rates for `factors` over `range` as they stand at `now_ms`.
///
/// Due periods are those wholly inside `range`, ended by `now_ms`, and not wholly inside a
/// downtime mark. A record counts once per (factor, period), the first copy received wins,
/// and only if received by period end + cutoff. A record is valid when its flag is N (or
/// absent) and, with the 45-minute rule on, its valid minutes reach the minimum.
pub fn compute<'r>(
    factors: &[String],
    range: Range,
    rules: &Rules,
    readings: impl IntoIterator<Item = &'r Reading>,
    marks: &[Mark],
    now_ms: i64,
) -> Report {
    let step = rules.basis.period_ms();
    let evaluated = evaluated(range, rules.basis, now_ms);
    let due_periods: BTreeSet<i64> =
        evaluated.periods(rules.basis).filter(|start| !marks.iter().any(|m| m.range.covers(*start, step))).collect();
    // First copy received per (factor, period), on time or not.
    let mut first: BTreeMap<(&str, i64), &Reading> = BTreeMap::new();
    for reading in readings {
        let start = rules.basis.period_start(reading.data_time_ms);
        if !factors.contains(&reading.factor) || !due_periods.contains(&start) {
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
    let (mut received, mut valid) = (0, 0);
    let (mut missing, mut invalid, mut late) = (Vec::new(), Vec::new(), Vec::new());
    for factor in factors {
        for start in &due_periods {
            let Some(reading) = first.get(&(factor.as_str(), *start)) else {
                missing.push((factor.clone(), *start));
                continue;
            };
            // docs/compliance.md §1.2: data received after the cutoff (period end + repair window) is kept but not counted as transmitted; the evidence shows it as late, not missing.
            if reading.received_ms >= start + step + rules.cutoff_ms {
                late.push((factor.clone(), *start, reading.received_ms));
                continue;
            }
            received += 1;
            match invalid_reason(reading, rules) {
                None => valid += 1,
                Some(reason) => invalid.push((factor.clone(), *start, reason)),
            }
        }
    }
    let due = (factors.len() * due_periods.len()) as u64;
    let counts = Report::from_counts(due, received, valid, late.len() as u64, evaluated.to_ms, rules);
    Report { missing, invalid, late_periods: late, ..counts }
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
    /// A `now` long after every range in these tests.
    const FAR: i64 = NOV_1 + 400 * 86_400_000;

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

    /// docs/compliance.md §1.3: 3 factors, 720 h, a 48 h evidenced shutdown, 26 records
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
        let report = compute(&factors, month(), &Rules::default(), &readings, &[shutdown], FAR);
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
        let report = compute(&factors, month(), &Rules::default(), &readings, &[], FAR);
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
        let received_late = too_late.received_ms;
        let report = compute(&factors, range, &Rules::default(), &[on_time, too_late], &[], FAR);
        assert_eq!((report.due, report.received, report.late), (2, 1, 1));
        assert!(report.missing.is_empty(), "a late record is kept and shown as late, not missing");
        assert_eq!(report.late_periods, [("w01018".to_owned(), NOV_1 + HOUR, received_late)]);
        assert_eq!((report.transmission.to_string(), report.valid), ("50.00".to_owned(), 1));
    }

    #[test]
    fn a_range_reaching_into_the_future_is_evaluated_up_to_now() {
        let factors = vec!["w01018".to_owned()];
        let day = Range { from_ms: NOV_1, to_ms: NOV_1 + 24 * HOUR };
        let now = NOV_1 + 10 * HOUR + 30 * 60_000;
        let readings: Vec<Reading> = (0..10).map(|h| reading("w01018", h, "N")).collect();
        let report = compute(&factors, day, &Rules::default(), &readings, &[], now);
        // Hours 0-9 have ended; hour 10 (still running) and later are not due yet.
        assert_eq!((report.due, report.received, report.evaluated_to_ms), (10, 10, NOV_1 + 10 * HOUR));
        assert_eq!(report.effective.to_string(), "100.00");
        assert!(report.missing.is_empty());
        let before = compute(&factors, day, &Rules::default(), &readings, &[], NOV_1 - 1);
        assert_eq!((before.due, before.evaluated_to_ms), (0, NOV_1));
        let after = compute(&factors, day, &Rules::default(), &readings, &[], FAR);
        assert_eq!((after.due, after.missing.len(), after.evaluated_to_ms), (24, 14, day.to_ms));
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
        let report = compute(&factors, range, &cems, &[short.clone(), unflagged.clone()], &[], FAR);
        assert_eq!(report.valid, 1);
        assert_eq!(report.invalid[0].2, "44 valid minutes (< 45)");
        assert_eq!(compute(&factors, range, &Rules::default(), &[short, unflagged], &[], FAR).valid, 2);
    }

    #[test]
    fn nothing_due_is_not_a_rate() {
        let report =
            compute(&["x".to_owned()], Range { from_ms: NOV_1, to_ms: NOV_1 }, &Rules::default(), &[], &[], FAR);
        assert_eq!((report.effective.to_string(), report.meets_target), ("n/a".to_owned(), false));
    }
}
