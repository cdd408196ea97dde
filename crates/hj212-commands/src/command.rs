//! A command and its states, as the queue, the book and the API see it.

use hj212_proto::time::BeijingTime;
use serde_json::{Value, json};

use crate::spec::{CommandSpec, Exchange};

/// Where a command is in its exchange (HJ 212-2017 §6.1: request, 9011, data, 9012).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for its site's connection and its turn (one in flight per site).
    Queued,
    /// Written to the logger; waiting for the 9011 (or the 9013 of a notification).
    Sent,
    /// QnRtn = 1: the logger executes; waiting for the data and the 9012.
    Accepted,
    /// QnRtn != 1.
    Rejected,
    /// ExeRtn = 1, or the 9013 of a notification.
    Completed,
    /// ExeRtn != 1, or a timeout.
    Failed,
    /// Never delivered within its time to live.
    Expired,
    /// Cancelled by an operator while queued.
    Cancelled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Queued,
            Self::Sent,
            Self::Accepted,
            Self::Rejected,
            Self::Completed,
            Self::Failed,
            Self::Expired,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    pub fn is_final(self) -> bool {
        !matches!(self, Self::Queued | Self::Sent | Self::Accepted)
    }
}

/// Who asked for a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// An operator through the admin API.
    Api,
    /// The gap-recovery sweep.
    Recovery,
    /// An upstream platform, relayed by a forwarder (`relay_commands`).
    Upstream,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Recovery => "recovery",
            Self::Upstream => "upstream",
        }
    }

    pub fn parse(text: &str) -> Self {
        match text {
            "recovery" => Self::Recovery,
            "upstream" => Self::Upstream,
            _ => Self::Api,
        }
    }
}

/// One command and everything that happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub id: u64,
    pub mn: String,
    pub spec: CommandSpec,
    pub origin: Origin,
    pub state: State,
    /// The QN it was sent with (Beijing time to the millisecond); replies echo it.
    pub qn: Option<String>,
    pub qn_rtn: Option<u16>,
    pub exe_rtn: Option<u16>,
    /// Times written to the logger (resends after a missing 9011 included).
    pub sends: u32,
    /// Records of the requested CN received while it ran (history answers).
    pub records: u64,
    /// Why it ended as it did, in words (a code's meaning, a timeout).
    pub reason: Option<String>,
    pub created_ms: i64,
    pub sent_ms: Option<i64>,
    pub accepted_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub expires_ms: i64,
}

impl Command {
    /// The id as the API shows it.
    pub fn public_id(&self) -> String {
        format!("c-{:06}", self.id)
    }

    /// Ends the command in `state` at `now_ms`.
    pub(crate) fn finish(&mut self, state: State, reason: Option<String>, now_ms: i64) {
        self.state = state;
        self.reason = reason;
        self.finished_ms = Some(now_ms);
    }

    /// The API's view (times in Beijing RFC 3339).
    pub fn to_json(&self) -> Value {
        let time = |ms: Option<i64>| ms.map(|ms| BeijingTime::from_unix_millis(ms).to_rfc3339());
        let cp: serde_json::Map<String, Value> =
            self.spec.cp.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        json!({
            "id": self.public_id(),
            "mn": self.mn,
            "cn": format!("{:04}", self.spec.cn),
            "cp": cp,
            "exchange": match self.spec.exchange { Exchange::Request => "request", Exchange::Notification => "notification" },
            "state": self.state.as_str(),
            "origin": self.origin.as_str(),
            "qn": self.qn,
            "qn_rtn": self.qn_rtn,
            "exe_rtn": self.exe_rtn,
            "sends": self.sends,
            "records": self.records,
            "reason": self.reason,
            "created": time(Some(self.created_ms)),
            "sent": time(self.sent_ms),
            "accepted": time(self.accepted_ms),
            "finished": time(self.finished_ms),
            "expires": time(Some(self.expires_ms)),
        })
    }
}

/// Parses an id as the API shows it (`c-000123`) or bare (`123`).
pub fn parse_id(text: &str) -> Option<u64> {
    text.strip_prefix("c-").unwrap_or(text).parse().ok()
}

/// HJ 212-2017 Table 7: what a QnRtn code means.
pub fn qn_rtn_meaning(code: u16) -> &'static str {
    match code {
        1 => "ready to execute",
        2 => "request refused",
        3 => "PW wrong",
        4 => "MN wrong",
        5 => "ST wrong",
        6 => "Flag wrong",
        7 => "QN wrong",
        8 => "CN wrong",
        9 => "CRC wrong",
        100 => "unknown error",
        _ => "code not in HJ 212-2017 Table 7",
    }
}

/// HJ 212-2017 Table 6: what an ExeRtn code means.
pub fn exe_rtn_meaning(code: u16) -> &'static str {
    match code {
        1 => "success",
        2 => "failed, reason unknown",
        3 => "request condition error",
        4 => "communication timeout",
        5 => "system busy",
        6 => "system fault",
        100 => "no data",
        _ => "code not in HJ 212-2017 Table 6",
    }
}
