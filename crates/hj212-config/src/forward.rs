//! `[[forward]]`: upstream platforms hj212d relays accepted frames to (数据转发), with checks.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Encryption;

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
    /// Connections to the upstream; each site keeps to one of them, so its frames stay in
    /// archive order while the upstream works on several at once.
    #[serde(default = "default_connections")]
    pub connections: usize,
    /// Frames per second sent to the upstream at most (0: no limit). A fleet's live traffic
    /// stays far below it; it paces the catch-up after an outage.
    #[serde(default = "default_catch_up_rate")]
    pub catch_up_rate: u32,
    /// HJ 212-2017 Table 1 (3 resends): a frame the upstream leaves unacknowledged on this many
    /// sends while acknowledging later ones is refused there: it is given up (logged, counted,
    /// still answerable from the archive by a history request) instead of holding back the rest.
    #[serde(default = "default_resends")]
    pub resends: u32,
    /// HJ 212-2025 data commands of encrypting sites go plain to this upstream; otherwise each
    /// such site needs a `key_file` in `rewrite`.
    #[serde(default)]
    pub send_plain: bool,
    /// Commands from the upstream other than history requests go to the logger through the
    /// command channel, and its answers back; otherwise they are refused (9011 QnRtn=2) and
    /// 1012 time sets are logged and archived, never relayed.
    #[serde(default)]
    pub relay_commands: bool,
    /// How sites appear to this upstream where it knows them otherwise.
    #[serde(default)]
    pub rewrite: Vec<Rewrite>,
}

/// One site as an upstream knows it: another MN, another access password, its own SM4 key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    /// The site, as configured in `[[sites]]`.
    pub mn: String,
    /// The MN the upstream knows the site by.
    #[serde(default)]
    pub upstream_mn: Option<String>,
    /// The access password (PW) the upstream expects.
    #[serde(default)]
    pub upstream_password: Option<String>,
    /// The SM4 key this upstream gave the site (16 characters or 32 hex digits), relative to
    /// the config file: its encrypted data commands are re-encrypted under it.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

impl std::fmt::Debug for Rewrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rewrite")
            .field("mn", &self.mn)
            .field("upstream_mn", &self.upstream_mn)
            .field("upstream_password", &self.upstream_password.as_ref().map(|_| "***"))
            .field("key_file", &self.key_file)
            .finish()
    }
}

impl Forward {
    /// A target with every setting at its default.
    pub fn new(name: impl Into<String>, address: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            address: address.into(),
            sites: Vec::new(),
            cns: default_cns(),
            wait_ack: true,
            window: default_window(),
            ack_timeout_secs: default_ack_timeout(),
            connect_timeout_secs: default_connect_timeout(),
            max_backoff_secs: default_max_backoff(),
            degraded_lag_records: default_degraded_lag(),
            connections: default_connections(),
            catch_up_rate: default_catch_up_rate(),
            resends: default_resends(),
            send_plain: false,
            relay_commands: false,
            rewrite: Vec::new(),
        }
    }

    /// Whether `mn`'s frames go to this target.
    pub fn forwards(&self, mn: &str) -> bool {
        self.sites.is_empty() || self.sites.iter().any(|s| s == mn)
    }
}

fn default_cns() -> Vec<String> {
    ["2011", "2051", "2061", "2031"].map(String::from).to_vec()
}
fn yes() -> bool {
    true
}
fn default_window() -> usize {
    64
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
fn default_connections() -> usize {
    16
}
fn default_catch_up_rate() -> u32 {
    5000
}
fn default_resends() -> u32 {
    3
}

/// Frames in flight per connection, at most.
const MAX_WINDOW: usize = 1024;
/// Connections per target, at most.
const MAX_CONNECTIONS: usize = 64;

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
        if !(1..=MAX_CONNECTIONS).contains(&target.connections) {
            problem(&key("connections"), format!("{} is outside 1..={MAX_CONNECTIONS}", target.connections));
        }
        if target.resends == 0 {
            problem(&key("resends"), "must be at least 1 (the first send counts)".to_owned());
        }
        check_rewrites(config, target, &key, problem);
    }
}

/// Each rewrite names a forwarded site once, with MN and password the upstream can parse; an
/// encrypting site has a key for this upstream unless it takes plain frames.
fn check_rewrites(
    config: &crate::Config,
    target: &Forward,
    key: &impl Fn(&str) -> String,
    problem: &mut impl FnMut(&str, String),
) {
    let mut seen = std::collections::HashSet::new();
    for (j, rewrite) in target.rewrite.iter().enumerate() {
        let field = |name: &str| key(&format!("rewrite[{j}].{name}"));
        if !config.sites.iter().any(|s| s.mn == rewrite.mn) || !target.forwards(&rewrite.mn) {
            problem(&field("mn"), format!("{:?} is not a site this target forwards", rewrite.mn));
        } else if !seen.insert(rewrite.mn.as_str()) {
            problem(&field("mn"), format!("{:?} is rewritten twice", rewrite.mn));
        }
        if let Some(mn) = rewrite.upstream_mn.as_ref().filter(|mn| !is_field_value(mn) || mn.len() > 24) {
            problem(&field("upstream_mn"), format!("{mn:?} must be 1-24 characters without ; , = & or spaces"));
        }
        if rewrite.upstream_password.as_ref().is_some_and(|pw| !is_field_value(pw)) {
            // The password itself never reaches a message.
            problem(&field("upstream_password"), "must be 1 or more characters without ; , = & or spaces".to_owned());
        }
        if let Some(reason) = rewrite.key_file.as_deref().and_then(crate::check_alerts::key_file_problem) {
            problem(&field("key_file"), reason);
        }
    }
    if target.send_plain {
        return;
    }
    let keyed = |mn: &str| target.rewrite.iter().any(|r| r.mn == mn && r.key_file.is_some());
    let forwards_encrypted = target.cns.iter().any(|cn| cn.parse().is_ok_and(hj212_proto::encryption::is_encrypted_cn));
    for site in config.sites.iter().filter(|s| s.encryption != Encryption::Off && target.forwards(&s.mn)) {
        if forwards_encrypted && !keyed(&site.mn) {
            problem(
                &key("rewrite"),
                format!(
                    "site {} sends HJ 212-2025 encrypted frames: give it a key_file for this upstream \
                     ([[forward.rewrite]] mn = {:?}) or set send_plain = true",
                    site.mn, site.mn
                ),
            );
        }
    }
}

/// A value that fits a header field (`MN=...;`, `PW=...;`) without breaking the frame.
fn is_field_value(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic() && !b";,=&".contains(&b))
}
