//! Starting the archive's followers (store feed, alert engine and MQTT publisher, Influx
//! sink) and what `/readyz` watches of them. A follower task that ends with an error stays
//! failing in its status until a restart.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hj212_archive::{Archive, FollowerStatus, Settings, now_ms};
use hj212_config::Config;
use hj212_follow::RunnerSettings;
use hj212_http::{Readiness, Watched};
use hj212_server::metrics::{STORE_DUPLICATES, STORE_ROWS};
use hj212_store::{Store, StoreFollower};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The store is reported degraded from this many archive records behind.
const STORE_DEGRADED_LAG: u64 = 100_000;
/// The alert engine is reported degraded from this many archive records behind.
const ALERTS_DEGRADED_LAG: u64 = 10_000;
/// Tamper fingerprints are kept this long (national repair window of 10 days, with margin).
const FINGERPRINT_DAYS: u32 = 40;

/// The alert engine's settings for this data directory.
pub(crate) fn alert_settings(config: &Config) -> hj212_alerts::AlertSettings {
    let data_dir = &config.server.data_dir;
    hj212_alerts::AlertSettings {
        db_path: data_dir.join("alerts.sqlite"),
        mqtt: config.mqtt.is_some(),
        fingerprint_days: FINGERPRINT_DAYS,
    }
}

/// Starts the Influx sink (when configured) from its cursor at `position`.
pub(crate) fn spawn_influx(
    config: &Config,
    archive: &Archive,
    settings: &Settings,
    position: u64,
    feed_shutdown: &CancellationToken,
    readiness: &mut Readiness,
) -> anyhow::Result<Option<JoinHandle<std::io::Result<()>>>> {
    let Some(influx_config) = &config.influx else { return Ok(None) };
    let status = Arc::new(hj212_sink_influx::Status::default());
    status.follower.applied(position);
    readiness.followers.push(Watched {
        name: "influx",
        status: status.follower.clone(),
        required: false,
        degraded_lag: influx_config.degraded_lag_records,
    });
    let sink = influx_settings(config, influx_config, settings)?;
    let follower = status.follower.clone();
    let run = hj212_sink_influx::run(sink, archive.durable(), feed_shutdown.clone(), status);
    Ok(Some(tokio::spawn(async move {
        let result = run.await;
        if let Err(error) = &result {
            follower.failed(error, now_ms());
            tracing::error!(%error, "influx sink stopped; points will be written after a restart");
        }
        result
    })))
}

/// A follower's thread (see `hj212_follow::spawn`).
pub(crate) type FollowerThread = std::thread::JoinHandle<Result<(), hj212_follow::FollowError>>;

/// How followers run, from `[followers]`.
pub(crate) fn runner_settings(config: &Config, settings: &Settings) -> RunnerSettings {
    RunnerSettings {
        archive_dir: settings.dir.clone(),
        batch: config.followers.batch_records,
        tick: Duration::from_millis(config.followers.tick_ms),
        max_backoff: Duration::from_secs(config.followers.max_backoff_secs),
    }
}

/// Starts the store as a follower from its own position.
pub(crate) fn spawn_store(
    config: &Config,
    store: Store,
    position: u64,
    settings: &Settings,
    archive: &Archive,
    feed_shutdown: &CancellationToken,
    readiness: &mut Readiness,
) -> anyhow::Result<FollowerThread> {
    let status = Arc::new(FollowerStatus::at(position));
    readiness.followers.push(Watched {
        name: "store",
        status: status.clone(),
        required: true,
        degraded_lag: STORE_DEGRADED_LAG,
    });
    let (rows, duplicates) = (metrics::counter!(STORE_ROWS), metrics::counter!(STORE_DUPLICATES));
    let follower = StoreFollower::new(store, move |applied| {
        rows.increment(applied.rows as u64);
        duplicates.increment(applied.duplicates as u64);
    });
    let runner = runner_settings(config, settings);
    Ok(hj212_follow::spawn(Box::new(follower), runner, archive.durable(), status, feed_shutdown.clone())?)
}

