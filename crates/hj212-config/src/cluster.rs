//! `[cluster]`: several hj212d nodes that write what they archive to one replicated NATS
//! JetStream stream, so that the fleet's record is one, whichever node a logger reached.
//! Absent: a single node, as before.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Config;

/// When a logger's frame is acknowledged (9014).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AckAfter {
    /// After this node's archive has fsynced it; the stream gets it right after.
    #[default]
    Local,
    /// After the stream has also stored it (on `replicas` servers): a frame not in the stream
    /// within `ack_timeout_ms` is not acknowledged, and the logger resends it.
    Cluster,
}

/// What a node's follower reads: its own archive or the cluster's stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    /// This node's archive: what this node received.
    #[default]
    Archive,
    /// The cluster's stream: what every node received, each frame once.
    Stream,
}

/// The node's place in the cluster and the stream it publishes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cluster {
    /// The NATS servers, `nats://host:port` or `tls://host:port`; one is enough, more are
    /// tried in turn.
    #[serde(deserialize_with = "one_or_many")]
    pub nats_url: Vec<String>,
    /// This node's name, unique in the cluster: shown on every record it publishes.
    pub node: String,
    /// The JetStream stream, created at first use when it does not exist.
    pub stream: String,
    /// Frames go to `{subject_prefix}.records.{mn}`, a node's own records (events, marks) to
    /// `{subject_prefix}.nodes.{node}`.
    pub subject_prefix: String,
    /// Servers holding each message (1, 3 or 5; more than the cluster has fails).
    pub replicas: usize,
    /// A frame published again within this window (by the other node, or by this node
    /// after a restart) is stored once. It must outlast the loggers' resends; the servers
    /// hold every message id of the window in memory.
    pub duplicate_window_secs: u64,
    /// Messages older than this are dropped from the stream (0: kept until deleted by hand).
    pub max_age_hours: u64,
    /// A NATS credentials file (JWT and NKey seed); relative to the config file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    /// PEM trust roots for `tls://` servers; relative to the config file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    pub ack_after: AckAfter,
    /// What the store (rates, reports, the console) is fed from.
    pub store_from: ReadFrom,
    /// What the time-series sink and the forwarding targets follow: with `stream`, what every
    /// node received, each written and forwarded by one node at a time (the holder of a lease;
    /// needs `store_from = "stream"`).
    pub sinks_from: ReadFrom,
    /// What the alert engine follows: with `stream`, every node's engine follows the stream
    /// and raises the same alerts, and one node at a time delivers them (to MQTT and each
    /// `[[notify]]` channel; needs `store_from = "stream"`).
    pub alerts_from: ReadFrom,
    /// A node that stops renewing its lease on a follower loses it after this long; another
    /// node then takes the follower over from where it stood.
    pub lease_secs: u64,
    /// With `ack_after = "cluster"`: how long a connection waits for the stream.
    pub ack_timeout_ms: u64,
    /// Publish batches (of `[followers] batch_records`) awaiting the stream's acks at once.
    pub max_in_flight: usize,
    /// A publish the stream has not acknowledged in this time (from the acknowledgement before it
    /// in its batch; a batch's first, from when the batches before were stored) fails, and is retried.
    pub publish_timeout_secs: u64,
    /// `/readyz` reports degraded beyond this many records not yet in the stream.
    pub degraded_lag_records: u64,
    pub max_backoff_secs: u64,
}

impl Default for Cluster {
    fn default() -> Self {
        Self {
            nats_url: Vec::new(),
            node: String::new(),
            stream: "HJ212".to_owned(),
            subject_prefix: "hj212".to_owned(),
            replicas: 3,
            duplicate_window_secs: 600,
            max_age_hours: 24 * 30,
            credentials_file: None,
            ca_file: None,
            ack_after: AckAfter::Local,
            store_from: ReadFrom::Archive,
            sinks_from: ReadFrom::Archive,
            alerts_from: ReadFrom::Archive,
            lease_secs: 15,
            ack_timeout_ms: 5000,
            max_in_flight: 8,
            publish_timeout_secs: 10,
            degraded_lag_records: 100_000,
            max_backoff_secs: 10,
        }
    }
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(url) => vec![url],
        OneOrMany::Many(urls) => urls,
    })
}

