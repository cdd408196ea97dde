//! Semantic checks: every problem at once, each naming its key.

use std::collections::HashSet;

use crate::{Config, sites_file_path};

/// One thing wrong with a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key, e.g. `sites[2].mn`.
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

const SEPARATORS: &[char] = &[';', ',', '=', '&', '\r', '\n'];

/// Every semantic problem in `config`; empty when it is usable.
pub fn check(config: &Config) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut problem = |key: &str, message: String| {
        problems.push(Problem { key: key.to_owned(), message });
    };
    let server = &config.server;
    // Port 0 (tests: any free port) gives each listener its own.
    if server.listen == server.http_listen && server.listen.port() != 0 {
        problem("server.http_listen", format!("{} is also server.listen", server.http_listen));
    }
    if let Some(path) = sites_file_path(config).filter(|p| !p.is_file()) {
        problem("server.sites_file", format!("{} does not exist", path.display()));
    }
    for (key, file) in [
        ("server.admin_token_file", &server.admin_token_file),
        ("server.admin_read_token_file", &server.admin_read_token_file),
    ] {
        if let Some(file) = file {
            check_token_file(config, key, file, &mut problem);
        }
    }
    let limits = &config.limits;
    if limits.listen_backlog == 0 {
        problem("limits.listen_backlog", "must be at least 1".to_owned());
    }
    if !(1..=9999).contains(&limits.max_frame_len) {
        problem("limits.max_frame_len", format!("{} is outside 1..=9999", limits.max_frame_len));
    }
    for (key, value) in [
        ("limits.max_connections", limits.max_connections),
        ("limits.max_connections_per_peer", limits.max_connections_per_peer),
        ("limits.max_unauthenticated", limits.max_unauthenticated),
        ("limits.refused_peers", limits.refused_peers),
        ("limits.dedup_window", limits.dedup_window),
        ("limits.max_in_flight_per_connection", limits.max_in_flight_per_connection),
        ("limits.archive_queue", limits.archive_queue),
        ("limits.archive_queue_bytes", limits.archive_queue_bytes),
        ("followers.batch_records", config.followers.batch_records),
        ("followers.tick_ms", usize::try_from(config.followers.tick_ms).unwrap_or(usize::MAX)),
        (
            "followers.store_degraded_lag_records",
            usize::try_from(config.followers.store_degraded_lag_records).unwrap_or(usize::MAX),
        ),
        (
            "followers.alerts_degraded_lag_records",
            usize::try_from(config.followers.alerts_degraded_lag_records).unwrap_or(usize::MAX),
        ),
        (
            "followers.alerts_clock_max_lag_records",
            usize::try_from(config.followers.alerts_clock_max_lag_records).unwrap_or(usize::MAX),
        ),
    ] {
        if value == 0 {
            problem(key, "must be at least 1".to_owned());
        }
    }
    for (key, value) in [
        ("limits.idle_timeout_secs", limits.idle_timeout_secs),
        ("limits.write_timeout_secs", limits.write_timeout_secs),
        ("limits.stop_drain_secs", limits.stop_drain_secs),
        ("limits.first_frame_timeout_secs", limits.first_frame_timeout_secs),
        ("limits.refused_interval_secs", limits.refused_interval_secs),
        ("archive.segment_max_age_secs", config.archive.segment_max_age_secs),
        ("archive.checkpoint_interval_secs", config.archive.checkpoint_interval_secs),
        ("followers.max_backoff_secs", config.followers.max_backoff_secs),
        ("followers.failing_grace_secs", config.followers.failing_grace_secs),
    ] {
        if value == 0 {
            problem(key, "must be at least 1 second".to_owned());
        }
    }
    if !(0..=19).contains(&config.followers.nice) {
        problem(
            "followers.nice",
            format!("{} is not in 0-19 (a follower never runs before ingest)", config.followers.nice),
        );
    }
    if config.followers.alerts_fingerprint_days == 0 {
        problem("followers.alerts_fingerprint_days", "must be at least 1 day".to_owned());
    }
    check_archive(&config.archive, &mut problem);
    check_http(&config.http, &mut problem);
    if let Some(influx) = &config.influx {
        check_influx(config, influx, &mut problem);
    }
    if let Some(mqtt) = &config.mqtt {
        crate::check_alerts::check_mqtt(config, mqtt, &mut problem);
    }
    crate::check_alerts::check_alert_rules("alerts", &config.alerts, &mut problem);
    crate::check_alerts::check_messages(config, &mut problem);
    crate::commands::check_commands(config, &mut problem);
    crate::forward::check_forward(config, &mut problem);
    crate::notify::check_notify(config, &mut problem);
    crate::cluster::check_cluster(config, &mut problem);
    crate::service::check_service(&config.service, &mut problem);
    crate::service::check_reports(&config.reports, &mut problem);
    crate::store::check_store(config, &mut problem);
    crate::console::check_console(config, &mut problem);
    check_sites(config, &mut problem);
    crate::host::check_host(config, &mut problem);
    problems
}

