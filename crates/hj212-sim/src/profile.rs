//! What a station measures: flue gas (ST=31) or wastewater (ST=32), with plausible values.

use crate::rng::Rng;

/// The kind of monitoring point a station simulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Flue-gas CEMS (ST=31).
    Gas,
    /// Wastewater analysers (ST=32).
    Water,
}

/// How a factor's `-Cou` (amount over the period) is computed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cou {
    /// No amount (pH, O2, temperature).
    None,
    /// The flow itself: volume in m³ = value × seconds × `to_m3`.
    Volume { to_m3: f64 },
    /// A pollutant load in kg = concentration × volume (m³) × `to_kg`.
    Load { to_kg: f64 },
}

/// One measured factor and its typical values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FactorSpec {
    /// HJ 212-2017 code.
    pub code: &'static str,
    /// The HJ/T 212-2005 code it replaced (as in hj212-proto's factor table).
    pub code_2005: &'static str,
    mean: f64,
    sd: f64,
    low: f64,
    high: f64,
    decimals: usize,
    cou: Cou,
}

const fn spec(code: &'static str, code_2005: &'static str, mean: f64, sd: f64, range: (f64, f64)) -> FactorSpec {
    FactorSpec { code, code_2005, mean, sd, low: range.0, high: range.1, decimals: 1, cou: Cou::None }
}

const fn with(mut spec: FactorSpec, decimals: usize, cou: Cou) -> FactorSpec {
    spec.decimals = decimals;
    spec.cou = cou;
    spec
}

/// mg/m³ × m³ → kg.
const GAS_LOAD: Cou = Cou::Load { to_kg: 1e-6 };
/// mg/L × m³ → kg (1000 L per m³).
const WATER_LOAD: Cou = Cou::Load { to_kg: 1e-3 };

static GAS: [FactorSpec; 6] = [
    with(spec("a00000", "B02", 60.0, 4.0, (20.0, 120.0)), 1, Cou::Volume { to_m3: 1.0 }),
    with(spec("a21026", "02", 28.0, 6.0, (0.5, 200.0)), 1, GAS_LOAD),
    with(spec("a21002", "03", 75.0, 12.0, (5.0, 300.0)), 1, GAS_LOAD),
    with(spec("a34013", "01", 6.0, 1.5, (0.2, 50.0)), 1, GAS_LOAD),
    spec("a19001", "S01", 10.0, 0.6, (8.0, 12.0)),
    spec("a01012", "S03", 120.0, 4.0, (60.0, 200.0)),
];

static WATER: [FactorSpec; 6] = [
    with(spec("w00000", "B01", 15.0, 2.5, (1.0, 60.0)), 2, Cou::Volume { to_m3: 1e-3 }),
    with(spec("w01018", "011", 38.0, 7.0, (2.0, 150.0)), 1, WATER_LOAD),
    with(spec("w21003", "060", 1.8, 0.4, (0.05, 25.0)), 2, WATER_LOAD),
    with(spec("w21011", "101", 0.28, 0.06, (0.01, 3.0)), 2, WATER_LOAD),
    with(spec("w21001", "065", 9.5, 1.8, (0.5, 40.0)), 2, WATER_LOAD),
    with(spec("w01001", "001", 7.2, 0.35, (6.0, 9.0)), 2, Cou::None),
];

impl Profile {
    /// The system code (ST) of its frames.
    pub fn st(self) -> &'static str {
        match self {
            Self::Gas => "31",
            Self::Water => "32",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gas => "gas",
            Self::Water => "water",
        }
    }

    /// The factors it reports, flow first.
    pub fn factors(self) -> &'static [FactorSpec] {
        match self {
            Self::Gas => &GAS,
            Self::Water => &WATER,
        }
    }

    /// The factor an exceedance is simulated on (SO2 for gas, COD for water), and how high it goes.
    fn exceedance(self) -> (&'static str, f64, f64) {
        match self {
            // Typical limits: 35 (ultra-low) to 200 mg/m³ SO2; 50-100 mg/L COD.
            Self::Gas => ("a21026", 800.0, 1600.0),
            Self::Water => ("w01018", 300.0, 600.0),
        }
    }
}

/// What the values of one record are made of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueFaults {
    /// Chance (percent) that a factor's data flag is M, D or C instead of N.
    pub flag_percent: f64,
    /// Chance (percent) that a record carries an exceedance.
    pub exceed_percent: f64,
}

/// One factor's fields in a record.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub spec: &'static FactorSpec,
    /// `(suffix, value)`: `("Rtd", "35.2")`, or Cou/Min/Avg/Max.
    pub fields: Vec<(&'static str, String)>,
    pub flag: char,
}

