//! Alert message texts, in Chinese for the operators and regulators and in English: the
//! site's name, the factor's names and unit, values as precise as the logger sent them, the
//! limit as configured, what was compared, the flag and a link to the console.

use std::fmt::Write;

use hj212_proto::model::{DataFlag, Factor};

use super::fleet::FLEET;
use super::incident::{Compared, Transition};
use super::kind::{AlertKind, AlertState};

/// Rounding rule: a value shows the decimals of the text the logger sent (`40.50` reads 40.50),
/// at most this many (a logger printing a float's 17 digits, `2172.3853211009173`, reads 2172.385).
pub const MAX_DECIMALS: u8 = 3;

/// What a message needs besides the transition.
#[derive(Clone, Copy)]
pub struct MessageContext<'a, 'n> {
    /// The configured name of a site, by MN (`None` or empty: the MN alone is shown).
    pub site_name: &'a dyn Fn(&str) -> Option<&'n str>,
    /// The console page to open (the site's, or the alerts page for a fleet outage).
    pub link: Option<&'a str>,
}

impl std::fmt::Debug for MessageContext<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageContext").field("link", &self.link).finish_non_exhaustive()
    }
}

/// Decimals of a number as sent (`40.52` → 2, `40` → 0), capped at [`MAX_DECIMALS`]; `None`
/// for an exponent form, whose precision is not its decimals.
pub fn decimals(text: &str) -> Option<u8> {
    let text = text.trim();
    if text.contains(['e', 'E']) {
        return None;
    }
    let digits = text.split_once('.').map_or(0, |(_, fraction)| fraction.len());
    Some(u8::try_from(digits).unwrap_or(u8::MAX).min(MAX_DECIMALS))
}

/// A value as people read it: with `decimals` when the text's precision is known, else at
/// most [`MAX_DECIMALS`] without trailing zeros.
pub fn number(value: f64, decimals: Option<u8>) -> String {
    let text = if let Some(d) = decimals {
        format!("{value:.*}", usize::from(d.min(MAX_DECIMALS)))
    } else {
        let text = format!("{value:.*}", usize::from(MAX_DECIMALS));
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    };
    // No "-0" (a tiny negative rounded).
    match text.strip_prefix('-') {
        Some(unsigned) if unsigned.chars().all(|c| c == '0' || c == '.') => unsigned.to_owned(),
        _ => text,
    }
}

/// A value compared with a limit: never rounded onto the limit it exceeds (35.04 sent as
/// `35.04` is fine; a converted 35.0004 with 0 decimals would read "35 (limit 35)").
#[expect(clippy::float_cmp, reason = "exactly: a shown text that reads back as the limit itself")]
pub(super) fn compared_number(value: f64, decimals: Option<u8>, limit: Option<f64>) -> String {
    let mut text = number(value, decimals);
    let mut d = decimals.unwrap_or(MAX_DECIMALS);
    while let Some(limit) = limit
        && value != limit
        && text.parse::<f64>().is_ok_and(|shown| shown == limit)
        && d < MAX_DECIMALS
    {
        d += 1;
        text = number(value, Some(d));
    }
    text
}

/// The limit as configured (shortest text that reads back as the same number: 35, 0.5).
fn limit_text(limit: f64) -> String {
    format!("{limit}")
}

/// A duration in seconds as people say it.
fn duration(secs: f64) -> (String, String) {
    if secs < 120.0 {
        (format!("{} 秒", number(secs, Some(0))), format!("{} s", number(secs, Some(0))))
    } else if secs < 7_200.0 {
        let min = number(secs / 60.0, Some(0));
        (format!("{min} 分钟"), format!("{min} min"))
    } else {
        let h = number(secs / 3_600.0, Some(1));
        (format!("{h} 小时"), format!("{h} h"))
    }
}

