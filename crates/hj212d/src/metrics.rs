//! The daemon's own metrics: configuration reloads (`hj212_config_*`).

use metrics::{counter, describe_counter, describe_gauge, gauge};

pub const RELOADS: &str = "hj212_config_reloads_total";
pub const LAST_RELOAD_SUCCESSFUL: &str = "hj212_config_last_reload_successful";
pub const LAST_RELOAD_SUCCESS_TIME: &str = "hj212_config_last_reload_success_timestamp_seconds";

/// Registers descriptions and the reload counters at zero; call once at startup.
pub fn describe() {
    describe_counter!(RELOADS, "Site registry reloads (SIGHUP), by result (success, failure)");
    describe_gauge!(LAST_RELOAD_SUCCESSFUL, "1 if the last load or reload of the config succeeded, else 0");
    describe_gauge!(
        LAST_RELOAD_SUCCESS_TIME,
        "When the config was last loaded or reloaded successfully (Unix seconds)"
    );
    for result in ["success", "failure"] {
        counter!(RELOADS, "result" => result).increment(0);
    }
}

/// The config loaded at start counts as a successful load.
pub fn loaded() {
    gauge!(LAST_RELOAD_SUCCESSFUL).set(1.0);
    gauge!(LAST_RELOAD_SUCCESS_TIME).set(hj212_archive::now_ms() as f64 / 1000.0);
}

/// A reload applied (`true`) or refused (the old registry stays).
pub fn reloaded(success: bool) {
    counter!(RELOADS, "result" => if success { "success" } else { "failure" }).increment(1);
    if success {
        loaded();
    } else {
        gauge!(LAST_RELOAD_SUCCESSFUL).set(0.0);
    }
}

/// Per-site counters of configured sites at zero (bounded: configured MNs only).
pub fn zero_site_counters(config: &hj212_config::Config) {
    let encrypting = config.sites.iter().filter(|s| s.encryption != hj212_config::Encryption::Off);
    for site in encrypting {
        counter!(hj212_server::metrics::SITE_DECRYPT_FAILURES, "mn" => site.mn.clone()).increment(0);
    }
}
