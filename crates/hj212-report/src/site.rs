//! One site's report for a period: its rates under the rules in force, how much of the period
//! it was heard, emission totals, exceedance hours, abnormal data and alerts with the service
//! times against the targets, visits, and the evidence the figures rest on.

use std::collections::BTreeMap;

use hj212_alerts::query::{self as alerts, AlertLife};
use hj212_compliance::Range;
use hj212_config::{LimitBasis, Service, Site};
use hj212_proto::model::Factor;
use hj212_store::{PeriodValue, Store, StoreError};
use serde_json::{Value, json};

use crate::Period;
use crate::decimal::Decimal;

/// Online is counted in slots of this length: a slot in which an accepted record of the site
/// arrived counts as online (HJ 212-2017 loggers send real-time data every 30 s to 1 h).
pub const ONLINE_SLOT_MS: i64 = 5 * 60_000;
/// The factor whose hourly average converts concentrations to the reference O2.
const O2: &str = "a19001";

/// Where a report reads from.
#[derive(Debug)]
pub struct Sources<'a> {
    pub store: &'a Store,
    /// `alerts.sqlite`, when the alert engine has made one.
    pub alerts: Option<&'a rusqlite::Connection>,
    /// `commands.sqlite`, for the gap-recovery requests, when there is one.
    pub commands: Option<&'a rusqlite::Connection>,
    /// The archive, to name the first and last counted records by their hashes (a site's own
    /// report; the fleet's leaves them out: two archive reads per site).
    pub archive: Option<&'a std::path::Path>,
    pub service: &'a Service,
    /// Periods that have not ended by then are not due.
    pub now_ms: i64,
}

/// The data dir's databases a report reads, opened read-only.
#[derive(Debug)]
pub struct Opened {
    pub archive: std::path::PathBuf,
    pub store: Store,
    pub alerts: Option<rusqlite::Connection>,
    pub commands: Option<rusqlite::Connection>,
}

impl Opened {
    /// Opens `data_dir`'s store (required) and its alerts and commands databases (when there).
    ///
    /// # Errors
    /// The store cannot be opened (named).
    pub fn read(data_dir: &hj212_config::DataDir) -> Result<Self, String> {
        let store = Store::open_read_only(&data_dir.store()).map_err(|e| e.to_string())?;
        let alerts = alerts::open_read_only(&data_dir.alerts()).ok();
        let commands = hj212_store::read_only_connection(&data_dir.commands()).ok();
        Ok(Self { archive: data_dir.archive(), store, alerts, commands })
    }

    /// The sources of a report with `service` targets, as of `now_ms`.
    pub fn sources<'a>(&'a self, service: &'a Service, now_ms: i64) -> Sources<'a> {
        Sources {
            store: &self.store,
            alerts: self.alerts.as_ref(),
            commands: self.commands.as_ref(),
            archive: Some(&self.archive),
            service,
            now_ms,
        }
    }
}

fn beijing(ms: i64) -> String {
    hj212_proto::time::BeijingTime::from_unix_millis(ms).to_rfc3339()
}

fn names(code: &str) -> (String, String, Option<&'static Factor>) {
    let factor = Factor::lookup(code, None);
    (
        factor.map_or_else(|| code.to_owned(), |f| f.name_zh.to_owned()),
        factor.map_or_else(|| code.to_owned(), |f| f.name.to_owned()),
        factor,
    )
}

/// Most runs of missing periods listed in a site's report (the count is always whole).
const MAX_MISSING_RUNS: usize = 1000;

/// Missing periods as runs per factor: `{factor, period (first), to (end of the last), periods}`.
fn missing_runs(missing: &[(String, i64)], period_ms: i64) -> Value {
    let mut sorted: Vec<&(String, i64)> = missing.iter().collect();
    sorted.sort();
    let mut runs: Vec<(&str, i64, i64, u64)> = Vec::new();
    for (factor, start) in sorted {
        if let Some((f, _, end, count)) = runs.last_mut()
            && f == factor
            && end == start
        {
            *end = start + period_ms;
            *count += 1;
            continue;
        }
        if runs.len() == MAX_MISSING_RUNS {
            break;
        }
        runs.push((factor, *start, start + period_ms, 1));
    }
    runs.iter()
        .map(|(factor, from, to, periods)| {
            json!({"factor": factor, "period": beijing(*from), "to": beijing(*to), "periods": periods})
        })
        .collect()
}

