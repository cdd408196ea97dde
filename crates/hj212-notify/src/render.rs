//! Alert messages as people read them, rendered generically from the payload JSON: whatever
//! fields it carries are shown (the message text, site, severity, times, factor, value, limit,
//! unit, link ...), so fields added to the payload later show without a change here.

use std::fmt::Write as _;

use hj212_config::NotifyLanguage;
use serde_json::Value;

/// A message for a robot or a mail: a short title and a markdown text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub title: String,
    pub text: String,
}

/// Why several messages went as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestReason {
    /// More than `max_per_minute` were due.
    RateLimit,
    /// They waited for the end of quiet hours.
    QuietHours,
}

impl DigestReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimit => "rate_limit",
            Self::QuietHours => "quiet_hours",
        }
    }
}

/// Items of a digest shown in full; the rest are counted (robots cap a message's size:
/// WeCom 4096 bytes, DingTalk about 20,000).
pub const DIGEST_SHOWN: usize = 20;
/// WeCom's markdown content limit, in bytes.
pub const WECOM_MAX_BYTES: usize = 4096;

/// Fields shown in this order with a label, when present; then any other plain field. A
/// `{zh, en}` object shows in the message's language; a `*_text` field (the value with the
/// decimals the logger sent) stands in for the number.
const LABELLED: &[(&str, &str, &str)] = &[
    ("site", "站点", "Site"),
    ("mn", "MN", "MN"),
    ("severity", "级别", "Severity"),
    ("factor_name", "因子", "Factor"),
    ("factor", "因子编码", "Factor code"),
    ("value", "值", "Value"),
    ("limit", "限值", "Limit"),
    ("unit", "单位", "Unit"),
    ("flag", "数据标记", "Flag"),
    ("flag_meaning", "标记含义", "Flag meaning"),
    ("sites", "站点列表", "Sites"),
    ("data_time", "数据时间", "Data time"),
    ("detected_at", "发现时间", "Detected at"),
    ("opened_at", "开始时间", "Opened at"),
    ("link", "链接", "Link"),
    ("url", "链接", "Link"),
    ("alert_id", "告警编号", "Alert id"),
];
/// Fields that are not shown as lines (the headline carries them, or they are internal).
const UNLISTED: &[&str] =
    &["id", "message", "title", "kind", "state", "inhibited_by", "channel", "value_text", "limit_text", "compared"];

fn severity_word(severity: &str, zh: bool) -> &str {
    match (severity, zh) {
        ("critical", true) => "严重",
        ("warning", true) => "警告",
        ("info", true) => "提示",
        (other, _) => other,
    }
}

fn state_word(state: &str, zh: bool) -> &str {
    match (state, zh) {
        ("raised", true) => "告警",
        ("updated", true) => "更新",
        ("cleared", true) => "恢复",
        (other, _) => other,
    }
}

/// A plain field as text in the language: numbers with at most 3 decimals, as the message
/// texts round them (the JSON keeps the full number: `2172.3853211009173` reads `2172.385`),
/// `{zh, en}` objects in the language, lists of plain values joined.
fn scalar(value: &Value, zh: bool) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_f64() => n.as_f64().map(|f| {
            let text = format!("{f:.3}");
            text.trim_end_matches('0').trim_end_matches('.').to_owned()
        }),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Object(object) => object.get(if zh { "zh" } else { "en" }).and_then(Value::as_str).map(str::to_owned),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().filter_map(|v| scalar(v, zh)).collect();
            (!items.is_empty()).then(|| items.join(", "))
        }
        Value::Null => None,
    }
}

/// A labelled field's text: `value_text` / `limit_text` when the payload has them.
fn labelled(payload: &Value, key: &str, zh: bool) -> Option<String> {
    let text = match key {
        "value" | "limit" => payload.get(format!("{key}_text")).and_then(Value::as_str).map(str::to_owned),
        _ => None,
    };
    text.or_else(|| payload.get(key).and_then(|v| scalar(v, zh))).filter(|v| !v.is_empty())
}

fn field<'a>(payload: &'a Value, key: &str) -> &'a str {
    payload.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The one-line headline: the payload's message text in the language, or what it is made of.
