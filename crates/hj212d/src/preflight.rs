//! What `check-config` and the start check: the config's own problems (hj212-config, which
//! also checks this host), and what this build of the daemon supports.

use hj212_config::{Config, Problem};
use hj212_sink_mqtt::{MqttError, MqttSettings};

/// Every problem that would stop the daemon at start, each naming its key.
pub fn problems(config: &Config) -> Vec<Problem> {
    let mut problems = hj212_config::check(config);
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
    let settings = MqttSettings {
        url: mqtt.url.clone(),
        topic_prefix: mqtt.topic_prefix.clone(),
        client_id: mqtt.client_id.clone(),
        username: mqtt.username.clone(),
        // Only whether there is one matters here; the file itself is checked for readability.
        password: mqtt.password_file.as_ref().map(|_| String::new()),
        keep_alive_secs: mqtt.keep_alive_secs,
        max_in_flight: mqtt.max_in_flight,
        max_backoff_secs: mqtt.max_backoff_secs,
        ca_file: mqtt.ca_file.as_deref().map(|f| hj212_config::resolve_path(config, f)),
    };
    match settings.validate() {
        Ok(_) => Vec::new(),
        Err(MqttError::InvalidSetting { field, reason }) => {
            problem(format!("mqtt.{}", field.replace('-', "_")), reason)
        }
        Err(error) => problem("mqtt.url".to_owned(), error.to_string()),
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
