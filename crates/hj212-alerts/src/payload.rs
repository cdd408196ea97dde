//! What subscribers receive: one JSON object per alert message on
//! `{prefix}/alerts/{mn}/{kind}`, and a retained site status on `{prefix}/status/{mn}`.

use hj212_compliance::alert::Transition;
use hj212_proto::time::BeijingTime;
use serde_json::{Value, json};

/// Unix milliseconds as Beijing time, RFC 3339 (`2026-11-01T10:00:00+08:00`).
pub fn beijing(ms: i64) -> String {
    BeijingTime::from_unix_millis(ms).to_rfc3339()
}

/// The topic of an alert message, below the prefix.
pub fn alert_topic(t: &Transition) -> String {
    format!("alerts/{}/{}", t.mn, t.kind.as_str())
}

/// The retained topic of the archive's newest signed checkpoint, below the prefix.
pub const ARCHIVE_HEAD_TOPIC: &str = "archive/head";

/// The archive's newest signed checkpoint, as published (MQTT, `GET /api/v1/archive/head`):
/// enough for an auditor to check it. `record` is the signed text; `expect_head` names the
/// checkpoint's own record, for `hj212-audit verify --expect-head` (so neither the records it
/// signs nor the signature can later be cut or replaced unnoticed).
pub fn checkpoint(head: &hj212_archive::SignedHead) -> Value {
    use hj212_archive::hex;
    let checkpoint = &head.checkpoint;
    json!({
        "seq": checkpoint.seq,
        "head": hex(&checkpoint.head),
        "record_seq": head.record_seq,
        "record_hash": hex(&head.record_hash),
        "expect_head": head.expect_head(),
        "time": beijing(checkpoint.time_ms),
        "time_ms": checkpoint.time_ms,
        "key": hex(&checkpoint.key),
        "key_fingerprint": checkpoint.key_fingerprint(),
        "signature": hex(&checkpoint.signature),
        "adopted": checkpoint.adopted.map(|(from, to)| [from, to]),
        "last": checkpoint.last,
        "record": checkpoint.encode(),
    })
}

/// The topic of a site's status, below the prefix.
pub fn status_topic(mn: &str) -> String {
    format!("status/{mn}")
}

/// An alert message. `id` is unique per message (consumers de-duplicate on it); `alert_id`
/// is the incident, shared by its raised, updated and cleared messages.
pub fn alert(t: &Transition, site: &str) -> Value {
    let (zh, en) = t.messages();
    json!({
        "id": t.message_id(),
        "alert_id": t.alert_id,
        "kind": t.kind.as_str(),
        "state": t.state.as_str(),
        "severity": t.severity.as_str(),
        "mn": t.mn,
        "site": site,
        "factor": t.factor,
        "value": t.value,
        "limit": t.limit,
        "data_time": t.data_time_ms.map(beijing),
        "detected_at": beijing(t.detected_ms),
        "opened_at": beijing(t.opened_ms),
        "message": { "zh": zh, "en": en },
    })
}

/// A site's status: online or not, and its active alerts.
pub fn status(mn: &str, site: &str, online: bool, last_seen_ms: Option<i64>, active: &[Value], now_ms: i64) -> Value {
    json!({
        "mn": mn,
        "site": site,
        "online": online,
        "last_seen": last_seen_ms.map(beijing),
        "active_alerts": active,
        "updated_at": beijing(now_ms),
    })
}
