//! Transmission-rate evidence from the store: the unique readings (first copy received),
//! the marks in force, and the compliance arithmetic. The daemon's API and `hj212-audit rate`
//! both call [`Store::site_rate`], so their figures are the same by construction.

use std::collections::HashMap;

use hj212_compliance::{Basis, Mark, Range, Reading, Report, Rules, compute};
use hj212_config::{RateBasis, Site};
use rusqlite::params;

use crate::{MarkRequest, Store, StoreError};

const HOUR_MS: i64 = 3_600_000;

/// A mark as stored: the request plus its place in the archive (shown as in `mark_view.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkRecord {
    pub seq: u64,
    pub created_ms: i64,
    pub mark: MarkRequest,
}

/// The rules the compliance crate applies for a configured site.
pub fn rules_for(site: &Site) -> Rules {
    let rate = &site.rate;
    Rules {
        basis: match rate.basis {
            RateBasis::Hour => Basis::Hour,
            RateBasis::Day => Basis::Day,
            RateBasis::Minute => Basis::Minute { interval: rate.minute_interval },
        },
        cutoff_ms: i64::from(rate.cutoff_days) * 86_400_000,
        target_bp: rate.target_percent.0,
        min_valid_minutes: rate.min_valid_minutes,
    }
}

/// The site's rules on another basis, named as the API and the CLI take it (`hour`, `day`,
/// `minute`); `None` keeps the site's own.
///
/// # Errors
/// A name that is none of them.
pub fn rules_with_basis(site: &Site, basis: Option<&str>) -> Result<Rules, String> {
    let mut rules = rules_for(site);
    rules.basis = match basis {
        None => rules.basis,
        Some("hour") => Basis::Hour,
        Some("day") => Basis::Day,
        Some("minute") => Basis::Minute { interval: site.rate.minute_interval },
        Some(other) => return Err(format!("basis {other:?} is not hour, day or minute")),
    };
    Ok(rules)
}

/// Everything a rate figure rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub report: Report,
    pub rules: Rules,
    pub factors: Vec<String>,
    pub range: Range,
    /// Marks applied (in force, overlapping the range).
    pub marks: Vec<MarkRecord>,
    /// The archive records the counted readings came from (first and last sequence number):
    /// numbers in this node's archive, or in the cluster's stream (see `source`).
    pub archive_seqs: Option<(u64, u64)>,
    /// What the store was built from ([`crate::ARCHIVE_SOURCE`] or `stream:{name}`), so what
    /// the sequence numbers count.
    pub source: String,
    /// Their record hashes, when looked up with [`Evidence::attach_archive_hashes`].
    pub archive_hashes: Option<(String, String)>,
    /// From the archived config history: each stretch of the range, the hash of the config
    /// record in force there and the factors it assessed (empty: the current config was applied).
    pub config: Vec<(Range, String, Vec<String>)>,
}

fn cn_for(basis: Basis) -> u16 {
    match basis {
        Basis::Hour => 2061,
        Basis::Day => 2031,
        Basis::Minute { .. } => 2051,
    }
}

impl Store {
    /// The rate of one site over `range` as it stands at `now_ms`, with its evidence
    /// (periods that have not ended by `now_ms` are not due yet).
    ///
    /// # Errors
    /// SQL errors; [`StoreError::ReadingsDeleted`] when the range reaches past the readings' retention.
    pub fn site_rate(&self, site: &Site, rules: &Rules, range: Range, now_ms: i64) -> Result<Evidence, StoreError> {
        self.check_kept(range)?;
        let readings = self.rate_readings(&site.mn, cn_for(rules.basis), range, rules)?;
        let marks = self.marks_in_force(&site.mn, range)?;
        let applied: Vec<Mark> = marks
            .iter()
            .map(|m| Mark {
                range: Range { from_ms: m.mark.from_ms, to_ms: m.mark.to_ms },
                reason: m.mark.reason.clone(),
            })
            .collect();
        let report = compute(&site.factors, range, rules, readings.iter().map(|(r, _)| r), &applied, now_ms);
        let seqs = readings.iter().map(|(_, seq)| *seq);
        let archive_seqs = seqs.clone().min().zip(seqs.max());
        Ok(Evidence {
            report,
            rules: rules.clone(),
            factors: site.factors.clone(),
            range,
            marks,
            archive_seqs,
            source: self.source()?,
            archive_hashes: None,
            config: Vec::new(),
        })
    }

    /// Unique readings of `cn` with DataTime in `range` (the first copy received of each).
    fn rate_readings(&self, mn: &str, cn: u16, range: Range, rules: &Rules) -> Result<Vec<(Reading, u64)>, StoreError> {
        let mut readings = Vec::new();
        self.for_each_reading(mn, cn, range, |data_time_ms, receipt, entry, code| {
            let reading = Reading {
                factor: code.to_owned(),
                data_time_ms,
                flag: entry.flag.map(str::to_owned),
                received_ms: data_time_ms + receipt.received,
                valid_minutes: None,
            };
            readings.push((reading, u64::try_from(receipt.seq).unwrap_or(0)));
        })?;
        if rules.basis == Basis::Hour && rules.min_valid_minutes.is_some() {
            self.attach_valid_minutes(mn, range, &mut readings)?;
        }
        Ok(readings)
    }

