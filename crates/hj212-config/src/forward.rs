//! `[[forward]]`: upstream platforms hj212d relays accepted frames to (数据转发), with checks.

use serde::{Deserialize, Serialize};

/// One upstream HJ 212 platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forward {
    /// Names the target in metrics, logs and its cursor file (`forward-NAME.cursor`).
    pub name: String,
    /// host:port of the upstream's HJ 212 listener.
    pub address: String,
    /// MNs to forward; empty = every configured site.
    #[serde(default)]
    pub sites: Vec<String>,
    /// CNs to forward (4 digits).
    #[serde(default = "default_cns")]
    pub cns: Vec<String>,
    /// Wait for the upstream's 9014 when the frame's Flag asks for one; the position advances
    /// only past acknowledged frames.
    #[serde(default = "yes")]
    pub wait_ack: bool,
    /// Frames sent and not yet acknowledged, at most (duplicates after a crash stay within it).
    #[serde(default = "default_window")]
    pub window: usize,
    /// HJ 212-2017 Table 1 (10 s): no 9014 within this is a broken link: reconnect and resend
    /// from the last acknowledged frame (same bytes, same QN, so the upstream's dedup sees a resend).
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout_secs: u64,
    /// Connecting to the upstream gives up after this.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Reconnects wait 0.5 s, doubling up to this.
    #[serde(default = "default_max_backoff")]
    pub max_backoff_secs: u64,
    /// `/readyz` says degraded from this lag on (records behind the archive).
    #[serde(default = "default_degraded_lag")]
    pub degraded_lag_records: u64,
}

fn default_cns() -> Vec<String> {
    ["2011", "2051", "2061", "2031"].map(String::from).to_vec()
}
fn yes() -> bool {
    true
}
fn default_window() -> usize {
    16
}
fn default_ack_timeout() -> u64 {
    10
}
fn default_connect_timeout() -> u64 {
    10
}
fn default_max_backoff() -> u64 {
    30
}
fn default_degraded_lag() -> u64 {
    100_000
}

/// Frames in flight per target, at most.
const MAX_WINDOW: usize = 1024;

/// Checks every `[[forward]]` table.
pub(crate) fn check_forward(config: &crate::Config, problem: &mut impl FnMut(&str, String)) {
    let mut names = std::collections::HashSet::new();
    for (i, target) in config.forward.iter().enumerate() {
        let key = |field: &str| format!("forward[{i}].{field}");
        let name_ok = !target.name.is_empty()
            && target.name.len() <= 32
            && target.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            problem(&key("name"), format!("{:?} must be 1-32 letters, digits, - or _", target.name));
        } else if !names.insert(target.name.as_str()) {
            problem(&key("name"), format!("{:?} names two targets", target.name));
        }
        if target.address.rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err()) {
            problem(&key("address"), format!("{:?} is not host:port", target.address));
        }
        if !(1..=MAX_WINDOW).contains(&target.window) {
            problem(&key("window"), format!("{} is outside 1..={MAX_WINDOW}", target.window));
        }
        for (field, value) in [
            ("ack_timeout_secs", target.ack_timeout_secs),
            ("connect_timeout_secs", target.connect_timeout_secs),
            ("max_backoff_secs", target.max_backoff_secs),
        ] {
            if value == 0 {
                problem(&key(field), "must be at least 1 second".to_owned());
            }
        }
        if let Some(cn) = target.cns.iter().find(|cn| cn.len() != 4 || cn.parse::<u16>().is_err()) {
            problem(&key("cns"), format!("{cn:?} is not a 4-digit CN"));
        }
        if let Some(mn) = target.sites.iter().find(|mn| !config.sites.iter().any(|s| &s.mn == *mn)) {
            problem(&key("sites"), format!("{mn:?} is not a configured site"));
        }
    }
}
