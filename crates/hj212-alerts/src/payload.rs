//! What subscribers receive: one JSON object per alert message on
//! `{prefix}/alerts/{mn}/{kind}`, and a retained site status on `{prefix}/status/{mn}`.

use hj212_compliance::alert::{AlertKind, MessageContext, Transition, flag_meaning};
use hj212_proto::model::Factor;
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

/// What an alert payload needs beyond the transition: site names and the console's address.
#[derive(Clone, Copy)]
pub struct Names<'a> {
    /// The configured name of a site, by MN.
    pub site_name: &'a dyn Fn(&str) -> Option<&'a str>,
    /// `[http] public_url`, without a trailing `/`.
    pub public_url: Option<&'a str>,
}

impl std::fmt::Debug for Names<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Names").field("public_url", &self.public_url).finish_non_exhaustive()
    }
}

/// The console page of the alert: the site's page, or the alerts page for a fleet outage.
pub fn link(t: &Transition, public_url: Option<&str>) -> Option<String> {
    let base = public_url?.trim_end_matches('/');
    Some(if t.kind == AlertKind::FleetOutage {
        format!("{base}/console/alerts")
    } else {
        format!("{base}/console/sites/{}", t.mn)
    })
}

/// The unit of `value` and `limit`: the factor's at the frame's ST, seconds, or none (counts).
fn unit(t: &Transition) -> Option<&'static str> {
    match t.kind {
        AlertKind::Offline | AlertKind::ClockDrift => Some("s"),
        AlertKind::RecordMissing | AlertKind::AuthFailure | AlertKind::Tamper | AlertKind::FleetOutage => None,
        _ => {
            let st = t.st.as_deref();
            let factor = Factor::lookup(t.factor.as_deref()?, st)?;
            Some(factor.unit_for(st)).filter(|u| !u.is_empty())
        }
    }
}

/// An alert message. `id` is unique per message (consumers de-duplicate on it); `alert_id`
/// is the incident, shared by its raised, updated and cleared messages. Every field is in
/// docs/alerts.md; fields are only ever added.
pub fn alert(t: &Transition, names: &Names<'_>) -> Value {
    let link = link(t, names.public_url);
    let ctx = MessageContext { site_name: names.site_name, link: link.as_deref() };
    let (zh, en) = t.messages(&ctx);
    let (title_zh, title_en) = t.kind.titles();
    let site = (names.site_name)(&t.mn).unwrap_or("");
    let factor = t.factor.as_deref().and_then(|code| Factor::lookup(code, t.st.as_deref()));
    let flag = t.flag_letter();
    let sites: Vec<Value> =
        t.sites.iter().map(|mn| json!({ "mn": mn, "site": (names.site_name)(mn).unwrap_or("") })).collect();
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
        "title": { "zh": title_zh, "en": title_en },
        "factor_name": factor.map(|f| json!({ "zh": f.name_zh, "en": f.name })),
        "unit": unit(t),
        "st": t.st,
        "value_text": t.value_text(),
        "limit_text": t.limit.map(|l| l.to_string()),
        "compared": t.compared,
        "flag": flag,
        "flag_meaning": flag.map(|f| { let (zh, en) = flag_meaning(f); json!({ "zh": zh, "en": en }) }),
        "link": link,
        "inhibited_by": t.inhibited_by,
        "sites": if t.kind == AlertKind::FleetOutage { Some(sites) } else { None },
        "still_offline": t.still_offline,
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
