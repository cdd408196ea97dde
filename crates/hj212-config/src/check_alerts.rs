//! Semantic checks of alert rules, limits and the MQTT publisher.

use std::collections::HashSet;

use crate::{AlertRules, Config, FactorLimit, Mqtt};

pub(crate) fn check_alert_rules(prefix: &str, rules: &AlertRules, problem: &mut impl FnMut(&str, String)) {
    for (key, value) in [
        ("expected_interval_secs", rules.expected_interval_secs),
        ("offline_intervals", u64::from(rules.offline_intervals)),
        ("clock_drift_secs", rules.clock_drift_secs),
        ("clock_drift_confirmations", u64::from(rules.clock_drift_confirmations)),
    ] {
        if value == 0 {
            problem(&format!("{prefix}.{key}"), "must be at least 1".to_owned());
        }
    }
    if rules.hysteresis_percent.0 >= 10_000 {
        problem(&format!("{prefix}.hysteresis_percent"), "must be below 100".to_owned());
    }
    if rules.o2_factor.is_empty() {
        problem(&format!("{prefix}.o2_factor"), "must name the O2 factor (HJ 212-2017: a19001)".to_owned());
    }
}

/// The MN fleet-wide alerts are filed under (hj212-compliance `alert::FLEET`).
const FLEET_MN: &str = "fleet";

/// What alert messages need: the fleet grouping (top-level only) and the console's address.
pub(crate) fn check_messages(config: &Config, problem: &mut impl FnMut(&str, String)) {
    if config.alerts.fleet_outage_sites > 0 && config.alerts.fleet_outage_window_secs == 0 {
        problem("alerts.fleet_outage_window_secs", "must be at least 1 (or fleet_outage_sites = 0: off)".to_owned());
    }
    let defaults = AlertRules::default();
    for (i, site) in config.sites.iter().enumerate() {
        if site.mn == FLEET_MN {
            problem(&format!("sites[{i}].mn"), "\"fleet\" is reserved (fleet-wide alerts use it)".to_owned());
        }
        let Some(rules) = &site.alerts else { continue };
        for (key, set) in [
            ("fleet_outage_sites", rules.fleet_outage_sites != defaults.fleet_outage_sites),
            ("fleet_outage_window_secs", rules.fleet_outage_window_secs != defaults.fleet_outage_window_secs),
        ] {
            if set {
                problem(
                    &format!("sites[{i}].alerts.{key}"),
                    "a fleet setting: set it in the top-level [alerts]".to_owned(),
                );
            }
        }
    }
    if let Some(url) = &config.http.public_url
        && let Some(reason) = public_url_problem(url)
    {
        problem("http.public_url", format!("{url:?} {reason}"));
    }
}

/// Why `url` is not an absolute http(s) URL people can open, if it is not.
fn public_url_problem(url: &str) -> Option<&'static str> {
    let Some(rest) = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")) else {
        return Some("is not an absolute http:// or https:// URL");
    };
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') || host.contains('@') {
        return Some("has no host (or has credentials in it)");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) || url.contains(['?', '#']) {
        return Some("must have no spaces, query or fragment (paths are appended to it)");
    }
    None
}

pub(crate) fn check_limits(site: usize, limits: &[FactorLimit], problem: &mut impl FnMut(&str, String)) {
    let mut seen = HashSet::new();
    for (j, limit) in limits.iter().enumerate() {
        let key = |field: &str| format!("sites[{site}].limits[{j}].{field}");
        if limit.factor.is_empty() || limit.factor.contains(['-', ';', ',', '=', '&']) {
            problem(&key("factor"), format!("{:?} is not a factor code", limit.factor));
        }
        if !seen.insert(limit.factor.as_str()) {
            problem(&key("factor"), format!("{} has two limits entries; merge them", limit.factor));
        }
        let numbers = [limit.max, limit.min, limit.reference_o2, limit.max_step];
        if numbers.iter().flatten().chain(limit.range.iter().flatten()).any(|v| !v.is_finite()) {
            problem(&key("factor"), "limits must be finite numbers".to_owned());
        }
        if numbers.iter().all(Option::is_none) && limit.range.is_none() {
            problem(&key("max"), "set at least one of max, min, max_step or range".to_owned());
        }
        if let (Some(max), Some(min)) = (limit.max, limit.min)
            && min >= max
        {
            problem(&key("min"), format!("{min} is not below max {max}"));
        }
        if limit.reference_o2.is_some_and(|o2| !(0.0..20.0).contains(&o2)) {
            problem(&key("reference_o2"), "must be between 0 and 20 (%)".to_owned());
        }
        if limit.max_step.is_some_and(|s| s <= 0.0) {
            problem(&key("max_step"), "must be above 0".to_owned());
        }
        if let Some([low, high]) = limit.range
            && low >= high
        {
            problem(&key("range"), format!("[{low}, {high}] is not [low, high]"));
        }
    }
}

