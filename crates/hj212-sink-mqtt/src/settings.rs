//! Publisher settings, the broker url and their validation.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use rumqttc::MqttOptions;

use crate::OutboxError;

pub const DEFAULT_KEEP_ALIVE_SECS: u64 = 30;
pub const DEFAULT_MAX_IN_FLIGHT: u16 = 64;
pub const DEFAULT_MAX_BACKOFF_SECS: u64 = 30;
pub const DEFAULT_PORT: u16 = 1883;
pub const DEFAULT_TLS_PORT: u16 = 8883;

/// The largest MQTT packet the publisher sends (topic + payload + header). A bigger message
/// can never be published; it is logged, counted and skipped rather than blocking the outbox.
pub const MAX_PACKET_BYTES: usize = 256 * 1024;

/// How the publisher connects. `Debug` never shows the password.
#[derive(Clone)]
pub struct MqttSettings {
    /// `mqtt://host[:port]` (default port 1883) or `mqtts://host[:port]` (8883).
    pub url: String,
    /// Full topic = "{topic_prefix}/{message.topic}".
    pub topic_prefix: String,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub keep_alive_secs: u64,
    /// QoS 1 messages published and not yet PUBACKed (also the most held in memory).
    pub max_in_flight: u16,
    /// Reconnect backoff cap.
    pub max_backoff_secs: u64,
    /// PEM file with the CA certificate(s) that sign the broker's certificate (mqtts:// only).
    /// `None`: the system trust store. Present without the `tls` feature too, so the struct
    /// is the same in every build; setting it with an mqtt:// url is a configuration error.
    pub ca_file: Option<PathBuf>,
}

impl Default for MqttSettings {
    fn default() -> Self {
        Self {
            url: format!("mqtt://127.0.0.1:{DEFAULT_PORT}"),
            topic_prefix: "hj212".to_owned(),
            client_id: "hj212d".to_owned(),
            username: None,
            password: None,
            keep_alive_secs: DEFAULT_KEEP_ALIVE_SECS,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_backoff_secs: DEFAULT_MAX_BACKOFF_SECS,
            ca_file: None,
        }
    }
}

impl fmt::Debug for MqttSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttSettings")
            .field("url", &self.url)
            .field("topic_prefix", &self.topic_prefix)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("keep_alive_secs", &self.keep_alive_secs)
            .field("max_in_flight", &self.max_in_flight)
            .field("max_backoff_secs", &self.max_backoff_secs)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// A parsed broker url. `Display` gives `mqtt://host:port`, fit for logs (no credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub tls: bool,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Why the publisher cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MqttError {
    #[error("invalid MQTT broker url {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("invalid MQTT setting {field}: {reason}")]
    InvalidSetting { field: &'static str, reason: String },
    #[error("{url}: mqtts:// needs hj212d built with the `tls` feature")]
    TlsNotBuilt { url: String },
    #[error("MQTT TLS set-up: {0}")]
    Tls(String),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
}