/// The site's report (JSON) for `period`.
///
/// # Errors
/// Store or alert database errors.
pub fn site_report(sources: &Sources<'_>, site: &Site, period: &Period) -> Result<Value, String> {
    let store = sources.store;
    let range = period.range;
    let err = |e: StoreError| e.to_string();
    let stretches = store.stretches(&site.mn, range).map_err(err)?;
    let mut evidence = match store.rate_over(&stretches, range, sources.now_ms).map_err(err)? {
        Some(evidence) => evidence,
        None => store.site_rate(site, &hj212_store::rules_for(site), range, sources.now_ms).map_err(err)?,
    };
    evidence.report.late_periods.truncate(1000);
    if let Some(archive) = sources.archive {
        evidence.attach_archive_hashes(archive).map_err(|e| format!("reading the archive: {e}"))?;
    }
    let mut rate = evidence.to_json(&site.mn);
    // A fleet's reports are held together: the missing periods go in as runs, not one object each.
    rate["missing"] = missing_runs(&evidence.report.missing, evidence.rules.basis.period_ms());
    let values = store.period_values(&site.mn, period.record_cn(), range).map_err(err)?;
    let lives = match sources.alerts {
        Some(conn) => alerts::opened_in(conn, &site.mn, range.from_ms, range.to_ms).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let visits = store.visits_of(&site.mn, range.from_ms, range.to_ms).map_err(err)?;
    let standing: Vec<_> = visits.iter().filter(|(_, superseded)| superseded.is_none()).map(|(v, _)| v).collect();
    // Limits and the service area as the archived rules had them at the period's end (the
    // rate above takes each stretch's own rules).
    let in_force = stretches.last().map_or(site, |s| &s.site);
    let on_site_target = sources.service.on_site_minutes(in_force.service_area);
    let service = service_times(&lives, &standing, sources, on_site_target);
    Ok(json!({
        "kind": period.kind,
        "period": period.label,
        "from": beijing(range.from_ms),
        "to": beijing(range.to_ms),
        "mn": site.mn,
        "name": site.name,
        "service_area": in_force.service_area,
        "rate": rate,
        "online": online(store, &site.mn, range, sources.now_ms).map_err(err)?,
        "emissions": emissions(&values, period),
        "exceedances": exceedances(in_force, &values, period),
        "abnormal": abnormal(&lives),
        "alerts": service,
        "visits": standing,
        "recovery_requests": recovery(sources, &site.mn, range)?,
        "evidence": {
            "config_history": rate["config_history"],
            "config_hash": rate["config_hash"],
            "archive": rate["archive"],
            "archive_head": archive_head(sources)?,
        },
    }))
}

/// The archive record the store had applied up to when the report was made, and its hash: the
/// chain link every figure of the report comes before (`hj212-audit verify --expect-head`).
pub(crate) fn archive_head(sources: &Sources<'_>) -> Result<Value, String> {
    let Some(archive) = sources.archive else { return Ok(Value::Null) };
    let seq = sources.store.applied_seq().map_err(|e| e.to_string())?;
    if seq == 0 {
        return Ok(Value::Null);
    }
    let records =
        hj212_archive::Follower::new(archive, seq).read(seq, 1).map_err(|e| format!("reading the archive: {e}"))?;
    Ok(records.first().map_or(Value::Null, |r| json!({ "seq": seq, "hash": hj212_archive::hex(&r.hash) })))
}

/// Gap-recovery requests (history requests the daemon sent) by state, with the records they brought.
fn recovery(sources: &Sources<'_>, mn: &str, range: Range) -> Result<Value, String> {
    let Some(conn) = sources.commands else { return Ok(json!([])) };
    let rows = hj212_commands::recovery_requests(conn, mn, range.from_ms, range.to_ms).map_err(|e| e.to_string())?;
    Ok(rows
        .into_iter()
        .map(|(state, count, records)| json!({ "state": state, "count": count, "records": records }))
        .collect())
}

/// The share of the period's elapsed slots in which the site was heard.
fn online(store: &Store, mn: &str, range: Range, now_ms: i64) -> Result<Value, StoreError> {
    let until = range.to_ms.min(now_ms.max(range.from_ms));
    let slots = (until - range.from_ms) / ONLINE_SLOT_MS;
    let heard = store.heard_slots(mn, Range { from_ms: range.from_ms, to_ms: until }, ONLINE_SLOT_MS)?;
    let ratio = (slots > 0).then(|| format!("{:.2}", heard as f64 * 100.0 / slots as f64));
    Ok(json!({ "slot_minutes": ONLINE_SLOT_MS / 60_000, "slots": slots, "heard": heard, "percent": ratio }))
}

/// Per factor, the exact sum of the Cou fields of the period's records, with the unit and how
/// many records had none.
fn emissions(values: &[PeriodValue], period: &Period) -> Vec<Value> {
    let mut totals: BTreeMap<&str, (Decimal, u64, u64)> = BTreeMap::new();
    for value in values {
        let Some(cou) = value.cou.as_deref() else { continue };
        let entry = totals.entry(&value.factor).or_default();
        match Decimal::parse(cou).and_then(|d| entry.0.checked_add(d)) {
            Some(sum) => (entry.0, entry.1) = (sum, entry.1 + 1),
            None => entry.2 += 1,
        }
    }
    let due = period.records_due();
    totals
        .into_iter()
        .map(|(code, (total, counted, unreadable))| {
            let (zh, en, factor) = names(code);
            json!({
                "factor": code, "name_zh": zh, "name": en,
                "total": total.to_string(),
                "unit": factor.and_then(|f| f.amount_unit),
                "records": counted,
                "records_missing": due.saturating_sub(counted),
                "unreadable": unreadable,
            })
        })
        .collect()
}

/// Per factor with an upper limit on the report's record kind: the periods over it (the
/// logger's converted value when sent, else converted to the reference O2 where configured,
/// else as measured), and the worst.
fn exceedances(site: &Site, values: &[PeriodValue], period: &Period) -> Vec<Value> {
    let wanted = if period.record_cn() == 2061 { LimitBasis::Hour } else { LimitBasis::Day };
    let o2: BTreeMap<i64, f64> = values
        .iter()
        .filter(|v| v.factor == O2)
        .filter_map(|v| Some((v.data_time_ms, v.avg.as_deref()?.parse().ok()?)))
        .collect();
    let mut out = Vec::new();
    for limit in site.limits.iter().filter(|l| l.basis == wanted) {
        let Some(max) = limit.max else { continue };
        let (mut over, mut worst, mut compared) = (0_u64, None::<f64>, 0_u64);
        for value in values.iter().filter(|v| v.factor == limit.factor) {
            let measured = value.avg.as_deref().and_then(|v| v.parse::<f64>().ok());
            let sent_converted = value.zs_avg.as_deref().and_then(|v| v.parse::<f64>().ok());
            let converted = sent_converted.or_else(|| {
                let (reference, o2) = (limit.reference_o2?, o2.get(&value.data_time_ms)?);
                hj212_compliance::exceedance::converted(measured?, *o2, reference).ok()
            });
            let Some(judged) = converted.or(measured) else { continue };
            compared += 1;
            worst = Some(worst.map_or(judged, |w: f64| w.max(judged)));
            over += u64::from(judged > max);
        }
        let (zh, en, _) = names(&limit.factor);
        out.push(json!({
            "factor": limit.factor, "name_zh": zh, "name": en,
            "limit": max, "periods_compared": compared, "periods_over": over, "worst": worst,
            "converted_to_reference_o2": limit.reference_o2,
        }));
    }
    out
}

/// Alerts of the period by kind: how many, and the first.
fn abnormal(lives: &[AlertLife]) -> Vec<Value> {
    let mut kinds: BTreeMap<&str, (u64, i64)> = BTreeMap::new();
    for life in lives {
        let entry = kinds.entry(&life.kind).or_insert((0, life.opened_ms));
        entry.0 += 1;
    }
    kinds
        .into_iter()
        .map(|(kind, (count, first))| {
            let titles =
                hj212_compliance::alert::AlertKind::parse(kind).map(hj212_compliance::alert::AlertKind::titles);
            json!({
                "kind": kind,
                "title_zh": titles.map(|t| t.0),
                "title": titles.map(|t| t.1),
                "count": count,
                "first_at": beijing(first),
            })
        })
        .collect()
}

/// Certification spec 4.3.3.1: each alert acknowledged within `[service] response_minutes`,
/// someone on site within the area's on-site target. A miss is an alert acknowledged late
/// (or not yet, past the target), or whose visit came late; an alert with no visit is a miss
/// only when it is critical and stayed open past the on-site target.
fn service_times(
    lives: &[AlertLife],
    visits: &[&hj212_store::VisitRecord],
    sources: &Sources<'_>,
    on_site_target: u32,
) -> Value {
    let minutes = |from: i64, to: i64| (to - from).max(0) / 60_000;
    let (response, on_site) = (i64::from(sources.service.response_minutes), i64::from(on_site_target));
    let mut misses = Vec::new();
    for life in lives {
        let acked = life.acked_ms.map(|at| minutes(life.opened_ms, at));
        let waited = minutes(life.opened_ms, sources.now_ms);
        if acked.map_or(waited > response, |m| m > response) {
            misses.push(json!({ "alert_id": life.alert_id, "kind": life.kind, "miss": "response", "minutes": acked.unwrap_or(waited), "target_minutes": response }));
        }
        let visit = visits
            .iter()
            .filter(|v| v.visit.alert_id.as_deref() == Some(&life.alert_id))
            .map(|v| v.visit.arrived_ms)
            .min();
        let critical = hj212_compliance::alert::AlertKind::parse(&life.kind)
            .is_some_and(|k| k.severity() == hj212_compliance::alert::Severity::Critical);
        let open_for = minutes(life.opened_ms, life.cleared_ms.unwrap_or(sources.now_ms));
        let late_visit = visit.map(|at| minutes(life.opened_ms, at)).filter(|m| *m > on_site);
        if let Some(m) = late_visit.or_else(|| (visit.is_none() && critical && open_for > on_site).then_some(open_for))
        {
            misses.push(json!({ "alert_id": life.alert_id, "kind": life.kind, "miss": "on_site", "minutes": m, "target_minutes": on_site }));
        }
    }
    json!({
        "raised": lives.len(),
        "acknowledged": lives.iter().filter(|l| l.acked_ms.is_some()).count(),
        "cleared": lives.iter().filter(|l| l.cleared_ms.is_some()).count(),
        "response_target_minutes": response,
        "on_site_target_minutes": on_site,
        "misses": misses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_periods_are_listed_as_runs_per_factor_and_capped() {
        const HOUR: i64 = 3_600_000;
        let start = 1_767_196_800_000; // 2026-01-01 00:00 Beijing
        let mut missing: Vec<(String, i64)> = (0..5).map(|h| ("a21026".to_owned(), start + h * HOUR)).collect();
        missing.push(("a21026".to_owned(), start + 7 * HOUR));
        missing.push(("a21002".to_owned(), start));
        let runs = missing_runs(&missing, HOUR);
        let runs: Vec<_> =
            runs.as_array().unwrap().iter().map(|r| (r["factor"].clone(), r["periods"].clone())).collect();
        assert_eq!(runs, [(json!("a21002"), json!(1)), (json!("a21026"), json!(5)), (json!("a21026"), json!(1))]);
        let first = missing_runs(&missing, HOUR)[1].clone();
        assert_eq!(
            (first["period"].as_str(), first["to"].as_str()),
            (Some("2026-01-01T00:00:00.000+08:00"), Some("2026-01-01T05:00:00.000+08:00"))
        );

        let scattered: Vec<(String, i64)> = (0..5000).map(|h| ("a21026".to_owned(), start + 2 * h * HOUR)).collect();
        assert_eq!(missing_runs(&scattered, HOUR).as_array().unwrap().len(), MAX_MISSING_RUNS);
    }
}
