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
    if let Some(message) = signing_key_problem(config) {
        problems.push(Problem { key: "archive.signing_key_file".to_owned(), message });
    }
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

/// Why the archive's signing key cannot be used: an existing file must hold a key; a missing
/// one is created at start, in a folder that must exist (or be `data_dir`, made at start).
fn signing_key_problem(config: &Config) -> Option<String> {
    let path = hj212_config::signing_key_path(config);
    if path.exists() {
        // Only reads: the file exists, so nothing is created.
        return hj212_archive::checkpoint::load_or_create_key(&path).err().map(|e| e.to_string());
    }
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let made_at_start = folder == config.server.data_dir;
    (!made_at_start && !folder.is_dir())
        .then(|| format!("{} cannot be created: its folder {} does not exist", path.display(), folder.display()))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(config: &Config) -> Vec<String> {
        problems(config).into_iter().map(|p| p.key).collect()
    }

    fn config_in(dir: &std::path::Path, extra: &str) -> Config {
        let path = dir.join("hj212d.toml");
        let text =
            format!("[server]\nlisten = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\n{extra}");
        std::fs::write(&path, text).unwrap();
        hj212_config::load(&path).unwrap()
    }

    /// Found by the configs trial of scripts/reliability: these passed check-config, then the
    /// daemon ran with "info" logging (a bad filter) or exited 73 (an unusable signing key).
    #[test]
    fn a_bad_log_filter_and_an_unusable_signing_key_are_config_problems() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(keys(&config_in(dir.path(), "")), Vec::<String>::new(), "the base config is fine");
        assert_eq!(keys(&config_in(dir.path(), "log_level = \"hj212=loud\"\n")), ["server.log_level"]);
        assert_eq!(keys(&config_in(dir.path(), "log_level = \"hj212_server=debug,warn\"\n")), Vec::<String>::new());
        std::fs::write(dir.path().join("bad.key"), "not a key").unwrap();
        let bad = "[archive]\nsigning_key_file = \"bad.key\"\n";
        assert_eq!(keys(&config_in(dir.path(), bad)), ["archive.signing_key_file"]);
        let nowhere = "[archive]\nsigning_key_file = \"no/such/folder/signing.key\"\n";
        assert_eq!(keys(&config_in(dir.path(), nowhere)), ["archive.signing_key_file"]);
        // Missing, beside the config or in data_dir (made at start): created at start.
        for fine in ["signing_key_file = \"new.key\"", "signing_key_file = \"data/new.key\""] {
            assert_eq!(keys(&config_in(dir.path(), &format!("[archive]\n{fine}\n"))), Vec::<String>::new(), "{fine}");
        }
        assert!(!dir.path().join("new.key").exists(), "the check creates no key");
    }
}
