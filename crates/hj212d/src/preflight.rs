//! What `check-config` and the start check: the config's own problems (hj212-config, which
//! also checks this host), and what this build of the daemon supports.

use hj212_config::{Config, Problem};

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
        for problem in mqtt_problems(mqtt) {
            // One problem per key: the config check may have named it already.
            if !problems.iter().any(|p| p.key == problem.key) {
                problems.push(problem);
            }
        }
    }
    problems
}

fn mqtt_problems(mqtt: &hj212_config::Mqtt) -> Vec<Problem> {
    // The config check covers every [mqtt] value; what this build can reach is the daemon's.
    if mqtt.url.trim_start().to_ascii_lowercase().starts_with("mqtts://") && !cfg!(feature = "mqtt-tls") {
        return vec![Problem {
            key: "mqtt.url".to_owned(),
            message: "mqtts:// needs hj212d built with the mqtt-tls feature (release builds, the .deb and the \
                      Docker image have it); this binary was built without it"
                .to_owned(),
        }];
    }
    Vec::new()
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
