//! HJ 212 timestamps: `YYYYMMDDhhmmss` (DataTime, SystemTime) and `YYYYMMDDhhmmsszzz` (QN),
//! always Beijing time (UTC+8, no daylight saving). No clock is read here: callers pass `now`.

const BEIJING_OFFSET_MS: i64 = 8 * 3600 * 1000;
const MS_PER_DAY: i64 = 86_400_000;

/// A civil time in Beijing, to the millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BeijingTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub millis: u16,
}

/// A timestamp field that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    #[error("time {value:?} is not 14 or 17 digits (YYYYMMDDhhmmss[zzz])")]
    BadFormat { value: String },
    #[error("time {value:?} has an impossible {part}")]
    OutOfRange { value: String, part: &'static str },
}

/// The number the ASCII digits `digits` write (checked to be digits by the caller; at most 4).
fn number(digits: &[u8]) -> u16 {
    digits.iter().fold(0, |n, &d| n * 10 + u16::from(d - b'0'))
}

impl BeijingTime {
    /// Parses 14 digits, or 17 with milliseconds; surrounding spaces are ignored.
    ///
    /// # Errors
    /// [`TimeError`] naming the value and the part that is wrong.
    pub fn parse(value: &str) -> Result<Self, TimeError> {
        let trimmed = value.trim();
        let bad_format = || TimeError::BadFormat { value: value.to_owned() };
        // Every ingested frame's QN and DataTime, and every follower's: plain digit arithmetic.
        let bytes = trimmed.as_bytes();
        if !matches!(bytes.len(), 14 | 17) || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(bad_format());
        }
        let field = |at: usize, len: usize| bytes.get(at..at + len).map_or(0, number);
        let two = |at: usize| u8::try_from(field(at, 2)).unwrap_or(u8::MAX);
        let time = Self {
            year: field(0, 4),
            month: two(4),
            day: two(6),
            hour: two(8),
            minute: two(10),
            second: two(12),
            millis: if bytes.len() == 17 { field(14, 3) } else { 0 },
        };
        time.check().map_err(|part| TimeError::OutOfRange { value: value.to_owned(), part })?;
        Ok(time)
    }

    fn check(&self) -> Result<(), &'static str> {
        if !(1..=12).contains(&self.month) {
            return Err("month");
        }
        if self.day == 0 || self.day > days_in_month(self.year, self.month) {
            return Err("day");
        }
        if self.hour > 23 {
            return Err("hour");
        }
        if self.minute > 59 {
            return Err("minute");
        }
        if self.second > 59 {
            return Err("second");
        }
        Ok(())
    }

    /// Milliseconds since the Unix epoch (UTC).
    pub fn unix_millis(&self) -> i64 {
        let days = days_from_civil(i64::from(self.year), self.month, self.day);
        let ms_of_day = ((i64::from(self.hour) * 60 + i64::from(self.minute)) * 60 + i64::from(self.second)) * 1000
            + i64::from(self.millis);
        days * MS_PER_DAY + ms_of_day - BEIJING_OFFSET_MS
    }

    /// The Beijing civil time of a Unix timestamp in milliseconds, clamped to years 1..=9999.
    pub fn from_unix_millis(unix_ms: i64) -> Self {
        const MIN_MS: i64 = -62_135_596_800_000; // 0001-01-01T00:00:00Z
        const MAX_MS: i64 = 253_402_271_999_999; // 9999-12-31T15:59:59.999Z = 23:59:59.999 Beijing
        let local = unix_ms.clamp(MIN_MS, MAX_MS) + BEIJING_OFFSET_MS;
        let (year, month, day) = civil_from_days(local.div_euclid(MS_PER_DAY));
        let ms = local.rem_euclid(MS_PER_DAY);
        let part = |v: i64| u8::try_from(v).unwrap_or_default();
        Self {
            year: u16::try_from(year).unwrap_or_default(),
            month,
            day,
            hour: part(ms / 3_600_000),
            minute: part(ms / 60_000 % 60),
            second: part(ms / 1000 % 60),
            millis: u16::try_from(ms % 1000).unwrap_or_default(),
        }
    }

    /// `YYYYMMDDhhmmss`, as DataTime and SystemTime are written.
    pub fn to_seconds_string(&self) -> String {
        format!("{:04}{:02}{:02}{:02}{:02}{:02}", self.year, self.month, self.day, self.hour, self.minute, self.second)
    }

    /// Whether `text` is this time as [`Self::to_seconds_string`] writes it, without writing it
    /// (the store asks for every record whether to keep DataTime's text).
    pub fn is_written_as(&self, text: &str) -> bool {
        let digits = text.as_bytes();
        if digits.len() != 14 || !digits.iter().all(u8::is_ascii_digit) {
            return false;
        }
        let number = |from: usize, to: usize| digits[from..to].iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
        [(0, 4, u32::from(self.year)), (4, 6, self.month.into()), (6, 8, self.day.into())]
            .into_iter()
            .chain([(8, 10, self.hour.into()), (10, 12, self.minute.into()), (12, 14, self.second.into())])
            .all(|(from, to, value)| number(from, to) == value)
    }

    /// RFC 3339 with the +08:00 offset, for humans and JSON.
    pub fn to_rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+08:00",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millis
        )
    }

    /// `YYYYMMDDhhmmsszzz`, as QN is written.
    pub fn to_qn_string(&self) -> String {
        format!("{}{:03}", self.to_seconds_string(), self.millis)
    }
}

