//! `[[notify]]`: channels that bring alert messages to people (a JSON webhook, DingTalk and
//! WeCom group robots, e-mail), with routing, quiet hours and rate limits, and their checks.
//! Robot URLs carry access tokens, so every secret is read from a file named here.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What a channel speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyKind {
    /// HTTP POST of the alert JSON as it is.
    Webhook,
    /// DingTalk group robot (钉钉群机器人), markdown message, optional signed URL.
    Dingtalk,
    /// WeCom group robot (企业微信群机器人), markdown message.
    Wecom,
    /// SMTP.
    Email,
}

impl NotifyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Dingtalk => "dingtalk",
            Self::Wecom => "wecom",
            Self::Email => "email",
        }
    }
}

/// The language of the messages a channel renders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyLanguage {
    #[default]
    Zh,
    En,
    Both,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required, never skipped).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
    /// No encryption: only to a loopback server (a local relay).
    None,
}

/// One notification channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// Names the channel in metrics, logs, `/api/v1/notify` and its outbox position.
    pub name: String,
    pub kind: NotifyKind,
    /// webhook, dingtalk, wecom: a file holding the URL (robot URLs carry the access token);
    /// relative to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    /// webhook: a file holding a bearer token sent as `Authorization: Bearer ...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// dingtalk: a file holding the robot's signing secret (加签, "SEC..."): the URL gets
    /// `timestamp` and `sign`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// Sites (MNs) whose messages go here; empty = every site.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<String>,
    /// Alert kinds (`exceedance`, `offline`, ...); empty = every kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    /// `critical`, `warning`, `info`; empty = every severity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub severities: Vec<String>,
    /// `raised`, `updated`, `cleared`; empty = every state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub states: Vec<String>,
    /// Beijing time "HH:MM-HH:MM" (may span midnight): non-critical messages wait and go as
    /// one digest when it ends; critical ones go at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<String>,
    #[serde(default)]
    pub language: NotifyLanguage,
    /// Messages per minute at most (DingTalk robots take about 20); beyond it the waiting
    /// messages are merged into one digest. 0 = the kind's default (20 for the robots, 60
    /// for webhook and e-mail).
    #[serde(default)]
    pub max_per_minute: u32,
    /// Outbox messages this channel may hold while it cannot deliver; beyond it the oldest
    /// are given up for this channel (counted, logged) so the outbox stays bounded.
    #[serde(default = "default_max_pending")]
    pub max_pending: u64,
    /// Each attempt (connect, send, answer) gives up after this.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Failed sends are retried after 1 s, doubling up to this.
    #[serde(default = "default_max_backoff")]
    pub max_backoff_secs: u64,
    /// email: SMTP server host name (also the name its certificate must carry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_server: Option<String>,
    /// email: 0 = the default of `tls` (587 for starttls, 465 for tls, 25 for none).
    #[serde(default)]
    pub smtp_port: u16,
    #[serde(default)]
    pub tls: SmtpTls,
    /// email: a PEM file of CA certificates trusted for the server (a private CA); without
    /// it, the system's trust roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

fn default_max_pending() -> u64 {
    10_000
}
fn default_timeout() -> u64 {
    10
}
fn default_max_backoff() -> u64 {
    60
}

impl Notify {
    /// A channel with every setting at its default.
    pub fn new(name: impl Into<String>, kind: NotifyKind) -> Self {
        Self {
            name: name.into(),
            kind,
            url_file: None,
            token_file: None,
            secret_file: None,
            sites: Vec::new(),
            kinds: Vec::new(),
            severities: Vec::new(),
            states: Vec::new(),
            quiet_hours: None,
            language: NotifyLanguage::default(),
            max_per_minute: 0,
            max_pending: default_max_pending(),
            timeout_secs: default_timeout(),
            max_backoff_secs: default_max_backoff(),
            smtp_server: None,
            smtp_port: 0,
            tls: SmtpTls::default(),
            ca_file: None,
            from: None,
            to: Vec::new(),
            username: None,
            password_file: None,
        }
    }

