//! Alert rules, limits and the MQTT publisher (docs/compliance.md §3-4; every number
//! is a platform default, as no national text sets them).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Percent;

/// Alert rule settings of a site (or the defaults of all sites).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertRules {
    /// How often the site is expected to send (real-time data or heartbeats).
    pub expected_interval_secs: u64,
    /// Offline after this many expected intervals without a frame (generic rule: 3).
    pub offline_intervals: u32,
    /// A period's record is missing this long after the period ends (hourly: HH+10 min).
    pub record_grace_minutes: u32,
    /// Identical values for this long make a flat line (恒值); 0 = off.
    pub flat_line_hours: u32,
    /// Zero while running for this long; 0 = off.
    pub zero_hours: u32,
    /// M, C or D flags for this long in a row; 0 = off.
    pub flag_run_hours: u32,
    /// Real-time DataTime this far from the receive time is clock drift.
    pub clock_drift_secs: u64,
    /// Consecutive drifting real-time frames, with agreeing offsets, before the alert.
    pub clock_drift_confirmations: u32,
    /// A tamper alert clears after this long without another conflicting resend.
    pub tamper_quiet_hours: u32,
    /// An exceedance clears once the value is back inside the limit by this percentage of it.
    pub hysteresis_percent: Percent,
    /// Pre-alert when a real-time value is outside a limit.
    pub early_warning: bool,
    /// The O2 factor used for conversions to the reference O2.
    pub o2_factor: String,
    /// A flow or load factor; while it reads 0 the source is stopped and flat or zero values are expected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_factor: Option<String>,
    /// Fleet grouping, top-level `[alerts]` only: at least this many sites going offline within
    /// `fleet_outage_window_secs` are one `fleet_outage` alert (their own offline messages are
    /// marked `inhibited_by` it); 0 = off.
    pub fleet_outage_sites: usize,
    pub fleet_outage_window_secs: u64,
}

impl Default for AlertRules {
    fn default() -> Self {
        Self {
            expected_interval_secs: 300,
            offline_intervals: 3,
            record_grace_minutes: 10,
            flat_line_hours: 6,
            zero_hours: 2,
            flag_run_hours: 4,
            clock_drift_secs: 60,
            clock_drift_confirmations: 3,
            tamper_quiet_hours: 24,
            hysteresis_percent: Percent(500),
            early_warning: false,
            o2_factor: "a19001".to_owned(),
            running_factor: None,
            fleet_outage_sites: 10,
            fleet_outage_window_secs: 300,
        }
    }
}

/// Which averages a limit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitBasis {
    /// Valid hourly averages (CN=2061), the flue-gas rule.
    #[default]
    Hour,
    /// Valid daily averages (CN=2031), the wastewater rule.
    Day,
}

/// One factor's limits and value rules at a site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactorLimit {
    pub factor: String,
    /// Permitted upper limit, in the factor's unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Permitted lower limit (e.g. pH 6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default)]
    pub basis: LimitBasis,
    /// Reference O2 in %, for conversion when the frame carries no Zs value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_o2: Option<f64>,
    /// Largest step between consecutive values (突变).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_step: Option<f64>,
    /// The instrument's range, `[low, high]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<[f64; 2]>,
}

/// The MQTT publisher. `Debug` never shows a password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mqtt {
    /// `mqtt://host:port` (1883 by default) or `mqtts://host:port` (8883).
    pub url: String,
    /// Alerts go to `{prefix}/alerts/{mn}/{kind}`, status to `{prefix}/status/{mn}` (retained).
    pub topic_prefix: String,
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// A file holding the password (trailing whitespace ignored); relative to the config file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// PEM trust roots for `mqtts://` (relative to the config file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    pub keep_alive_secs: u64,
    /// QoS 1 messages published and not yet acknowledged, at most.
    pub max_in_flight: u16,
    /// Reconnect delays double up to this cap (with jitter).
    pub max_backoff_secs: u64,
}

impl Default for Mqtt {
    fn default() -> Self {
        Self {
            url: String::new(),
            topic_prefix: "hj212".to_owned(),
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            username: None,
            password_file: None,
            ca_file: None,
            keep_alive_secs: 30,
            max_in_flight: 64,
            max_backoff_secs: 30,
        }
    }
}

/// The client id of `[mqtt]` when none is set.
pub const DEFAULT_CLIENT_ID: &str = "hj212d";

impl Mqtt {
    /// The client id this node connects with. A broker drops a connection when another client
    /// connects with its id, so the nodes of a cluster, whose `[mqtt]` tables are otherwise the
    /// same, each get their own by default: `hj212d-{node}`. An id set in the config is used as is.
    pub fn node_client_id(&self, cluster: Option<&crate::Cluster>) -> String {
        match cluster {
            Some(cluster) if self.client_id == DEFAULT_CLIENT_ID => format!("{DEFAULT_CLIENT_ID}-{}", cluster.node),
            _ => self.client_id.clone(),
        }
    }
}

impl std::fmt::Debug for Mqtt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mqtt")
            .field("url", &self.url)
            .field("topic_prefix", &self.topic_prefix)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password_file", &self.password_file)
            .field("ca_file", &self.ca_file)
            .field("keep_alive_secs", &self.keep_alive_secs)
            .field("max_in_flight", &self.max_in_flight)
            .field("max_backoff_secs", &self.max_backoff_secs)
            .finish()
    }
}