fn check_archive(archive: &crate::Archive, problem: &mut impl FnMut(&str, String)) {
    if archive.segment_max_bytes < 64 * 1024 {
        problem("archive.segment_max_bytes", format!("{} is below the minimum of 65536", archive.segment_max_bytes));
    }
    if !(1..=19).contains(&archive.compress_level) {
        problem("archive.compress_level", format!("{} is not in 1-19", archive.compress_level));
    }
}

fn check_token_file(config: &Config, key: &str, file: &std::path::Path, problem: &mut impl FnMut(&str, String)) {
    let path = crate::resolve(config, file);
    match std::fs::read_to_string(&path) {
        Ok(token) if token.trim().len() < 16 => {
            problem(key, format!("{} holds a token shorter than 16 characters", path.display()));
        }
        Ok(_) => {}
        Err(e) => problem(key, format!("cannot read {}: {e}", path.display())),
    }
}

/// Longest range days accepted: beyond ten years one query holds gigabytes.
const MAX_RANGE_DAYS: u32 = 3660;
/// Write requests the Influx sink may have out at once: each holds up to `batch_points` in memory.
const MAX_INFLUX_IN_FLIGHT: usize = 64;
/// On the minute basis, a year (up to 525,600 periods per factor).
const MAX_MINUTE_RANGE_DAYS: u32 = 366;

fn check_http(http: &crate::Http, problem: &mut impl FnMut(&str, String)) {
    for (key, value) in [
        ("http.max_connections", http.max_connections as u64),
        ("http.max_concurrent_queries", http.max_concurrent_queries as u64),
        ("http.header_read_timeout_secs", http.header_read_timeout_secs),
        ("http.request_timeout_secs", http.request_timeout_secs),
        ("http.shutdown_grace_secs", http.shutdown_grace_secs),
        ("http.query_wait_secs", http.query_wait_secs),
        ("http.connection_max_secs", http.connection_max_secs),
    ] {
        if value == 0 {
            problem(key, "must be at least 1".to_owned());
        }
    }
    for (key, value, max) in [
        ("http.max_range_days", http.max_range_days, MAX_RANGE_DAYS),
        ("http.max_minute_range_days", http.max_minute_range_days, MAX_MINUTE_RANGE_DAYS),
    ] {
        if !(1..=max).contains(&value) {
            problem(key, format!("{value} is outside 1..={max} (one query's memory grows with its range)"));
        }
    }
}

fn check_influx(config: &Config, influx: &crate::Influx, problem: &mut impl FnMut(&str, String)) {
    if !(influx.url.starts_with("http://") || influx.url.starts_with("https://")) {
        problem("influx.url", format!("{:?} is not an http:// or https:// URL", influx.url));
    }
    match influx.api {
        crate::InfluxApi::V2 if influx.org.is_empty() || influx.bucket.is_empty() => {
            problem("influx.bucket", "api = \"v2\" needs org and bucket".to_owned());
        }
        crate::InfluxApi::V1 if influx.db.is_empty() => problem("influx.db", "api = \"v1\" needs db".to_owned()),
        _ => {}
    }
    if influx.token.is_some() && influx.token_file.is_some() {
        problem("influx.token", "set token or token_file, not both".to_owned());
    }
    if let Some(message) = crate::influx_token_path(config).and_then(|p| crate::host::unreadable(&p)) {
        problem("influx.token_file", message);
    }
    for (key, value) in
        [("influx.batch_points", influx.batch_points as u64), ("influx.timeout_secs", influx.timeout_secs)]
    {
        if value == 0 {
            problem(key, "must be at least 1".to_owned());
        }
    }
    if !(1..=MAX_INFLUX_IN_FLIGHT).contains(&influx.max_in_flight) {
        problem("influx.max_in_flight", format!("must be 1 to {MAX_INFLUX_IN_FLIGHT}"));
    }
}

