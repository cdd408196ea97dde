//! What a host command may carry: the CNs the daemon sends, the CP keys each takes and their
//! allowed values (HJ 212-2017 Table 9 and App. C), checked before a command is queued.

use std::collections::BTreeMap;

use hj212_proto::time::BeijingTime;

/// How a command's exchange ends (HJ 212-2017 §6.1, §6.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exchange {
    /// Request command: 9011 (QnRtn), then any data, then 9012 (ExeRtn).
    Request,
    /// Notification command: a 9013 ends it.
    Notification,
}

/// A command checked against its CN's rules, ready to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    pub cn: u16,
    /// CP keys and values in the order they are sent.
    pub cp: Vec<(String, String)>,
    pub exchange: Exchange,
    /// For history requests: how many periods the range holds (the execution timeout grows with it).
    pub records_asked: u64,
}

impl CommandSpec {
    /// The CP as sent: `Key=Value;Key=Value`.
    pub fn cp_text(&self) -> String {
        self.cp.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";")
    }

    /// For history requests: the CN of the records that answer and the requested DataTime range (ms, inclusive).
    pub fn history_range(&self) -> Option<(i64, i64)> {
        if !matches!(self.cn, 2031 | 2041 | 2051 | 2061) {
            return None;
        }
        let get = |key: &str| self.cp.iter().find(|(k, _)| k == key).and_then(|(_, v)| BeijingTime::parse(v).ok());
        Some((get("BeginTime")?.unix_millis(), get("EndTime")?.unix_millis()))
    }
}

/// Why a command is refused before it is queued (HTTP 400; the message names the field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("cn: {0:?} is not a 4-digit command code")]
    BadCn(String),
    #[error(
        "cn {0}: not a command hj212d sends (allowed: {ALLOWED}); a site with allow_raw_commands = true takes any CN"
    )]
    UnknownCn(u16),
    #[error("cn 1014: new SM4 keys are sent by the key rotation (POST /api/v1/sites/{{mn}}/key)")]
    KeyRotation,
    #[error("cp.{key}: not a field of CN {cn} (it takes: {takes})")]
    UnknownKey { cn: u16, key: String, takes: &'static str },
    #[error("cp.{key}: required for CN {cn}")]
    Missing { cn: u16, key: &'static str },
    #[error("cp.{key}: {value:?} {why}")]
    BadValue { key: String, value: String, why: String },
}

const ALLOWED: &str =
    "1000, 1011, 1012, 1061-1064, 1072, 2011, 2012, 2021, 2022, 2031, 2041, 2051, 2061, 3011-3016, 3019, 3020";

/// The value rule of one CP key.
#[derive(Debug, Clone, Copy)]
enum Value {
    /// Any text the frame can carry (no `; , = &` or line breaks), at most this long.
    Text(usize),
    /// An integer in a range.
    Int(i64, i64),
    /// One of these integers.
    OneOf(&'static [i64]),
    /// A Beijing time, YYYYMMDDhhmmss.
    Time,
}

/// CP keys per CN: (key, rule, required).
type Keys = &'static [(&'static str, Value, bool)];

const POL_ID: (&str, Value, bool) = ("PolId", Value::Text(32), false);
const HISTORY: Keys = &[("BeginTime", Value::Time, true), ("EndTime", Value::Time, true)];
/// HJ 212-2017 §6.6.2 (1064): the minute-data intervals allowed.
const MIN_INTERVALS: &[i64] = &[1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30];

fn rules(cn: u16) -> Option<(Keys, Exchange, &'static str)> {
    use Exchange::{Notification, Request};
    Some(match cn {
        1000 => (
            &[("OverTime", Value::Int(1, 99), true), ("ReCount", Value::Int(1, 99), true)],
            Request,
            "OverTime, ReCount",
        ),
        1011 | 1061 | 1063 | 3011 | 3012 | 3013 | 3014 | 3015 | 3019 => (&[POL_ID], Request, "PolId"),
        1012 => (&[POL_ID, ("SystemTime", Value::Time, true)], Request, "PolId, SystemTime"),
        1062 => (&[("RtdInterval", Value::Int(30, 3600), true)], Request, "RtdInterval"),
        1064 => (&[("MinInterval", Value::OneOf(MIN_INTERVALS), true)], Request, "MinInterval"),
        1072 => (&[("NewPW", Value::Text(32), true)], Request, "NewPW"),
        2011 | 2021 => (&[], Request, "nothing"),
        2012 | 2022 => (&[], Notification, "nothing"),
        2031 | 2041 | 2051 | 2061 => (HISTORY, Request, "BeginTime, EndTime"),
        3016 => (
            &[POL_ID, ("CstartTime", Value::Text(6), true), ("Ctime", Value::Int(1, 24), true)],
            Request,
            "PolId, CstartTime, Ctime",
        ),
        3020 => (&[POL_ID, ("InfoId", Value::Text(16), false)], Request, "PolId, InfoId"),
        _ => return None,
    })
}