    /// HJ 75-2017: counts the N-flagged minute records (CN=2051) behind each hourly value.
    fn attach_valid_minutes(&self, mn: &str, range: Range, readings: &mut [(Reading, u64)]) -> Result<(), StoreError> {
        let mut counts: HashMap<(String, i64), u32> = HashMap::new();
        self.for_each_reading(mn, 2051, range, |data_time_ms, _, entry, code| {
            if entry.flag.unwrap_or("N") == "N" {
                let hour = data_time_ms - data_time_ms.rem_euclid(HOUR_MS);
                *counts.entry((code.to_owned(), hour)).or_default() += 1;
            }
        })?;
        for (reading, _) in readings.iter_mut() {
            let hour = reading.data_time_ms - reading.data_time_ms.rem_euclid(HOUR_MS);
            // Minute records may be at intervals above one minute: each covers its interval.
            reading.valid_minutes = Some(counts.get(&(reading.factor.clone(), hour)).copied().unwrap_or(0));
        }
        Ok(())
    }

    /// Every mark of `mn`, oldest first, each with the mark that superseded it (if any).
    ///
    /// # Errors
    /// SQL errors.
    pub fn marks_of(&self, mn: &str) -> Result<Vec<(MarkRecord, Option<u64>)>, StoreError> {
        let mut query = self.conn.prepare_cached(
            "SELECT m.seq, m.created_ms, m.mark,
             (SELECT MIN(later.seq) FROM marks later WHERE later.supersedes = m.seq AND later.mn = m.mn)
             FROM marks m WHERE m.mn = ?1 ORDER BY m.seq",
        )?;
        let rows = query.query_map([mn], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, String>(2)?, row.get::<_, Option<i64>>(3)?))
        })?;
        let mut marks = Vec::new();
        for row in rows {
            let (seq, created_ms, json, superseded_by) = row?;
            if let Ok(mark) = serde_json::from_str(&json) {
                let record = MarkRecord { seq: u64::try_from(seq).unwrap_or(0), created_ms, mark };
                marks.push((record, superseded_by.and_then(|s| u64::try_from(s).ok())));
            }
        }
        Ok(marks)
    }

    /// Marks of `mn` overlapping `range`, minus those superseded by a later mark.
    ///
    /// # Errors
    /// SQL errors.
    pub fn marks_in_force(&self, mn: &str, range: Range) -> Result<Vec<MarkRecord>, StoreError> {
        let mut query = self.conn.prepare_cached(
            "SELECT seq, created_ms, mark FROM marks m WHERE mn = ?1 AND from_ms < ?3 AND to_ms > ?2
             AND NOT EXISTS (SELECT 1 FROM marks later WHERE later.supersedes = m.seq AND later.mn = m.mn) ORDER BY seq",
        )?;
        let rows = query.query_map(params![mn, range.from_ms, range.to_ms], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, String>(2)?))
        })?;
        let mut marks = Vec::new();
        for row in rows {
            let (seq, created_ms, json) = row?;
            if let Ok(mark) = serde_json::from_str(&json) {
                marks.push(MarkRecord { seq: u64::try_from(seq).unwrap_or(0), created_ms, mark });
            }
        }
        Ok(marks)
    }
}

fn beijing(ms: i64) -> String {
    hj212_proto::time::BeijingTime::from_unix_millis(ms).to_rfc3339()
}

fn percent(bp: u32) -> String {
    format!("{}.{:02}", bp / 100, bp % 100)
}

impl Evidence {
    /// The evidence as JSON: the API's and `hj212-audit rate`'s output.
    pub fn to_json(&self, mn: &str) -> serde_json::Value {
        let r = &self.report;
        serde_json::json!({
            "mn": mn,
            "from": beijing(self.range.from_ms),
            "to": beijing(self.range.to_ms),
            "basis": self.rules.basis.as_str(),
            "factors": self.factors,
            "evaluated_to": beijing(r.evaluated_to_ms),
            "clamped": r.evaluated_to_ms < self.range.to_ms,
            "due": r.due,
            "received": r.received,
            "valid": r.valid,
            "missing_count": r.missing.len(),
            "late_count": r.late,
            "transmission_rate": r.transmission.to_string(),
            "validity_rate": r.validity.to_string(),
            "effective_rate": r.effective.to_string(),
            "target": percent(self.rules.target_bp),
            "meets_target": r.meets_target,
            "missing": r.missing.iter().map(|(f, p)| serde_json::json!({"factor": f, "period": beijing(*p)})).collect::<Vec<_>>(),
            "late": r.late_periods.iter().map(|(f, p, at)| serde_json::json!({"factor": f, "period": beijing(*p), "received_at": beijing(*at)})).collect::<Vec<_>>(),
            "invalid": r.invalid.iter().map(|(f, p, why)| serde_json::json!({"factor": f, "period": beijing(*p), "reason": why})).collect::<Vec<_>>(),
            "marks": self.marks,
            "config_hash": self.config_hash(),
            "config_history": self.config.iter().map(|(range, hash, factors)| serde_json::json!({
                "from": beijing(range.from_ms),
                "to": beijing(range.to_ms),
                "config_record_hash": hash,
                "factors": factors,
            })).collect::<Vec<_>>(),
            "rules": {
                "basis": self.rules.basis.as_str(),
                "period_ms": self.rules.basis.period_ms(),
                "cutoff_days": self.rules.cutoff_ms / 86_400_000,
                "target": percent(self.rules.target_bp),
                "min_valid_minutes": self.rules.min_valid_minutes,
                "formulas": "transmission = received / due; validity = valid / received; effective = valid / due (docs/compliance.md §1.2)",
                "late": "a record received after period end + cutoff is kept and listed as late; it does not count as received",
                "due_until": "only periods ended by evaluated_to are due; a range reaching past now stops at the last period ended (clamped)",
            },
            "archive": self.archive_seqs.map(|(first, last)| serde_json::json!({
                "first_seq": first,
                "last_seq": last,
                "first_hash": self.archive_hashes.as_ref().map(|(h, _)| h),
                "last_hash": self.archive_hashes.as_ref().map(|(_, h)| h),
                // A store fed from a cluster's stream: the numbers are the stream's messages
                // (whose headers name the node and archive record each came from).
                "numbered_in": self.source,
            })),
        })
    }