pub(crate) fn check_mqtt(config: &Config, mqtt: &Mqtt, problem: &mut impl FnMut(&str, String)) {
    match crate::BrokerUrl::parse(&mqtt.url) {
        Err(error) => problem("mqtt.url", format!("{:?}: {}", error.url, error.reason)),
        Ok(broker) if !broker.tls && mqtt.ca_file.is_some() => {
            problem("mqtt.ca_file", "only used with an mqtts:// url".to_owned());
        }
        Ok(_) => {}
    }
    let prefix = &mqtt.topic_prefix;
    // '$' topics are the broker's own ($SYS); + and # are wildcards, not allowed in a published topic.
    if prefix.is_empty() || prefix.contains(['+', '#', '\0']) || prefix.starts_with(['/', '$']) || prefix.ends_with('/')
    {
        problem(
            "mqtt.topic_prefix",
            format!("{prefix:?} must be a topic without wildcards, NUL, a leading $ or a leading/trailing /"),
        );
    }
    // MQTT 3.1.1 §3.1.3.1: every broker must accept client ids of 1-23 characters.
    if mqtt.client_id.is_empty() || mqtt.client_id.len() > 23 || mqtt.client_id.starts_with(' ') {
        problem("mqtt.client_id", "must be 1-23 characters, not starting with a space (MQTT 3.1.1)".to_owned());
    } else {
        let node_id = mqtt.node_client_id(config.cluster.as_ref());
        if node_id.len() > 23 {
            let message = format!(
                "the default for a cluster's node, {node_id:?}, is over 23 characters: set one of its own on each node"
            );
            problem("mqtt.client_id", message);
        }
    }
    if !(1..=u64::from(u16::MAX)).contains(&mqtt.keep_alive_secs) {
        problem("mqtt.keep_alive_secs", format!("{} is not in 1-65535", mqtt.keep_alive_secs));
    }
    if mqtt.max_in_flight == 0 {
        problem("mqtt.max_in_flight", "must be at least 1".to_owned());
    }
    if mqtt.max_backoff_secs == 0 {
        problem("mqtt.max_backoff_secs", "must be at least 1".to_owned());
    }
    if mqtt.password_file.is_some() && mqtt.username.is_none() {
        problem("mqtt.password_file", "a password needs a username (MQTT 3.1.1)".to_owned());
    }
    for (key, file) in [("mqtt.password_file", &mqtt.password_file), ("mqtt.ca_file", &mqtt.ca_file)] {
        // Read, not only found: check-config run as the service user then sees what it will.
        if let Some(message) = file.as_ref().and_then(|f| crate::host::unreadable(&crate::resolve(config, f))) {
            problem(key, message);
        }
    }
}

/// HJ 212-2025 encryption: a key is needed, and every key file must hold a key.
pub(crate) fn check_encryption(i: usize, site: &crate::Site, problem: &mut impl FnMut(&str, String)) {
    let key = |field: &str| format!("sites[{i}].{field}");
    if site.encryption != crate::Encryption::Off && site.key_file.is_none() {
        problem(&key("key_file"), format!("encryption = {:?} needs a key_file", site.encryption).to_lowercase());
    }
    for (field, file) in [("key_file", &site.key_file), ("previous_key_file", &site.previous_key_file)] {
        if let Some(reason) = file.as_deref().and_then(key_file_problem) {
            problem(&key(field), reason);
        }
    }
}

/// Why `path` does not hold an SM4 key, if it does not (the error names the length only,
/// never the key).
pub(crate) fn key_file_problem(path: &std::path::Path) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => hj212_proto::encryption::Sm4Key::parse(&text).err().map(|e| format!("{}: {e}", path.display())),
        Err(e) => Some(format!("cannot read {}: {e}", path.display())),
    }
}