/// A data flag's meaning (HJ 212-2017 Table 8; docs/protocol.md §4), in Chinese and English.
pub fn flag_meaning(flag: &str) -> (&'static str, &'static str) {
    let zh = match flag {
        "N" => "正常",
        "F" => "停运",
        "M" => "维护",
        "S" => "手工输入",
        "D" => "故障",
        "C" => "校准",
        "T" => "超测上限",
        "B" => "通讯异常",
        _ => "未定义标记",
    };
    (zh, DataFlag::from_wire(flag).description().unwrap_or("flag not in HJ 212-2017 Table 8"))
}

/// (Chinese, English) text of one alert message.
pub(super) fn messages(t: &Transition, ctx: &MessageContext<'_, '_>) -> (String, String) {
    let (title_zh, title_en) = t.kind.titles();
    let (state_zh, state_en) = match t.state {
        AlertState::Raised => ("告警", "raised"),
        AlertState::Updated => ("加重", "worse"),
        AlertState::Cleared => ("恢复", "cleared"),
    };
    let mut zh = format!("[{state_zh}] ");
    let mut en = format!("[{state_en}] ");
    if t.kind == AlertKind::FleetOutage {
        fleet(t, ctx, &mut zh, &mut en);
    } else {
        let site = (ctx.site_name)(&t.mn).filter(|n| !n.is_empty());
        if let Some(name) = site {
            let _ = write!(zh, "{name}（{}）{title_zh}", t.mn);
            let _ = write!(en, "{name} ({}) {title_en}", t.mn);
        } else {
            let _ = write!(zh, "{} {title_zh}", t.mn);
            let _ = write!(en, "{} {title_en}", t.mn);
        }
        facts(t, &mut zh, &mut en);
    }
    if let Some(link) = ctx.link {
        let _ = write!(zh, "。详情 {link}");
        let _ = write!(en, ". Details: {link}");
    }
    (zh, en)
}

/// The factor, value, limit, what was compared and the flag.
fn facts(t: &Transition, zh: &mut String, en: &mut String) {
    // The factor table's names and the unit at the site's station type (HJ 212-2017 Appendix B).
    let known = t.factor.as_deref().and_then(|code| Factor::lookup(code, t.st.as_deref()));
    if let Some(factor) = &t.factor {
        if let Some(f) = known {
            let _ = write!(zh, "，因子 {}（{factor}）", f.name_zh);
            let _ = write!(en, ", factor {} ({factor})", f.name);
        } else {
            let _ = write!(zh, "，因子 {factor}");
            let _ = write!(en, ", factor {factor}");
        }
    }
    let unit = known.map(|f| f.unit_for(t.st.as_deref())).filter(|u| !u.is_empty());
    let unit = unit.map(|u| format!(" {u}")).unwrap_or_default();
    match (t.kind, t.value) {
        (AlertKind::Offline, Some(secs)) => {
            let (silent_zh, silent_en) = duration(secs);
            let _ = write!(zh, "，已 {silent_zh}无数据");
            let _ = write!(en, ", silent for {silent_en}");
            if let Some(limit) = t.limit {
                let (limit_zh, limit_en) = duration(limit);
                let _ = write!(zh, "（阈值 {limit_zh}）");
                let _ = write!(en, " (threshold {limit_en})");
            }
        }
        (AlertKind::RecordMissing | AlertKind::AuthFailure | AlertKind::Tamper, Some(count)) => {
            let (what_zh, what_en) = if t.kind == AlertKind::RecordMissing {
                ("缺失条数", "records missing")
            } else {
                ("次数", "count")
            };
            let _ = write!(zh, "，{what_zh} {}", number(count, Some(0)));
            let _ = write!(en, ", {what_en} {}", number(count, Some(0)));
        }
        (AlertKind::ClockDrift, Some(offset)) => {
            let _ = write!(zh, "，偏差 {} 秒", number(offset, None));
            let _ = write!(en, ", offset {} s", number(offset, None));
            if let Some(limit) = t.limit {
                let _ = write!(zh, "（阈值 {} 秒）", limit_text(limit));
                let _ = write!(en, " (threshold {} s)", limit_text(limit));
            }
        }
        (_, Some(value)) => {
            let value = compared_number(value, t.decimals, t.limit);
            let (what_zh, what_en) = match t.compared {
                Some(Compared::Logger { .. } | Compared::ReferenceO2 { .. }) => ("折算值", "converted value"),
                Some(Compared::Measured) => ("实测值", "measured value"),
                None => ("值", "value"),
            };
            let _ = write!(zh, "，{what_zh} {value}{unit}");
            let _ = write!(en, ", {what_en} {value}{unit}");
            if let Some(limit) = t.limit {
                let unit = if t.kind == AlertKind::ImplausibleO2 { " %" } else { unit.as_str() };
                let _ = write!(zh, "（限值 {}{unit}）", limit_text(limit));
                let _ = write!(en, " (limit {}{unit})", limit_text(limit));
            }
        }
        (_, None) => {}
    }
    compared(t, &unit, zh, en);
    flag(t, zh, en);
}

