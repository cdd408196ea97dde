//! From archive records to what the rule engine is told: authenticated frames, wrong
//! passwords from configured sites, data uploads, and resends that change stored values.

use hj212_archive::{Kind, Record, Verdict, flags};
use hj212_compliance::alert::{Cause, DataRecord, Engine, Sample, Transition};
use hj212_proto::framer::{self, FramerConfig, Scan};
use hj212_proto::model::{FieldKind, factor_for_code};
use hj212_proto::{Packet, SegmentText};
use rusqlite::Transaction;

use crate::db::Fingerprint;
use crate::rules::RulesMap;
use crate::{AlertsError, db};

/// Minute, hourly and daily records: a resend of these with other values is a tamper alert.
/// (Real-time data is not fingerprinted: it is most of the volume and counts for no rate.)
const FINGERPRINTED: [u16; 3] = [2051, 2061, 2031];

/// Feeds one archive record to the engine; returns the transitions it caused.
pub(crate) fn observe(
    record: &Record,
    engine: &mut Engine,
    rules: &RulesMap,
    tx: &Transaction<'_>,
) -> Result<Vec<Transition>, AlertsError> {
    if record.kind != Kind::Received
        || !matches!(record.verdict, Verdict::Accepted | Verdict::Duplicate | Verdict::BadPassword)
    {
        return Ok(Vec::new());
    }
    let Scan::Frame(layout) = framer::scan(&record.data, &FramerConfig::default(), true) else {
        return Ok(Vec::new());
    };
    let text = SegmentText::new(layout.data(&record.data));
    let Ok(packet) = Packet::parse_text(&text) else {
        return Ok(Vec::new());
    };
    // Only configured sites: an unknown MN is nobody's alert (and never stored as data).
    let Some(site_rules) = rules.get(packet.mn) else {
        return Ok(Vec::new());
    };
    let cause = Cause { at_ms: record.time_ms, seq: record.seq };
    if record.verdict == Verdict::BadPassword {
        return Ok(engine.auth_failure(packet.mn, cause));
    }
    let mut out = engine.seen(packet.mn, cause);
    if record.verdict != Verdict::Accepted || !packet.cn.is_data_upload() {
        return Ok(out);
    }
    let Some(Ok(time)) = packet.data_time_parsed() else {
        return Ok(out);
    };
    let cn = packet.cn.code();
    let data_time_ms = time.unix_millis();
    let factors = packet.factors();
    let mut samples = Vec::with_capacity(factors.len());
    let mut conflict = None;
    // Only a record's first copy is judged, as only the first copy is stored and counted.
    let mut first_copy = !FINGERPRINTED.contains(&cn);
    for factor in &factors {
        let number = |kind| factor.get(kind).and_then(|v| v.trim().parse::<f64>().ok()).filter(|v| v.is_finite());
        let (value, zs) = if cn == 2011 {
            (number(FieldKind::Rtd), number(FieldKind::ZsRtd))
        } else {
            (number(FieldKind::Avg), number(FieldKind::ZsAvg))
        };
        // Temperatures and pressures may be below zero.
        let signed = factor_for_code(factor.code, packet.medium()).is_some_and(|f| matches!(f.unit, "°C" | "kPa"));
        samples.push(Sample { factor: factor.code, value, zs, flag: factor.get(FieldKind::Flag), signed });
        if FINGERPRINTED.contains(&cn) {
            let key = (packet.mn, cn, data_time_ms, factor.code);
            match db::fingerprint(tx, key, &fingerprint(factor.items().map(|i| (i.key, i.value))))? {
                Fingerprint::New => first_copy = true,
                Fingerprint::Same => {}
                Fingerprint::Different => {
                    conflict.get_or_insert(factor.code);
                }
            }
        }
    }
    if let Some(factor) = conflict {
        out.extend(engine.conflict(packet.mn, factor, data_time_ms, cause));
    }
    if first_copy {
        let resent = record.flags & (flags::RESENT | flags::BACKFILL) != 0;
        let data = DataRecord { mn: packet.mn, cn, data_time_ms, cause, samples, resent };
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
