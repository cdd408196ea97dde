//! When a data logger uploads what (sans-IO): real-time data every RtdInterval seconds, minute
//! data every MinInterval minutes, hourly and daily data once their period has ended.
//! All times are Unix milliseconds; periods follow Beijing time (UTC+8).

/// Milliseconds per hour.
pub const HOUR_MS: i64 = 3_600_000;
/// Milliseconds per day.
pub const DAY_MS: i64 = 86_400_000;
const BEIJING_OFFSET_MS: i64 = 8 * HOUR_MS;

/// The records a logger uploads, in the order it sends those due at the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordKind {
    /// CN=2011, DataTime = the sampling instant.
    RealTime,
    /// CN=2051, DataTime = the start of the MinInterval period.
    Minute,
    /// CN=2061, DataTime = the start of the hour.
    Hour,
    /// CN=2031, DataTime = the start of the (Beijing) day.
    Day,
}

impl RecordKind {
    pub const ALL: [Self; 4] = [Self::RealTime, Self::Minute, Self::Hour, Self::Day];

    /// The command code of its upload.
    pub fn cn(self) -> u16 {
        match self {
            Self::RealTime => 2011,
            Self::Minute => 2051,
            Self::Hour => 2061,
            Self::Day => 2031,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One record that is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub kind: RecordKind,
    /// DataTime: the instant (2011) or the period start (2051/2061/2031).
    pub data_time_ms: i64,
    /// When the logger sends it: the instant, or the end of the period.
    pub send_ms: i64,
}

impl Due {
    /// The length of the period an aggregate covers; `None` for real-time data.
    pub fn period_secs(&self) -> Option<u32> {
        let ms = self.send_ms - self.data_time_ms;
        (ms > 0).then(|| u32::try_from(ms / 1000).unwrap_or(u32::MAX))
    }
}

/// The due records of one logger between `start` (inclusive) and `end`, in send order.
///
/// Real-time samples are taken at the multiples of the interval in `[start, end)`; an aggregate
/// is sent when its period ends within `(start, end]` (so a day from midnight to midnight has
/// 1440 real-time records at 60 s, 144 minute records at 10 min, 24 hourly and 1 daily record).
#[derive(Debug, Clone)]
pub struct Schedule {
    end_ms: i64,
    /// Next send time per kind.
    next: [i64; 4],
    step: [i64; 4],
}

fn next_multiple_after(t: i64, step: i64, offset: i64) -> i64 {
    ((t + offset).div_euclid(step) + 1) * step - offset
}

impl Schedule {
    /// `rtd_secs` and `min_minutes` must be positive.
    pub fn new(start_ms: i64, end_ms: i64, rtd_secs: u32, min_minutes: u32) -> Self {
        let rtd = i64::from(rtd_secs.max(1)) * 1000;
        let minute = i64::from(min_minutes.max(1)) * 60_000;
        Self {
            end_ms,
            next: [
                next_multiple_after(start_ms - 1, rtd, 0),
                next_multiple_after(start_ms, minute, 0),
                next_multiple_after(start_ms, HOUR_MS, 0),
                next_multiple_after(start_ms, DAY_MS, BEIJING_OFFSET_MS),
            ],
            step: [rtd, minute, HOUR_MS, DAY_MS],
        }
    }

    fn in_range(&self, kind: RecordKind) -> bool {
        let at = self.next[kind.index()];
        if kind == RecordKind::RealTime { at < self.end_ms } else { at <= self.end_ms }
    }
}

impl Iterator for Schedule {
    type Item = Due;

    fn next(&mut self) -> Option<Due> {
        let kind =
            RecordKind::ALL.into_iter().filter(|k| self.in_range(*k)).min_by_key(|k| (self.next[k.index()], *k))?;
        let i = kind.index();
        let send_ms = self.next[i];
        self.next[i] += self.step[i];
        let data_time_ms = if kind == RecordKind::RealTime { send_ms } else { send_ms - self.step[i] };
        Some(Due { kind, data_time_ms, send_ms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hj212_proto::time::BeijingTime;

    fn at(text: &str) -> i64 {
        BeijingTime::parse(text).unwrap().unix_millis()
    }

    fn counts(schedule: Schedule) -> [usize; 4] {
        let mut counts = [0; 4];
        for due in schedule {
            counts[due.kind.index()] += 1;
        }
        counts
    }

    #[test]
    fn one_day_from_midnight() {
        let start = at("20260301000000");
        assert_eq!(counts(Schedule::new(start, start + DAY_MS, 60, 10)), [1440, 144, 24, 1]);
        assert_eq!(counts(Schedule::new(start, start + DAY_MS, 30, 1)), [2880, 1440, 24, 1]);
        assert_eq!(counts(Schedule::new(start, start + DAY_MS, 300, 30)), [288, 48, 24, 1]);
    }

    #[test]
    fn any_day_long_window_has_the_same_counts() {
        let start = at("20260301093712") + 345;
        assert_eq!(counts(Schedule::new(start, start + DAY_MS, 60, 10)), [1440, 144, 24, 1]);
    }

    #[test]
    fn data_times_and_order() {
        let start = at("20260301235000");
        let dues: Vec<Due> = Schedule::new(start, start + 10 * 60_000, 300, 10).collect();
        let show: Vec<(u16, String, String)> = dues
            .iter()
            .map(|d| {
                let time = |ms| BeijingTime::from_unix_millis(ms).to_seconds_string();
                (d.kind.cn(), time(d.data_time_ms), time(d.send_ms))
            })
            .collect();
        let expect = |cn, dt: &str, send: &str| (cn, dt.to_owned(), send.to_owned());
        assert_eq!(
            show,
            [
                expect(2011, "20260301235000", "20260301235000"),
                expect(2011, "20260301235500", "20260301235500"),
                expect(2051, "20260301235000", "20260302000000"),
                expect(2061, "20260301230000", "20260302000000"),
                expect(2031, "20260301000000", "20260302000000"),
            ]
        );
        assert_eq!(dues[0].period_secs(), None);
        assert_eq!(dues[4].period_secs(), Some(86_400));
    }
}