/// Which value was compared with the limit.
fn compared(t: &Transition, unit: &str, zh: &mut String, en: &mut String) {
    match t.compared {
        Some(Compared::Logger { field }) => {
            let _ = write!(zh, "，数采仪上传的折算值（{field}）");
            let _ = write!(en, ", the converted value sent by the logger ({field})");
        }
        Some(Compared::ReferenceO2 { reference, o2, measured }) => {
            let (reference, o2) = (limit_text(reference), number(o2, None));
            let measured = number(measured, t.decimals);
            let _ = write!(zh, "，由 hj212d 按基准氧含量 {reference}% 折算（实测 {measured}{unit}，氧含量 {o2}%）");
            let _ = write!(
                en,
                ", converted by hj212d to the reference O2 of {reference} % (measured {measured}{unit} at O2 {o2} %)"
            );
        }
        Some(Compared::Measured) => {
            let _ = write!(zh, "，未折算");
            let _ = write!(en, ", not converted");
        }
        None => {}
    }
}

/// The data flag behind a flag alert.
fn flag(t: &Transition, zh: &mut String, en: &mut String) {
    if let Some(flag) = t.flag_letter() {
        let (meaning_zh, meaning_en) = flag_meaning(flag);
        let _ = write!(zh, "，数据标记 {flag}（{meaning_zh}）");
        let _ = write!(en, ", data flag {flag} ({meaning_en})");
    }
}

/// A fleet outage: how many sites, and the first of them.
fn fleet(t: &Transition, ctx: &MessageContext<'_, '_>, zh: &mut String, en: &mut String) {
    let (title_zh, title_en) = t.kind.titles();
    let count = number(t.value.unwrap_or(0.0), Some(0));
    let names: Vec<String> = t
        .sites
        .iter()
        .map(|mn| match (ctx.site_name)(mn).filter(|n| !n.is_empty()) {
            Some(name) => format!("{name} ({mn})"),
            None => mn.clone(),
        })
        .collect();
    let more = t.value.is_some_and(|n| n > t.sites.len() as f64);
    let (etc_zh, etc_en) = if more { (" 等", " and others") } else { ("", "") };
    if t.state == AlertState::Cleared {
        let still = t.still_offline.unwrap_or(0);
        let _ = write!(zh, "{title_zh}（{FLEET}）结束：{count} 个站点中多数已恢复，{still} 个仍离线");
        let _ = write!(en, "{title_en} ({FLEET}) over: most of {count} sites are back, {still} still offline");
    } else {
        let _ = write!(zh, "{title_zh}（{FLEET}）：{count} 个站点相继离线");
        let _ = write!(en, "{title_en} ({FLEET}): {count} sites went offline");
        if let Some(limit) = t.limit {
            let _ = write!(zh, "（阈值 {}）", number(limit, Some(0)));
            let _ = write!(en, " (threshold {})", number(limit, Some(0)));
        }
    }
    let _ = write!(zh, "，{}{etc_zh}", names.join("、"));
    let _ = write!(en, ": {}{etc_en}", names.join(", "));
}

#[cfg(test)]
mod tests {
    use super::super::kind::Severity;
    use super::*;