/// The readings of one record and what was done to them.
#[derive(Debug, Clone, PartialEq)]
pub struct Values {
    pub readings: Vec<Reading>,
    pub exceeded: bool,
    /// Factors flagged M, D or C.
    pub flagged: u32,
}

fn draw(spec: &FactorSpec, rng: &mut Rng, scale: f64) -> f64 {
    (spec.mean + spec.sd * scale * rng.noise()).clamp(spec.low, spec.high)
}

fn fixed(value: f64, decimals: usize) -> String {
    format!("{value:.decimals$}")
}

/// Values for a real-time record (`period_secs` = `None`) or an aggregate over `period_secs`.
pub fn sample(profile: Profile, period_secs: Option<u32>, faults: &ValueFaults, rng: &mut Rng) -> Values {
    let (exceed_code, exceed_low, exceed_high) = profile.exceedance();
    let exceeded = rng.chance(faults.exceed_percent);
    // Averages vary less than instantaneous values.
    let scale = if period_secs.is_some_and(|p| p >= 3600) { 0.5 } else { 1.0 };
    let mut volume_m3 = 0.0;
    let mut flagged = 0;
    let mut readings = Vec::with_capacity(profile.factors().len());
    for spec in profile.factors() {
        let mut avg = draw(spec, rng, scale);
        if exceeded && spec.code == exceed_code {
            avg = exceed_low + (exceed_high - exceed_low) * rng.unit();
        }
        let flag = if rng.chance(faults.flag_percent) { rng.pick(&['M', 'D', 'C']) } else { 'N' };
        flagged += u32::from(flag != 'N');
        let Some(period) = period_secs else {
            readings.push(Reading { spec, fields: vec![("Rtd", fixed(avg, spec.decimals))], flag });
            continue;
        };
        let spread = spec.sd * (0.5 + rng.unit());
        // An exceedance may lie above the plausible range; its maximum then does too.
        let ceiling = if avg > spec.high { avg + spread } else { spec.high };
        let (min, max) = ((avg - spread).max(spec.low.min(avg)), (avg + spread).min(ceiling));
        let mut fields = Vec::with_capacity(4);
        match spec.cou {
            Cou::None => {}
            Cou::Volume { to_m3 } => {
                volume_m3 = avg * f64::from(period) * to_m3;
                fields.push(("Cou", fixed(volume_m3, 1)));
            }
            Cou::Load { to_kg } => fields.push(("Cou", fixed(avg * volume_m3 * to_kg, 3))),
        }
        fields.push(("Min", fixed(min, spec.decimals)));
        fields.push(("Avg", fixed(avg, spec.decimals)));
        fields.push(("Max", fixed(max, spec.decimals)));
        readings.push(Reading { spec, fields, flag });
    }
    Values { readings, exceeded, flagged }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hj212_proto::model::factor;

    #[test]
    fn codes_match_the_protocol_table() {
        for profile in [Profile::Gas, Profile::Water] {
            for spec in profile.factors() {
                let row = factor(spec.code).unwrap_or_else(|| panic!("{} is a 2017 code", spec.code));
                assert_eq!(row.code_2005, Some(spec.code_2005), "{}", spec.code);
            }
        }
    }

    #[test]
    fn plausible_values() {
        let mut rng = Rng::new(7);
        let faults = ValueFaults { flag_percent: 0.0, exceed_percent: 0.0 };
        for _ in 0..500 {
            let values = sample(Profile::Gas, None, &faults, &mut rng);
            let o2: f64 = values.readings[4].fields[0].1.parse().unwrap();
            assert!((8.0..=12.0).contains(&o2), "{o2}");
            let values = sample(Profile::Water, Some(600), &faults, &mut rng);
            let ph = &values.readings[5];
            assert_eq!(ph.fields.iter().map(|f| f.0).collect::<Vec<_>>(), ["Min", "Avg", "Max"]);
            for (_, v) in &ph.fields {
                assert!((6.0..=9.0).contains(&v.parse::<f64>().unwrap()), "{v}");
            }
            assert_eq!(values.readings[0].fields[0].0, "Cou");
            assert!(!values.exceeded && values.flagged == 0);
        }
    }

    #[test]
    fn exceedance_and_flags() {
        let mut rng = Rng::new(1);
        let faults = ValueFaults { flag_percent: 100.0, exceed_percent: 100.0 };
        let values = sample(Profile::Gas, None, &faults, &mut rng);
        let so2: f64 = values.readings[1].fields[0].1.parse().unwrap();
        assert!(so2 >= 800.0 && values.exceeded);
        assert_eq!(values.flagged, 6);
        assert!(values.readings.iter().all(|r| "MDC".contains(r.flag)));
    }
}
