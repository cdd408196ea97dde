//! `hj212-audit rate --format html`: one self-contained page an auditor can file (no
//! external resources): summary, a per-day heat map, missing, late and invalid periods, the
//! marks applied, and what the figures rest on.

use std::fmt::Write as _;

use hj212_compliance::Range;
use hj212_proto::time::BeijingTime;
use hj212_store::Evidence;

const DAY_MS: i64 = 86_400_000;
const FORMULAS: &str =
    "transmission = received / due, validity = valid / received, effective = valid / due (docs/compliance.md §1.2)";

fn esc(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn time(ms: i64) -> String {
    let t = BeijingTime::from_unix_millis(ms);
    format!("{:04}-{:02}-{:02} {:02}:{:02}", t.year, t.month, t.day, t.hour, t.minute)
}

fn day(ms: i64) -> String {
    let t = BeijingTime::from_unix_millis(ms);
    format!("{:02}-{:02}", t.month, t.day)
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:3px 7px;text-align:right;font-size:.9em}\
th{background:#eee}td.l,th.l{text-align:left}.ok{background:#b7e1b0}.warn{background:#f6e08a}.bad{background:#f1a3a3}\
.off{background:#ddd}.pass{color:#17642a;font-weight:bold}.fail{color:#a01818;font-weight:bold}small{color:#666}";

/// The report page for one site.
pub fn report(mn: &str, name: &str, evidence: &Evidence) -> String {
    let r = &evidence.report;
    let verdict = if r.meets_target {
        "<span class=pass>meets the target</span>"
    } else {
        "<span class=fail>below the target</span>"
    };
    let mut page = format!(
        "<!doctype html><html lang=zh><head><meta charset=utf-8><title>有效传输率 {mn}</title><style>{STYLE}</style></head><body>\
         <h1>有效传输率 evidence: {} {}</h1><p>{} to {} (Beijing time), basis {}, factors {}</p>",
        esc(mn),
        esc(name),
        time(evidence.range.from_ms),
        time(evidence.range.to_ms),
        evidence.rules.basis.as_str(),
        esc(&evidence.factors.iter().map(|f| named(f)).collect::<Vec<_>>().join(", "))
    );
    if r.evaluated_to_ms < evidence.range.to_ms {
        let _ = write!(
            page,
            "<p class=warn>Evaluated up to {} (when this report was made): later periods were not due yet.</p>",
            time(r.evaluated_to_ms)
        );
    }
    let _ = write!(
        page,
        "<h2>Summary</h2><table><tr><th class=l>应传输数据个数 due</th><td>{}</td></tr><tr><th class=l>实际传输数据个数 received</th><td>{}</td></tr>\
         <tr><th class=l>missing (nothing received)</th><td>{}</td></tr><tr><th class=l>late (received after the cutoff, not counted)</th><td>{}</td></tr>\
         <tr><th class=l>有效数据个数 valid</th><td>{}</td></tr><tr><th class=l>传输率 received / due</th><td>{} %</td></tr>\
         <tr><th class=l>有效率 valid / received</th><td>{} %</td></tr><tr><th class=l>有效传输率 valid / due</th><td><b>{} %</b></td></tr>\
         <tr><th class=l>target</th><td>{}.{:02} %: {verdict}</td></tr></table>",
        r.due,
        r.received,
        r.missing.len(),
        r.late,
        r.valid,
        r.transmission,
        r.validity,
        r.effective,
        evidence.rules.target_bp / 100,
        evidence.rules.target_bp % 100
    );
    heat_map(&mut page, evidence);
    lists(&mut page, evidence);
    let _ = write!(
        page,
        "<h2>What these figures rest on</h2><table><tr><th class=l>rules</th><td class=l>{FORMULAS}; cutoff {} days after each period \
         (records received later are listed as late, not counted); only periods ended by the evaluation are due; only flag N is valid{}</td></tr><tr><th class=l>config hash (SHA-256)</th><td class=l><code>{}</code></td></tr>\
         <tr><th class=l>archive records</th><td class=l>{}</td></tr></table>\
         <p><small>Reproduce: <code>hj212-audit rate --config CONFIG --mn {} --from {} --to {} --basis {}</code>; \
         check the archive with <code>hj212-audit verify</code>.</small></p></body></html>",
        evidence.rules.cutoff_ms / DAY_MS,
        evidence
            .rules
            .min_valid_minutes
            .map(|m| format!("; hourly values need {m} valid minutes (HJ 75-2017)"))
            .unwrap_or_default(),
        evidence.config_hash(),
        match (evidence.archive_seqs, &evidence.archive_hashes) {
            (Some((a, b)), Some((ha, hb))) => format!("seq {a} (<code>{ha}</code>) to {b} (<code>{hb}</code>)"),
            (Some((a, b)), None) => format!("seq {a} to {b}"),
            _ => "none".to_owned(),
        },
        esc(mn),
        BeijingTime::from_unix_millis(evidence.range.from_ms).to_seconds_string(),
        BeijingTime::from_unix_millis(evidence.range.to_ms).to_seconds_string(),
        evidence.rules.basis.as_str()
    );
    page
}

/// Days × factors: valid / due per cell, coloured by the worst thing in it.
fn heat_map(page: &mut String, evidence: &Evidence) {
    let r = &evidence.report;
    let step = evidence.rules.basis.period_ms();
    let marked = |start: i64| evidence.marks.iter().any(|m| m.mark.from_ms <= start && start + step <= m.mark.to_ms);
    page.push_str("<h2>Per day (valid / due)</h2><table><tr><th class=l>day</th>");
    for factor in &evidence.factors {
        let _ = write!(page, "<th>{}</th>", esc(&named(factor)));
    }
    page.push_str("</tr>");
    // Up to where the evaluation stopped: later periods were not due.
    let end = r.evaluated_to_ms;
    let mut day_start = evidence.range.from_ms;
    while day_start < end {
        let day_range = Range { from_ms: day_start, to_ms: (day_start + DAY_MS).min(end) };
        let due = day_range.periods(evidence.rules.basis).filter(|s| !marked(*s)).count();
        let _ = write!(page, "<tr><td class=l>{}</td>", day(day_start));
        for factor in &evidence.factors {
            let inside = |p: &i64| day_range.from_ms <= *p && *p < day_range.to_ms;
            let missing = r.missing.iter().filter(|(f, p)| f == factor && inside(p)).count();
            let invalid = r.invalid.iter().filter(|(f, p, _)| f == factor && inside(p)).count();
            let late = r.late_periods.iter().filter(|(f, p, _)| f == factor && inside(p)).count();
            let valid = due.saturating_sub(missing + late + invalid);
            let class = match (due, missing + late, invalid) {
                (0, _, _) => "off",
                (_, 0, 0) => "ok",
                (_, 0, _) => "warn",
                _ => "bad",
            };
            let _ = write!(page, "<td class={class}>{valid}/{due}</td>");
        }
        page.push_str("</tr>");
        day_start += DAY_MS;
    }
    page.push_str("</table><p><small>green: all valid; yellow: invalid records; red: records missing or late; grey: nothing due (marked)</small></p>");
}

fn lists(page: &mut String, evidence: &Evidence) {
    let r = &evidence.report;
    let _ = write!(
        page,
        "<h2>Missing ({})</h2><table><tr><th class=l>factor</th><th class=l>period</th></tr>",
        r.missing.len()
    );
    for (factor, start) in &r.missing {
        let _ = write!(page, "<tr><td class=l>{}</td><td class=l>{}</td></tr>", esc(&named(factor)), time(*start));
    }
    let _ = write!(
        page,
        "</table><h2>Late ({}): received after the cutoff, kept but not counted</h2>\
         <table><tr><th class=l>factor</th><th class=l>period</th><th class=l>received</th></tr>",
        r.late_periods.len()
    );
    for (factor, start, received) in &r.late_periods {
        let _ = write!(
            page,
            "<tr><td class=l>{}</td><td class=l>{}</td><td class=l>{}</td></tr>",
            esc(factor),
            time(*start),
            time(*received)
        );
    }
    let _ = write!(
        page,
        "</table><h2>Invalid ({})</h2><table><tr><th class=l>factor</th><th class=l>period</th><th class=l>why</th></tr>",
        r.invalid.len()
    );
    for (factor, start, why) in &r.invalid {
        let _ = write!(
            page,
            "<tr><td class=l>{}</td><td class=l>{}</td><td class=l>{}</td></tr>",
            esc(factor),
            time(*start),
            esc(why)
        );
    }
    let _ = write!(
        page,
        "</table><h2>Marks applied ({})</h2><table><tr><th>seq</th><th class=l>from</th><th class=l>to</th><th class=l>reason</th>\
         <th class=l>evidence</th><th class=l>author</th><th class=l>entered</th></tr>",
        evidence.marks.len()
    );
    for m in &evidence.marks {
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=l>{}</td><td class=l>{}</td><td class=l>{}</td><td class=l>{}</td><td class=l>{}</td><td class=l>{}</td></tr>",
            m.seq,
            time(m.mark.from_ms),
            time(m.mark.to_ms),
            esc(&m.mark.reason),
            esc(&m.mark.evidence),
            esc(&m.mark.author),
            time(m.created_ms)
        );
    }
    page.push_str("</table>");
}

/// A factor code with its Chinese name from the factor table (HJ 212-2017 Appendix B), as
/// auditors read it: `a21026 二氧化硫`.
fn named(code: &str) -> String {
    match hj212_proto::model::Factor::lookup(code, None) {
        Some(factor) => format!("{code} {}", factor.name_zh),
        None => code.to_owned(),
    }
}
