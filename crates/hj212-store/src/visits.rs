//! Service visits (certification spec 4.3.3.2: every service request and visit recorded), as
//! the store keeps them from the archive: corrections supersede, never edit.

use hj212_follow::VisitRequest;
use hj212_proto::time::BeijingTime;
use serde::ser::{Serialize, SerializeStruct, Serializer};

use crate::{Store, StoreError};

/// A visit as archived: its record's sequence number and time, and what was submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitRecord {
    pub seq: u64,
    pub created_ms: i64,
    pub visit: VisitRequest,
}

impl Store {
    /// `mn`'s visits that arrived in `[from_ms, to_ms)`, oldest first, each with the record that
    /// superseded it (if any).
    ///
    /// # Errors
    /// SQL errors.
    pub fn visits_of(&self, mn: &str, from_ms: i64, to_ms: i64) -> Result<Vec<(VisitRecord, Option<u64>)>, StoreError> {
        let mut query = self.conn.prepare_cached(
            "SELECT v.seq, v.created_ms, v.visit,
             (SELECT MIN(later.seq) FROM visits later WHERE later.supersedes = v.seq AND later.mn = v.mn)
             FROM visits v WHERE v.mn = ?1 AND v.arrived_ms >= ?2 AND v.arrived_ms < ?3 ORDER BY v.arrived_ms, v.seq",
        )?;
        let rows = query.query_map(rusqlite::params![mn, from_ms, to_ms], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, String>(2)?, row.get::<_, Option<i64>>(3)?))
        })?;
        let mut visits = Vec::new();
        for row in rows {
            let (seq, created_ms, json, superseded_by) = row?;
            if let Ok(visit) = serde_json::from_str(&json) {
                let record = VisitRecord { seq: u64::try_from(seq).unwrap_or(0), created_ms, visit };
                visits.push((record, superseded_by.and_then(|s| u64::try_from(s).ok())));
            }
        }
        Ok(visits)
    }

    /// Whether `seq` is a visit record of `mn` (a correction may only supersede one).
    ///
    /// # Errors
    /// SQL errors.
    pub fn is_visit_of(&self, mn: &str, seq: u64) -> Result<bool, StoreError> {
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        let mut query = self.conn.prepare_cached("SELECT 1 FROM visits WHERE seq = ?1 AND mn = ?2")?;
        Ok(query.exists(rusqlite::params![seq, mn])?)
    }
}

/// Times in RFC 3339 Beijing time beside the Unix milliseconds the archived JSON keeps.
impl Serialize for VisitRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let time = |ms: i64| BeijingTime::from_unix_millis(ms).to_rfc3339();
        let visit = &self.visit;
        let mut out = serializer.serialize_struct("VisitRecord", 12)?;
        out.serialize_field("seq", &self.seq)?;
        out.serialize_field("created", &time(self.created_ms))?;
        out.serialize_field("mn", &visit.mn)?;
        out.serialize_field("alert_id", &visit.alert_id)?;
        out.serialize_field("arrived_at", &time(visit.arrived_ms))?;
        out.serialize_field("left_at", &time(visit.left_ms))?;
        out.serialize_field("arrived_ms", &visit.arrived_ms)?;
        out.serialize_field("left_ms", &visit.left_ms)?;
        out.serialize_field("by", &visit.by)?;
        out.serialize_field("work", &visit.work)?;
        out.serialize_field("result", &visit.result)?;
        out.serialize_field("supersedes", &visit.supersedes)?;
        out.end()
    }
}