    /// `max_per_minute`, or the kind's default.
    pub fn rate_per_minute(&self) -> u32 {
        match (self.max_per_minute, self.kind) {
            (0, NotifyKind::Dingtalk | NotifyKind::Wecom) => 20,
            (0, NotifyKind::Webhook | NotifyKind::Email) => 60,
            (n, _) => n,
        }
    }

    /// `smtp_port`, or the default of `tls`.
    pub fn port(&self) -> u16 {
        match (self.smtp_port, self.tls) {
            (0, SmtpTls::Starttls) => 587,
            (0, SmtpTls::Tls) => 465,
            (0, SmtpTls::None) => 25,
            (port, _) => port,
        }
    }
}

/// Quiet hours in minutes of the Beijing day: `[start, end)`, across midnight when end < start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start_minute: u16,
    pub end_minute: u16,
}

impl QuietHours {
    /// Parses "HH:MM-HH:MM".
    ///
    /// # Errors
    /// Why the text is not two distinct times of day.
    pub fn parse(text: &str) -> Result<Self, String> {
        let minute = |t: &str| -> Option<u16> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60 && t.trim().len() == 5).then_some(h * 60 + m)
        };
        let bad = || format!("{text:?} is not \"HH:MM-HH:MM\" (Beijing time, e.g. \"22:00-07:00\")");
        let (start, end) = text.split_once('-').ok_or_else(bad)?;
        let (start_minute, end_minute) = (minute(start).ok_or_else(bad)?, minute(end).ok_or_else(bad)?);
        if start_minute == end_minute {
            return Err(format!("{text:?} starts and ends at the same time"));
        }
        Ok(Self { start_minute, end_minute })
    }

    /// Whether `minute` of the Beijing day falls in the quiet hours.
    pub fn contains(self, minute: u16) -> bool {
        if self.start_minute < self.end_minute {
            (self.start_minute..self.end_minute).contains(&minute)
        } else {
            minute >= self.start_minute || minute < self.end_minute
        }
    }
}

/// The alert kinds `kinds` may name (hj212-compliance's `AlertKind::ALL`; a test in
/// hj212-alerts keeps the two equal).
pub const ALERT_KINDS: &[&str] = &[
    "exceedance",
    "exceedance_warning",
    "implausible_o2",
    "negative",
    "zero",
    "flat_line",
    "jump",
    "out_of_range",
    "abnormal_flag",
    "flag_run",
    "offline",
    "record_missing",
    "clock_drift",
    "auth_failure",
    "tamper",
    "fleet_outage",
];
/// The severities `severities` may name.
pub const ALERT_SEVERITIES: &[&str] = &["critical", "warning", "info"];
/// The states `states` may name.
pub const ALERT_STATES: &[&str] = &["raised", "updated", "cleared"];

/// Checks every `[[notify]]` table.
pub(crate) fn check_notify(config: &crate::Config, problem: &mut impl FnMut(&str, String)) {
    let mut names = std::collections::HashSet::new();
    for (i, channel) in config.notify.iter().enumerate() {
        let key = |field: &str| format!("notify[{i}].{field}");
        let name_ok = !channel.name.is_empty()
            && channel.name.len() <= 32
            && channel.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            problem(&key("name"), format!("{:?} must be 1-32 letters, digits, - or _", channel.name));
        } else if channel.name == "mqtt" || !names.insert(channel.name.as_str()) {
            problem(&key("name"), format!("{:?} names another channel (or the MQTT publisher)", channel.name));
        }
        check_routing(config, channel, &key, problem);
        check_kind(channel, &key, problem);
        for (field, file) in [
            ("url_file", &channel.url_file),
            ("token_file", &channel.token_file),
            ("secret_file", &channel.secret_file),
            ("ca_file", &channel.ca_file),
            ("password_file", &channel.password_file),
        ] {
            if let Some(message) = file.as_ref().and_then(|f| crate::host::unreadable(&crate::resolve(config, f))) {
                problem(&key(field), message);
            }
        }
        if let Some(message) = channel.url_file.as_ref().and_then(|f| url_problem(&crate::resolve(config, f))) {
            problem(&key("url_file"), message);
        }
        for (field, value) in [("timeout_secs", channel.timeout_secs), ("max_backoff_secs", channel.max_backoff_secs)] {
            if value == 0 {
                problem(&key(field), "must be at least 1 second".to_owned());
            }
        }
        if channel.max_pending == 0 {
            problem(&key("max_pending"), "must be at least 1".to_owned());
        }
    }
}