fn headline(payload: &Value, zh: bool) -> String {
    let lang = if zh { "zh" } else { "en" };
    if let Some(text) = payload.get("message").and_then(|m| m.get(lang)).and_then(Value::as_str) {
        return text.to_owned();
    }
    let site = [field(payload, "site"), field(payload, "mn")].into_iter().find(|s| !s.is_empty()).unwrap_or("?");
    format!("[{}] {site} {}", state_word(field(payload, "state"), zh), field(payload, "kind"))
}

/// The title: state, severity, site, what happened (short: it is the push notification's
/// line); what happened is the payload's `title` in the language, else its kind.
fn title(payload: &Value, zh: bool) -> String {
    let site = [field(payload, "site"), field(payload, "mn")].into_iter().find(|s| !s.is_empty()).unwrap_or("?");
    let what = payload.get("title").and_then(|t| scalar(t, zh)).unwrap_or_else(|| field(payload, "kind").to_owned());
    format!(
        "[{}·{}] {site} {what}",
        state_word(field(payload, "state"), zh),
        severity_word(field(payload, "severity"), zh),
    )
}

fn details(payload: &Value, zh: bool, out: &mut String) {
    for (key, label_zh, label_en) in LABELLED {
        if let Some(value) = labelled(payload, key, zh) {
            let label = if zh { label_zh } else { label_en };
            let value = if *key == "severity" { severity_word(&value, zh).to_owned() } else { value };
            let _ = writeln!(out, "- {label}: {value}");
        }
    }
    let Some(object) = payload.as_object() else { return };
    for (key, value) in object {
        let known = LABELLED.iter().any(|(k, _, _)| k == key) || UNLISTED.contains(&key.as_str());
        if let Some(value) = scalar(value, zh).filter(|v| !known && !v.is_empty()) {
            let _ = writeln!(out, "- {key}: {value}");
        }
    }
}

fn languages(language: NotifyLanguage) -> &'static [bool] {
    match language {
        NotifyLanguage::Zh => &[true],
        NotifyLanguage::En => &[false],
        NotifyLanguage::Both => &[true, false],
    }
}

/// One alert message.
pub fn render(payload: &Value, language: NotifyLanguage) -> Rendered {
    let langs = languages(language);
    let mut text = String::new();
    for (i, zh) in langs.iter().copied().enumerate() {
        if i > 0 {
            text.push_str("\n---\n\n");
        }
        let _ = writeln!(text, "#### {}\n", headline(payload, zh));
        details(payload, zh, &mut text);
    }
    Rendered { title: title(payload, langs[0]), text }
}

/// Several alert messages as one, oldest first: the first [`DIGEST_SHOWN`] as headlines
/// with their site and time, the rest counted.
pub fn digest(payloads: &[Value], reason: DigestReason, language: NotifyLanguage) -> Rendered {
    let langs = languages(language);
    let mut text = String::new();
    for (i, zh) in langs.iter().copied().enumerate() {
        if i > 0 {
            text.push_str("\n---\n\n");
        }
        let why = match (reason, zh) {
            (DigestReason::RateLimit, true) => "条告警（超过每分钟发送上限，合并发送）",
            (DigestReason::RateLimit, false) => " alert messages (over the per-minute limit, merged)",
            (DigestReason::QuietHours, true) => "条告警（免打扰时段内的非严重告警）",
            (DigestReason::QuietHours, false) => " alert messages (non-critical, held during quiet hours)",
        };
        let _ = writeln!(text, "#### {}{why}\n", payloads.len());
        for payload in payloads.iter().take(DIGEST_SHOWN) {
            let when = [field(payload, "detected_at"), field(payload, "data_time")]
                .into_iter()
                .find(|s| !s.is_empty())
                .unwrap_or("");
            let _ = writeln!(text, "- {} ({when})", headline(payload, zh));
        }
        if payloads.len() > DIGEST_SHOWN {
            let more = payloads.len() - DIGEST_SHOWN;
            let _ =
                writeln!(text, "- {}", if zh { format!("……另有 {more} 条") } else { format!("... and {more} more") });
        }
    }
    let title = if langs[0] {
        format!("{} 条告警汇总", payloads.len())
    } else {
        format!("{} alert messages", payloads.len())
    };
    Rendered { title, text }
}

