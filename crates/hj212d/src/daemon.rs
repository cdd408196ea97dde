//! Starting, running and stopping the daemon.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use hj212_archive::FollowerStatus;
use hj212_archive::{Archive, CheckpointSettings, Kind, NewRecord, Settings, Verdict, WriterThread, now_ms};
use hj212_config::Config;
use hj212_http::{Readiness, Watched};
use hj212_server::Shared;
use hj212_server::metrics::{SITES_CONFIGURED, STORE_DUPLICATES, STORE_LAG, STORE_ROWS};
use hj212_store::{FeedSettings, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::lock::{DataDirLock, LockError};
use crate::observe;
use crate::{EX_CANTCREAT, EX_CONFIG, EX_DATAERR, EX_TEMPFAIL};

/// How long connections get to finish their frames after a stop signal.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
/// The store is reported degraded from this many archive records behind.
const STORE_DEGRADED_LAG: u64 = 100_000;
/// The alert engine is reported degraded from this many archive records behind.
const ALERTS_DEGRADED_LAG: u64 = 10_000;
/// Tamper fingerprints are kept this long (national repair window of 10 days, with margin).
const FINGERPRINT_DAYS: u32 = 40;

/// The daemon's parts, before they run.
#[derive(Debug)]
pub struct Daemon;

/// A running daemon.
#[derive(Debug)]
pub struct Running {
    /// Where the HJ 212 listener is bound.
    pub hj212_addr: SocketAddr,
    /// Where the admin HTTP listener is bound.
    pub http_addr: SocketAddr,
    pub shared: Arc<Shared>,
    shutdown: CancellationToken,
    /// Stops the store feed; cancelled after the last record is archived.
    feed_shutdown: CancellationToken,
    tracker: TaskTracker,
    http: JoinHandle<std::io::Result<()>>,
    feed: JoinHandle<Result<(), hj212_store::StoreError>>,
    influx: Option<JoinHandle<std::io::Result<()>>>,
    alerts: JoinHandle<Result<(), hj212_alerts::AlertsError>>,
    /// The MQTT publisher and its stop token (cancelled once the alert engine has drained).
    mqtt: Option<(JoinHandle<Result<(), hj212_sink_mqtt::MqttError>>, CancellationToken)>,
    /// Each site's alert rules; replaced on SIGHUP.
    alert_rules: watch::Sender<Arc<hj212_alerts::RulesMap>>,
    writer: WriterThread,
    config: Config,
    /// Released last, once the writer has stopped.
    lock: DataDirLock,
}

impl Daemon {
    /// Opens the archive and store, binds both listeners and starts serving.
    ///
    /// # Errors
    /// Anything that prevents serving (data dir, archive, store, sockets), with context.
    pub async fn start(config: Config) -> anyhow::Result<Running> {
        let data_dir = &config.server.data_dir;
        let fd_limit = crate::fds::raise_and_check(config.limits.max_connections)?;
        // Before anything is written: a second instance must leave the first one's files alone.
        let lock = DataDirLock::acquire(data_dir)?;
        let prometheus = observe::prometheus();
        let store = Store::open(&data_dir.join("store.sqlite"))?;
        let alert_settings = hj212_alerts::AlertSettings {
            db_path: data_dir.join("alerts.sqlite"),
            archive_dir: data_dir.join("archive"),
            batch: 1000,
            tick: Duration::from_secs(1),
            mqtt: config.mqtt.is_some(),
            fingerprint_days: FINGERPRINT_DAYS,
        };
        let followers = [
            ("embedded store", store.applied_seq()?),
            ("alert engine", hj212_alerts::applied_seq(&alert_settings)?),
            ("influx sink cursor", influx_cursor(&data_dir.join("influx.cursor"))),
        ];
        let (archive, writer, settings) = open_archive(&config, &followers).await?;
        tracing::info!(dir = %settings.dir.display(), fd_limit, "archive open");

        let shared = Arc::new(Shared::new(&config, archive.clone()));
        let primed = shared.prime_dedup(&settings.dir).context("cannot rebuild the resend window from the archive")?;
        tracing::info!(frames = primed, "resend window rebuilt from the archive's tail");
        metrics::gauge!(SITES_CONFIGURED).set(config.sites.len() as f64);
        let mut readiness = Readiness::default();
        let shutdown = CancellationToken::new();
        let feed_shutdown = CancellationToken::new();
        let influx = match &config.influx {
            Some(influx_config) => {
                let status = Arc::new(hj212_sink_influx::Status::default());
                readiness.followers.push(Watched {
                    name: "influx",
                    status: status.follower.clone(),
                    required: false,
                    degraded_lag: influx_config.degraded_lag_records,
                });
                let sink = influx_settings(&config, influx_config, &settings)?;
                let run = hj212_sink_influx::run(sink, archive.durable(), feed_shutdown.clone(), status);
                Some(tokio::spawn(async move {
                    let result = run.await;
                    if let Err(error) = &result {
                        tracing::error!(%error, "influx sink stopped; points will be written after a restart");
                    }
                    result
                }))
            }
            None => None,
        };
        let alerting = spawn_alerts(&config, alert_settings, &archive, &feed_shutdown, &mut readiness)?;
        let store_status = Arc::new(FollowerStatus::at(store.applied_seq()?));
        readiness.followers.push(Watched {
            name: "store",
            status: store_status.clone(),
            required: true,
            degraded_lag: STORE_DEGRADED_LAG,
        });
        let watched: Vec<_> = readiness.followers.iter().map(|w| (w.name, w.status.clone())).collect();
        let feed = spawn_feed(store, store_status, &settings, &archive, &feed_shutdown, watched.clone());
        let readiness = Arc::new(readiness);

        let listener = listen(config.server.listen, config.limits.listen_backlog)
            .with_context(|| format!("cannot listen on {} (server.listen)", config.server.listen))?;
        let http_listener = TcpListener::bind(config.server.http_listen)
            .await
            .with_context(|| format!("cannot listen on {} (server.http_listen)", config.server.http_listen))?;
        let (hj212_addr, http_addr) = (listener.local_addr()?, http_listener.local_addr()?);
        let tracker = TaskTracker::new();
        tracker.spawn(hj212_server::serve(listener, shared.clone(), shutdown.clone(), tracker.clone()));
        readiness.listening.store(true, Ordering::Relaxed);
        let admin = hj212_http::Admin {
            store_path: data_dir.join("store.sqlite"),
            alerts_path: data_dir.join("alerts.sqlite"),
            admin_token: hj212_config::admin_token(&config)?,
            read_token: hj212_config::admin_read_token(&config)?,
            limits: config.http.clone(),
        };
        let router = hj212_http::router(prometheus, shared.clone(), readiness, admin);
        let http = tokio::spawn(hj212_http::serve(http_listener, router, shutdown.clone(), config.http.clone()));
        tracker.spawn(crate::gauges::run(shared.clone(), data_dir.join("store.sqlite"), shutdown.clone()));
        // Not on the tracker: it reports while connections drain and stops with the followers.
        tokio::spawn(crate::followers::report(watched, archive.durable(), feed_shutdown.clone()));
        tracing::info!(%hj212_addr, %http_addr, sites = config.sites.len(), "hj212d serving");
        Ok(Running {
            hj212_addr,
            http_addr,
            shared,
            shutdown,
            feed_shutdown,
            tracker,
            http,
            feed,
            influx,
            alerts: alerting.task,
            mqtt: alerting.mqtt,
            alert_rules: alerting.rules,
            writer,
            config,
            lock,
        })
    }
}

/// The HJ 212 listener with a deep accept queue: after a network outage thousands of loggers
/// reconnect at once, and connections beyond the queue would stall in SYN retries.
fn listen(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Opens the archive (the followers' positions are evidence of what was durable), records
/// what recovery did and the start.
async fn open_archive(config: &Config, followers: &[(&str, u64)]) -> anyhow::Result<(Archive, WriterThread, Settings)> {
    let settings = archive_settings(config, followers)?;
    let observer = Arc::new(hj212_server::metrics::ArchiveMetrics::default());
    let (archive, writer, recovery) = Archive::open(settings.clone(), observer)?;
    check_followers(recovery.next_seq - 1, followers)?;
    if recovery.upgraded_from_v1 {
        tracing::info!("archive: continuing in a new segment of the current format (headers covered by the chain)");
    }
    if let Some((segment, at, len, kept)) = &recovery.truncated {
        tracing::warn!(segment = %segment.display(), at, len, kept = %kept.display(),
            "archive: cut a torn tail left by a crash (never acknowledged); the cut bytes are kept");
        event(&archive, format!("recovered: torn tail of {len} bytes cut at byte {at} of {}", segment.display()))
            .await?;
    }
    event(&archive, format!("started hj212d {}", env!("CARGO_PKG_VERSION"))).await?;
    Ok((archive, writer, settings))
}

/// The archive's settings; the followers' positions are evidence of what was durable, which
/// startup must never cut as a crash's torn tail.
fn archive_settings(config: &Config, followers: &[(&str, u64)]) -> anyhow::Result<Settings> {
    let key_path = hj212_config::signing_key_path(config);
    let key = hj212_archive::checkpoint::load_or_create_key(&key_path).context("archive.signing_key_file")?;
    Ok(Settings {
        dir: config.server.data_dir.join("archive"),
        segment_max_bytes: config.archive.segment_max_bytes,
        segment_max_age: Duration::from_secs(config.archive.segment_max_age_secs),
        retention: (config.archive.retention_days > 0)
            .then(|| Duration::from_secs(u64::from(config.archive.retention_days) * 86_400)),
        queue: config.limits.archive_queue,
        queue_bytes: config.limits.archive_queue_bytes,
        checkpoints: Some(CheckpointSettings {
            key,
            interval: Duration::from_secs(config.archive.checkpoint_interval_secs),
        }),
        resume_free_bytes: config.archive.resume_free_bytes,
        durable_at_least: followers.iter().map(|(_, position)| *position).max().unwrap_or(0),
    })
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
struct Alerting {
    task: JoinHandle<Result<(), hj212_alerts::AlertsError>>,
    mqtt: Option<(JoinHandle<Result<(), hj212_sink_mqtt::MqttError>>, CancellationToken)>,
    rules: watch::Sender<Arc<hj212_alerts::RulesMap>>,
}

fn spawn_alerts(
    config: &Config,
    alert_settings: hj212_alerts::AlertSettings,
    archive: &Archive,
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
    let alerts_status = Arc::new(FollowerStatus::default());
    readiness.followers.push(Watched {
        name: "alerts",
        status: alerts_status.clone(),
        required: true,
        degraded_lag: ALERTS_DEGRADED_LAG,
    });
    let alerts = tokio::spawn({
        let run = hj212_alerts::run(
            alert_settings,
            rules_rx,
            archive.durable(),
            outbox_newest,
            alerts_status.clone(),
            feed_shutdown.clone(),
        );
        async move {
            let result = run.await;
            if let Err(error) = &result {
                tracing::error!(%error, "alert engine stopped; alerts will be raised after a restart");
            }
            result
        }
    });
    Ok(Alerting { task: alerts, mqtt, rules: alert_rules })
}

fn mqtt_settings(config: &Config, mqtt: &hj212_config::Mqtt) -> anyhow::Result<hj212_sink_mqtt::MqttSettings> {
    let settings = hj212_sink_mqtt::MqttSettings {
        url: mqtt.url.clone(),
        topic_prefix: mqtt.topic_prefix.clone(),
        client_id: mqtt.client_id.clone(),
        username: mqtt.username.clone(),
        password: hj212_config::mqtt_password(config)?,
        keep_alive_secs: mqtt.keep_alive_secs,
        max_in_flight: mqtt.max_in_flight,
        max_backoff_secs: mqtt.max_backoff_secs,
        ca_file: mqtt.ca_file.as_deref().map(|f| hj212_config::resolve_path(config, f)),
    };
    // Fail at start, not later in the background (e.g. mqtts:// without the tls feature).
    settings.validate().context("mqtt")?;
    Ok(settings)
}

/// The Influx sink's persisted position (0 when it has none).
fn influx_cursor(path: &Path) -> u64 {
    std::fs::read_to_string(path).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0)
}

/// A follower has applied records the archive no longer has: the archive is damaged (exit 65).
#[derive(Debug, thiserror::Error)]
#[error(
    "the {follower} has applied archive record {position} but the archive ends at {archive_last}: \
     the archive was replaced or cut; restore it, or remove the follower's state to rebuild it"
)]
struct ArchiveBehindFollower {
    follower: String,
    position: u64,
    archive_last: u64,
}

/// A store, engine or sink that has applied records the archive does not have would silently
/// skip the archive's next records: the archive was replaced or cut. Refuse to start.
fn check_followers(archive_last: u64, followers: &[(&str, u64)]) -> anyhow::Result<()> {
    for &(name, position) in followers {
        if position > archive_last {
            return Err(ArchiveBehindFollower { follower: name.to_owned(), position, archive_last }.into());
        }
    }
    Ok(())
}

/// Runs the store feed; its progress also moves the retention floor, the lowest position of
/// every follower (retention keeps what the slowest one has not applied).
fn spawn_feed(
    store: Store,
    status: Arc<FollowerStatus>,
    settings: &Settings,
    archive: &Archive,
    shutdown: &CancellationToken,
    followers: Vec<(&'static str, Arc<FollowerStatus>)>,
) -> JoinHandle<Result<(), hj212_store::StoreError>> {
    let floor = archive.clone();
    let (lag, rows, duplicates) =
        (metrics::gauge!(STORE_LAG), metrics::counter!(STORE_ROWS), metrics::counter!(STORE_DUPLICATES));
    let feed_settings = FeedSettings { archive_dir: settings.dir.clone(), batch: 1000 };
    let feed = hj212_store::run_feed(
        store,
        feed_settings,
        archive.durable(),
        shutdown.clone(),
        status.clone(),
        move |_, behind, applied| {
            let slowest = followers.iter().map(|(_, s)| s.position()).min().unwrap_or(0);
            floor.set_retention_floor(slowest.saturating_add(1));
            lag.set(behind as f64);
            rows.increment(applied.rows as u64);
            duplicates.increment(applied.duplicates as u64);
        },
    );
    tokio::spawn(async move {
        let result = feed.await;
        if let Err(error) = &result {
            // Stays failing (not ready) until a restart.
            status.failed(error, now_ms());
            tracing::error!(%error, "embedded store feed stopped; readings will catch up after a restart");
        }
        result
    })
}

async fn event(archive: &Archive, text: String) -> anyhow::Result<()> {
    let record = NewRecord {
        kind: Kind::Event,
        verdict: Verdict::Info,
        flags: 0,
        time_ms: now_ms(),
        peer: "hj212d".into(),
        data: text.into_bytes(),
    };
    archive.append(record).await?;
    Ok(())
}

impl Running {
    /// Re-reads the site registry (SIGHUP); on error the old registry stays. Counted in
    /// `hj212_config_reloads_total{result}`.
    pub fn reload_sites(&self) {
        match self.reloaded_config() {
            Ok(candidate) => {
                self.shared.registry.replace(&candidate.sites);
                self.shared.keys.reload(&candidate.sites);
                self.alert_rules.send_replace(Arc::new(hj212_alerts::rules_map(&candidate)));
                metrics::gauge!(SITES_CONFIGURED).set(candidate.sites.len() as f64);
                crate::metrics::zero_site_counters(&candidate);
                crate::metrics::reloaded(true);
                tracing::info!(sites = candidate.sites.len(), "site registry reloaded");
            }
            Err(problems) => {
                for problem in problems {
                    tracing::error!(%problem, "site registry not reloaded");
                }
                crate::metrics::reloaded(false);
            }
        }
    }

    /// The running config with the site registry read again, or why it cannot be used.
    fn reloaded_config(&self) -> Result<Config, Vec<String>> {
        let sites = hj212_config::reload_sites(&self.config).map_err(|error| vec![error.to_string()])?;
        let candidate = Config { sites, ..self.config.clone() };
        let problems = crate::preflight::problems(&candidate);
        if problems.is_empty() { Ok(candidate) } else { Err(problems.iter().map(ToString::to_string).collect()) }
    }

    /// A token that stops the daemon when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting, lets connections finish their frames, lets the store catch up,
    /// records the stop in the archive and waits for the writer.
    ///
    /// # Errors
    /// The store feed's error, if it had failed.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(DRAIN_DEADLINE, self.tracker.wait()).await.is_err() {
            tracing::warn!("connections did not finish within {DRAIN_DEADLINE:?}; stopping anyway");
        }
        let _ = self.http.await;
        // Still drain and stop the rest when the stop cannot be recorded (a full disk).
        let recorded = event(&self.shared.archive, "stopped".to_owned()).await;
        if let Err(error) = &recorded {
            tracing::error!(%error, "the stop could not be recorded in the archive");
        }
        self.feed_shutdown.cancel();
        let feed = self.feed.await.context("store feed task")?;
        if let Some(influx) = self.influx {
            let _ = influx.await.context("influx sink task")?;
        }
        let _ = self.alerts.await.context("alert engine task")?;
        // The engine has queued everything: the publisher gets a moment for the in-flight messages.
        if let Some((publisher, stop)) = self.mqtt {
            stop.cancel();
            if let Err(error) = publisher.await.context("MQTT publisher task")? {
                tracing::error!(%error, "MQTT publisher stopped with an error; the outbox keeps its messages");
            }
        }
        drop(self.shared);
        let writer = self.writer;
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        drop(self.lock);
        recorded?;
        feed.map_err(Into::into)
    }
}