fn check_routing(
    config: &crate::Config,
    channel: &Notify,
    key: &impl Fn(&str) -> String,
    problem: &mut impl FnMut(&str, String),
) {
    if let Some(mn) = channel.sites.iter().find(|mn| !config.sites.iter().any(|s| &s.mn == *mn)) {
        problem(&key("sites"), format!("{mn:?} is not a configured site"));
    }
    for (field, values, known) in [
        ("kinds", &channel.kinds, ALERT_KINDS),
        ("severities", &channel.severities, ALERT_SEVERITIES),
        ("states", &channel.states, ALERT_STATES),
    ] {
        if let Some(value) = values.iter().find(|v| !known.contains(&v.as_str())) {
            problem(&key(field), format!("{value:?} is not one of {}", known.join(", ")));
        }
    }
    if let Some(Err(message)) = channel.quiet_hours.as_deref().map(QuietHours::parse) {
        problem(&key("quiet_hours"), message);
    }
}

/// The fields each kind needs, and the ones it does not use (a typo'd kind would otherwise
/// silently ignore them).
fn check_kind(channel: &Notify, key: &impl Fn(&str) -> String, problem: &mut impl FnMut(&str, String)) {
    let kind = channel.kind.as_str();
    let email = channel.kind == NotifyKind::Email;
    let mut unused = |field: &str, set: bool| {
        if set {
            problem(&key(field), format!("is not used by kind = {kind:?}"));
        }
    };
    unused("url_file", email && channel.url_file.is_some());
    unused("token_file", channel.kind != NotifyKind::Webhook && channel.token_file.is_some());
    unused("secret_file", channel.kind != NotifyKind::Dingtalk && channel.secret_file.is_some());
    for (field, set) in [
        ("smtp_server", channel.smtp_server.is_some()),
        ("smtp_port", channel.smtp_port != 0),
        ("ca_file", channel.ca_file.is_some()),
        ("from", channel.from.is_some()),
        ("to", !channel.to.is_empty()),
        ("username", channel.username.is_some()),
        ("password_file", channel.password_file.is_some()),
    ] {
        unused(field, !email && set);
    }
    if !email {
        if channel.url_file.is_none() {
            problem(&key("url_file"), format!("kind = {kind:?} needs a url_file (the URL is a secret)"));
        }
        return;
    }
    check_email(channel, key, problem);
}

fn check_email(channel: &Notify, key: &impl Fn(&str) -> String, problem: &mut impl FnMut(&str, String)) {
    match channel.smtp_server.as_deref() {
        None | Some("") => problem(&key("smtp_server"), "kind = \"email\" needs an smtp_server".to_owned()),
        Some(server) if channel.tls == SmtpTls::None && !is_loopback(server) => problem(
            &key("tls"),
            format!("\"none\" sends passwords and alerts in clear: only to a loopback server, not {server:?}"),
        ),
        Some(_) => {}
    }
    if channel.from.as_deref().is_none_or(|f| !looks_like_address(f)) {
        problem(&key("from"), format!("{:?} is not an e-mail address", channel.from.as_deref().unwrap_or("")));
    }
    if channel.to.is_empty() {
        problem(&key("to"), "kind = \"email\" needs at least one recipient".to_owned());
    }
    if let Some(to) = channel.to.iter().find(|t| !looks_like_address(t)) {
        problem(&key("to"), format!("{to:?} is not an e-mail address"));
    }
    if channel.password_file.is_some() != channel.username.is_some() {
        problem(&key("password_file"), "username and password_file go together".to_owned());
    }
    if channel.ca_file.is_some() && channel.tls == SmtpTls::None {
        problem(&key("ca_file"), "only used with tls = \"starttls\" or \"tls\"".to_owned());
    }
}

