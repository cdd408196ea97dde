//! The day or month a report covers, in Beijing time.

use hj212_compliance::Range;
use hj212_store::parse_bound;

const DAY_MS: i64 = 86_400_000;

/// A report's period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// `daily` or `monthly`.
    pub kind: &'static str,
    /// `YYYY-MM-DD` or `YYYY-MM`.
    pub label: String,
    pub range: Range,
}

impl Period {
    /// The Beijing day `date` (`YYYY-MM-DD`).
    ///
    /// # Errors
    /// What is wrong with `date`.
    pub fn day(date: &str) -> Result<Self, String> {
        let well_formed = date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-';
        let from_ms = parse_bound(date)
            .ok()
            .filter(|_| well_formed)
            .ok_or_else(|| format!("{date:?} is not a date YYYY-MM-DD"))?;
        Ok(Self { kind: "daily", label: date.to_owned(), range: Range { from_ms, to_ms: from_ms + DAY_MS } })
    }

    /// The Beijing month `month` (`YYYY-MM`).
    ///
    /// # Errors
    /// What is wrong with `month`.
    pub fn month(month: &str) -> Result<Self, String> {
        let bad = || format!("{month:?} is not a month YYYY-MM");
        let (year, number) = month.split_once('-').filter(|(y, m)| y.len() == 4 && m.len() == 2).ok_or_else(bad)?;
        let (year, number): (i32, u32) = (year.parse().map_err(|_| bad())?, number.parse().map_err(|_| bad())?);
        if !(1..=12).contains(&number) {
            return Err(bad());
        }
        let (next_year, next) = if number == 12 { (year + 1, 1) } else { (year, number + 1) };
        let from_ms = parse_bound(&format!("{year:04}-{number:02}-01")).map_err(|_| bad())?;
        let to_ms = parse_bound(&format!("{next_year:04}-{next:02}-01")).map_err(|_| bad())?;
        Ok(Self { kind: "monthly", label: month.to_owned(), range: Range { from_ms, to_ms } })
    }

    /// The record whose values the report sums and compares: hourly (CN 2061) for a day,
    /// daily (CN 2031) for a month.
    pub fn record_cn(&self) -> u16 {
        if self.kind == "daily" { 2061 } else { 2031 }
    }

    /// How many such records the period holds.
    pub fn records_due(&self) -> u64 {
        let each = if self.kind == "daily" { 3_600_000 } else { DAY_MS };
        u64::try_from((self.range.to_ms - self.range.from_ms) / each).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_months_are_beijing_calendar_ones() {
        let day = Period::day("2026-11-29").unwrap();
        assert_eq!(day.range.to_ms - day.range.from_ms, DAY_MS);
        assert_eq!(day.records_due(), 24);
        let february = Period::month("2028-02").unwrap();
        assert_eq!(february.records_due(), 29, "a leap year");
        assert_eq!(Period::month("2026-12").unwrap().records_due(), 31);
        for bad in ["2026-13", "2026-1", "26-11", "november"] {
            assert!(Period::month(bad).is_err(), "{bad}");
        }
        for bad in ["2026-11-31", "20261129", "2026-11"] {
            assert!(Period::day(bad).is_err(), "{bad}");
        }
    }
}
