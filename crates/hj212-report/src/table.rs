//! The CSV form: one row per site, UTF-8 with a byte-order mark so Excel opens the Chinese
//! headers, each header in Chinese and English.

use serde_json::Value;

const COLUMNS: &[(&str, &str)] = &[
    ("周期 period", "/period"),
    ("监测点编码 MN", "/mn"),
    ("名称 name", "/name"),
    ("有效传输率 effective rate %", "/rate/effective_rate"),
    ("传输率 transmission rate %", "/rate/transmission_rate"),
    ("有效率 validity rate %", "/rate/validity_rate"),
    ("目标 target %", "/rate/target"),
    ("达标 meets target", "/rate/meets_target"),
    ("应收 due", "/rate/due"),
    ("实收 received", "/rate/received"),
    ("有效 valid", "/rate/valid"),
    ("缺失 missing", "/rate/missing_count"),
    ("迟到 late", "/rate/late_count"),
    ("在线率 online %", "/online/percent"),
    ("报警 alerts raised", "/alerts/raised"),
    ("已确认 acknowledged", "/alerts/acknowledged"),
    ("已消除 cleared", "/alerts/cleared"),
    ("服务超时 service misses", "/alerts/misses"),
    ("现场服务 visits", "/visits"),
];

/// `reports` (site reports) as CSV.
pub fn csv(reports: &[&Value]) -> String {
    let mut out = String::from("\u{feff}");
    out.push_str(&COLUMNS.iter().map(|(title, _)| field(title)).collect::<Vec<_>>().join(","));
    out.push_str("\r\n");
    for report in reports {
        let cells: Vec<String> = COLUMNS.iter().map(|(_, pointer)| field(&cell(report.pointer(pointer)))).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        // Lists are counted (misses, visits).
        Some(Value::Array(items)) => items.len().to_string(),
        Some(other) => other.to_string(),
    }
}

/// RFC 4180 quoting; a leading = + - @ is prefixed with ' so a spreadsheet does not run it.
fn field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) && text.parse::<f64>().is_err() {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bom_bilingual_headers_and_quoted_names() {
        let report = serde_json::json!({
            "period": "2026-11-29", "mn": "MN1", "name": "Plant \"A\", outlet", "rate": {"effective_rate": "97.50", "meets_target": true},
            "alerts": {"misses": [1, 2]}, "visits": [],
        });
        let text = csv(&[&report]);
        assert!(text.starts_with("\u{feff}周期 period,监测点编码 MN"));
        let row = text.lines().nth(1).unwrap();
        assert!(row.starts_with("2026-11-29,MN1,\"Plant \"\"A\"\", outlet\",97.50,"), "{row}");
        assert!(row.ends_with(",2,0"), "misses and visits counted: {row}");
        assert_eq!(field("=cmd()"), "'=cmd()");
        assert_eq!(field("-1.5"), "-1.5");
    }
}