/// Why the URL file does not hold an http(s) URL (the message never shows the URL: it holds
/// the access token). An unreadable file is reported as such elsewhere.
fn url_problem(path: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let url = text.trim();
    let ok = ["http://", "https://"].iter().any(|scheme| url.strip_prefix(scheme).is_some_and(|rest| !rest.is_empty()))
        && !url.contains(char::is_whitespace);
    (!ok).then(|| format!("{} does not hold one http:// or https:// URL", path.display()))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A plain `local@domain` (no display name: the address is what the server needs).
fn looks_like_address(text: &str) -> bool {
    text.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && !domain.is_empty() && !text.contains(char::is_whitespace) && !domain.contains('@')
    })
}

#[cfg(test)]
mod tests {
    use super::QuietHours;

    #[test]
    fn every_problem_names_its_field() {
        let config = crate::from_str(
            r#"
            [[sites]]
            mn = "A"
            password = "1"

            [[notify]]
            name = "duty robot"
            kind = "wecom"
            secret_file = "/nonexistent/secret"
            sites = ["B"]
            kinds = ["exceedence"]
            quiet_hours = "22:00"
            timeout_secs = 0

            [[notify]]
            name = "mail"
            kind = "email"
            smtp_server = "smtp.example.com"
            tls = "none"
            from = "not an address"
            password_file = "/nonexistent/password"
            "#,
        )
        .unwrap();
        let problems: Vec<String> = crate::check(&config).iter().map(|p| format!("{}: {}", p.key, p.message)).collect();
        for expected in [
            "notify[0].name: \"duty robot\" must be 1-32 letters, digits, - or _",
            "notify[0].sites: \"B\" is not a configured site",
            "notify[0].kinds: \"exceedence\" is not one of",
            "notify[0].quiet_hours: \"22:00\" is not \"HH:MM-HH:MM\"",
            "notify[0].secret_file: is not used by kind = \"wecom\"",
            "notify[0].url_file: kind = \"wecom\" needs a url_file",
            "notify[0].secret_file: cannot read /nonexistent/secret",
            "notify[0].timeout_secs: must be at least 1 second",
            "notify[1].tls: \"none\" sends passwords and alerts in clear: only to a loopback server",
            "notify[1].from: \"not an address\" is not an e-mail address",
            "notify[1].to: kind = \"email\" needs at least one recipient",
            "notify[1].password_file: username and password_file go together",
            "notify[1].password_file: cannot read /nonexistent/password",
        ] {
            assert!(problems.iter().any(|p| p.starts_with(expected)), "{expected}\nin {problems:#?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let bad_url = dir.path().join("robot.url");
        std::fs::write(&bad_url, "oapi.dingtalk.com/robot/send?access_token=SECRET-TOKEN\n").unwrap();
        let mut config = config;
        config.notify[0].url_file = Some(bad_url);
        let problems: Vec<String> = crate::check(&config).iter().map(|p| format!("{}: {}", p.key, p.message)).collect();
        let url = problems.iter().find(|p| p.starts_with("notify[0].url_file: ")).expect("the URL is checked");
        assert!(url.ends_with("does not hold one http:// or https:// URL") && !url.contains("SECRET"), "{url}");
        let unknown = crate::from_str("[[notify]]\nname = \"a\"\nkind = \"sms\"\n").unwrap_err().to_string();
        assert!(unknown.contains("sms"), "{unknown}");
    }

    #[test]
    fn quiet_hours_span_midnight() {
        let q = QuietHours::parse("22:00-07:00").unwrap();
        assert!(q.contains(22 * 60) && q.contains(0) && q.contains(6 * 60 + 59));
        assert!(!q.contains(7 * 60) && !q.contains(12 * 60) && !q.contains(21 * 60 + 59));
        let day = QuietHours::parse("12:00-13:30").unwrap();
        assert!(day.contains(12 * 60 + 15) && !day.contains(13 * 60 + 30));
        for bad in ["22-07", "25:00-07:00", "22:00", "07:00-07:00", "7:00-08:00"] {
            assert!(QuietHours::parse(bad).is_err(), "{bad}");
        }
    }
}
