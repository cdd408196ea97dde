//! Daily and monthly reports (日报 / 月报, issue 16): per site and for the fleet, from the data
//! directory alone (the store, the alerts database and the rules the archive says were in
//! force), as JSON, CSV (UTF-8 with BOM, Chinese and English headers) and one self-contained
//! HTML page. The daemon, its API and `hj212-audit report` all call [`fleet_report`] and
//! [`site_report`], so their figures are the same.

mod decimal;
mod html;
mod period;
mod site;
mod table;

pub use decimal::Decimal;
pub use html::html;
pub use period::Period;
pub use site::{ONLINE_SLOT_MS, Opened, Sources, site_report};
pub use table::csv;

use hj212_config::Site;
use serde_json::{Value, json};

/// The fleet's report for `period`: one report per site, and a ranking that puts first the
/// sites below their target and those with service misses, so a duty manager sees what needs
/// doing.
///
/// # Errors
/// As [`site_report`].
pub fn fleet_report(sources: &Sources<'_>, sites: &[Site], period: &Period) -> Result<Value, String> {
    let head = site::archive_head(sources)?;
    let sources = Sources { archive: None, ..*sources };
    let mut reports = Vec::with_capacity(sites.len());
    for site in sites {
        reports.push(site_report(&sources, site, period)?);
    }
    let mut ranking: Vec<Value> = reports.iter().map(summary).collect();
    ranking.sort_by(|a, b| attention(b).cmp(&attention(a)).then_with(|| a["mn"].as_str().cmp(&b["mn"].as_str())));
    Ok(json!({
        "kind": period.kind,
        "period": period.label,
        "sites": reports.len(),
        "below_target": ranking.iter().filter(|r| r["meets_target"] == false).count(),
        "service_misses": ranking.iter().map(|r| r["service_misses"].as_u64().unwrap_or(0)).sum::<u64>(),
        "archive_head": head,
        "ranking": ranking,
        "reports": reports,
    }))
}

/// One line of the ranking.
fn summary(report: &Value) -> Value {
    let rate = &report["rate"];
    json!({
        "mn": report["mn"],
        "name": report["name"],
        "effective_rate": rate["effective_rate"],
        "transmission_rate": rate["transmission_rate"],
        "validity_rate": rate["validity_rate"],
        "meets_target": rate["meets_target"],
        "due": rate["due"],
        "missing_count": rate["missing_count"],
        "online_percent": report["online"]["percent"],
        "alerts_raised": report["alerts"]["raised"],
        "service_misses": report["alerts"]["misses"].as_array().map_or(0, Vec::len),
    })
}

/// How much a site needs attention: below target first (lowest rate first), then misses.
fn attention(summary: &Value) -> (bool, u64, i64) {
    let below = summary["meets_target"] == false && summary["due"].as_u64().unwrap_or(0) > 0;
    let rate =
        summary["effective_rate"].as_str().and_then(|r| r.trim_end_matches('%').parse::<f64>().ok()).unwrap_or(100.0);
    // Lower rates rank higher: negate hundredths of a percent.
    #[expect(clippy::cast_possible_truncation, reason = "a percentage in hundredths fits")]
    let rate_rank = -((rate * 100.0).round() as i64);
    (below, summary["service_misses"].as_u64().unwrap_or(0), rate_rank)
}
