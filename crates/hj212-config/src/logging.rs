//! How log lines are written: `server.log_format` and `server.log_utc_offset`.

use serde::{Deserialize, Serialize};

/// One log line per event, as text or as a JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// `2026-01-01T08:00:00.000+08:00  INFO hj212d::daemon: hj212d serving hj212_addr=...`
    #[default]
    Text,
    /// `{"timestamp":"...","level":"INFO","fields":{"message":"...",...},"target":"..."}`
    Json,
}

/// A fixed UTC offset for log timestamps, written `"+08:00"`, `"-05:30"` or `"Z"`.
/// Fixed, not a time zone: China has no daylight saving, and a fixed offset is what RFC 3339
/// timestamps carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcOffset {
    seconds: i32,
}

impl UtcOffset {
    /// Beijing time, the default: HJ 212 times and the operators' clocks are in it.
    pub const BEIJING: Self = Self { seconds: 8 * 3600 };
    pub const UTC: Self = Self { seconds: 0 };

    /// Seconds east of UTC.
    pub fn seconds(self) -> i32 {
        self.seconds
    }

    /// Parses `±HH:MM` (hours up to 23) or `Z`.
    ///
    /// # Errors
    /// A message saying what is accepted.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "Z" {
            return Ok(Self::UTC);
        }
        let bad = || format!("{text:?} is not a UTC offset such as \"+08:00\", \"-05:30\" or \"Z\"");
        let (sign, rest) = match text.as_bytes().first() {
            Some(b'+') => (1, &text[1..]),
            Some(b'-') => (-1, &text[1..]),
            _ => return Err(bad()),
        };
        let (hours, minutes) = rest.split_once(':').ok_or_else(bad)?;
        let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
        if !two_digits(hours) || !two_digits(minutes) {
            return Err(bad());
        }
        let hours: i32 = hours.parse().map_err(|_| bad())?;
        let minutes: i32 = minutes.parse().map_err(|_| bad())?;
        if hours > 23 || minutes > 59 {
            return Err(bad());
        }
        Ok(Self { seconds: sign * (hours * 3600 + minutes * 60) })
    }
}

impl Default for UtcOffset {
    fn default() -> Self {
        Self::BEIJING
    }
}

impl std::fmt::Display for UtcOffset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.seconds < 0 { '-' } else { '+' };
        let minutes = self.seconds.unsigned_abs() / 60;
        write!(f, "{sign}{:02}:{:02}", minutes / 60, minutes % 60)
    }
}

impl Serialize for UtcOffset {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for UtcOffset {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::UtcOffset;

    #[test]
    fn offsets_parse_and_print_back() {
        for (text, seconds, printed) in
            [("+08:00", 28_800, "+08:00"), ("-05:30", -19_800, "-05:30"), ("Z", 0, "+00:00"), ("+00:00", 0, "+00:00")]
        {
            let offset = UtcOffset::parse(text).unwrap();
            assert_eq!((offset.seconds(), offset.to_string().as_str()), (seconds, printed), "{text}");
        }
        for bad in ["8", "+8:00", "+24:00", "+08:60", "08:00", "", "+08", "CST", "+-1:00", "+1:000"] {
            assert!(UtcOffset::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
