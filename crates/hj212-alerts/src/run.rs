//! The alert engine as a follower of the archive (hj212-follow runs it): each batch of
//! durable records goes through the rules in one transaction with the position, and about
//! once a second the clock rules (offline, record missing) run, except while catching up on a
//! backlog, when every site's last frame would look old.

use std::path::PathBuf;
use std::sync::Arc;

use hj212_compliance::alert::FleetRules;
use hj212_follow::{FollowError, Follower, Interpreted};
use tokio::sync::watch;

use crate::process::Processor;
use crate::rules::RulesMap;
use crate::{AlertsError, metrics};

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// `data_dir/alerts.sqlite`.
    pub db_path: PathBuf,
    /// Queue messages in the outbox (a broker or a `[[notify]]` channel is configured).
    pub mqtt: bool,
    /// Queue this node's archive checkpoints for the retained topic (`archive/head`): not
    /// when the engine follows a cluster's stream, which holds every node's checkpoints.
    pub checkpoints: bool,
    /// Tamper fingerprints are kept for data this recent (national repair window 10 days, with margin).
    pub fingerprint_days: u32,
    /// The clock rules wait while the engine is further behind the archive than this.
    pub clock_max_lag: u64,
    /// When offline sites make one fleet-wide outage (`[alerts] fleet_outage_*`).
    pub fleet: FleetRules,
    /// `[http] public_url`: messages link to the console there.
    pub public_url: Option<String>,
}

impl AlertSettings {
    /// The engine's settings from the config: `[followers]`, and whether anyone drains the
    /// outbox (`[mqtt]` or a `[[notify]]` channel).
    pub fn from_config(config: &hj212_config::Config) -> Self {
        Self {
            db_path: config.data_dir().alerts(),
            mqtt: config.mqtt.is_some() || !config.notify.is_empty(),
            checkpoints: !config.cluster.as_ref().is_some_and(|c| c.alerts_from == hj212_config::ReadFrom::Stream),
            fingerprint_days: config.followers.alerts_fingerprint_days,
            clock_max_lag: config.followers.alerts_clock_max_lag_records,
            fleet: FleetRules {
                min_sites: config.alerts.fleet_outage_sites,
                window_ms: i64::try_from(config.alerts.fleet_outage_window_secs.saturating_mul(1000))
                    .unwrap_or(i64::MAX),
            },
            public_url: config.http.public_url.as_ref().map(|url| url.trim_end_matches('/').to_owned()),
        }
    }
}

/// Opens the alerts database (checked at start, before serving).
///
/// # Errors
/// [`AlertsError`] when the database cannot be opened or its state does not load.
pub fn applied_seq(settings: &AlertSettings) -> Result<u64, AlertsError> {
    crate::db::applied_seq(&crate::db::open(&settings.db_path)?)
}

/// The rule engine with its database, fed by the follower runtime.
#[derive(Debug)]
pub struct AlertsFollower {
    processor: Processor,
    rules: watch::Receiver<Arc<RulesMap>>,
    /// Told the newest outbox sequence number (wakes the MQTT publisher).
    newest: watch::Sender<u64>,
    fingerprint_days: u32,
    clock_max_lag: u64,
}

impl AlertsFollower {
    /// Opens the engine. A new database starts at `head`, the last durable archive record:
    /// history from before the alert engine existed (an upgrade) is not alerted again.
    ///
    /// # Errors
    /// [`AlertsError`] when the database cannot be opened or its state does not load.
    pub fn open(
        settings: &AlertSettings,
        head: u64,
        rules: watch::Receiver<Arc<RulesMap>>,
        newest: watch::Sender<u64>,
    ) -> Result<Self, AlertsError> {
        let processor = Processor::open(settings, head)?;
        let (fingerprint_days, clock_max_lag) = (settings.fingerprint_days, settings.clock_max_lag);
        Ok(Self { processor, rules, newest, fingerprint_days, clock_max_lag })
    }

    fn published(&self, newest_outbox: u64) {
        if newest_outbox > 0 {
            self.newest.send_replace(newest_outbox);
        }
    }
}

impl Follower for AlertsFollower {
    fn name(&self) -> &'static str {
        "alerts"
    }

    fn position(&mut self) -> Result<u64, FollowError> {
        Ok(self.processor.applied_seq())
    }

    fn apply(&mut self, records: &[Interpreted]) -> Result<u64, FollowError> {
        let rules = self.rules.borrow().clone();
        let stepped = self.processor.step(records, None, &rules, None).inspect_err(|_| metrics::error())?;
        self.published(stepped.newest_outbox);
        Ok(stepped.applied_seq)
    }

    fn tick(&mut self, now_ms: i64, behind: u64) -> Result<u64, FollowError> {
        if behind > self.clock_max_lag {
            return self.position();
        }
        let rules = self.rules.borrow().clone();
        let prune = now_ms - i64::from(self.fingerprint_days) * 86_400_000;
        let stepped = self.processor.step(&[], Some(now_ms), &rules, Some(prune)).inspect_err(|_| metrics::error())?;
        self.published(stepped.newest_outbox);
        if let Ok(depth) = self.processor.outbox_depth() {
            metrics::outbox(depth);
        }
        Ok(stepped.applied_seq)
    }

    fn recover(&mut self) -> Result<u64, FollowError> {
        // Forget the in-memory changes of the failed step: resume from what is committed.
        self.processor.reload()?;
        self.position()
    }
}
