//! How a stored mark is shown (the API, `hj212-audit rate`): its times in RFC 3339 Beijing
//! time like every other time in the answers, beside the Unix milliseconds the archived
//! [`crate::MarkRequest`] keeps (that JSON is evidence and does not change).

use hj212_proto::time::BeijingTime;
use serde::ser::{Serialize, SerializeStruct, Serializer};

use crate::MarkRecord;

impl Serialize for MarkRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let time = |ms: i64| BeijingTime::from_unix_millis(ms).to_rfc3339();
        let mark = &self.mark;
        let mut out = serializer.serialize_struct("MarkRecord", 12)?;
        out.serialize_field("seq", &self.seq)?;
        out.serialize_field("created", &time(self.created_ms))?;
        out.serialize_field("created_ms", &self.created_ms)?;
        out.serialize_field("mn", &mark.mn)?;
        out.serialize_field("from", &time(mark.from_ms))?;
        out.serialize_field("to", &time(mark.to_ms))?;
        out.serialize_field("from_ms", &mark.from_ms)?;
        out.serialize_field("to_ms", &mark.to_ms)?;
        out.serialize_field("reason", &mark.reason)?;
        out.serialize_field("evidence", &mark.evidence)?;
        out.serialize_field("author", &mark.author)?;
        out.serialize_field("supersedes", &mark.supersedes)?;
        out.end()
    }
}

#[cfg(test)]
mod tests {
    use crate::{MarkRecord, MarkRequest};

    #[test]
    fn a_mark_shows_rfc3339_times_beside_the_archived_milliseconds() {
        let mark = MarkRequest {
            mn: "M1".into(),
            from_ms: 1_795_996_800_000,
            to_ms: 1_796_000_400_000,
            reason: "停产".into(),
            evidence: "notice 7".into(),
            author: "ops".into(),
            supersedes: None,
        };
        let record = MarkRecord { seq: 9, created_ms: 1_795_996_800_123, mark };
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["from"], "2026-11-30T08:00:00.000+08:00");
        assert_eq!(json["to"], "2026-11-30T09:00:00.000+08:00");
        assert_eq!(json["created"], "2026-11-30T08:00:00.123+08:00");
        assert_eq!((json["from_ms"].as_i64(), json["seq"].as_u64()), (Some(1_795_996_800_000), Some(9)));
        assert_eq!(json["reason"], "停产");
    }
}
