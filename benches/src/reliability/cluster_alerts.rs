//! The cluster trial's alerts (`reliability cluster --cluster-followers`): both nodes' alert
//! engines follow the stream (`alerts_from = "stream"`) and publish to one mosquitto broker,
//! one node at a time. The load's SO2 value climbs 0.25 to 99.25 and starts again (logger::frame),
//! so with a limit of 89 and the real-time pre-alert on (`early_warning`) every site raises and
//! clears an `exceedance_warning` every hundred frames. After the kills, both engines must hold the same alert messages, and
//! each must have reached the broker (a message sent again by a node that took over carries the
//! same id: counted).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use test_support::mosquitto::{Mosquitto, Subscriber};

use super::Report;
use super::daemon::Config;

/// The limit of the load's SO2 (a21026): real-time values 89.25 and above are over it.
const LIMIT: f64 = 89.0;

/// The broker both nodes publish to, and a subscriber recording every alert message.
pub(super) struct Alerts {
    broker: Mosquitto,
    subscriber: Subscriber,
}

impl Alerts {
    /// Starts the broker and subscribes.
    pub(super) fn start() -> Self {
        let broker = Mosquitto::start();
        let subscriber = Subscriber::connect(broker.addr, "hj212/alerts/#");
        Self { broker, subscriber }
    }

    /// The `[mqtt]` and `[alerts]` tables and the sites' limit that make a node raise the load's
    /// alerts (with `alerts_from = "stream"`, set by `cluster_followers::configure`).
    pub(super) fn configure(&self, config: &mut Config) {
        let _ = write!(
            config.tables,
            "[mqtt]\nurl = \"{}\"\nmax_backoff_secs = 1\n[alerts]\nearly_warning = true\n",
            self.broker.url()
        );
        config.sites = super::daemon::load_sites(&format!("[[sites.limits]]\nfactor = \"a21026\"\nmax = {LIMIT:.1}\n"));
    }

    /// Waits (while the nodes run) until every message their engines hold reached the broker,
    /// at most `within` (what is missing then is judged).
    pub(super) fn wait_delivered(&self, nodes: &[Config; 2], within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let received = self.received();
            let delivered = nodes
                .iter()
                .all(|node| messages(&node.data_dir).is_ok_and(|held| held.iter().all(|id| received.contains_key(id))));
            if delivered || Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Judges both engines' messages (after the nodes stopped) against what the broker delivered.
    pub(super) fn judge(&self, report: &mut Report, nodes: &[Config; 2]) {
        let held = match (messages(&nodes[0].data_dir), messages(&nodes[1].data_dir)) {
            (Ok(a), Ok(b)) => {
                report.figure("alert messages in each node's engine (a / b)", format!("{} / {}", a.len(), b.len()));
                let differ = a.symmetric_difference(&b).count();
                report.check(
                    "both nodes' engines raised the same alert messages, with the same ids",
                    differ == 0 && !a.is_empty(),
                    format!("{} and {} messages, {differ} in one only", a.len(), b.len()),
                );
                a.union(&b).cloned().collect::<HashSet<String>>()
            }
            (a, b) => {
                report.check("both nodes' alerts can be read", false, format!("{:?} / {:?}", a.err(), b.err()));
                return;
            }
        };
        let received = self.received();
        let missing = held.iter().filter(|id| !received.contains_key(*id)).count();
        let unknown = received.keys().filter(|id| !held.contains(*id)).count();
        let again: u32 = received.values().map(|copies| copies - 1).sum();
        report.figure("alert messages received again (same id, after takeovers)", again);
        report.check(
            "every alert message reached MQTT, none unknown to the engines",
            missing == 0 && unknown == 0,
            format!("{} held, {missing} missing at the broker, {unknown} received that no engine holds", held.len()),
        );
    }

    /// Message id -> copies received.
    fn received(&self) -> HashMap<String, u32> {
        let mut copies = HashMap::new();
        for message in self.subscriber.received() {
            let id = serde_json::from_slice::<serde_json::Value>(&message.payload)
                .ok()
                .and_then(|m| m["id"].as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("unreadable: {}", message.payload_str()));
            *copies.entry(id).or_insert(0) += 1;
        }
        copies
    }
}

/// The ids of the alert messages a node's engine raised.
fn messages(data_dir: &Path) -> Result<HashSet<String>> {
    let path = data_dir.join("alerts.sqlite");
    let db = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("open {}", path.display()))?;
    let mut query = db.prepare("SELECT message_id FROM alert_messages")?;
    let ids = query.query_map([], |row| row.get(0))?.collect::<rusqlite::Result<HashSet<String>>>()?;
    Ok(ids)
}
