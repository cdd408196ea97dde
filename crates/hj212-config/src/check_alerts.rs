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
