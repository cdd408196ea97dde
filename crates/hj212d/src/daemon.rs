//! Starting, running and stopping the daemon.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use hj212_archive::WriterThread;
use hj212_config::Config;
use hj212_http::Readiness;
use hj212_server::Shared;
use hj212_server::metrics::SITES_CONFIGURED;
use hj212_store::{SchemaError, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::lock::{DataDirLock, LockError};
use crate::open::{self, Positions, event};
use crate::{EX_CANTCREAT, EX_CONFIG, EX_DATAERR, EX_TEMPFAIL};
use crate::{observe, spawn};

/// Batches of `[followers] batch_records` kept for the followers to share: the newest and
/// the one before, for a follower a batch behind the other.
const SHARED_BATCHES: usize = 2;

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
    feed: spawn::FollowerThread,
    influx: Option<spawn::FollowerThread>,
    forwarders: Vec<spawn::FollowerThread>,
    /// The cluster publisher (with `[cluster]`).
    cluster: Option<spawn::FollowerThread>,
    alerts: spawn::FollowerThread,
    /// The MQTT publisher and its stop token (cancelled once the alert engine has drained).
    mqtt: Option<(JoinHandle<Result<(), hj212_sink_mqtt::MqttError>>, CancellationToken)>,
    /// The `[[notify]]` channels (stopped with the MQTT publisher).
    notify: spawn::Notifying,
    /// Each site's alert rules; replaced on SIGHUP.
    alert_rules: watch::Sender<Arc<hj212_alerts::RulesMap>>,
    /// Each site's rules hash as last archived (a reload archives those that changed).
    rules_archived: Arc<tokio::sync::Mutex<crate::rules_archive::Archived>>,
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
        let data_dir = config.data_dir();
        let fd_limit = crate::fds::raise_and_check(config.limits.max_connections)?;
        // Before anything is written: a second instance must leave the first one's files alone.
        let lock = DataDirLock::acquire(&data_dir)?;
        // Bound before the archive is touched: a port in use fails the start with nothing written.
        let (listener, http_listener) = bind(&config).await?;
        let prometheus = observe::prometheus();
        let store = Store::open(&data_dir.store())?;
        let stream = spawn::stream_feeds(&config);
        let store_source = stream.as_ref().map_or_else(|| hj212_store::ARCHIVE_SOURCE.to_owned(), |s| s.source_name());
        store.claim_source(&store_source)?;
        let store_position = store.applied_seq()?;
        let commands = hj212_commands::Hub::open(&data_dir.commands(), config.commands.clone())?;
        let alert_settings = hj212_alerts::AlertSettings::from_config(&config);
        let (alerts_position, alerts_from_stream) = spawn::claim_alerts(&config, &alert_settings, stream.as_deref())?;
        let positions = Positions {
            // Fed from the stream, their positions are the stream's: no evidence about the archive.
            store: if stream.is_some() { 0 } else { store_position },
            alerts: if alerts_from_stream { 0 } else { alerts_position },
            influx: open::saved_cursor(&data_dir.influx_cursor()),
            cluster: open::saved_cursor(&data_dir.cluster_cursor()),
        };
        let mut rules_archived = store.latest_config_hashes()?;
        let (archive, writer, settings) = open::open_archive(&config, positions).await?;
        tracing::info!(dir = %settings.dir.display(), fd_limit, "archive open");
        crate::rules_archive::archive_changes(&archive, &config, &mut rules_archived)
            .await
            .context("cannot archive the rules in force")?;
        let (publisher, cluster_ack) = spawn::cluster_publisher(&config)?.unzip();
        let mut shared = Shared::new(&config, archive.clone(), commands);
        shared.cluster_ack = cluster_ack.flatten();
        let shared = Arc::new(shared);
        let primed = shared.prime_dedup(&settings.dir).context("cannot rebuild the resend window from the archive")?;
        tracing::info!(frames = primed, "resend window rebuilt from the archive's tail");
        metrics::gauge!(SITES_CONFIGURED).set(config.sites.len() as f64);

        let (shutdown, feed_shutdown) = (CancellationToken::new(), CancellationToken::new());
        let mut followers = spawn::Followers {
            config: &config,
            archive: &archive,
            settings: &settings,
            shutdown: &feed_shutdown,
            readiness: Readiness {
                failing_grace: Duration::from_secs(config.followers.failing_grace_secs),
                ..Readiness::default()
            },
            shared: Arc::new(hj212_follow::SharedTail::new(config.followers.batch_records * SHARED_BATCHES)),
            stream: stream.clone().map(|s| s as Arc<dyn hj212_follow::OpenFeed>),
        };
        // What the store follows: the archive, or the cluster's stream.
        let store_head = stream.as_ref().map_or_else(|| archive.durable(), |s| hj212_follow::OpenFeed::head(&**s));
        let (feed, store_status) = followers.store(store, store_position)?;
        let influx = followers.influx(positions.influx, store_status.clone())?;
        let alerting = Box::pin(followers.alerts(&alert_settings, alerts_position)).await?;
        let forwarders = followers.forwarders(&shared)?;
        let cluster = followers.cluster(publisher, positions.cluster)?;
        let watched = followers.watched();
        let readiness = Arc::new(followers.readiness);

        let (hj212_addr, http_addr) = (listener.local_addr()?, http_listener.local_addr()?);
        let tracker = TaskTracker::new();
        tracker.spawn(hj212_server::serve(listener, shared.clone(), shutdown.clone(), tracker.clone()));
        readiness.listening.store(true, Ordering::Relaxed);
        let admin = hj212_http::Admin {
            data_dir: data_dir.clone(),
            admin_token: hj212_config::admin_token(&config)?,
            read_token: hj212_config::admin_read_token(&config)?,
            limits: config.http.clone(),
            forward: config.forward.iter().map(|t| (t.name.clone(), t.address.clone())).collect(),
            service: config.service.clone(),
            users: config.users.clone(),
            console: config.console.clone(),
        };
        let router = hj212_http::router(prometheus, shared.clone(), readiness, admin);
        let http = tokio::spawn(hj212_http::serve(http_listener, router, shutdown.clone(), config.http.clone()));
        tracker.spawn(crate::gauges::run(shared.clone(), data_dir.store(), shutdown.clone()));
        spawn_downlink(&config, &shared, store_head.clone(), &shutdown, &tracker);
        let caught_up = crate::reports::StoreCaughtUp { store: store_status.clone(), durable: store_head };
        let announce = config.mqtt.is_some().then(|| alerting.outbox_wake_up.clone());
        tracker.spawn(crate::reports::run(shared.clone(), config.clone(), caught_up, announce, shutdown.clone()));
        // Not on the tracker: it reports while connections drain and stops with the followers.
        tokio::spawn(hj212_follow::report(watched, archive.clone(), feed_shutdown.clone()));
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
            forwarders,
            cluster,
            alerts: alerting.task,
            mqtt: alerting.mqtt,
            notify: alerting.notify,
            alert_rules: alerting.rules,
            rules_archived: Arc::new(tokio::sync::Mutex::new(rules_archived)),
            writer,
            config,
            lock,
        })
    }
}