    /// Looks up the hashes of the first and last counted archive records, so a report names
    /// the exact chain links its figures rest on (reads the archive: single-site evidence).
    ///
    /// # Errors
    /// I/O errors reading the archive.
    pub fn attach_archive_hashes(&mut self, archive_dir: &std::path::Path) -> std::io::Result<()> {
        // Stream numbers name no record of this node's archive.
        let Some((first, last)) = self.archive_seqs.filter(|_| self.source == crate::ARCHIVE_SOURCE) else {
            return Ok(());
        };
        let hash_of = |seq: u64| -> std::io::Result<String> {
            let record = hj212_archive::Follower::new(archive_dir, seq).read(seq, 1)?;
            Ok(record.first().map(|r| hj212_archive::hex(&r.hash)).unwrap_or_default())
        };
        self.archive_hashes = Some((hash_of(first)?, hash_of(last)?));
        Ok(())
    }

    /// SHA-256 of the rule set and factors the figures used.
    pub fn config_hash(&self) -> String {
        config_hash(&self.rules, &self.factors)
    }

    /// One CSV row, the columns of [`CSV_HEADER`].
    pub fn to_csv_row(&self, mn: &str) -> String {
        let r = &self.report;
        format!(
            "{mn},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            beijing(self.range.from_ms),
            beijing(self.range.to_ms),
            self.rules.basis.as_str(),
            r.due,
            r.received,
            r.valid,
            r.transmission,
            r.validity,
            r.effective,
            percent(self.rules.target_bp),
            r.meets_target,
            r.missing.len(),
            r.late,
            beijing(r.evaluated_to_ms),
            r.evaluated_to_ms < self.range.to_ms
        )
    }
}

/// SHA-256 of a rule set and factors, so a report can be tied to the configuration version
/// that produced it.
pub fn config_hash(rules: &Rules, factors: &[String]) -> String {
    use sha2::{Digest, Sha256};
    let canonical = format!(
        "basis={};period_ms={};cutoff_ms={};target_bp={};min_valid_minutes={:?};factors={}",
        rules.basis.as_str(),
        rules.basis.period_ms(),
        rules.cutoff_ms,
        rules.target_bp,
        rules.min_valid_minutes,
        factors.join(",")
    );
    Sha256::digest(canonical.as_bytes()).iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = std::fmt::Write::write_fmt(&mut out, format_args!("{b:02x}"));
        out
    })
}

/// Counts and rates of one site without the lists: what `/api/v1/rates` returns per site.
/// `source` says whether they were summed from the ledger or counted from the details.
pub fn summary_json(
    mn: &str,
    rules: &Rules,
    factors: &[String],
    range: Range,
    report: &Report,
    source: &str,
) -> serde_json::Value {
    serde_json::json!({
        "mn": mn,
        "from": beijing(range.from_ms),
        "to": beijing(range.to_ms),
        "basis": rules.basis.as_str(),
        "evaluated_to": beijing(report.evaluated_to_ms),
        "clamped": report.evaluated_to_ms < range.to_ms,
        "due": report.due,
        "received": report.received,
        "valid": report.valid,
        "missing_count": report.due.saturating_sub(report.received + report.late),
        "late_count": report.late,
        "transmission_rate": report.transmission.to_string(),
        "validity_rate": report.validity.to_string(),
        "effective_rate": report.effective.to_string(),
        "target": percent(rules.target_bp),
        "meets_target": report.meets_target,
        "config_hash": config_hash(rules, factors),
        "source": source,
    })
}

/// The CSV header matching [`Evidence::to_csv_row`].
/// New columns go at the end, so existing readers of the first twelve keep working.
pub const CSV_HEADER: &str = "mn,from,to,basis,due,received,valid,transmission_rate,validity_rate,effective_rate,target,meets_target,\
                              missing,late,evaluated_to,clamped";