/// A subject token or stream name: letters, digits, `_` and `-` (NATS gives `.`, `*`, `>`
/// and blanks a meaning; stream names are also file names on the servers).
pub fn is_name(text: &str) -> bool {
    !text.is_empty() && text.len() <= 64 && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The longest duplicate window accepted: a day of ids at the national key-source load.
const MAX_DUPLICATE_WINDOW_SECS: u64 = 24 * 3600;

pub(crate) fn check_cluster(config: &Config, problem: &mut impl FnMut(&str, String)) {
    let Some(cluster) = &config.cluster else { return };
    if cluster.nats_url.is_empty() {
        problem("cluster.nats_url", "name at least one NATS server (nats://host:port)".to_owned());
    }
    for url in &cluster.nats_url {
        if let Some(reason) = bad_nats_url(url) {
            problem("cluster.nats_url", format!("{url:?}: {reason}"));
        }
    }
    if !is_name(&cluster.node) {
        problem("cluster.node", format!("{:?} must be 1-64 letters, digits, _ or -", cluster.node));
    }
    if !is_name(&cluster.stream) {
        problem("cluster.stream", format!("{:?} must be 1-64 letters, digits, _ or -", cluster.stream));
    }
    if cluster.subject_prefix.is_empty() || !cluster.subject_prefix.split('.').all(is_name) {
        problem(
            "cluster.subject_prefix",
            format!("{:?} must be dot-separated tokens of letters, digits, _ or -", cluster.subject_prefix),
        );
    }
    if !(1..=5).contains(&cluster.replicas) {
        problem("cluster.replicas", format!("{} is not in 1-5 (JetStream's limit)", cluster.replicas));
    }
    if !(1..=MAX_DUPLICATE_WINDOW_SECS).contains(&cluster.duplicate_window_secs) {
        problem(
            "cluster.duplicate_window_secs",
            format!("{} is not in 1-{MAX_DUPLICATE_WINDOW_SECS}", cluster.duplicate_window_secs),
        );
    }
    if cluster.max_age_hours != 0 && cluster.max_age_hours * 3600 <= cluster.duplicate_window_secs {
        problem("cluster.max_age_hours", "must be longer than duplicate_window_secs (or 0)".to_owned());
    }
    for (key, value, least) in [
        ("cluster.ack_timeout_ms", cluster.ack_timeout_ms, 100),
        ("cluster.max_in_flight", cluster.max_in_flight as u64, 1),
        ("cluster.publish_timeout_secs", cluster.publish_timeout_secs, 1),
        ("cluster.max_backoff_secs", cluster.max_backoff_secs, 1),
        // Renewed every third of it: shorter would renew faster than a leader election.
        ("cluster.lease_secs", cluster.lease_secs, 3),
    ] {
        if value < least {
            problem(key, format!("must be at least {least}"));
        }
    }
    if cluster.sinks_from == ReadFrom::Stream && cluster.store_from != ReadFrom::Stream {
        // The sink writes what the store applied: both must count in the stream's numbers.
        problem("cluster.sinks_from", "\"stream\" needs store_from = \"stream\" too".to_owned());
    }
    if cluster.alerts_from == ReadFrom::Stream && cluster.store_from != ReadFrom::Stream {
        // The console shows alerts beside the store's data: both count in the stream's numbers.
        problem("cluster.alerts_from", "\"stream\" needs store_from = \"stream\" too".to_owned());
    }
    for (key, file) in [("cluster.credentials_file", &cluster.credentials_file), ("cluster.ca_file", &cluster.ca_file)]
    {
        if let Some(message) = file.as_ref().and_then(|f| crate::host::unreadable(&crate::resolve(config, f))) {
            problem(key, message);
        }
    }
}

/// Why a NATS server url is refused, if it is.
fn bad_nats_url(url: &str) -> Option<&'static str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Some("missing scheme (expected nats:// or tls://)");
    };
    if !matches!(scheme, "nats" | "tls") {
        return Some("unknown scheme (expected nats:// or tls://)");
    }
    if rest.contains('@') {
        return Some("credentials belong in credentials_file, not in the url");
    }
    if rest.trim_end_matches('/').is_empty() {
        return Some("no host");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert_eq!(bad_nats_url("nats://127.0.0.1:4222"), None);
        assert_eq!(bad_nats_url("tls://nats.example:4222"), None);
        assert!(bad_nats_url("127.0.0.1:4222").unwrap().contains("scheme"));
        assert!(bad_nats_url("http://x").unwrap().contains("unknown scheme"));
        assert!(bad_nats_url("nats://user:pw@x").unwrap().contains("credentials_file"));
        assert!(bad_nats_url("nats://").unwrap().contains("no host"));
    }

    #[test]
    fn one_url_or_a_list() {
        let one: Cluster = toml::from_str("nats_url = \"nats://a:1\"\nnode = \"a\"").unwrap();
        assert_eq!(one.nats_url, ["nats://a:1"]);
        let many: Cluster = toml::from_str("nats_url = [\"nats://a:1\", \"nats://b:1\"]").unwrap();
        assert_eq!(many.nats_url.len(), 2);
        assert_eq!(many.replicas, 3);
    }

    #[test]
    fn sinks_and_alerts_from_the_stream_need_the_store_from_it_and_a_lease_of_seconds() {
        let text = "nats_url = \"nats://a:1\"\nnode = \"a\"\nsinks_from = \"stream\"\nalerts_from = \"stream\"\nlease_secs = 1";
        let config = Config { cluster: Some(toml::from_str(text).unwrap()), ..Config::default() };
        let mut problems = Vec::new();
        check_cluster(&config, &mut |key: &str, message: String| problems.push(format!("{key}: {message}")));
        assert_eq!(
            problems,
            [
                "cluster.lease_secs: must be at least 3",
                "cluster.sinks_from: \"stream\" needs store_from = \"stream\" too",
                "cluster.alerts_from: \"stream\" needs store_from = \"stream\" too"
            ]
        );
    }

    #[test]
    fn names() {
        assert!(is_name("node-1_a"));
        assert!(!is_name("a.b"));
        assert!(!is_name("a b"));
        assert!(!is_name(""));
        assert!(!is_name("*"));
    }
}
