//! The HTML form: one self-contained page (no script, no external asset) that reads on a phone
//! and prints on A4.

use std::fmt::Write as _;

use serde_json::Value;

const STYLE: &str = "body{font:14px/1.45 system-ui,'Noto Sans CJK SC',sans-serif;margin:0 auto;max-width:60em;padding:1em;color:#111}\
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;width:100%;margin:.4em 0}th,td{border:1px solid #ccc;padding:.25em .4em;text-align:left;vertical-align:top}\
th{background:#f3f3f3}.bad{color:#a00;font-weight:bold}.ok{color:#060}.wrap{overflow-x:auto}\
@media print{@page{size:A4;margin:15mm}body{max-width:none;padding:0}}";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "–".to_owned(),
        Value::String(s) => escape(s),
        other => escape(&other.to_string()),
    }
}

/// A table of `rows` with `columns` (title, key).
fn table(out: &mut String, rows: &Value, columns: &[(&str, &str)]) {
    let Some(rows) = rows.as_array().filter(|r| !r.is_empty()) else {
        out.push_str("<p>无 none</p>");
        return;
    };
    out.push_str("<div class=wrap><table><tr>");
    for (title, _) in columns {
        let _ = write!(out, "<th>{}</th>", escape(title));
    }
    out.push_str("</tr>");
    for row in rows {
        out.push_str("<tr>");
        for (_, key) in columns {
            let _ = write!(out, "<td>{}</td>", text(row.pointer(key).unwrap_or(&Value::Null)));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table></div>");
}

fn site_section(out: &mut String, report: &Value) {
    let rate = &report["rate"];
    let meets = rate["meets_target"] == true;
    let _ = write!(
        out,
        "<h2>{} {}</h2><p>有效传输率 effective rate <b class={}>{} %</b> (目标 target {} %) · 传输率 transmission {} % · 有效率 validity {} % · \
         应收 due {} · 实收 received {} · 有效 valid {} · 缺失 missing {} · 在线率 online {} %</p>",
        text(&report["mn"]),
        text(&report["name"]),
        if meets { "ok" } else { "bad" },
        text(&rate["effective_rate"]),
        text(&rate["target"]),
        text(&rate["transmission_rate"]),
        text(&rate["validity_rate"]),
        text(&rate["due"]),
        text(&rate["received"]),
        text(&rate["valid"]),
        text(&rate["missing_count"]),
        text(&report["online"]["percent"]),
    );
    out.push_str("<h3>排放量 emissions</h3>");
    table(
        out,
        &report["emissions"],
        &[
            ("因子 factor", "/factor"),
            ("名称", "/name_zh"),
            ("name", "/name"),
            ("总量 total", "/total"),
            ("单位 unit", "/unit"),
            ("记录 records", "/records"),
            ("缺 missing", "/records_missing"),
        ],
    );
    out.push_str("<h3>超标 exceedances</h3>");
    table(
        out,
        &report["exceedances"],
        &[
            ("因子 factor", "/factor"),
            ("名称", "/name_zh"),
            ("限值 limit", "/limit"),
            ("超标时段 periods over", "/periods_over"),
            ("比较 compared", "/periods_compared"),
            ("最大 worst", "/worst"),
            ("基准氧 reference O2", "/converted_to_reference_o2"),
        ],
    );
    out.push_str("<h3>异常数据 abnormal data</h3>");
    table(
        out,
        &report["abnormal"],
        &[("类型", "/title_zh"), ("kind", "/title"), ("次数 count", "/count"), ("首次 first", "/first_at")],
    );
    let alerts = &report["alerts"];
    let _ = write!(
        out,
        "<h3>报警与服务 alerts and service</h3><p>报警 raised {} · 已确认 acknowledged {} · 已消除 cleared {} · 响应目标 response target {} min · 到场目标 on-site target {} min</p>",
        text(&alerts["raised"]),
        text(&alerts["acknowledged"]),
        text(&alerts["cleared"]),
        text(&alerts["response_target_minutes"]),
        text(&alerts["on_site_target_minutes"]),
    );
    table(
        out,
        &alerts["misses"],
        &[
            ("报警 alert", "/alert_id"),
            ("类型 kind", "/kind"),
            ("超时 miss", "/miss"),
            ("分钟 minutes", "/minutes"),
            ("目标 target", "/target_minutes"),
        ],
    );
    out.push_str("<h3>现场服务 visits</h3>");
    table(
        out,
        &report["visits"],
        &[
            ("到达 arrived", "/arrived_at"),
            ("离开 left", "/left_at"),
            ("人员 by", "/by"),
            ("工作 work", "/work"),
            ("结果 result", "/result"),
            ("报警 alert", "/alert_id"),
        ],
    );
    out.push_str("<h3>缺失时段 missing periods</h3>");
    table(
        out,
        &rate["missing"],
        &[("因子 factor", "/factor"), ("自 from", "/period"), ("至 to", "/to"), ("时段数 periods", "/periods")],
    );
    evidence(out, report);
}

/// What the figures rest on: the rules and the archive records.
fn evidence(out: &mut String, report: &Value) {
    let archive = &report["evidence"]["archive"];
    let _ = write!(
        out,
        "<h3>证据 evidence</h3><p>规则 config_hash <code>{}</code> · 档案记录 archive records {} – {} \
         (hash <code>{}</code> – <code>{}</code>) · 档案头 archive head {} <code>{}</code></p>",
        text(&report["evidence"]["config_hash"]),
        text(&archive["first_seq"]),
        text(&archive["last_seq"]),
        text(&archive["first_hash"]),
        text(&archive["last_hash"]),
        text(&report["evidence"]["archive_head"]["seq"]),
        text(&report["evidence"]["archive_head"]["hash"]),
    );
    table(
        out,
        &report["evidence"]["config_history"],
        &[("从 from", "/from"), ("到 to", "/to"), ("规则记录 config record", "/config_record_hash")],
    );
}

/// A site report, or a fleet report (ranking first, then each site), as one HTML page.
pub fn html(report: &Value) -> String {
    let mut out = String::new();
    let title = format!(
        "{} {} {}",
        if report["kind"] == "daily" { "日报 daily report" } else { "月报 monthly report" },
        text(&report["period"]),
        text(&report["mn"]).replace('–', "")
    );
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=zh><head><meta charset=utf-8><meta name=viewport content=\"width=device-width,initial-scale=1\"><title>{title}</title><style>{STYLE}</style></head><body><h1>{title}</h1>"
    );
    match report["reports"].as_array() {
        Some(sites) => {
            let _ = write!(
                out,
                "<p>站点 sites {} · 未达标 below target {} · 服务超时 service misses {}</p><h2>需关注 what needs attention</h2>",
                text(&report["sites"]),
                text(&report["below_target"]),
                text(&report["service_misses"])
            );
            table(
                &mut out,
                &report["ranking"],
                &[
                    ("MN", "/mn"),
                    ("名称 name", "/name"),
                    ("有效传输率 effective %", "/effective_rate"),
                    ("达标 meets", "/meets_target"),
                    ("缺失 missing", "/missing_count"),
                    ("在线率 online %", "/online_percent"),
                    ("报警 alerts", "/alerts_raised"),
                    ("服务超时 misses", "/service_misses"),
                ],
            );
            for site in sites {
                site_section(&mut out, site);
            }
        }
        None => site_section(&mut out, report),
    }
    out.push_str("</body></html>\n");
    out
}
