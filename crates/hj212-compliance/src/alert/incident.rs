//! Open incidents of one site and the transitions they produce: raised once, updated only
//! when worse, cleared once. Ids are derived from what opened the incident, so replaying the
//! same archive records gives the same ids (consumers and the store de-duplicate on them).

use std::collections::BTreeMap;

use super::kind::{AlertKind, AlertState, Severity};

/// One alert message: an incident opening, getting worse, or closing.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Transition {
    /// The incident (the same for its raised, updated and cleared messages).
    pub alert_id: String,
    /// This message's number within the incident (1 = raised).
    pub n: u32,
    pub kind: AlertKind,
    pub state: AlertState,
    pub severity: Severity,
    pub mn: String,
    pub factor: Option<String>,
    pub value: Option<f64>,
    pub limit: Option<f64>,
    /// The DataTime (Unix ms) of the data that caused it, where data did.
    pub data_time_ms: Option<i64>,
    /// When it was detected: the archive time of the record, or the clock tick.
    pub detected_ms: i64,
    /// The sequence number of the record that caused it (0: the clock).
    #[serde(skip)]
    pub cause_seq: u64,
    /// When the incident opened.
    pub opened_ms: i64,
    /// The station type (ST) of the frame behind it, for the factor's unit.
    pub st: Option<String>,
    /// Decimals of the text the value came from (capped; see `text.rs`).
    pub decimals: Option<u8>,
    /// Which value was compared with the limit (exceedance kinds).
    pub compared: Option<Compared>,
    /// The data flag behind a flag alert (`abnormal_flag`, `flag_run`, `out_of_range` by T).
    pub flag: Option<String>,
    /// The fleet outage this message belongs to: machines get it, people are not paged for it.
    pub inhibited_by: Option<String>,
    /// A fleet outage: the sites in it (MNs, in the order they went offline, at most
    /// [`super::fleet::LISTED_SITES`]), and how many of them are still offline.
    pub sites: Vec<String>,
    pub still_offline: Option<u32>,
}

/// Which value an exceedance compared with the limit (docs/alerts.md, "Rules").
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "source")]
pub enum Compared {
    /// The logger's converted value (折算值), `ZsRtd` or `ZsAvg`.
    Logger { field: &'static str },
    /// The measured value converted by hj212d to the limit's reference O2 (GB 13223-2011).
    ReferenceO2 { reference: f64, o2: f64, measured: f64 },
    /// The measured value, not converted.
    Measured,
}

impl Transition {
    /// Unique per message: consumers de-duplicate at-least-once deliveries on it.
    pub fn message_id(&self) -> String {
        format!("{}-{}", self.alert_id, self.n)
    }

    /// The message text, in Chinese and in English.
    pub fn messages(&self, ctx: &super::MessageContext<'_, '_>) -> (String, String) {
        super::text::messages(self, ctx)
    }

    /// The data flag of a flag alert (`abnormal_flag`, `flag_run`, and `out_of_range` by flag T).
    pub fn flag_letter(&self) -> Option<&str> {
        let flag = self.flag.as_deref()?;
        let flag_kind = matches!(self.kind, AlertKind::AbnormalFlag | AlertKind::FlagRun)
            || (self.kind == AlertKind::OutOfRange && flag == "T");
        flag_kind.then_some(flag)
    }

    /// The value as the messages show it (the precision sent; see [`super::MAX_DECIMALS`]).
    pub fn value_text(&self) -> Option<String> {
        self.value.map(|value| super::text::compared_number(value, self.decimals, self.limit))
    }
}

/// What caused an observation: the detection time, and an opening key for ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cause {
    pub at_ms: i64,
    /// The archive sequence number of the record, or 0 for a clock tick.
    pub seq: u64,
}

/// The facts of one observation that an incident reports.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Facts<'a> {
    pub factor: Option<&'a str>,
    pub value: Option<f64>,
    pub limit: Option<f64>,
    pub data_time_ms: Option<i64>,
    /// Decimals of the text the value came from.
    pub decimals: Option<u8>,
    pub compared: Option<Compared>,
    pub flag: Option<&'a str>,
    pub st: Option<&'a str>,
}

/// When an open incident is reported again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    Never,
    /// When the value is larger than any reported so far (drift, counts).
    WhenLarger,
    /// Every time: the caller decided it is worse (exceedance, where lower can be worse).
    Always,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Open {
    alert_id: String,
    n: u32,
    opened_ms: i64,
    /// The worst value reported, for "updated only when worse".
    worst: Option<f64>,
}

/// The incidents open at one site, keyed by kind and factor.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Incidents {
    open: BTreeMap<String, Open>,
}

fn key(kind: AlertKind, factor: Option<&str>) -> String {
    match factor {
        Some(factor) => format!("{}/{factor}", kind.as_str()),
        None => kind.as_str().to_owned(),
    }
}

/// FNV-1a, 64 bits: a stable hash (std's hasher may change between releases).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for part in parts {
        for byte in part.iter().chain(&[0xff]) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

impl Incidents {
    pub fn is_open(&self, kind: AlertKind, factor: Option<&str>) -> bool {
        match factor {
            // No allocation: the clock rules ask this of every site every second.
            None => self.open.contains_key(kind.as_str()),
            Some(_) => self.open.contains_key(&key(kind, factor)),
        }
    }

