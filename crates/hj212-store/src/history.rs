//! The rules in force over time (issue 16): the daemon archives each site's effective rules at
//! start and at each reload when they changed (verdict `config`, one record per site), the
//! store keeps them (`config_history`), and a rate over a range applies, in each stretch of it,
//! the rules in force there. docs/compliance.md §1.4 states the rule: a site's config record
//! takes effect at the first period (of its own basis) that starts at or after it; the site's
//! first record also covers the time before it (hj212d kept no history then).

use std::collections::HashMap;

use hj212_compliance::{Range, Report};
use hj212_config::{Config, Site};
use hj212_follow::ConfigRecord;
use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::{Evidence, Store, StoreError, rules_for};

/// What leaves the site's config before it is archived: secrets.
const SECRETS: [&str; 3] = ["password", "key_file", "previous_key_file"];

/// Each site's effective rules as archived: the site without its secrets, with the alert rules
/// that apply to it, and the service targets; hashed over that JSON.
pub fn config_records(config: &Config) -> Vec<ConfigRecord> {
    let service = serde_json::to_value(&config.service).unwrap_or_default();
    let mut records = Vec::with_capacity(config.sites.len());
    for site in &config.sites {
        let mut value = serde_json::to_value(site).unwrap_or_default();
        if let Some(fields) = value.as_object_mut() {
            for secret in SECRETS {
                fields.remove(secret);
            }
            let alerts = site.alerts.as_ref().unwrap_or(&config.alerts);
            fields.insert("alerts".to_owned(), serde_json::to_value(alerts).unwrap_or_default());
        }
        let canonical = serde_json::json!({ "site": value, "service": service }).to_string();
        let hash = hj212_archive::hex(&Sha256::digest(canonical.as_bytes()));
        records.push(ConfigRecord { mn: site.mn.clone(), hash, site: value, service: service.clone() });
    }
    records
}

/// A stretch of a range and the site's config in force there.
#[derive(Debug, Clone)]
pub struct Stretch {
    pub range: Range,
    pub site: Site,
    /// The hash of the config record it comes from.
    pub hash: String,
}

fn site_of(record: &ConfigRecord) -> Option<Site> {
    let mut value = record.site.clone();
    // The archived rules carry no password; a Site needs one to deserialise.
    value.as_object_mut()?.insert("password".to_owned(), serde_json::Value::String(String::new()));
    serde_json::from_value(value).ok()
}

impl Store {
    /// The hash of each site's newest config record applied.
    ///
    /// # Errors
    /// SQL errors.
    pub fn latest_config_hashes(&self) -> Result<HashMap<String, String>, StoreError> {
        let mut query = self.conn.prepare_cached(
            "SELECT mn, hash FROM config_history c WHERE seq = (SELECT MAX(seq) FROM config_history WHERE mn = c.mn)",
        )?;
        let rows = query.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every site with a config record, as its newest record has it (no password).
    ///
    /// # Errors
    /// SQL errors.
    pub fn latest_config_sites(&self) -> Result<Vec<Site>, StoreError> {
        let mut query = self.conn.prepare_cached(
            "SELECT record FROM config_history c WHERE seq = (SELECT MAX(seq) FROM config_history WHERE mn = c.mn)
             ORDER BY mn",
        )?;
        let rows = query.query_map([], |row| row.get::<_, String>(0))?;
        let mut sites = Vec::new();
        for text in rows {
            if let Some(site) = serde_json::from_str::<ConfigRecord>(&text?).ok().as_ref().and_then(site_of) {
                sites.push(site);
            }
        }
        Ok(sites)
    }

    /// The service targets of the newest config record (the defaults before any).
    ///
    /// # Errors
    /// SQL errors.
    pub fn latest_service(&self) -> Result<hj212_config::Service, StoreError> {
        let mut query = self.conn.prepare_cached("SELECT record FROM config_history ORDER BY seq DESC LIMIT 1")?;
        let text: Option<String> = query.query_row([], |row| row.get(0)).optional()?;
        let record = text.and_then(|t| serde_json::from_str::<ConfigRecord>(&t).ok());
        Ok(record.and_then(|r| serde_json::from_value(r.service).ok()).unwrap_or_default())
    }

    /// `range` cut where `mn`'s archived rules changed, each stretch with the site's config in
    /// force. Empty when no config record names the site.
    ///
    /// # Errors
    /// SQL errors.
    pub fn stretches(&self, mn: &str, range: Range) -> Result<Vec<Stretch>, StoreError> {
        // The site's newest record at or before the range's start (or its first), then those inside.
        let mut query = self.conn.prepare_cached(
            "SELECT time_ms, record FROM config_history
             WHERE mn = ?1 AND time_ms < ?3
               AND seq >= COALESCE((SELECT MAX(seq) FROM config_history WHERE mn = ?1 AND time_ms <= ?2),
                                   (SELECT MIN(seq) FROM config_history WHERE mn = ?1))
             ORDER BY seq",
        )?;
        let rows = query.query_map(params![mn, range.from_ms, range.to_ms], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })?;
        let mut changes: Vec<(i64, Site, String)> = Vec::new();
        for row in rows {
            let (time_ms, text) = row?;
            let Ok(record) = serde_json::from_str::<ConfigRecord>(&text) else { continue };
            let Some(site) = site_of(&record) else { continue };
            // A change takes effect at the first period of the new rules starting at or after it.
            let basis = rules_for(&site).basis;
            let start = basis.period_start(time_ms);
            let from = if start == time_ms { start } else { start + basis.period_ms() };
            changes.push((from.max(range.from_ms), site, record.hash));
        }
        if let Some(first) = changes.first_mut() {
            first.0 = range.from_ms;
        }
        let mut stretches = Vec::new();
        for (i, (from_ms, site, hash)) in changes.iter().enumerate() {
            let to_ms = changes.get(i + 1).map_or(range.to_ms, |next| next.0).min(range.to_ms);
            if to_ms > *from_ms {
                let range = Range { from_ms: *from_ms, to_ms };
                stretches.push(Stretch { range, site: site.clone(), hash: hash.clone() });
            }
        }
        Ok(stretches)
    }

