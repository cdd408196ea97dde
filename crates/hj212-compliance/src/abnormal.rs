//! Abnormal values and flags of one factor (docs/compliance-rules.md §3; all platform rules
//! with configurable defaults). Fed each value in order, a [`ValueWatch`] reports incidents
//! as they open and close, once each, like [`crate::exceedance::Exceedance`].

use std::collections::BTreeSet;

/// What is abnormal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnomalyKind {
    /// A concentration or flow below zero.
    Negative,
    /// The same value for `flat_line_periods` periods in a row (恒值).
    FlatLine,
    /// A step between consecutive values larger than `max_step` (突变).
    Jump,
    /// Outside the instrument's range, or flagged T.
    OutOfRange,
    /// A data flag other than N (F, M, S, D, C, T, B or unknown).
    AbnormalFlag,
}

impl AnomalyKind {
    /// A stable name for topics, metrics and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Negative => "negative",
            Self::FlatLine => "flat_line",
            Self::Jump => "jump",
            Self::OutOfRange => "out_of_range",
            Self::AbnormalFlag => "abnormal_flag",
        }
    }
}

/// Thresholds for one factor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueRules {
    /// Identical values in a row that make a flat line (platform default 6; 0 turns the rule off).
    pub flat_line_periods: u32,
    /// Largest step between consecutive values; `None` turns the rule off.
    pub max_step: Option<f64>,
    /// The instrument's range; `None` turns the rule off.
    pub range: Option<(f64, f64)>,
}

impl Default for ValueRules {
    fn default() -> Self {
        Self { flat_line_periods: 6, max_step: None, range: None }
    }
}

/// An incident opening or closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Raised(AnomalyKind),
    Cleared(AnomalyKind),
}

/// One factor's recent values and open incidents.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ValueWatch {
    last: Option<f64>,
    same: u32,
    open: BTreeSet<AnomalyKind>,
}

impl ValueWatch {
    /// The incidents open now.
    pub fn open(&self) -> impl Iterator<Item = AnomalyKind> + '_ {
        self.open.iter().copied()
    }

    /// Feeds the next value (and its flag) in DataTime order.
    pub fn observe(&mut self, value: f64, flag: Option<&str>, rules: &ValueRules) -> Vec<Change> {
        let mut now = BTreeSet::new();
        if value < 0.0 {
            now.insert(AnomalyKind::Negative);
        }
        // A flat line is the same value as reported, exactly (Option comparison, no epsilon).
        let repeated = self.last == Some(value);
        self.same = if repeated { self.same + 1 } else { 1 };
        if rules.flat_line_periods > 0 && self.same >= rules.flat_line_periods {
            now.insert(AnomalyKind::FlatLine);
        }
        if let (Some(step), Some(last)) = (rules.max_step, self.last)
            && (value - last).abs() > step
        {
            now.insert(AnomalyKind::Jump);
        }
        let outside = rules.range.is_some_and(|(low, high)| value < low || value > high);
        if outside || flag == Some("T") {
            now.insert(AnomalyKind::OutOfRange);
        }
        if flag.is_some_and(|f| f != "N") {
            now.insert(AnomalyKind::AbnormalFlag);
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
    use AnomalyKind::*;

    #[test]
    fn flat_line_opens_after_n_identical_values_and_closes_on_change() {
        let rules = ValueRules { flat_line_periods: 3, ..ValueRules::default() };
        let mut watch = ValueWatch::default();
        assert!(watch.observe(5.0, Some("N"), &rules).is_empty());
        assert!(watch.observe(5.0, Some("N"), &rules).is_empty());
        assert_eq!(watch.observe(5.0, Some("N"), &rules), [Change::Raised(FlatLine)]);
        assert!(watch.observe(5.0, Some("N"), &rules).is_empty(), "once per incident");
        assert_eq!(watch.observe(5.1, Some("N"), &rules), [Change::Cleared(FlatLine)]);
    }

    #[test]
    fn negative_jump_range_and_flags() {
        let rules = ValueRules { flat_line_periods: 0, max_step: Some(50.0), range: Some((0.0, 200.0)) };
        let mut watch = ValueWatch::default();
        assert_eq!(watch.observe(-1.0, Some("N"), &rules), [Change::Raised(Negative), Change::Raised(OutOfRange)]);
        assert_eq!(watch.observe(10.0, Some("N"), &rules), [Change::Cleared(Negative), Change::Cleared(OutOfRange)]);
        assert_eq!(watch.observe(90.0, Some("N"), &rules), [Change::Raised(Jump)]);
        assert_eq!(watch.observe(95.0, Some("D"), &rules), [Change::Raised(AbnormalFlag), Change::Cleared(Jump)]);
        assert_eq!(watch.observe(95.0, Some("T"), &rules), [Change::Raised(OutOfRange)]);
        assert_eq!(watch.open().collect::<Vec<_>>(), [OutOfRange, AbnormalFlag]);
        assert_eq!(watch.observe(95.0, None, &rules), [Change::Cleared(OutOfRange), Change::Cleared(AbnormalFlag)]);
    }
}