    /// How many are open.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// The open incidents as (kind/factor key, alert id).
    pub fn ids(&self) -> impl Iterator<Item = (&str, &str)> {
        self.open.iter().map(|(k, o)| (k.as_str(), o.alert_id.as_str()))
    }

    /// Opens an incident, or reports it again as `update` says.
    pub fn raise(
        &mut self,
        mn: &str,
        kind: AlertKind,
        facts: Facts<'_>,
        cause: Cause,
        update: Update,
    ) -> Option<Transition> {
        let key = key(kind, facts.factor);
        let (state, open) = match self.open.get_mut(&key) {
            None => {
                let id = incident_id(mn, &key, facts, cause);
                let open = Open { alert_id: id, n: 1, opened_ms: cause.at_ms, worst: facts.value };
                (AlertState::Raised, self.open.entry(key).or_insert(open))
            }
            Some(open) => {
                let larger = match (facts.value, open.worst) {
                    (Some(value), Some(worst)) => value > worst,
                    (Some(_), None) => true,
                    (None, _) => false,
                };
                let report = match update {
                    Update::Never => false,
                    Update::WhenLarger => larger,
                    Update::Always => true,
                };
                if !report {
                    return None;
                }
                open.n += 1;
                open.worst = facts.value;
                (AlertState::Updated, open)
            }
        };
        Some(transition(mn, kind, state, open, facts, cause))
    }

    /// Closes an incident if it is open.
    pub fn clear(&mut self, mn: &str, kind: AlertKind, facts: Facts<'_>, cause: Cause) -> Option<Transition> {
        let mut open = self.open.remove(&key(kind, facts.factor))?;
        open.n += 1;
        Some(transition(mn, kind, AlertState::Cleared, &open, facts, cause))
    }
}

/// A record's incident is named by the record (its sequence number and time); the clock's by
/// what it is about (the last frame of an offline site, the newest missing period, the start of
/// a fleet outage), not by when the clock noticed: nodes of a cluster that follow the same
/// stream name the same incident alike although their clocks tick apart.
fn incident_id(mn: &str, key: &str, facts: Facts<'_>, cause: Cause) -> String {
    let id = if cause.seq == 0 {
        let about = facts.data_time_ms.unwrap_or(0);
        fnv1a(&[mn.as_bytes(), key.as_bytes(), b"clock", &about.to_le_bytes()])
    } else {
        fnv1a(&[mn.as_bytes(), key.as_bytes(), &cause.seq.to_le_bytes(), &cause.at_ms.to_le_bytes()])
    };
    format!("{id:016x}")
}

fn transition(mn: &str, kind: AlertKind, state: AlertState, open: &Open, facts: Facts<'_>, cause: Cause) -> Transition {
    Transition {
        alert_id: open.alert_id.clone(),
        n: open.n,
        kind,
        state,
        severity: kind.severity(),
        mn: mn.to_owned(),
        factor: facts.factor.map(str::to_owned),
        value: facts.value,
        limit: facts.limit,
        data_time_ms: facts.data_time_ms,
        detected_ms: cause.at_ms,
        cause_seq: cause.seq,
        opened_ms: open.opened_ms,
        st: facts.st.map(str::to_owned),
        decimals: facts.decimals,
        compared: facts.compared,
        flag: facts.flag.map(str::to_owned),
        inhibited_by: None,
        sites: Vec::new(),
        still_offline: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raised_once_updated_when_worse_cleared_once_with_stable_ids() {
        let mut incidents = Incidents::default();
        let cause = Cause { at_ms: 1000, seq: 7 };
        let facts = Facts { factor: Some("a21026"), value: Some(40.0), limit: Some(35.0), ..Facts::default() };
        let raised = incidents.raise("MN1", AlertKind::Exceedance, facts, cause, Update::WhenLarger).unwrap();
        assert_eq!((raised.state, raised.n), (AlertState::Raised, 1));
        assert!(incidents.raise("MN1", AlertKind::Exceedance, facts, cause, Update::WhenLarger).is_none(), "not worse");
        let worse = Facts { value: Some(50.0), ..facts };
        let updated = incidents.raise("MN1", AlertKind::Exceedance, worse, cause, Update::WhenLarger).unwrap();
        assert_eq!((updated.state, updated.n, &updated.alert_id), (AlertState::Updated, 2, &raised.alert_id));
        let cleared = incidents.clear("MN1", AlertKind::Exceedance, facts, cause).unwrap();
        assert_eq!(
            (cleared.state, cleared.n, cleared.message_id()),
            (AlertState::Cleared, 3, format!("{}-3", raised.alert_id))
        );
        assert!(incidents.clear("MN1", AlertKind::Exceedance, facts, cause).is_none());
        // The same cause gives the same id (replay); another cause another id.
        let again = incidents.raise("MN1", AlertKind::Exceedance, facts, cause, Update::WhenLarger).unwrap();
        assert_eq!(again.alert_id, raised.alert_id);
        incidents.clear("MN1", AlertKind::Exceedance, facts, cause);
        let other = incidents
            .raise("MN1", AlertKind::Exceedance, facts, Cause { at_ms: 1000, seq: 8 }, Update::WhenLarger)
            .unwrap();
        assert_ne!(other.alert_id, raised.alert_id);
    }
}