fn invalid_url(url: &str, reason: impl Into<String>) -> MqttError {
    // Never echo credentials: everything between "://" and '@' is masked.
    let shown = match (url.find("://"), url.rfind('@')) {
        (Some(start), Some(at)) if at > start => format!("{}***{}", &url[..start + 3], &url[at..]),
        _ => url.to_owned(),
    };
    MqttError::InvalidUrl { url: shown, reason: reason.into() }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> MqttError {
    MqttError::InvalidSetting { field, reason: reason.into() }
}

impl MqttSettings {
    /// Parses `mqtt://host[:port]` or `mqtts://host[:port]` (a trailing `/` is allowed).
    ///
    /// # Errors
    /// [`MqttError::InvalidUrl`] naming the url and what is wrong with it.
    pub fn parse_url(url: &str) -> Result<BrokerUrl, MqttError> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(invalid_url(url, "missing scheme (expected mqtt:// or mqtts://)"));
        };
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "mqtt" => false,
            "mqtts" => true,
            _ => return Err(invalid_url(url, format!("unknown scheme {scheme:?} (expected mqtt:// or mqtts://)"))),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('@') {
            return Err(invalid_url(url, "credentials in the url are not supported; set username and password"));
        }
        if authority.contains(['/', '?', '#']) {
            return Err(invalid_url(url, "unexpected path, query or fragment after host:port"));
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let Some((host, after)) = bracketed.split_once(']') else {
                return Err(invalid_url(url, "unclosed '[' in IPv6 host"));
            };
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(invalid_url(url, "expected ':port' after the IPv6 host")),
                },
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(invalid_url(url, "missing host"));
        }
        if host.contains(|c: char| c.is_whitespace() || c.is_control() || c == '[' || c == ']') {
            return Err(invalid_url(url, format!("bad host {host:?}")));
        }
        let port = match port {
            None => {
                if tls {
                    DEFAULT_TLS_PORT
                } else {
                    DEFAULT_PORT
                }
            }
            Some(port) => match port.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(invalid_url(url, format!("bad port {port:?} (expected 1-65535)"))),
            },
        };
        Ok(BrokerUrl { tls, host: host.to_owned(), port })
    }

    /// Checks every setting; returns the parsed broker url.
    ///
    /// # Errors
    /// The first problem found, naming the setting (or the url) and why.
    pub fn validate(&self) -> Result<BrokerUrl, MqttError> {
        let broker = Self::parse_url(&self.url)?;
        if broker.tls && !cfg!(feature = "tls") {
            return Err(MqttError::TlsNotBuilt { url: broker.to_string() });
        }
        if !broker.tls && self.ca_file.is_some() {
            return Err(invalid("ca-file", "only used with an mqtts:// url"));
        }
        if self.topic_prefix.is_empty() {
            return Err(invalid("topic-prefix", "must not be empty"));
        }
        if self.topic_prefix.contains(['+', '#', '\0']) || self.topic_prefix.starts_with('$') {
            return Err(invalid(
                "topic-prefix",
                format!("{:?} must not contain + # or NUL nor start with $", self.topic_prefix),
            ));
        }
        if self.topic_prefix.ends_with('/') {
            return Err(invalid("topic-prefix", format!("{:?} must not end with '/'", self.topic_prefix)));
        }
        if self.client_id.is_empty() || self.client_id.starts_with(' ') || self.client_id.len() > 256 {
            return Err(invalid("client-id", "must be 1-256 bytes and not start with a space"));
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(invalid("password", "MQTT 3.1.1 allows a password only with a username"));
        }
        if !(1..=u64::from(u16::MAX)).contains(&self.keep_alive_secs) {
            return Err(invalid("keep-alive-secs", format!("{} is not in 1-65535", self.keep_alive_secs)));
        }
        if self.max_in_flight == 0 {
            return Err(invalid("max-in-flight", "must be at least 1"));
        }
        if self.max_backoff_secs == 0 {
            return Err(invalid("max-backoff-secs", "must be at least 1"));
        }
        Ok(broker)
    }

    /// rumqttc options for one connection: clean session, QoS 1 window of `max_in_flight`.
    #[cfg_attr(not(feature = "tls"), expect(clippy::unnecessary_wraps, reason = "fails only when TLS set-up does"))]
    pub(crate) fn options(&self, broker: &BrokerUrl) -> Result<MqttOptions, MqttError> {
        let mut options = MqttOptions::new(self.client_id.clone(), broker.host.clone(), broker.port);
        options
            .set_clean_session(true)
            .set_keep_alive(Duration::from_secs(self.keep_alive_secs))
            .set_inflight(self.max_in_flight)
            .set_max_packet_size(64 * 1024, MAX_PACKET_BYTES);
        if let Some(username) = &self.username {
            options.set_credentials(username.clone(), self.password.clone().unwrap_or_default());
        }
        #[cfg(feature = "tls")]
        if broker.tls {
            options.set_transport(crate::tls::transport(self.ca_file.as_deref())?);
        }
        Ok(options)
    }

    /// "{prefix}/{topic}".
    pub(crate) fn full_topic(&self, topic: &str) -> String {
        format!("{}/{topic}", self.topic_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(url: &str) -> String {
        match MqttSettings::parse_url(url) {
            Err(MqttError::InvalidUrl { reason, .. }) => reason,
            other => panic!("{url}: expected InvalidUrl, got {other:?}"),
        }
    }

    #[test]
    fn parses_urls_with_default_ports() {
        let parsed = |url| MqttSettings::parse_url(url).unwrap();
        assert_eq!(parsed("mqtt://broker.local"), BrokerUrl { tls: false, host: "broker.local".into(), port: 1883 });
        assert_eq!(parsed("mqtts://broker.local/"), BrokerUrl { tls: true, host: "broker.local".into(), port: 8883 });
        assert_eq!(parsed("MQTT://127.0.0.1:1884"), BrokerUrl { tls: false, host: "127.0.0.1".into(), port: 1884 });
        assert_eq!(parsed("mqtt://[::1]:1885"), BrokerUrl { tls: false, host: "::1".into(), port: 1885 });
        assert_eq!(parsed("mqtt://[::1]:1885").to_string(), "mqtt://[::1]:1885");
    }

    #[test]
    fn rejects_bad_urls_with_a_reason() {
        assert!(reason("http://broker:1883").contains("unknown scheme \"http\""));
        assert!(reason("broker:1883").contains("missing scheme"));
        assert!(reason("mqtt://").contains("missing host"));
        assert!(reason("mqtt://:1883").contains("missing host"));
        assert!(reason("mqtt://broker:abc").contains("bad port \"abc\""));
        assert!(reason("mqtt://broker:0").contains("bad port"));
        assert!(reason("mqtt://broker:65536").contains("bad port"));
        assert!(reason("mqtt://broker:").contains("bad port"));
        assert!(reason("mqtt://broker:1883/topic").contains("unexpected path"));
        assert!(reason("mqtt://[::1").contains("unclosed"));
    }

    #[test]
    fn url_errors_name_the_url_but_not_its_credentials() {
        let error = MqttSettings::parse_url("mqtt://user:s3cret@broker:1883").unwrap_err().to_string();
        assert!(error.contains("mqtt://***@broker:1883"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
        let error = MqttSettings::parse_url("ftp://broker").unwrap_err().to_string();
        assert!(error.contains("\"ftp://broker\""), "{error}");
    }

    #[test]
    fn debug_hides_the_password() {
        let settings = MqttSettings {
            username: Some("daemon".into()),
            password: Some("hunter2-secret".into()),
            ..MqttSettings::default()
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(shown.contains("daemon") && shown.contains("***"), "{shown}");
    }

    #[test]
    fn validate_reports_the_bad_setting() {
        let field = |settings: MqttSettings| match settings.validate() {
            Err(MqttError::InvalidSetting { field, .. }) => field,
            other => panic!("expected InvalidSetting, got {other:?}"),
        };
        assert!(MqttSettings::default().validate().is_ok());
        assert_eq!(field(MqttSettings { topic_prefix: "hj/#".into(), ..Default::default() }), "topic-prefix");
        assert_eq!(field(MqttSettings { topic_prefix: "hj212/".into(), ..Default::default() }), "topic-prefix");
        assert_eq!(field(MqttSettings { client_id: String::new(), ..Default::default() }), "client-id");
        assert_eq!(field(MqttSettings { password: Some("x".into()), ..Default::default() }), "password");
        assert_eq!(field(MqttSettings { keep_alive_secs: 0, ..Default::default() }), "keep-alive-secs");
        assert_eq!(field(MqttSettings { max_in_flight: 0, ..Default::default() }), "max-in-flight");
        assert_eq!(field(MqttSettings { max_backoff_secs: 0, ..Default::default() }), "max-backoff-secs");
        assert_eq!(field(MqttSettings { ca_file: Some("/ca.pem".into()), ..Default::default() }), "ca-file");
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn mqtts_without_the_tls_feature_is_a_configuration_error() {
        let settings = MqttSettings { url: "mqtts://broker".into(), ..Default::default() };
        let error = settings.validate().unwrap_err().to_string();
        assert!(error.contains("mqtts:// needs hj212d built with the `tls` feature"), "{error}");
    }
}