    fn so2(value: f64, decimals: Option<u8>, compared: Option<Compared>) -> Transition {
        Transition {
            alert_id: "00".into(),
            n: 1,
            kind: AlertKind::Exceedance,
            state: AlertState::Raised,
            severity: Severity::Critical,
            mn: "MN1".into(),
            factor: Some("a21026".into()),
            value: Some(value),
            limit: Some(35.0),
            data_time_ms: None,
            detected_ms: 0,
            cause_seq: 0,
            opened_ms: 0,
            st: Some("31".into()),
            decimals,
            compared,
            flag: None,
            inhibited_by: None,
            sites: Vec::new(),
            still_offline: None,
        }
    }

    fn named(mn: &str) -> Option<&'static str> {
        match mn {
            "MN1" => Some("1号锅炉出口"),
            "MN2" => Some("Plant 2"),
            _ => None,
        }
    }

    const LINK: &str = "https://hj212.example.cn/console/sites/MN1";

    #[test]
    fn both_languages_name_site_factor_unit_value_as_sent_limit_and_link() {
        let ctx = MessageContext { site_name: &named, link: Some(LINK) };
        let t = so2(40.52, Some(2), Some(Compared::Logger { field: "ZsAvg" }));
        let (zh, en) = t.messages(&ctx);
        assert_eq!(
            zh,
            "[告警] 1号锅炉出口（MN1）超标，因子 二氧化硫（a21026），折算值 40.52 mg/m3（限值 35 mg/m3），\
             数采仪上传的折算值（ZsAvg）。详情 https://hj212.example.cn/console/sites/MN1"
        );
        assert_eq!(
            en,
            "[raised] 1号锅炉出口 (MN1) exceedance, factor sulphur dioxide (a21026), converted value 40.52 mg/m3 \
             (limit 35 mg/m3), the converted value sent by the logger (ZsAvg). \
             Details: https://hj212.example.cn/console/sites/MN1"
        );
        // An ambient-air station (ST=22) reports SO2 in µg/m3; no name, no link: the MN alone.
        let nameless = MessageContext { site_name: &|_| None, link: None };
        let ambient =
            Transition { st: Some("22".into()), compared: Some(Compared::Measured), ..so2(40.5, Some(1), None) };
        let (zh, en) = ambient.messages(&nameless);
        assert_eq!(zh, "[告警] MN1 超标，因子 二氧化硫（a21026），实测值 40.5 µg/m3（限值 35 µg/m3），未折算");
        assert_eq!(
            en,
            "[raised] MN1 exceedance, factor sulphur dioxide (a21026), measured value 40.5 µg/m3 (limit 35 µg/m3), \
             not converted"
        );
    }

    #[test]
    fn values_keep_the_precision_sent_up_to_three_decimals() {
        assert_eq!(decimals("40.52"), Some(2));
        assert_eq!(decimals("40.50"), Some(2));
        assert_eq!(decimals("40"), Some(0));
        assert_eq!(decimals("2172.3853211009173"), Some(3));
        assert_eq!(decimals("1.5E2"), None);
        assert_eq!(number(40.5, Some(2)), "40.50", "trailing zeros as sent");
        assert_eq!(number(2_172.385_321_100_917_3, decimals("2172.3853211009173")), "2172.385");
        assert_eq!(number(2_172.385_321_100_917_3, None), "2172.385");
        assert_eq!(number(-0.0001, None), "0");
        assert_eq!(number(-0.0001, Some(2)), "0.00");
        // Never rounded onto the limit it exceeds.
        assert_eq!(compared_number(35.04, Some(0), Some(35.0)), "35.04");
        assert_eq!(compared_number(37.5, Some(0), Some(35.0)), "38");
        let ctx = MessageContext { site_name: &named, link: None };
        let (zh, _) = so2(2_172.385_321_100_917_3, decimals("2172.3853211009173"), None).messages(&ctx);
        assert!(zh.contains("值 2172.385 mg/m3（限值 35 mg/m3）"), "{zh}");
    }

    #[test]
    fn o2_conversion_by_hj212d_says_which_reference() {
        let ctx = MessageContext { site_name: &named, link: None };
        let compared = Compared::ReferenceO2 { reference: 6.0, o2: 11.0, measured: 25.0 };
        let (zh, en) = so2(37.5, Some(0), Some(compared)).messages(&ctx);
        assert_eq!(
            zh,
            "[告警] 1号锅炉出口（MN1）超标，因子 二氧化硫（a21026），折算值 38 mg/m3（限值 35 mg/m3），\
             由 hj212d 按基准氧含量 6% 折算（实测 25 mg/m3，氧含量 11%）"
        );
        assert!(
            en.ends_with(
                "converted value 38 mg/m3 (limit 35 mg/m3), converted by hj212d to the reference O2 of 6 % \
                 (measured 25 mg/m3 at O2 11 %)"
            ),
            "{en}"
        );
    }

    #[test]
    fn flag_alerts_name_the_flag_letter_and_its_meaning() {
        let ctx = MessageContext { site_name: &named, link: None };
        let flagged = Transition {
            kind: AlertKind::AbnormalFlag,
            severity: Severity::Info,
            limit: None,
            flag: Some("M".into()),
            ..so2(12.3, Some(1), None)
        };
        let (zh, en) = flagged.messages(&ctx);
        assert_eq!(
            zh,
            "[告警] 1号锅炉出口（MN1）数据标记异常，因子 二氧化硫（a21026），值 12.3 mg/m3，数据标记 M（维护）"
        );
        assert_eq!(
            en,
            "[raised] 1号锅炉出口 (MN1) abnormal data flag, factor sulphur dioxide (a21026), value 12.3 mg/m3, \
             data flag M (data produced during maintenance)"
        );
        assert_eq!(flag_meaning("T"), ("超测上限", "sampled value over the measuring upper limit"));
        assert_eq!(flag_meaning("X").0, "未定义标记");
        // A flag on another kind (a negative value flagged N) is not worth a mention.
        let negative = Transition { kind: AlertKind::Negative, flag: Some("N".into()), ..flagged };
        assert!(!negative.messages(&ctx).0.contains("标记"));
    }

    #[test]
    fn offline_counts_and_fleet_outages_read_as_people_say_them() {
        let ctx = MessageContext { site_name: &named, link: None };
        let offline = Transition {
            kind: AlertKind::Offline,
            factor: None,
            value: Some(1_260.0),
            limit: Some(900.0),
            compared: None,
            decimals: None,
            ..so2(0.0, None, None)
        };
        let (zh, en) = offline.messages(&ctx);
        assert_eq!(zh, "[告警] 1号锅炉出口（MN1）掉线，已 21 分钟无数据（阈值 15 分钟）");
        assert_eq!(en, "[raised] 1号锅炉出口 (MN1) offline, silent for 21 min (threshold 15 min)");
        let fleet = Transition {
            kind: AlertKind::FleetOutage,
            mn: FLEET.into(),
            value: Some(12.0),
            limit: Some(10.0),
            sites: vec!["MN1".into(), "MN2".into(), "MN3".into()],
            still_offline: Some(12),
            ..offline
        };
        let alerts = MessageContext { site_name: &named, link: Some("https://x.cn/console/alerts") };
        let (zh, en) = fleet.messages(&alerts);
        assert_eq!(
            zh,
            "[告警] 大面积掉线（fleet）：12 个站点相继离线（阈值 10），1号锅炉出口 (MN1)、Plant 2 (MN2)、MN3 等。\
             详情 https://x.cn/console/alerts"
        );
        assert_eq!(
            en,
            "[raised] fleet-wide outage (fleet): 12 sites went offline (threshold 10): 1号锅炉出口 (MN1), \
             Plant 2 (MN2), MN3 and others. Details: https://x.cn/console/alerts"
        );
        let over = Transition { state: AlertState::Cleared, still_offline: Some(4), ..fleet };
        assert!(over.messages(&ctx).0.starts_with("[恢复] 大面积掉线（fleet）结束：12 个站点中多数已恢复，4 个仍离线"));
    }
}
