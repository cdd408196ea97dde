//! Periods aligned on Beijing civil time (UTC+8, no daylight saving).

/// Beijing is UTC+8 all year.
pub const BEIJING_OFFSET_MS: i64 = 8 * 3_600_000;

/// Which records a rate is counted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Hourly records (CN=2061); the default (docs/compliance.md §1.2, national practice leans hourly).
    Hour,
    /// Daily records (CN=2031), Beijing midnight to midnight.
    Day,
    /// Minute records (CN=2051) at the site's interval, in minutes (1..=30).
    Minute { interval: u32 },
}

impl Basis {
    /// Length of one period in milliseconds.
    pub fn period_ms(self) -> i64 {
        match self {
            Self::Hour => 3_600_000,
            Self::Day => 86_400_000,
            Self::Minute { interval } => i64::from(interval.max(1)) * 60_000,
        }
    }

    /// The start of the period holding `ms` (periods align on Beijing clock boundaries).
    pub fn period_start(self, ms: i64) -> i64 {
        let local = ms + BEIJING_OFFSET_MS;
        local - local.rem_euclid(self.period_ms()) - BEIJING_OFFSET_MS
    }

    /// A stable name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Minute { .. } => "minute",
        }
    }
}

/// A half-open interval [from, to) in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from_ms: i64,
    pub to_ms: i64,
}

impl Range {
    /// The starts of the periods of `basis` that lie wholly inside this range.
    pub fn periods(self, basis: Basis) -> impl Iterator<Item = i64> {
        let step = basis.period_ms();
        let mut start = basis.period_start(self.from_ms);
        if start < self.from_ms {
            start += step;
        }
        let to = self.to_ms;
        std::iter::successors(Some(start), move |s| Some(s + step)).take_while(move |s| s + step <= to)
    }

    /// Whether `[start, start + len)` lies wholly inside this range.
    pub fn covers(self, start: i64, len: i64) -> bool {
        self.from_ms <= start && start + len <= self.to_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-01T00:00:00+08:00
    const NOV_1: i64 = 1_793_462_400_000;

    #[test]
    fn periods_align_on_beijing_time() {
        let day = Basis::Day;
        assert_eq!(day.period_start(NOV_1 + 5 * 3_600_000), NOV_1);
        assert_eq!(day.period_start(NOV_1 - 1), NOV_1 - 86_400_000);
        let range = Range { from_ms: NOV_1, to_ms: NOV_1 + 30 * 86_400_000 };
        assert_eq!(range.periods(Basis::Hour).count(), 720);
        assert_eq!(range.periods(day).count(), 30);
        assert_eq!(range.periods(Basis::Minute { interval: 10 }).count(), 30 * 144);
        // A range starting mid-hour counts only whole hours.
        let ragged = Range { from_ms: NOV_1 + 1, to_ms: NOV_1 + 3 * 3_600_000 };
        assert_eq!(ragged.periods(Basis::Hour).collect::<Vec<_>>(), [NOV_1 + 3_600_000, NOV_1 + 7_200_000]);
    }
}