    /// `mn`'s rate over `range` under the rules in force in each stretch of it, as one
    /// evidence (counts and lists summed; the target and basis shown are the last stretch's).
    /// `None` when no config record names the site.
    ///
    /// # Errors
    /// SQL errors.
    pub fn site_rate_as_configured(&self, mn: &str, range: Range, now_ms: i64) -> Result<Option<Evidence>, StoreError> {
        self.rate_over(&self.stretches(mn, range)?, range, now_ms)
    }

    /// As [`Store::site_rate_as_configured`], over stretches the caller has already read.
    ///
    /// # Errors
    /// SQL errors.
    pub fn rate_over(&self, stretches: &[Stretch], range: Range, now_ms: i64) -> Result<Option<Evidence>, StoreError> {
        let mut parts = Vec::with_capacity(stretches.len());
        for stretch in stretches {
            let mut evidence = self.site_rate(&stretch.site, &rules_for(&stretch.site), stretch.range, now_ms)?;
            evidence.config = vec![(stretch.range, stretch.hash.clone(), stretch.site.factors.clone())];
            parts.push(evidence);
        }
        Ok(merge(parts, range))
    }
}

/// One evidence from the stretches' evidences.
fn merge(parts: Vec<Evidence>, range: Range) -> Option<Evidence> {
    let mut parts = parts.into_iter();
    let mut merged = parts.next()?;
    for part in parts {
        let (a, b) = (&merged.report, &part.report);
        let mut report = Report::from_counts(
            a.due + b.due,
            a.received + b.received,
            a.valid + b.valid,
            a.late + b.late,
            a.evaluated_to_ms.max(b.evaluated_to_ms),
            &part.rules,
        );
        report.missing = [a.missing.as_slice(), b.missing.as_slice()].concat();
        report.invalid = [a.invalid.as_slice(), b.invalid.as_slice()].concat();
        report.late_periods = [a.late_periods.as_slice(), b.late_periods.as_slice()].concat();
        merged.report = report;
        merged.archive_seqs = match (merged.archive_seqs, part.archive_seqs) {
            (Some((a0, a1)), Some((b0, b1))) => Some((a0.min(b0), a1.max(b1))),
            (a, b) => a.or(b),
        };
        for mark in part.marks {
            if !merged.marks.iter().any(|m| m.seq == mark.seq) {
                merged.marks.push(mark);
            }
        }
        merged.config.extend(part.config);
        merged.rules = part.rules;
        merged.factors = part.factors;
    }
    merged.range = range;
    Some(merged)
}