fn check_sites(config: &Config, problem: &mut impl FnMut(&str, String)) {
    let mut seen = HashSet::new();
    for (i, site) in config.sites.iter().enumerate() {
        let key = |field: &str| format!("sites[{i}].{field}");
        if site.mn.is_empty() || site.mn.len() > 24 || site.mn.contains(SEPARATORS) || site.mn.contains(' ') {
            problem(&key("mn"), format!("{:?} is not 1-24 characters without separators", site.mn));
        }
        if !seen.insert(site.mn.as_str()) {
            problem(&key("mn"), format!("{} is configured twice", site.mn));
        }
        // Never echo the password itself.
        if site.password.is_empty() || site.password.contains(SEPARATORS) {
            problem(&key("password"), "must be non-empty and contain no ; , = & CR LF".to_owned());
        }
        if ![1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30].contains(&site.rate.minute_interval) {
            problem(
                &key("rate.minute_interval"),
                format!("{} is not a HJ 212 MinInterval (1,2,3,4,5,6,10,12,15,20,30)", site.rate.minute_interval),
            );
        }
        if site.rate.min_valid_minutes.is_some_and(|m| m > 60) {
            problem(&key("rate.min_valid_minutes"), "cannot exceed 60".to_owned());
        }
        if let Some(rules) = &site.alerts {
            crate::check_alerts::check_alert_rules(&format!("sites[{i}].alerts"), rules, problem);
        }
        crate::check_alerts::check_limits(i, &site.limits, problem);
        crate::check_alerts::check_encryption(i, site, problem);
        for (j, factor) in site.factors.iter().enumerate() {
            if factor.is_empty() || factor.contains(SEPARATORS) || factor.contains('-') {
                problem(&format!("sites[{i}].factors[{j}]"), format!("{factor:?} is not a factor code"));
            }
        }
    }
}

/// Things that work but deserve attention (printed, not fatal).
pub fn warnings(config: &Config) -> Vec<Problem> {
    let mut warnings = Vec::new();
    if let Some(path) = config.source.as_ref().filter(|p| is_world_writable(p)) {
        warnings.push(Problem {
            key: path.display().to_string(),
            message: "config file is world-writable; anyone on this machine can change site passwords".to_owned(),
        });
    }
    for site in &config.sites {
        for path in [&site.key_file, &site.previous_key_file].into_iter().flatten() {
            if is_group_or_world_readable(path) {
                warnings.push(Problem {
                    key: path.display().to_string(),
                    message: format!("SM4 key file of {} is readable by group or others: chmod 600 it", site.mn),
                });
            }
        }
    }
    for (key, addr) in crate::host::ports_in_use(config) {
        warnings.push(Problem {
            key: key.to_owned(),
            message: format!("{addr} is in use (by a running hj212d, or another program): the daemon cannot start"),
        });
    }
    if config.sites.is_empty() {
        warnings.push(Problem {
            key: "sites".to_owned(),
            message: "no sites configured: every frame will be rejected as unknown MN".to_owned(),
        });
    }
    warnings
}

#[cfg(unix)]
fn is_world_writable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o002 != 0)
}

#[cfg(not(unix))]
fn is_world_writable(_: &std::path::Path) -> bool {
    false
}

#[cfg(unix)]
fn is_group_or_world_readable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o044 != 0)
}

#[cfg(not(unix))]
fn is_group_or_world_readable(_: &std::path::Path) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_limits_of_zero_are_reported_by_key() {
        let mut config = Config::default();
        config.limits.max_connections_per_peer = 0;
        config.limits.max_unauthenticated = 0;
        config.limits.first_frame_timeout_secs = 0;
        config.limits.refused_interval_secs = 0;
        config.limits.refused_peers = 0;
        // A byte budget of 0 is allowed: refused traffic is then only summarised.
        config.limits.refused_bytes_per_peer = 0;
        config.limits.refused_bytes_total = 0;
        let keys: Vec<String> = check(&config).into_iter().map(|p| p.key).collect();
        for key in [
            "limits.max_connections_per_peer",
            "limits.max_unauthenticated",
            "limits.refused_peers",
            "limits.first_frame_timeout_secs",
            "limits.refused_interval_secs",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} not reported: {keys:?}");
        }
        assert!(!keys.iter().any(|k| k.starts_with("limits.refused_bytes")), "{keys:?}");
    }

    #[test]
    fn archive_sizes_and_compression_levels_out_of_range_are_reported_by_key() {
        let mut config = Config::default();
        config.archive.segment_max_bytes = 1000;
        config.archive.compress_level = 0;
        let keys: Vec<String> = check(&config).into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["archive.segment_max_bytes", "archive.compress_level"]);
        config.archive = crate::Archive { compress_level: 20, ..crate::Archive::default() };
        assert_eq!(check(&config).len(), 1);
        config.archive.compress_level = 19;
        assert!(check(&config).is_empty());
    }
}
