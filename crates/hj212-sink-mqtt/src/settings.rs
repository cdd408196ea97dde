//! The publisher's settings: `[mqtt]` as hj212-config defines and checks it (defaults and
//! checks live there, once), with the password read and the CA file resolved.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use hj212_config::{BrokerUrl, BrokerUrlError, Config, ConfigError, Mqtt};
use rumqttc::MqttOptions;

use crate::OutboxError;

/// The largest MQTT packet the publisher sends (topic + payload + header). A bigger message
/// can never be published; it is logged, counted and skipped rather than blocking the outbox.
pub const MAX_PACKET_BYTES: usize = 256 * 1024;

/// How the publisher connects. `Debug` never shows the password.
#[derive(Clone)]
pub struct MqttSettings {
    /// `[mqtt]`, checked by `hj212_config::check`.
    pub mqtt: Mqtt,
    /// Read from `mqtt.password_file`.
    pub password: Option<String>,
    /// `mqtt.ca_file` resolved against the config file's folder; `None`: the system trust store.
    pub ca_file: Option<PathBuf>,
}

impl fmt::Debug for MqttSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttSettings")
            .field("mqtt", &self.mqtt)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// Why the publisher cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MqttError {
    #[error(transparent)]
    InvalidUrl(#[from] BrokerUrlError),
    #[error("{url}: mqtts:// needs hj212d built with the `tls` feature")]
    TlsNotBuilt { url: String },
    #[error("MQTT TLS set-up: {0}")]
    Tls(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
}

impl MqttSettings {
    /// The one conversion from the config: the password file read, the CA file resolved, the
    /// client id this node's ([`Mqtt::node_client_id`]).
    ///
    /// # Errors
    /// [`MqttError::Config`] when the password file cannot be read.
    pub fn from_config(config: &Config, mqtt: &Mqtt) -> Result<Self, MqttError> {
        let client_id = mqtt.node_client_id(config.cluster.as_ref());
        Ok(Self {
            mqtt: Mqtt { client_id, ..mqtt.clone() },
            password: hj212_config::mqtt_password(config)?,
            ca_file: mqtt.ca_file.as_deref().map(|f| hj212_config::resolve_path(config, f)),
        })
    }

    /// The broker to connect to, refused when this build cannot reach it.
    ///
    /// # Errors
    /// [`MqttError::InvalidUrl`] naming what is wrong; [`MqttError::TlsNotBuilt`] for mqtts://
    /// without the `tls` feature.
    pub fn broker(&self) -> Result<BrokerUrl, MqttError> {
        let broker = BrokerUrl::parse(&self.mqtt.url)?;
        if broker.tls && !cfg!(feature = "tls") {
            return Err(MqttError::TlsNotBuilt { url: broker.to_string() });
        }
        Ok(broker)
    }

    /// rumqttc options for one connection: clean session, QoS 1 window of `max_in_flight`.
    #[cfg_attr(not(feature = "tls"), expect(clippy::unnecessary_wraps, reason = "fails only when TLS set-up does"))]
    pub(crate) fn options(&self, broker: &BrokerUrl) -> Result<MqttOptions, MqttError> {
        let mut options = MqttOptions::new(self.mqtt.client_id.clone(), broker.host.clone(), broker.port);
        options
            .set_clean_session(true)
            .set_keep_alive(Duration::from_secs(self.mqtt.keep_alive_secs))
            .set_inflight(self.mqtt.max_in_flight)
            .set_max_packet_size(64 * 1024, MAX_PACKET_BYTES);
        if let Some(username) = &self.mqtt.username {
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
        format!("{}/{topic}", self.mqtt.topic_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> MqttSettings {
        MqttSettings { mqtt: Mqtt { url: url.into(), ..Mqtt::default() }, password: None, ca_file: None }
    }

    #[test]
    fn debug_hides_the_password() {
        let mut settings = settings("mqtt://127.0.0.1");
        settings.mqtt.username = Some("daemon".into());
        settings.password = Some("hunter2-secret".into());
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(shown.contains("daemon") && shown.contains("***"), "{shown}");
    }

    #[test]
    fn a_bad_url_is_refused_naming_it() {
        let error = settings("mqtt://user:s3cret@broker").broker().unwrap_err().to_string();
        assert!(error.contains("mqtt://***@broker") && !error.contains("s3cret"), "{error}");
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn mqtts_without_the_tls_feature_is_a_configuration_error() {
        let error = settings("mqtts://broker").broker().unwrap_err().to_string();
        assert!(error.contains("mqtts:// needs hj212d built with the `tls` feature"), "{error}");
    }
}
