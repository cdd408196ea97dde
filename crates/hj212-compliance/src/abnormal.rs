//! Abnormal values and flags of one factor (docs/compliance.md §3; all platform rules
//! with configurable defaults). Fed each value in order, a [`ValueWatch`] reports incidents
//! as they open and close, once each.

use std::collections::BTreeSet;

use crate::alert::AlertKind;

/// Thresholds for one factor, in periods of the series watched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueRules {
    /// Identical values in a row that make a flat line (platform default 6 hours; 0 = off).
    pub flat_line_periods: u32,
    /// Zeros in a row while running (0 = off).
    pub zero_periods: u32,
    /// M/C/D flags in a row (0 = off).
    pub flag_run_periods: u32,
    /// Largest step between consecutive values; `None` turns the rule off.
    pub max_step: Option<f64>,
    /// The instrument's range; `None` turns the rule off.
    pub range: Option<(f64, f64)>,
    /// Whether a value below zero is abnormal (not for temperatures and pressures).
    pub negative: bool,
}

impl Default for ValueRules {
    fn default() -> Self {
        Self { flat_line_periods: 6, zero_periods: 2, flag_run_periods: 4, max_step: None, range: None, negative: true }
    }
}

/// An incident opening or closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Raised(AlertKind),
    Cleared(AlertKind),
}

/// One factor's recent values and open incidents.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ValueWatch {
    last: Option<f64>,
    same: u32,
    zeros: u32,
    flagged: u32,
    open: BTreeSet<AlertKind>,
}

impl ValueWatch {
    /// The incidents open now.
    pub fn open(&self) -> impl Iterator<Item = AlertKind> + '_ {
        self.open.iter().copied()
    }

    /// Feeds the next value (and its flag) in DataTime order. `running` is false while the
    /// source is stopped (flow 0): flat and zero values are expected then.
    pub fn observe(&mut self, value: f64, flag: Option<&str>, running: bool, rules: &ValueRules) -> Vec<Change> {
        let mut now = BTreeSet::new();
        if rules.negative && value < 0.0 {
            now.insert(AlertKind::Negative);
        }
        // A flat line is the same value as reported, exactly (Option comparison, no epsilon).
        let repeated = self.last == Some(value);
        self.same = if repeated && running { self.same + 1 } else { u32::from(running) };
        if rules.flat_line_periods > 0 && self.same >= rules.flat_line_periods {
            now.insert(AlertKind::FlatLine);
        }
        self.zeros = if value == 0.0 && running { self.zeros + 1 } else { 0 };
        if rules.zero_periods > 0 && self.zeros >= rules.zero_periods {
            now.insert(AlertKind::Zero);
        }
        if let (Some(step), Some(last)) = (rules.max_step, self.last)
            && (value - last).abs() > step
        {
            now.insert(AlertKind::Jump);
        }
        let outside = rules.range.is_some_and(|(low, high)| value < low || value > high);
        if outside || flag == Some("T") {
            now.insert(AlertKind::OutOfRange);
        }
        if flag.is_some_and(|f| f != "N") {
            now.insert(AlertKind::AbnormalFlag);
        }
        self.flagged = if matches!(flag, Some("M" | "C" | "D")) { self.flagged + 1 } else { 0 };
        if rules.flag_run_periods > 0 && self.flagged >= rules.flag_run_periods {
            now.insert(AlertKind::FlagRun);
        }
        self.last = Some(value);
        let raised = now.difference(&self.open).map(|k| Change::Raised(*k));
        let cleared = self.open.difference(&now).map(|k| Change::Cleared(*k));
        let changes = raised.chain(cleared).collect();
        self.open = now;
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AlertKind::*;

    const OFF: ValueRules = ValueRules {
        flat_line_periods: 0,
        zero_periods: 0,
        flag_run_periods: 0,
        max_step: None,
        range: None,
        negative: true,
    };

    #[test]
    fn flat_line_opens_after_n_identical_values_and_closes_on_change() {
        let rules = ValueRules { flat_line_periods: 3, ..OFF };
        let mut watch = ValueWatch::default();
        assert!(watch.observe(5.0, Some("N"), true, &rules).is_empty());
        assert!(watch.observe(5.0, Some("N"), true, &rules).is_empty());
        assert_eq!(watch.observe(5.0, Some("N"), true, &rules), [Change::Raised(FlatLine)]);
        assert!(watch.observe(5.0, Some("N"), true, &rules).is_empty(), "once per incident");
        assert_eq!(watch.observe(5.1, Some("N"), true, &rules), [Change::Cleared(FlatLine)]);
    }

    #[test]
    fn flat_and_zero_values_are_expected_while_the_source_is_stopped() {
        let rules = ValueRules { flat_line_periods: 2, zero_periods: 2, ..OFF };
        let mut watch = ValueWatch::default();
        for _ in 0..5 {
            assert!(watch.observe(0.0, Some("N"), false, &rules).is_empty());
        }
        assert!(watch.observe(0.0, Some("N"), true, &rules).is_empty());
        assert_eq!(watch.observe(0.0, Some("N"), true, &rules), [Change::Raised(Zero), Change::Raised(FlatLine)]);
        assert_eq!(watch.observe(3.0, Some("N"), true, &rules), [Change::Cleared(Zero), Change::Cleared(FlatLine)]);
    }

    #[test]
    fn maintenance_flags_for_too_long_make_a_flag_run() {
        let rules = ValueRules { flag_run_periods: 3, ..OFF };
        let mut watch = ValueWatch::default();
        assert_eq!(watch.observe(1.0, Some("M"), true, &rules), [Change::Raised(AbnormalFlag)]);
        assert!(watch.observe(2.0, Some("C"), true, &rules).is_empty());
        assert_eq!(watch.observe(3.0, Some("D"), true, &rules), [Change::Raised(FlagRun)]);
        assert_eq!(
            watch.observe(4.0, Some("N"), true, &rules),
            [Change::Cleared(AbnormalFlag), Change::Cleared(FlagRun)]
        );
    }

    #[test]
    fn temperatures_and_pressures_may_be_negative() {
        let rules = ValueRules { negative: false, ..OFF };
        assert!(ValueWatch::default().observe(-12.5, Some("N"), true, &rules).is_empty());
    }

    #[test]
    fn negative_jump_range_and_flags() {
        let rules = ValueRules { max_step: Some(50.0), range: Some((0.0, 200.0)), ..OFF };
        let mut watch = ValueWatch::default();
        assert_eq!(
            watch.observe(-1.0, Some("N"), true, &rules),
            [Change::Raised(Negative), Change::Raised(OutOfRange)]
        );
        assert_eq!(
            watch.observe(10.0, Some("N"), true, &rules),
            [Change::Cleared(Negative), Change::Cleared(OutOfRange)]
        );
        assert_eq!(watch.observe(90.0, Some("N"), true, &rules), [Change::Raised(Jump)]);
        assert_eq!(watch.observe(95.0, Some("D"), true, &rules), [Change::Raised(AbnormalFlag), Change::Cleared(Jump)]);
        assert_eq!(watch.observe(95.0, Some("T"), true, &rules), [Change::Raised(OutOfRange)]);
        assert_eq!(watch.open().collect::<Vec<_>>(), [OutOfRange, AbnormalFlag]);
        assert_eq!(
            watch.observe(95.0, None, true, &rules),
            [Change::Cleared(OutOfRange), Change::Cleared(AbnormalFlag)]
        );
    }
}
