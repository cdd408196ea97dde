//! From archive records to what the rule engine is told: authenticated frames, wrong
//! passwords from configured sites, data uploads, and resends that change stored values.

use hj212_compliance::alert::{Cause, DataRecord, Engine, Sample, Transition};
use hj212_follow::{Interpreted, Meaning, Upload};
use hj212_proto::model::{FieldKind, factor_for_code};
use rusqlite::Transaction;

use crate::fingerprints::{Fingerprints, RecordKey, Seen};
use crate::rules::RulesMap;
use crate::{AlertsError, db};

/// Minute, hourly and daily records: a resend of these with other values is a tamper alert.
/// (Real-time data is not fingerprinted: it is most of the volume and counts for no rate.)
const FINGERPRINTED: [u16; 3] = [2051, 2061, 2031];

/// What a record is judged with: the engine, its fingerprints and the window they cover.
pub(crate) struct Judges<'a> {
    pub engine: &'a mut Engine,
    pub fingerprints: &'a mut Fingerprints,
    /// Data older than this when received is judged without a fingerprint.
    pub fingerprint_window_ms: i64,
}

/// Feeds one archived record to the engine; returns the transitions it caused.
pub(crate) fn observe(
    archived: &Interpreted,
    judges: &mut Judges<'_>,
    rules: &RulesMap,
    tx: &Transaction<'_>,
) -> Result<Vec<Transition>, AlertsError> {
    let engine = &mut *judges.engine;
    let record = &archived.record;
    let cause = Cause { at_ms: record.time_ms, seq: record.seq };
    // Only configured sites: an unknown MN is nobody's alert (and never stored as data).
    let configured = |mn: &str| rules.get(mn).is_some();
    match &archived.meaning {
        Meaning::BadPassword { mn } if configured(mn) => Ok(engine.auth_failure(mn, cause)),
        Meaning::Seen { mn, .. } if configured(mn) => Ok(engine.seen(mn, cause)),
        Meaning::Acknowledged(ack) => {
            // Made on this node it is here already; made on another node of a cluster, it
            // reaches this engine through the stream.
            let at_ms = record.time_ms;
            let ack = db::Acknowledgement { alert_id: &ack.alert_id, by: &ack.by, note: &ack.note, at_ms };
            db::acknowledge(tx, &ack)?;
            Ok(Vec::new())
        }
        Meaning::Data(upload) => match rules.get(upload.mn.as_str()) {
            Some(site_rules) => {
                let mut out = engine.seen(&upload.mn, cause);
                // Data already older than the fingerprint window when received is judged as after
                // the prune: a year's backfill wrote gigabytes of fingerprints only to delete them.
                let fingerprinted = FINGERPRINTED.contains(&upload.cn)
                    && upload.data_time_ms >= cause.at_ms - judges.fingerprint_window_ms;
                let fingerprints = fingerprinted.then_some(&mut *judges.fingerprints);
                out.extend(judge(upload, cause, judges.engine, site_rules, tx, fingerprints)?);
                Ok(out)
            }
            None => Ok(Vec::new()),
        },
        _ => Ok(Vec::new()),
    }
}

/// A field's number, as `hj212_follow::Factor::number` reads it.
fn number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// An accepted upload's values, judged once: only a record's first copy is judged, as only
/// the first copy is stored and counted; a later copy with other values is a conflict.
fn judge(
    upload: &Upload,
    cause: Cause,
    engine: &mut Engine,
    site_rules: &hj212_compliance::alert::SiteRules,
    tx: &Transaction<'_>,
    mut fingerprints: Option<&mut Fingerprints>,
) -> Result<Vec<Transition>, AlertsError> {
    let cn = upload.cn;
    let record = RecordKey { mn: &upload.mn, cn, data_time_ms: upload.data_time_ms };
    let mut samples = Vec::with_capacity(upload.factors().len());
    let mut conflict = None;
    let mut first_copy = fingerprints.is_none();
    for factor in upload.factors() {
        let (value_kind, zs_kind) =
            if cn == 2011 { (FieldKind::Rtd, FieldKind::ZsRtd) } else { (FieldKind::Avg, FieldKind::ZsAvg) };
        // Temperatures and pressures may be below zero.
        let signed = factor_for_code(factor.code, upload.medium).is_some_and(|f| matches!(f.unit, "°C" | "kPa"));
        // The texts are borrowed, not copied: messages read their precision only when one fires.
        let (text, zs_text) = (factor.get(value_kind), factor.get(zs_kind));
        samples.push(Sample {
            factor: factor.code,
            value: text.and_then(number),
            zs: zs_text.and_then(number),
            flag: factor.get(FieldKind::Flag),
            signed,
            text,
            zs_text,
        });
        if let Some(fingerprints) = fingerprints.as_deref_mut() {
            let fields = factor.fields().map(|f| (f.key, f.value));
            match fingerprints.check(tx, record, factor.code, fields)? {
                Seen::New => first_copy = true,
                Seen::Same => {}
                Seen::Different => {
                    conflict.get_or_insert(factor.code);
                }
            }
        }
    }
    let mut out = Vec::new();
    if let Some(factor) = conflict {
        out.extend(engine.conflict(&upload.mn, factor, upload.data_time_ms, cause));
    }
    if first_copy {
        let data = DataRecord {
            mn: &upload.mn,
            st: upload.st.as_deref(),
            cn,
            data_time_ms: upload.data_time_ms,
            cause,
            samples,
            resent: upload.resent,
        };
        out.extend(engine.data(&data, site_rules));
    }
    Ok(out)
}