/// `hj212d --config FILE`: runs until SIGTERM or SIGINT; SIGHUP reloads the site registry.
pub fn run_from_file(path: &Path, log_override: Option<&str>) -> anyhow::Result<ExitCode> {
    let config = match hj212_config::load(path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("Error: {error}");
            return Ok(ExitCode::from(EX_CONFIG));
        }
    };
    let problems = crate::preflight::problems(&config);
    if !problems.is_empty() {
        for problem in problems {
            eprintln!("Error: {problem}");
        }
        return Ok(ExitCode::from(EX_CONFIG));
    }
    let server = &config.server;
    crate::logging::init_logging(&crate::logging::LogSettings {
        filter: log_override.unwrap_or(&server.log_level).to_owned(),
        format: server.log_format,
        offset: server.log_utc_offset,
    });
    for warning in hj212_config::warnings(&config) {
        tracing::warn!(%warning, "config");
    }
    observe::prometheus();
    crate::process_metrics::refresh();
    crate::metrics::loaded();
    crate::metrics::zero_site_counters(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let running = match Daemon::start(config).await {
            Ok(running) => running,
            Err(error) => {
                let code = start_failure_code(&error);
                tracing::error!(error = format!("{error:#}"), exit_code = code, "cannot start");
                return Ok(ExitCode::from(code));
            }
        };
        tokio::spawn(crate::process_metrics::run(running.shutdown_token()));
        wait_for_signals(&running).await?;
        tracing::info!("stopping: finishing frames in flight");
        running.stop().await?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// The exit code for a failed start, so that a supervisor can tell "retry later" from "a
/// person must look" (the unit does not restart on 65, 75 and 78). A damaged archive, or one
/// cut behind what a follower applied, is 65. A listen address in use or not on this host is a
/// configuration problem (78), the error naming the key; anything else that stops the start is
/// a file or directory that could not be created or opened (73).
fn start_failure_code(error: &anyhow::Error) -> u8 {
    if error.downcast_ref::<LockError>().is_some_and(|e| matches!(e, LockError::Held { .. })) {
        return EX_TEMPFAIL;
    }
    let corrupt = matches!(error.downcast_ref(), Some(hj212_archive::ArchiveError::Corrupt { .. }));
    if corrupt || error.downcast_ref::<ArchiveBehindFollower>().is_some() {
        return EX_DATAERR;
    }
    if error.downcast_ref::<crate::fds::FdLimitError>().is_some() {
        return EX_CONFIG;
    }
    let bind_failed = error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|e| matches!(e.kind(), std::io::ErrorKind::AddrInUse | std::io::ErrorKind::AddrNotAvailable));
    if bind_failed { EX_CONFIG } else { EX_CANTCREAT }
}

#[cfg(unix)]
async fn wait_for_signals(running: &Running) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = hup.recv() => running.reload_sites(),
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signals(_: &Running) -> anyhow::Result<()> {
    tokio::signal::ctrl_c().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the tamper trial (benches/src/reliability): a cut archive whose store is ahead
    /// exited 73, which the unit restarts, instead of 65 (damaged archive, not restarted).
    #[test]
    fn a_follower_ahead_of_the_archive_is_a_damaged_archive() {
        let error = check_followers(10, &[("embedded store", 12)]).expect_err("the store is ahead");
        assert_eq!(start_failure_code(&error), EX_DATAERR, "{error:#}");
    }
}
