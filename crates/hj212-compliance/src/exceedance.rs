//! Exceedance (超标) of one factor at one site, as a small state machine: fed each valid
//! average as it closes, it returns alert transitions, once per incident (raised, then
//! updated only when the incident gets worse, then cleared), with hysteresis so a value
//! hovering at the limit does not flap.

/// The converted (折算) concentration at the reference O2.
///
/// GB 13223-2011 and the other combustion standards: C_ref = C × (21 − O2_ref) / (21 − O2).
///
/// # Errors
/// [`ImplausibleO2`] when O2 >= 20 % (docs/compliance.md §4.1 guard, a platform rule):
/// the factor explodes, so no conversion is made and the caller raises an implausible-O2 alert.
pub fn converted(measured: f64, o2: f64, reference_o2: f64) -> Result<f64, ImplausibleO2> {
    if !(0.0..20.0).contains(&o2) {
        return Err(ImplausibleO2 { o2 });
    }
    Ok(measured * (21.0 - reference_o2) / (21.0 - o2))
}

/// O2 too high (or negative) for a converted concentration to mean anything.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImplausibleO2 {
    pub o2: f64,
}

impl std::fmt::Display for ImplausibleO2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "O2 of {} % is implausible for a converted concentration (must be 0 to under 20 %)", self.o2)
    }
}

impl std::error::Error for ImplausibleO2 {}

/// A per-factor limit: an upper one (most factors), a lower one, or both (pH 6-9).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub max: Option<f64>,
    pub min: Option<f64>,
    /// An incident clears only once a value is back inside the limits by this fraction of
    /// them (platform rule; 0.0 clears at the limit itself).
    pub hysteresis: f64,
}

impl Limit {
    /// How far outside the limits a value is (0 when inside), and the limit it breaks.
    fn excess(&self, value: f64) -> (f64, Option<f64>) {
        match (self.max, self.min) {
            (Some(max), _) if value > max => (value - max, Some(max)),
            (_, Some(min)) if value < min => (min - value, Some(min)),
            _ => (0.0, None),
        }
    }

    /// Whether a value is inside the limits by the hysteresis margin.
    fn clears(&self, value: f64) -> bool {
        let h = self.hysteresis.clamp(0.0, 1.0);
        self.max.is_none_or(|max| value <= max - max.abs() * h)
            && self.min.is_none_or(|min| value >= min + min.abs() * h)
    }
}

/// What an observation changed; `limit` is the one broken (or last broken, when cleared).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transition {
    Raised {
        value: f64,
        limit: f64,
    },
    /// Still outside the limit, and further out than reported so far.
    Updated {
        value: f64,
        limit: f64,
    },
    Cleared {
        value: f64,
        limit: f64,
    },
}

/// One factor's incident state.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Exceedance {
    /// The worst excess and the limit it broke, while an incident is open.
    open: Option<(f64, f64)>,
}

impl Exceedance {
    /// Whether an incident is open.
    pub fn is_active(&self) -> bool {
        self.open.is_some()
    }

    /// Feeds one valid average (hourly or daily, per the limit's basis).
    pub fn observe(&mut self, value: f64, limit: &Limit) -> Option<Transition> {
        let (excess, broken) = limit.excess(value);
        match (self.open, broken) {
            (None, Some(broken)) => {
                self.open = Some((excess, broken));
                Some(Transition::Raised { value, limit: broken })
            }
            (Some((_, last)), _) if limit.clears(value) => {
                self.open = None;
                Some(Transition::Cleared { value, limit: last })
            }
            (Some((worst, _)), Some(broken)) if excess > worst => {
                self.open = Some((excess, broken));
                Some(Transition::Updated { value, limit: broken })
            }
            // Compliant with nothing open, or open and not worse: nothing to say.
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_and_the_o2_guard() {
        // 20 mg/m3 measured at 11 % O2, reference 6 %: 20 x 15 / 10 = 30.
        assert!((converted(20.0, 11.0, 6.0).unwrap() - 30.0).abs() < 1e-9);
        assert_eq!(converted(20.0, 20.0, 6.0), Err(ImplausibleO2 { o2: 20.0 }));
        assert_eq!(
            converted(20.0, 20.9, 6.0).unwrap_err().to_string(),
            "O2 of 20.9 % is implausible for a converted concentration (must be 0 to under 20 %)"
        );
        assert!(converted(20.0, -1.0, 6.0).is_err());
    }

    #[test]
    fn one_incident_raised_updated_when_worse_then_cleared() {
        let limit = Limit { max: Some(35.0), min: None, hysteresis: 0.0 };
        let mut state = Exceedance::default();
        assert_eq!(state.observe(30.0, &limit), None);
        assert_eq!(state.observe(40.0, &limit), Some(Transition::Raised { value: 40.0, limit: 35.0 }));
        assert_eq!(state.observe(38.0, &limit), None, "still above, not worse: no message");
        assert_eq!(state.observe(45.0, &limit), Some(Transition::Updated { value: 45.0, limit: 35.0 }));
        assert!(state.is_active());
        assert_eq!(
            state.observe(35.0, &limit),
            Some(Transition::Cleared { value: 35.0, limit: 35.0 }),
            "at the limit is compliant"
        );
        assert_eq!(state.observe(34.0, &limit), None);
    }

    #[test]
    fn hysteresis_stops_flapping_at_the_limit() {
        let limit = Limit { max: Some(100.0), min: None, hysteresis: 0.05 };
        let mut state = Exceedance::default();
        assert!(matches!(state.observe(101.0, &limit), Some(Transition::Raised { .. })));
        assert_eq!(state.observe(99.0, &limit), None, "below the limit but within 5 %: still open");
        assert_eq!(state.observe(100.5, &limit), None);
        assert_eq!(state.observe(95.0, &limit), Some(Transition::Cleared { value: 95.0, limit: 100.0 }));
    }

    #[test]
    fn a_lower_limit_like_ph_6_to_9() {
        let limit = Limit { max: Some(9.0), min: Some(6.0), hysteresis: 0.0 };
        let mut state = Exceedance::default();
        assert_eq!(state.observe(7.0, &limit), None);
        assert_eq!(state.observe(5.5, &limit), Some(Transition::Raised { value: 5.5, limit: 6.0 }));
        assert_eq!(state.observe(5.0, &limit), Some(Transition::Updated { value: 5.0, limit: 6.0 }));
        assert_eq!(state.observe(9.8, &limit), None, "outside the other limit, but less far");
        assert_eq!(state.observe(10.5, &limit), Some(Transition::Updated { value: 10.5, limit: 9.0 }));
        assert_eq!(state.observe(6.5, &limit), Some(Transition::Cleared { value: 6.5, limit: 9.0 }));
    }
}
