//! Alert message texts, in Chinese for the operators and regulators and in English.

use std::fmt::Write;

use hj212_proto::model::Factor;

use super::incident::Transition;
use super::kind::{AlertKind, AlertState};

/// (Chinese, English) text of one alert message.
pub(super) fn messages(t: &Transition) -> (String, String) {
    let (title_zh, title_en) = t.kind.titles();
    let (state_zh, state_en) = match t.state {
        AlertState::Raised => ("告警", "raised"),
        AlertState::Updated => ("加重", "worse"),
        AlertState::Cleared => ("恢复", "cleared"),
    };
    let mut zh = format!("[{state_zh}] {} {title_zh}", t.mn);
    let mut en = format!("[{state_en}] {} {title_en}", t.mn);
    // The factor table's names and unit (HJ 212-2017 Appendix B; the station type is not
    // known here, so the table's default unit).
    let known = t.factor.as_deref().and_then(|code| Factor::lookup(code, None));
    if let Some(factor) = &t.factor {
        if let Some(f) = known {
            let _ = write!(zh, "，因子 {}（{factor}）", f.name_zh);
            let _ = write!(en, ", factor {} ({factor})", f.name);
        } else {
            let _ = write!(zh, "，因子 {factor}");
            let _ = write!(en, ", factor {factor}");
        }
    }
    let factor_unit = known.map(|f| format!(" {}", f.unit)).unwrap_or_default();
    if let Some(value) = t.value {
        let unit = match t.kind {
            AlertKind::ClockDrift | AlertKind::Offline => " s".to_owned(),
            AlertKind::RecordMissing | AlertKind::AuthFailure | AlertKind::Tamper => String::new(),
            _ => factor_unit.clone(),
        };
        let value = number(value);
        let (what_zh, what_en) = match t.kind {
            AlertKind::RecordMissing => ("缺失条数", "records missing"),
            AlertKind::AuthFailure | AlertKind::Tamper => ("次数", "count"),
            AlertKind::Offline => ("已静默", "silent for"),
            AlertKind::ClockDrift => ("偏差", "offset"),
            _ => ("值", "value"),
        };
        let _ = write!(zh, "，{what_zh} {value}{unit}");
        let _ = write!(en, ", {what_en} {value}{unit}");
    }
    if let Some(limit) = t.limit {
        let limit = number(limit);
        let _ = write!(zh, "（限值 {limit}{factor_unit}）");
        let _ = write!(en, " (limit {limit}{factor_unit})");
    }
    (zh, en)
}

/// A value as people read it: at most 3 decimals, no trailing zeros (2172.3853211009173 reads 2172.385).
fn number(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" { "0".to_owned() } else { text.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::super::kind::Severity;
    use super::*;

    #[test]
    fn both_languages_name_site_factor_value_and_limit() {
        let t = Transition {
            alert_id: "00".into(),
            n: 1,
            kind: AlertKind::Exceedance,
            state: AlertState::Raised,
            severity: Severity::Critical,
            mn: "MN1".into(),
            factor: Some("a21026".into()),
            value: Some(40.5),
            limit: Some(35.0),
            data_time_ms: None,
            detected_ms: 0,
            opened_ms: 0,
        };
        let (zh, en) = messages(&t);
        assert_eq!(zh, "[告警] MN1 超标，因子 二氧化硫（a21026），值 40.5 mg/m3（限值 35 mg/m3）");
        assert_eq!(en, "[raised] MN1 exceedance, factor sulphur dioxide (a21026), value 40.5 mg/m3 (limit 35 mg/m3)");
        assert_eq!(number(2_172.385_321_100_917_3), "2172.385");
        assert_eq!(number(-0.0001), "0");
    }
}
