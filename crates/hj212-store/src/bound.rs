//! Range bounds as users write them: a date, an HJ 212 time, or the RFC 3339 times the API
//! and `hj212-audit` print, so an answer's `from`/`to` can be pasted back into a query.

use hj212_proto::time::BeijingTime;

const HOUR_MS: i64 = 3_600_000;
/// Beijing time is UTC+8 all year (no daylight saving).
const BEIJING_OFFSET_MS: i64 = 8 * HOUR_MS;

/// A range bound, Unix milliseconds: `YYYY-MM-DD` (Beijing midnight), `YYYYMMDDhhmmss`
/// (Beijing time), or RFC 3339 with its offset (`2026-11-30T08:00:00+08:00`,
/// `2026-11-30T08:00:00.000+08:00`, `2026-11-30T00:00:00Z`; fractions below a millisecond are
/// dropped). Years 0001 to 9999.
///
/// # Errors
/// A message naming the value and the forms accepted.
pub fn parse_bound(value: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "{value:?} is not a date (YYYY-MM-DD), a Beijing time (YYYYMMDDhhmmss) or an RFC 3339 time \
             (2026-11-30T08:00:00+08:00)"
        )
    };
    let (year, millis) =
        if value.contains(':') { rfc3339(value).ok_or_else(bad)? } else { compact(value).ok_or_else(bad)? };
    if year == 0 {
        return Err(format!("{value:?}: year 0000 does not exist (years 0001 to 9999)"));
    }
    Ok(millis)
}

/// `YYYY-MM-DD`, `YYYYMMDD` or `YYYYMMDDhhmmss`, Beijing time: the written year and the instant.
fn compact(value: &str) -> Option<(u16, i64)> {
    let digits: String = value.chars().filter(|c| *c != '-').collect();
    let full = if digits.len() == 8 { format!("{digits}000000") } else { digits };
    let time = BeijingTime::parse(&full).ok()?;
    Some((time.year, time.unix_millis()))
}

/// `YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm)`: the written year and the instant.
fn rfc3339(value: &str) -> Option<(u16, i64)> {
    let bytes = value.as_bytes();
    if bytes.len() < 20 || !matches!(bytes[10], b'T' | b't' | b' ') {
        return None;
    }
    let (date, clock, rest) = (value.get(..10)?, value.get(11..19)?, value.get(19..)?);
    let separators_in_place = [(date, 4, b'-'), (date, 7, b'-'), (clock, 2, b':'), (clock, 5, b':')]
        .iter()
        .all(|(part, at, sep)| part.as_bytes()[*at] == *sep);
    let fields: String = date.chars().chain(clock.chars()).filter(char::is_ascii_digit).collect();
    if !separators_in_place || fields.len() != 14 {
        return None;
    }
    // The civil time as written, read as if it were Beijing time; the offset corrects it below.
    let civil = BeijingTime::parse(&fields).ok()?;
    let (fraction_ms, offset) = fraction(rest)?;
    let offset_ms = offset_millis(offset)?;
    Some((civil.year, civil.unix_millis() + BEIJING_OFFSET_MS - offset_ms + fraction_ms))
}

/// An optional `.digits` (1 to 9): its milliseconds (truncated) and the rest of the text.
fn fraction(text: &str) -> Option<(i64, &str)> {
    let Some(rest) = text.strip_prefix('.') else { return Some((0, text)) };
    let len = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    if !(1..=9).contains(&len) {
        return None;
    }
    let millis = format!("{:0<3}", &rest[..len.min(3)]).parse().ok()?;
    Some((millis, &rest[len..]))
}

/// `Z` or `±hh:mm`, as milliseconds east of UTC.
fn offset_millis(offset: &str) -> Option<i64> {
    if offset.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let (sign, hours, colon, minutes) = (offset.get(..1)?, offset.get(1..3)?, offset.get(3..4)?, offset.get(4..)?);
    let sign = match sign {
        "+" => 1,
        "-" => -1,
        _ => return None,
    };
    let two_digits = |s: &str| s.len() == 2 && s.chars().all(|c| c.is_ascii_digit());
    if colon != ":" || !two_digits(hours) || !two_digits(minutes) {
        return None;
    }
    let (hours, minutes): (i64, i64) = (hours.parse().ok()?, minutes.parse().ok()?);
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some(sign * (hours * HOUR_MS + minutes * 60_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-30 08:00 Beijing = 2026-11-30 00:00 UTC.
    const EIGHT_AM: i64 = 1_795_996_800_000;

    #[test]
    fn accepts_dates_hj212_times_and_the_rfc3339_times_the_api_prints() {
        let printed = BeijingTime::from_unix_millis(EIGHT_AM).to_rfc3339();
        assert_eq!(printed, "2026-11-30T08:00:00.000+08:00");
        for value in [
            printed.as_str(),
            "2026-11-30T08:00:00+08:00",
            "2026-11-30t08:00:00+08:00",
            "2026-11-30 08:00:00+08:00",
            "2026-11-30T00:00:00Z",
            "2026-11-30T00:00:00.000000z",
            "2026-11-29T19:00:00-05:00",
            "20261130080000",
        ] {
            assert_eq!(parse_bound(value), Ok(EIGHT_AM), "{value}");
        }
        assert_eq!(parse_bound("2026-11-30"), Ok(EIGHT_AM - 8 * HOUR_MS));
        assert_eq!(parse_bound("2026-11-30T08:00:00.25+08:00"), Ok(EIGHT_AM + 250));
        assert_eq!(parse_bound("2026-11-30T08:00:00.123456789+08:00"), Ok(EIGHT_AM + 123));
    }

    #[test]
    fn refuses_year_zero_and_malformed_times_naming_the_value() {
        for value in ["0000-01-01", "00000101000000", "0000-01-01T00:00:00+08:00"] {
            let error = parse_bound(value).unwrap_err();
            assert!(error.contains("year 0000"), "{value}: {error}");
        }
        assert!(parse_bound("0001-01-01").is_ok());
        for value in [
            "2026-11-30T08:00:00",        // no offset: ambiguous
            "2026-11-30T08:00:00+0800",   // offset without colon
            "2026-11-30T08:00:00+24:00",  // impossible offset
            "2026-11-30T25:00:00+08:00",  // impossible hour
            "2026-11-31T08:00:00+08:00",  // impossible day
            "2026-11-30T08:00:00.+08:00", // empty fraction
            "2026-11-30X08:00:00+08:00",
            "2026/11/30T08:00:00+08:00",
            "2026-11-30T08-00-00+08:00",
            "2026-11-30T08:00:00+08:0中",
            "2026-11-3中T08:00:00+08:00",
            "yesterday",
            "",
        ] {
            let error = parse_bound(value).unwrap_err();
            assert!(error.contains("RFC 3339") && error.contains(&format!("{value:?}")), "{value}: {error}");
        }
    }
}