/// The followers' names and statuses (for the gauges and the retention floor).
pub(crate) fn watched(readiness: &Readiness) -> Vec<(&'static str, Arc<FollowerStatus>)> {
    readiness.followers.iter().map(|w| (w.name, w.status.clone())).collect()
}

fn influx_settings(
    config: &Config,
    influx: &hj212_config::Influx,
    archive: &Settings,
) -> anyhow::Result<hj212_sink_influx::Settings> {
    use hj212_sink_influx::{Api, Endpoint};
    let token = hj212_config::influx_token(config)?;
    let api = match influx.api {
        hj212_config::InfluxApi::V2 => Api::V2 { org: influx.org.clone(), bucket: influx.bucket.clone() },
        hj212_config::InfluxApi::V1 => Api::V1 { db: influx.db.clone() },
    };
    let data_dir = &config.server.data_dir;
    Ok(hj212_sink_influx::Settings {
        endpoint: Endpoint {
            base_url: influx.url.clone(),
            api,
            token,
            gzip: influx.gzip,
            timeout: Duration::from_secs(influx.timeout_secs),
        },
        archive_dir: archive.dir.clone(),
        store_path: data_dir.join("store.sqlite"),
        cursor_path: data_dir.join("influx.cursor"),
        dead_letter_path: data_dir.join("influx-dead-letter.lp"),
        batch_points: influx.batch_points,
        batch_interval: Duration::from_millis(influx.batch_interval_ms),
        max_backoff: Duration::from_secs(influx.max_backoff_secs.max(1)),
        sites: config.sites.iter().map(|s| (s.mn.clone(), s.name.clone())).collect(),
    })
}

/// The alert engine and, with a broker configured, the MQTT publisher.
pub(crate) struct Alerting {
    pub task: FollowerThread,
    pub mqtt: Option<(JoinHandle<Result<(), hj212_sink_mqtt::MqttError>>, CancellationToken)>,
    pub rules: watch::Sender<Arc<hj212_alerts::RulesMap>>,
}

pub(crate) fn spawn_alerts(
    config: &Config,
    alert_settings: &hj212_alerts::AlertSettings,
    archive: &Archive,
    settings: &Settings,
    position: u64,
    feed_shutdown: &CancellationToken,
    readiness: &mut Readiness,
) -> anyhow::Result<Alerting> {
    let (outbox_newest, outbox_wake) = watch::channel(0);
    let mqtt = match &config.mqtt {
        Some(mqtt_config) => {
            let (status_tx, status_rx) = watch::channel(hj212_sink_mqtt::PublisherStatus::default());
            readiness.mqtt = Some(status_rx);
            let outbox = hj212_alerts::SqliteOutbox::open(&alert_settings.db_path)?;
            let stop = CancellationToken::new();
            let run = hj212_sink_mqtt::run_publisher(
                mqtt_settings(config, mqtt_config)?,
                outbox,
                outbox_wake,
                status_tx,
                stop.clone(),
            );
            Some((tokio::spawn(run), stop))
        }
        None => None,
    };
    let (alert_rules, rules_rx) = watch::channel(Arc::new(hj212_alerts::rules_map(config)));
    let status = Arc::new(FollowerStatus::at(position));
    readiness.followers.push(Watched {
        name: "alerts",
        status: status.clone(),
        required: true,
        degraded_lag: ALERTS_DEGRADED_LAG,
    });
    let head = *archive.durable().borrow();
    let follower = hj212_alerts::AlertsFollower::open(alert_settings, head, rules_rx, outbox_newest)?;
    let runner = runner_settings(config, settings);
    let task = hj212_follow::spawn(Box::new(follower), runner, archive.durable(), status, feed_shutdown.clone())?;
    Ok(Alerting { task, mqtt, rules: alert_rules })
}

fn mqtt_settings(config: &Config, mqtt: &hj212_config::Mqtt) -> anyhow::Result<hj212_sink_mqtt::MqttSettings> {
    let settings = crate::preflight::mqtt_settings(config, mqtt, hj212_config::mqtt_password(config)?);
    // Fail at start, not later in the background (e.g. mqtts:// without the tls feature).
    settings.validate().context("mqtt")?;
    Ok(settings)
}