/// The command channel's timers, and the gap-recovery sweep over the sites as reloaded.
fn spawn_downlink(
    config: &Config,
    shared: &Arc<Shared>,
    store_head: watch::Receiver<u64>,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) {
    tracker.spawn(shared.commands.clone().run(shutdown.clone()));
    let registry = shared.clone();
    let sweep = hj212_commands::recovery::Sweep {
        hub: shared.commands.clone(),
        board: shared.recovery.clone(),
        store: config.data_dir().store(),
        defaults: config.recovery.clone(),
        sites: Box::new(move || registry.registry.snapshot().values().map(|site| site.config.clone()).collect()),
        durable_seq: Box::new(move || *store_head.borrow()),
        claim: recovery_claims(config),
    };
    tracker.spawn(Arc::new(sweep).run(shutdown.clone()));
}

/// With `[cluster] store_from = "stream"` every node's sweep sees the same gaps: one node at a
/// time asks a site (`hj212_cluster::RecoveryClaims`).
fn recovery_claims(config: &Config) -> Option<hj212_commands::recovery::Claim> {
    let cluster = config.cluster.as_ref().filter(|c| c.store_from == hj212_config::ReadFrom::Stream)?;
    let settings = hj212_cluster::Settings::from_config(config, cluster);
    let claims = hj212_cluster::RecoveryClaims::new(settings, tokio::runtime::Handle::current());
    Some(Box::new(move |mn| claims.claim(mn)))
}