fn is_leap(year: u16) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u8::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or_default();
    let month = u8::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or_default();
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qn_and_datatime() {
        let qn = BeijingTime::parse("20160801085857223").unwrap();
        assert_eq!((qn.year, qn.month, qn.day, qn.millis), (2016, 8, 1, 223));
        // 2016-08-01 08:58:57.223 +08:00 = 2016-08-01T00:58:57.223Z
        assert_eq!(qn.unix_millis(), 1_470_013_137_223);
        let dt = BeijingTime::parse(" 20160801084000 ").unwrap();
        assert_eq!(dt.to_seconds_string(), "20160801084000");
        assert_eq!(qn.to_rfc3339(), "2016-08-01T08:58:57.223+08:00");
    }

    #[test]
    fn tells_its_own_writing_without_writing_it() {
        let t = BeijingTime::parse("20261101083005").unwrap();
        assert!(t.is_written_as(&t.to_seconds_string()));
        for other in ["20261101083006", "20261101083005 ", "2026110108300", "2026110108300x", "20271101083005", ""] {
            assert!(!t.is_written_as(other), "{other:?}");
        }
    }

    #[test]
    fn round_trips_through_unix_time() {
        for ms in [0, -1, 951_782_400_000, 1_470_013_137_223, 4_102_444_799_999, 253_402_271_999_999] {
            assert_eq!(BeijingTime::from_unix_millis(ms).unix_millis(), ms);
        }
        assert_eq!(BeijingTime::from_unix_millis(0).to_qn_string(), "19700101080000000");
        assert_eq!(BeijingTime::from_unix_millis(i64::MAX).to_qn_string(), "99991231235959999");
        assert_eq!(BeijingTime::from_unix_millis(i64::MIN).to_qn_string(), "00010101080000000");
    }

    #[test]
    fn rejects_bad_values() {
        assert_eq!(
            BeijingTime::parse("2016080108").unwrap_err().to_string(),
            "time \"2016080108\" is not 14 or 17 digits (YYYYMMDDhhmmss[zzz])"
        );
        assert_eq!(
            BeijingTime::parse("20160230000000").unwrap_err().to_string(),
            "time \"20160230000000\" has an impossible day"
        );
        assert!(BeijingTime::parse("20160229000000").is_ok());
        assert!(BeijingTime::parse("20150229000000").is_err());
        assert!(BeijingTime::parse("20161301000000").is_err());
        assert!(BeijingTime::parse("20160101240000").is_err());
        assert!(BeijingTime::parse("2016010123000x").is_err());
        assert!(BeijingTime::parse("2016010123000０").is_err());
        for not_digits in ["+0160101230000", "20160101230000+12", "201601012300001x2", "2016-1-1230000"] {
            let error = BeijingTime::parse(not_digits).unwrap_err();
            assert!(matches!(error, TimeError::BadFormat { .. }), "{not_digits:?}: {error}");
        }
        assert_eq!(BeijingTime::parse("20160101230000999").map(|t| t.millis), Ok(999));
    }
}