/// Checks a command as posted: `cn` as 4 digits and CP keys and values per the CN's rules;
/// with `allow_raw`, an unknown CN passes with any encodable CP (a request exchange).
///
/// # Errors
/// [`SpecError`] naming the field.
pub fn check(cn: &str, cp: &BTreeMap<String, String>, allow_raw: bool) -> Result<CommandSpec, SpecError> {
    let code =
        (cn.len() == 4).then(|| cn.parse::<u16>().ok()).flatten().ok_or_else(|| SpecError::BadCn(cn.to_owned()))?;
    if code == 1014 {
        return Err(SpecError::KeyRotation);
    }
    let Some((keys, exchange, takes)) = rules(code) else {
        if !allow_raw || (9011..=9015).contains(&code) {
            return Err(SpecError::UnknownCn(code));
        }
        for (key, value) in cp {
            check_value(key, value, Value::Text(256))?;
        }
        let cp = cp.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        return Ok(CommandSpec { cn: code, cp, exchange: Exchange::Request, records_asked: 0 });
    };
    if let Some(key) = cp.keys().find(|key| !keys.iter().any(|(k, _, _)| k == key)) {
        return Err(SpecError::UnknownKey { cn: code, key: key.clone(), takes });
    }
    let mut ordered = Vec::new();
    for &(key, rule, required) in keys {
        match cp.get(key) {
            Some(value) => {
                check_value(key, value, rule)?;
                ordered.push((key.to_owned(), value.clone()));
            }
            None if required => return Err(SpecError::Missing { cn: code, key }),
            None => {}
        }
    }
    let mut spec = CommandSpec { cn: code, cp: ordered, exchange, records_asked: 0 };
    if let Some((begin, end)) = spec.history_range() {
        if begin > end {
            return Err(SpecError::BadValue {
                key: "EndTime".into(),
                value: cp["EndTime"].clone(),
                why: "is before BeginTime".into(),
            });
        }
        spec.records_asked = periods_in(code, begin, end);
    }
    Ok(spec)
}

/// How many records an inclusive history range holds at most (minute records counted per minute).
fn periods_in(cn: u16, begin_ms: i64, end_ms: i64) -> u64 {
    let step = match cn {
        2031 | 2041 => 86_400_000,
        2051 => 60_000,
        _ => 3_600_000,
    };
    u64::try_from((end_ms - begin_ms) / step + 1).unwrap_or(1)
}

fn check_value(key: &str, value: &str, rule: Value) -> Result<(), SpecError> {
    let bad = |why: String| SpecError::BadValue { key: key.to_owned(), value: value.to_owned(), why };
    if key.is_empty() || key.contains([';', ',', '=', '&', '\r', '\n']) {
        return Err(SpecError::BadValue {
            key: key.to_owned(),
            value: value.to_owned(),
            why: "has a key a frame cannot carry".into(),
        });
    }
    if value.is_empty() || value.contains([';', ',', '=', '&', '\r', '\n']) {
        return Err(bad("cannot be carried in a frame (empty, or holds ; , = & or a line break)".into()));
    }
    match rule {
        Value::Text(max) if value.chars().count() > max => Err(bad(format!("is longer than {max} characters"))),
        Value::Text(_) => Ok(()),
        Value::Int(low, high) => match value.parse::<i64>() {
            Ok(n) if (low..=high).contains(&n) => Ok(()),
            _ => Err(bad(format!("is not an integer in {low}..={high}"))),
        },
        Value::OneOf(allowed) => match value.parse::<i64>() {
            Ok(n) if allowed.contains(&n) => Ok(()),
            _ => Err(bad(format!("is not one of {allowed:?}"))),
        },
        Value::Time => match BeijingTime::parse(value) {
            Ok(_) if value.len() == 14 => Ok(()),
            Ok(_) => Err(bad("is not YYYYMMDDhhmmss".into())),
            Err(e) => Err(bad(format!("is not a time (YYYYMMDDhhmmss): {e}"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn history_request_in_the_standards_order() {
        let spec =
            check("2061", &cp(&[("EndTime", "20261101230000"), ("BeginTime", "20261101000000")]), false).unwrap();
        assert_eq!(spec.cp_text(), "BeginTime=20261101000000;EndTime=20261101230000");
        assert_eq!((spec.exchange, spec.records_asked), (Exchange::Request, 24));
        assert!(spec.history_range().is_some());
    }

    #[test]
    fn bad_fields_are_named() {
        let error = |cn: &str, pairs: &[(&str, &str)]| check(cn, &cp(pairs), false).unwrap_err().to_string();
        assert!(error("2061", &[("BeginTime", "20261101000000")]).starts_with("cp.EndTime: required"));
        assert!(
            error("2061", &[("BeginTime", "2026110100"), ("EndTime", "20261101000000")]).starts_with("cp.BeginTime")
        );
        assert!(
            error("2061", &[("BeginTime", "20261102000000"), ("EndTime", "20261101000000")])
                .contains("is before BeginTime")
        );
        assert!(error("1062", &[("RtdInterval", "10")]).contains("30..=3600"));
        assert!(error("1064", &[("MinInterval", "7")]).contains("not one of"));
        assert!(error("1072", &[("NewPW", "a;b")]).contains("cannot be carried"));
        assert!(error("1000", &[("OverTime", "5"), ("ReCount", "3"), ("X", "1")]).starts_with("cp.X: not a field"));
        assert!(error("4242", &[]).starts_with("cn 4242: not a command"));
        assert!(error("1014", &[]).contains("key rotation"));
        assert!(error("20611", &[]).starts_with("cn:"));
    }

    #[test]
    fn raw_commands_only_where_allowed() {
        let raw = cp(&[("Foo", "1")]);
        assert!(check("4242", &raw, false).is_err());
        assert_eq!(check("4242", &raw, true).unwrap().cp_text(), "Foo=1");
        assert!(check("9014", &raw, true).is_err(), "replies are never sent as commands");
    }

    #[test]
    fn notifications_end_with_9013() {
        assert_eq!(check("2012", &cp(&[]), false).unwrap().exchange, Exchange::Notification);
    }
}
