//! What `check-config` and the start check: the config's own problems (hj212-config, which
//! also checks this host), and what this build of the daemon supports.

use hj212_config::{Config, Problem};
use hj212_sink_mqtt::{MqttError, MqttSettings};

/// Every problem that would stop the daemon at start, each naming its key.
pub fn problems(config: &Config) -> Vec<Problem> {
    let mut problems = hj212_config::check(config);
    if let Err(error) = tracing_subscriber::EnvFilter::try_new(&config.server.log_level) {
        problems.push(Problem {
            key: "server.log_level".to_owned(),
            message: format!("{:?} is not a log filter: {error}", config.server.log_level),
        });
    }
    problems.extend(signing_key_problems(config));
    if let Some(mqtt) = &config.mqtt {
        for problem in mqtt_problems(config, mqtt) {
            // One problem per key: the config check may have named it already.
            if !problems.iter().any(|p| p.key == problem.key) {
                problems.push(problem);
            }
        }
    }
    problems
}

fn mqtt_problems(config: &Config, mqtt: &hj212_config::Mqtt) -> Vec<Problem> {
    let problem = |key: String, message: String| vec![Problem { key, message }];
    if mqtt.url.trim_start().to_ascii_lowercase().starts_with("mqtts://") && !cfg!(feature = "mqtt-tls") {
        return problem(
            "mqtt.url".to_owned(),
            "mqtts:// needs hj212d built with the mqtt-tls feature (release builds, the .deb and the Docker \
             image have it); this binary was built without it"
                .to_owned(),
        );
    }
    // The publisher's own validation, so that nothing it refuses at start passes the check.
    // Only whether there is a password matters here; the file itself is checked for readability.
    let settings = mqtt_settings(config, mqtt, mqtt.password_file.as_ref().map(|_| String::new()));
    match settings.validate() {
        Ok(_) => Vec::new(),
        Err(MqttError::InvalidSetting { field, reason }) => {
            problem(format!("mqtt.{}", field.replace('-', "_")), reason)
        }
        Err(error) => problem("mqtt.url".to_owned(), error.to_string()),
    }
}

/// The MQTT publisher's settings from the config, with the password read by the caller.
pub fn mqtt_settings(config: &Config, mqtt: &hj212_config::Mqtt, password: Option<String>) -> MqttSettings {
    MqttSettings {
        url: mqtt.url.clone(),
        topic_prefix: mqtt.topic_prefix.clone(),
        client_id: mqtt.client_id.clone(),
        username: mqtt.username.clone(),
        password,
        keep_alive_secs: mqtt.keep_alive_secs,
        max_in_flight: mqtt.max_in_flight,
        max_backoff_secs: mqtt.max_backoff_secs,
        ca_file: mqtt.ca_file.as_deref().map(|f| hj212_config::resolve_path(config, f)),
    }
}

/// An existing checkpoint signing key must be a key (hj212-config checks that it can be read,
/// or, missing, created).
fn signing_key_problems(config: &Config) -> Vec<Problem> {
    let path = hj212_config::signing_key_path(config);
    if !path.is_file() || std::fs::read(&path).is_err() {
        return Vec::new();
    }
    match hj212_archive::checkpoint::load_or_create_key(&path) {
        Ok(_) => Vec::new(),
        Err(error) => vec![Problem { key: "archive.signing_key_file".to_owned(), message: error.to_string() }],
    }
}

/// Whether this process runs as root, who can read files the service user cannot.
pub fn running_as_root() -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        // /proc/self belongs to the process's user; no libc call needed.
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    }
    #[cfg(not(unix))]
    {
        false
    }
}
