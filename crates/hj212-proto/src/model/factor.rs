//! Pollutant and parameter codes, HJ 212-2017 Appendix B, with the HJ/T 212-2005 codes they replaced.
//!
//! The rows live in one data file, `data/factors.tsv` (its sources are in `data/SOURCES.md`),
//! compiled in with `include_str!` and parsed once on first use. A malformed row is skipped and
//! counted ([`Factor::skipped_rows`]), never a panic; the unit tests fail on any such row.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::SystemType;

mod table;

/// What a factor is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Medium {
    /// Flue gas and ambient air (Table B.2).
    Gas,
    /// Wastewater and surface water (Table B.1).
    Water,
    /// Noise (Table B.3).
    Noise,
}

/// One row of the factor table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Factor {
    /// The HJ 212-2017 code.
    pub code: &'static str,
    /// The HJ/T 212-2005 code, where there was one.
    pub code_2005: Option<&'static str>,
    pub name: &'static str,
    pub name_zh: &'static str,
    /// Concentration (or value) unit when the station type is unknown or has no unit of its own;
    /// see [`Factor::unit_for`]. Empty for dimensionless values (pH).
    pub unit: &'static str,
    /// Emission-amount unit for `-Cou`, where it has one.
    pub amount_unit: Option<&'static str>,
    pub medium: Medium,
    /// Where the row comes from: a standard's table, or a code list and where it was read.
    pub source: &'static str,
    /// Units that differ by system type, as `ST=unit` pairs separated by commas.
    st_units: &'static str,
}

impl Factor {
    /// Every row, in data-file order.
    pub fn all() -> &'static [Factor] {
        &TABLE.rows
    }

    /// How many rows of the data file were malformed and left out (0 in a correct build).
    pub fn skipped_rows() -> usize {
        TABLE.skipped
    }

    /// The factor a wire code stands for in a frame with this ST (the wire text, e.g. `"31"`).
    ///
    /// The ST picks the table a 2005 code is looked up in; without one, or for an ST with no
    /// table of its own, every table is searched.
    pub fn lookup(code: &str, st: Option<&str>) -> Option<&'static Factor> {
        factor_for_code(code, st.and_then(|st| SystemType::from_wire(st).medium()))
    }

    /// The unit a value of this factor is in at a station of this ST: ambient-air stations
    /// (ST=22) report SO2, NO2 and NOx in µg/m3 where a stack (ST=31) reports mg/m3.
    pub fn unit_for(&self, st: Option<&str>) -> &'static str {
        st.and_then(|st| self.st_units().find(|&(s, _)| s == st)).map_or(self.unit, |(_, unit)| unit)
    }

    /// The per-ST units, as `(ST, unit)`.
    pub fn st_units(&self) -> impl Iterator<Item = (&'static str, &'static str)> + use<> {
        let pairs: &'static str = self.st_units;
        pairs.split(',').filter_map(|pair| pair.split_once('='))
    }
}

/// The file the table is built from.
const DATA: &str = include_str!("../../data/factors.tsv");

struct Table {
    rows: Vec<Factor>,
    by_code: HashMap<&'static str, usize>,
    skipped: usize,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let parsed = table::parse(DATA);
    let mut by_code = HashMap::with_capacity(parsed.rows.len());
    for (i, row) in parsed.rows.iter().enumerate() {
        by_code.entry(row.code).or_insert(i);
    }
    Table { rows: parsed.rows, by_code, skipped: parsed.errors.len() }
});

/// The factor with this HJ 212-2017 code.
pub fn factor(code: &str) -> Option<&'static Factor> {
    TABLE.by_code.get(code).map(|&i| &TABLE.rows[i])
}

