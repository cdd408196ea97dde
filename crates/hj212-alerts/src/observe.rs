//! From archive records to what the rule engine is told: authenticated frames, wrong
//! passwords from configured sites, data uploads, and resends that change stored values.

use hj212_compliance::alert::{Cause, DataRecord, Engine, Sample, Transition};
use hj212_follow::{Interpreted, Meaning, Upload};
use hj212_proto::model::{FieldKind, factor_for_code};
use rusqlite::Transaction;

use crate::db::Fingerprint;
use crate::rules::RulesMap;
use crate::{AlertsError, db};

/// Minute, hourly and daily records: a resend of these with other values is a tamper alert.
/// (Real-time data is not fingerprinted: it is most of the volume and counts for no rate.)
const FINGERPRINTED: [u16; 3] = [2051, 2061, 2031];

/// Feeds one archived record to the engine; returns the transitions it caused.
pub(crate) fn observe(
    archived: &Interpreted,
    engine: &mut Engine,
    rules: &RulesMap,
    tx: &Transaction<'_>,
    fingerprint_window_ms: i64,
) -> Result<Vec<Transition>, AlertsError> {
    let record = &archived.record;
    let cause = Cause { at_ms: record.time_ms, seq: record.seq };
    // Only configured sites: an unknown MN is nobody's alert (and never stored as data).
    let configured = |mn: &str| rules.get(mn).is_some();
    match &archived.meaning {
        Meaning::BadPassword { mn } if configured(mn) => Ok(engine.auth_failure(mn, cause)),
        Meaning::Seen { mn, .. } if configured(mn) => Ok(engine.seen(mn, cause)),
        Meaning::Data(upload) => match rules.get(upload.mn.as_str()) {
            Some(site_rules) => {
                let mut out = engine.seen(&upload.mn, cause);
                // Data already older than the fingerprint window when received is judged as after
                // the prune: a year's backfill wrote gigabytes of fingerprints only to delete them.
                let fingerprinted =
                    FINGERPRINTED.contains(&upload.cn) && upload.data_time_ms >= cause.at_ms - fingerprint_window_ms;
                out.extend(judge(upload, cause, engine, site_rules, tx, fingerprinted)?);
                Ok(out)
            }
            None => Ok(Vec::new()),
        },
        _ => Ok(Vec::new()),
    }
}

/// An accepted upload's values, judged once: only a record's first copy is judged, as only
/// the first copy is stored and counted; a later copy with other values is a conflict.
fn judge(
    upload: &Upload,
    cause: Cause,
    engine: &mut Engine,
    site_rules: &hj212_compliance::alert::SiteRules,
    tx: &Transaction<'_>,
    fingerprinted: bool,
) -> Result<Vec<Transition>, AlertsError> {
    let cn = upload.cn;
    let mut samples = Vec::with_capacity(upload.factors.len());
    let mut conflict = None;
    let mut first_copy = !fingerprinted;
    for factor in &upload.factors {
        let (value, zs) = if cn == 2011 {
            (factor.number(FieldKind::Rtd), factor.number(FieldKind::ZsRtd))
        } else {
            (factor.number(FieldKind::Avg), factor.number(FieldKind::ZsAvg))
        };
        // Temperatures and pressures may be below zero.
        let signed = factor_for_code(&factor.code, upload.medium).is_some_and(|f| matches!(f.unit, "°C" | "kPa"));
        samples.push(Sample { factor: &factor.code, value, zs, flag: factor.get(FieldKind::Flag), signed });
        if fingerprinted {
            let key = (upload.mn.as_str(), cn, upload.data_time_ms, factor.code.as_str());
            let items = factor.fields.iter().map(|f| (f.key.as_str(), f.value.as_str()));
            match db::fingerprint(tx, key, &fingerprint(items))? {
                Fingerprint::New => first_copy = true,
                Fingerprint::Same => {}
                Fingerprint::Different => {
                    conflict.get_or_insert(factor.code.as_str());
                }
            }
        }
    }
    let mut out = Vec::new();
    if let Some(factor) = conflict {
        out.extend(engine.conflict(&upload.mn, factor, upload.data_time_ms, cause));
    }
    if first_copy {
        let data =
            DataRecord { mn: &upload.mn, cn, data_time_ms: upload.data_time_ms, cause, samples, resent: upload.resent };
        out.extend(engine.data(&data, site_rules));
    }
    Ok(out)
}

/// A factor's fields, with numbers normalised ("12.30" and "12.3" are the same value).
fn fingerprint<'a>(items: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut fields: Vec<String> = items
        .map(|(key, value)| match value.trim().parse::<f64>() {
            Ok(number) => format!("{key}={number}"),
            Err(_) => format!("{key}={value}"),
        })
        .collect();
    fields.sort_unstable();
    fields.join(";")
}

#[cfg(test)]
mod tests {
    #[test]
    fn fingerprints_ignore_order_and_number_formatting() {
        let a = super::fingerprint([("a21026-Avg", "12.30"), ("a21026-Flag", "N")].into_iter());
        let b = super::fingerprint([("a21026-Flag", "N"), ("a21026-Avg", "12.3")].into_iter());
        let c = super::fingerprint([("a21026-Flag", "N"), ("a21026-Avg", "12.4")].into_iter());
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