/// `text` cut to at most `max` bytes on a character boundary, marked when cut.
pub fn truncated(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub(4);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn exceedance() -> Value {
        json!({
            "id": "5f0c-1", "alert_id": "5f0c", "kind": "exceedance", "state": "raised", "severity": "critical",
            "mn": "010000A8900016F000169DC0", "site": "Plant 1 outlet", "factor": "a21026", "value": 40.5,
            "limit": 35.0, "data_time": "2026-11-28T10:00:00+08:00", "detected_at": "2026-11-28T11:00:03+08:00",
            "opened_at": "2026-11-28T11:00:03+08:00", "unit": "mg/m3", "link": "http://console/sites/0100",
            "message": { "zh": "[告警] 超标，值 40.5 mg/m3（限值 35 mg/m3）", "en": "[raised] exceedance, value 40.5 mg/m3 (limit 35 mg/m3)" }
        })
    }

    #[test]
    fn a_message_shows_what_the_payload_carries() {
        let zh = render(&exceedance(), NotifyLanguage::Zh);
        assert_eq!(zh.title, "[告警·严重] Plant 1 outlet exceedance");
        assert!(zh.text.starts_with("#### [告警] 超标，值 40.5 mg/m3（限值 35 mg/m3）\n"), "{}", zh.text);
        for line in [
            "- 站点: Plant 1 outlet",
            "- 级别: 严重",
            "- 值: 40.5",
            "- 限值: 35",
            "- 单位: mg/m3",
            "- 数据时间: 2026-11-28T10:00:00+08:00",
            "- 链接: http://console/sites/0100",
            "- 告警编号: 5f0c",
        ] {
            assert!(zh.text.contains(line), "{line} in {}", zh.text);
        }
        let both = render(&exceedance(), NotifyLanguage::Both);
        assert!(
            both.text.contains("[raised] exceedance") && both.text.contains("- Severity: critical"),
            "{}",
            both.text
        );
        let mut extra = exceedance();
        extra["o2_converted"] = json!(true);
        extra["value"] = json!(2_172.385_321_100_917_3);
        let en = render(&extra, NotifyLanguage::En).text;
        assert!(en.contains("- o2_converted: true") && en.contains("- Value: 2172.385\n"), "{en}");
    }

    #[test]
    fn the_readable_fields_in_the_language() {
        let mut payload = exceedance();
        payload["title"] = json!({ "zh": "超标", "en": "exceedance" });
        payload["factor_name"] = json!({ "zh": "二氧化硫", "en": "sulphur dioxide" });
        (payload["value"], payload["value_text"], payload["limit_text"]) =
            (json!(40.519_999), json!("40.52"), json!("35"));
        payload["compared"] = json!({ "source": "logger", "field": "ZsAvg" });
        payload["inhibited_by"] = Value::Null;
        let zh = render(&payload, NotifyLanguage::Zh);
        assert_eq!(zh.title, "[告警·严重] Plant 1 outlet 超标");
        for line in ["- 因子: 二氧化硫\n", "- 值: 40.52\n", "- 限值: 35\n"] {
            assert!(zh.text.contains(line), "{line} in {}", zh.text);
        }
        assert!(!zh.text.contains("value_text") && !zh.text.contains("compared"), "{}", zh.text);
        let en = render(&payload, NotifyLanguage::En);
        assert!(en.title.ends_with("exceedance") && en.text.contains("- Factor: sulphur dioxide\n"), "{}", en.text);
        let mut fleet = payload.clone();
        fleet["sites"] = json!(["MN01", "MN02"]);
        assert!(render(&fleet, NotifyLanguage::En).text.contains("- Sites: MN01, MN02\n"));
    }

    #[test]
    fn a_digest_counts_what_it_does_not_show() {
        let many = vec![exceedance(); DIGEST_SHOWN + 3];
        let d = digest(&many, DigestReason::RateLimit, NotifyLanguage::En);
        assert_eq!(d.title, "23 alert messages");
        assert!(d.text.contains("... and 3 more"), "{}", d.text);
        assert_eq!(d.text.matches("[raised] exceedance").count(), DIGEST_SHOWN);
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        let text = "告警".repeat(2000);
        let cut = truncated(&text, WECOM_MAX_BYTES);
        assert!(cut.len() <= WECOM_MAX_BYTES && cut.ends_with('…'));
    }
}