/// The factor a wire code stands for: a 2017 code, or a 2005 code of the given medium.
///
/// 2005 codes are only unique within a medium (gas used 2-digit codes, water 3-digit
/// ones), so a frame's ST decides which table a 2005 code is looked up in; with no
/// medium known, any table is searched.
pub fn factor_for_code(code: &str, medium: Option<Medium>) -> Option<&'static Factor> {
    factor(code)
        .or_else(|| TABLE.rows.iter().find(|f| f.code_2005 == Some(code) && medium.is_none_or(|m| m == f.medium)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert_eq!(factor("a21026").unwrap().name, "sulphur dioxide");
        assert_eq!(factor_for_code("011", None).unwrap().code, "w01018");
        assert_eq!(factor_for_code("B01", Some(Medium::Water)).unwrap().code, "w00000");
        assert_eq!(factor_for_code("02", Some(Medium::Gas)).unwrap().code, "a21026");
        // "023" is total chromium in wastewater, not a flue-gas code.
        assert_eq!(factor_for_code("023", Some(Medium::Gas)), None);
        assert_eq!(factor_for_code("ua19004", None), None);
        assert_eq!(Factor::lookup("03", Some("31")).unwrap().code, "a21002");
        assert_eq!(Factor::lookup("060", Some("32")).unwrap().code, "w21003");
        assert_eq!(Factor::lookup("060", Some("31")), None);
    }

    #[test]
    fn data_file_loads_whole() {
        assert_eq!(Factor::skipped_rows(), 0);
        assert_eq!(Factor::all().len(), DATA.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).count() - 1);
    }

    #[test]
    fn codes_are_unique() {
        let rows = Factor::all();
        for (i, a) in rows.iter().enumerate() {
            for b in &rows[i + 1..] {
                assert_ne!(a.code, b.code);
                if a.code_2005.is_some() {
                    // Unique across media too, so a lookup without an ST is never ambiguous.
                    assert_ne!(a.code_2005, b.code_2005, "{} / {}", a.code, b.code);
                }
            }
        }
    }

    #[test]
    fn every_2005_code_maps_to_its_row() {
        for f in Factor::all() {
            if let Some(old) = f.code_2005 {
                assert_eq!(factor_for_code(old, Some(f.medium)), Some(f), "{old}");
                assert_eq!(factor_for_code(old, None), Some(f), "{old}");
            }
        }
    }

    #[test]
    fn codes_seen_in_public_captures() {
        for (code, zh, unit) in [
            ("a05024", "臭氧", "µg/m3"),
            ("a05002", "甲烷", "ng/m3"),
            ("w01009", "溶解氧", "mg/L"),
            ("w01003", "浊度", "NTU"),
            ("a24088", "非甲烷总烃", "mg/m3"),
        ] {
            let f = factor(code).unwrap_or_else(|| panic!("{code} missing"));
            assert_eq!((f.name_zh, f.unit), (zh, unit), "{code}");
            assert!(!f.name.is_empty() && !f.source.is_empty(), "{code}");
        }
    }

    #[test]
    fn units_by_station_type() {
        let so2 = factor("a21026").unwrap();
        assert_eq!(so2.unit_for(Some("22")), "µg/m3");
        assert_eq!(so2.unit_for(Some("31")), "mg/m3");
        assert_eq!(so2.unit_for(None), "mg/m3");
        assert_eq!(factor("a21005").unwrap().unit_for(Some("22")), "mg/m3");
        assert_eq!(factor("a21004").unwrap().unit_for(Some("22")), "µg/m3");
        assert_eq!(factor("w01018").unwrap().unit_for(Some("21")), "mg/L");
        assert_eq!(factor("w01018").unwrap().unit_for(Some("32")), "mg/L");
        assert_eq!(so2.st_units().collect::<Vec<_>>(), [("22", "µg/m3")]);
        assert_eq!(factor("w01001").unwrap().st_units().count(), 0);
    }

    #[test]
    fn temperatures_and_pressures_keep_their_spelling() {
        // hj212-alerts treats values in these units as signed.
        for code in ["a01001", "a01012", "a01015", "a01901", "w01010"] {
            assert_eq!(factor(code).unwrap().unit, "°C", "{code}");
        }
        for code in ["a01006", "a01013", "a01017"] {
            assert_eq!(factor(code).unwrap().unit, "kPa", "{code}");
        }
    }
}