/// Both listeners, each error naming its key.
async fn bind(config: &Config) -> anyhow::Result<(TcpListener, TcpListener)> {
    let listener = listen(config.server.listen, config.limits.listen_backlog)
        .with_context(|| format!("cannot listen on {} (server.listen)", config.server.listen))?;
    let http_listener = TcpListener::bind(config.server.http_listen)
        .await
        .with_context(|| format!("cannot listen on {} (server.http_listen)", config.server.http_listen))?;
    Ok((listener, http_listener))
}

/// The HJ 212 listener with a deep accept queue: after a network outage thousands of loggers
/// reconnect at once, and connections beyond the queue would stall in SYN retries.
fn listen(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
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
                let (archive, archived) = (self.shared.archive.clone(), self.rules_archived.clone());
                tokio::spawn(async move {
                    if let Err(error) =
                        crate::rules_archive::archive_changes(&archive, &candidate, &mut *archived.lock().await).await
                    {
                        tracing::error!(%error, "the reloaded rules could not be archived; rates keep the earlier ones");
                    }
                });
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
        let drain = Duration::from_secs(self.config.limits.stop_drain_secs);
        if tokio::time::timeout(drain, self.tracker.wait()).await.is_err() {
            tracing::warn!("connections did not finish within {drain:?} (limits.stop_drain_secs); stopping anyway");
        }
        let _ = self.http.await;
        // Still drain and stop the rest when the stop cannot be recorded (a full disk).
        let recorded = event(&self.shared.archive, "stopped".to_owned()).await;
        if let Err(error) = &recorded {
            tracing::error!(%error, "the stop could not be recorded in the archive");
        }
        self.feed_shutdown.cancel();
        let feed = join(self.feed).await;
        if let Some(influx) = self.influx
            && let Err(error) = join(influx).await
        {
            tracing::error!(%error, "influx sink stopped with an error; its points are written after a restart");
        }
        for forwarder in self.forwarders {
            if let Err(error) = join(forwarder).await {
                tracing::error!(%error, "a forwarder stopped with an error; it resends from its cursor after a restart");
            }
        }
        if let Some(cluster) = self.cluster
            && let Err(error) = join(cluster).await
        {
            tracing::error!(%error, "cluster publisher stopped with an error; it publishes from its cursor after a restart");
        }
        if let Err(error) = join(self.alerts).await {
            tracing::error!(%error, "alert engine stopped with an error; it catches up after a restart");
        }
        // The engine has queued everything: the publisher gets a moment for the in-flight messages.
        if let Some((publisher, stop)) = self.mqtt {
            stop.cancel();
            if let Err(error) = publisher.await.context("MQTT publisher task")? {
                tracing::error!(%error, "MQTT publisher stopped with an error; the outbox keeps its messages");
            }
        }
        self.notify.stop().await;
        drop(self.shared);
        let writer = self.writer;
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        drop(self.lock);
        recorded?;
        feed
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
        // Listening before the start: a SIGTERM during a long recovery stops the daemon cleanly
        // once it has started, instead of killing it half-way (the listeners are bound early).
        let mut signals = Signals::listen()?;
        let running = match Daemon::start(config).await {
            Ok(running) => running,
            Err(error) => {
                let code = start_failure_code(&error);
                tracing::error!(error = format!("{error:#}"), exit_code = code, "cannot start");
                return Ok(ExitCode::from(code));
            }
        };
        tokio::spawn(crate::process_metrics::run(running.shutdown_token()));
        signals.wait(&running).await;
        tracing::info!("stopping: finishing frames in flight");
        running.stop().await?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Waits for a follower's thread off the async workers.
async fn join(thread: spawn::FollowerThread) -> anyhow::Result<()> {
    match tokio::task::spawn_blocking(move || thread.join()).await {
        Ok(Ok(result)) => result.map_err(|error| anyhow::anyhow!(error)),
        Ok(Err(_)) => Err(anyhow::anyhow!("a follower's thread panicked")),
        Err(error) => Err(error.into()),
    }
}

/// The exit code for a failed start, so that a supervisor can tell "retry later" from "a
/// person must look" (the unit does not restart on 65, 75 and 78). A damaged archive, or one
/// cut behind what a follower applied, is 65. A listen address in use or
/// not on this host is a configuration problem (78), the error naming the key, and so is a
/// database written by a later release or not by hj212d (78); anything else that stops the
/// start is a file or directory that could not be created or opened (73).
fn start_failure_code(error: &anyhow::Error) -> u8 {
    if error.downcast_ref::<LockError>().is_some_and(|e| matches!(e, LockError::Held { .. })) {
        return EX_TEMPFAIL;
    }
    let corrupt = matches!(error.downcast_ref(), Some(hj212_archive::ArchiveError::Corrupt { .. }));
    if corrupt || error.downcast_ref::<crate::open::ArchiveBehindFollower>().is_some() {
        return EX_DATAERR;
    }
    // A database of a later release, or not hj212d's: restarting cannot help.
    let store = error.downcast_ref::<hj212_store::StoreError>().and_then(hj212_store::StoreError::schema);
    let schema = store
        .or_else(|| error.downcast_ref::<hj212_alerts::AlertsError>().and_then(hj212_alerts::AlertsError::schema))
        .or_else(|| error.downcast_ref::<hj212_commands::BookError>().and_then(hj212_commands::BookError::schema));
    if schema.is_some_and(|e| matches!(e, SchemaError::TooNew { .. } | SchemaError::Foreign { .. })) {
        return EX_CONFIG;
    }
    // A store or alert engine built from another source than `[cluster]` names.
    if matches!(error.downcast_ref(), Some(hj212_store::StoreError::OtherSource { .. }))
        || matches!(error.downcast_ref(), Some(hj212_alerts::AlertsError::OtherSource { .. }))
    {
        return EX_CONFIG;
    }
    let key_unusable = error.downcast_ref::<hj212_archive::checkpoint::CheckpointError>().is_some();
    if key_unusable || error.downcast_ref::<crate::fds::FdLimitError>().is_some() {
        return EX_CONFIG;
    }
    let bind_failed = error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|e| matches!(e.kind(), std::io::ErrorKind::AddrInUse | std::io::ErrorKind::AddrNotAvailable));
    if bind_failed { EX_CONFIG } else { EX_CANTCREAT }
}

/// SIGTERM and SIGINT stop the daemon, SIGHUP reloads the site registry.
#[cfg(unix)]
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn listen() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Until a stop signal (reloading on SIGHUP meanwhile).
    async fn wait(&mut self, running: &Running) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => running.reload_sites(),
            }
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn listen() -> std::io::Result<Self> {
        Ok(Self)
    }

    async fn wait(&mut self, _: &Running) {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the tamper trial (benches/src/reliability): a cut archive whose store is ahead
    /// exited 73, which the unit restarts, instead of 65 (damaged archive, not restarted).
    #[test]
    fn a_follower_ahead_of_the_archive_is_a_damaged_archive() {
        let error = crate::open::check_followers(10, &[("embedded store", 12)]).expect_err("the store is ahead");
        assert_eq!(start_failure_code(&error), EX_DATAERR, "{error:#}");
    }
}
