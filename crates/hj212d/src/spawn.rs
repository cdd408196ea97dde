//! Starting the archive's followers (the store, the Influx sink, the alert engine with its
//! MQTT publisher) on hj212-follow's runtime, and what `/readyz` watches of them. A follower
//! that stops with an error stays failing in its status until a restart.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hj212_archive::{Archive, FollowerStatus, Settings};
use hj212_config::Config;
use hj212_follow::{Follower, OpenFeed, RunnerSettings};
use hj212_http::{Readiness, Watched};
use hj212_server::metrics::{STORE_DELETED, STORE_DUPLICATES, STORE_ROWS};
use hj212_store::{Store, StoreFollower};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A follower's thread (see `hj212_follow::spawn`).
pub(crate) type FollowerThread = std::thread::JoinHandle<Result<(), hj212_follow::FollowError>>;

/// What every follower is started with.
pub(crate) struct Followers<'a> {
    pub config: &'a Config,
    pub archive: &'a Archive,
    pub settings: &'a Settings,
    /// Cancelled once the last record is archived: followers feed what is durable, then stop.
    pub shutdown: &'a CancellationToken,
    pub readiness: Readiness,
    /// Batches read once and fed to every follower at the same position.
    pub shared: Arc<hj212_follow::SharedTail>,
    /// The cluster's stream, with `[cluster] store_from = "stream"`: the store follows it.
    pub stream: Option<Arc<dyn OpenFeed>>,
}

/// How one follower shows in `/readyz` and where it starts.
struct Start {
    name: &'static str,
    position: u64,
    /// Failing makes the daemon not ready (else degraded).
    required: bool,
    degraded_lag: u64,
    max_backoff: Duration,
    after: Option<Arc<FollowerStatus>>,
    /// Another log to follow than the archive.
    feed: Option<Arc<dyn OpenFeed>>,
}

impl Followers<'_> {
    /// Runs `follower` on the runtime; its status is watched by `/readyz` and the gauges.
    fn run(
        &mut self,
        follower: Box<dyn Follower>,
        start: Start,
    ) -> anyhow::Result<(FollowerThread, Arc<FollowerStatus>)> {
        let status = Arc::new(FollowerStatus::at(start.position));
        let head = start.feed.as_ref().map(|feed| feed.head());
        self.readiness.followers.push(Watched {
            name: start.name,
            status: status.clone(),
            required: start.required,
            degraded_lag: start.degraded_lag,
            head: head.clone(),
        });
        let followers = &self.config.followers;
        let runner = RunnerSettings {
            archive_dir: self.settings.dir.clone(),
            batch: followers.batch_records,
            tick: Duration::from_millis(followers.tick_ms),
            max_backoff: start.max_backoff,
            after: start.after,
            shared: Some(self.shared.clone()),
            nice: followers.nice,
            feed: start.feed,
        };
        let durable = head.unwrap_or_else(|| self.archive.durable());
        let thread = hj212_follow::spawn(follower, runner, durable, status.clone(), self.shutdown.clone())?;
        Ok((thread, status))
    }

    fn max_backoff(&self) -> Duration {
        Duration::from_secs(self.config.followers.max_backoff_secs)
    }

    /// The store, from its own position, following the archive or the cluster's stream; its
    /// status gates the sink.
    pub(crate) fn store(
        &mut self,
        store: Store,
        position: u64,
    ) -> anyhow::Result<(FollowerThread, Arc<FollowerStatus>)> {
        let (rows, duplicates) = (metrics::counter!(STORE_ROWS), metrics::counter!(STORE_DUPLICATES));
        let follower = StoreFollower::new(store, move |applied| {
            rows.increment(applied.rows as u64);
            duplicates.increment(applied.duplicates as u64);
        })
        .with_readings_retention(self.config.store.readings_retention_days, {
            let deleted = metrics::counter!(STORE_DELETED);
            move |pruned| deleted.increment(pruned.readings)
        });
        let start = Start {
            name: "store",
            position,
            required: true,
            degraded_lag: self.config.followers.store_degraded_lag_records,
            max_backoff: self.max_backoff(),
            after: None,
            feed: self.stream.clone(),
        };
        self.run(Box::new(follower), start)
    }

    /// The Influx sink (when configured), from its cursor; it writes what the store has applied.
    pub(crate) fn influx(
        &mut self,
        position: u64,
        store: Arc<FollowerStatus>,
    ) -> anyhow::Result<Option<FollowerThread>> {
        let Some(influx) = &self.config.influx else { return Ok(None) };
        let mut sink = hj212_sink_influx::Settings::from_config(self.config, influx)?;
        let one_node = self.one_node_settings();
        if one_node.is_some() {
            sink.cursor_path = self.config.data_dir().stream_cursor("influx");
        }
        let position = match one_node {
            Some(_) => hj212_follow::Cursor::load(&sink.cursor_path)?.seq,
            None => position,
        };
        let follower = hj212_sink_influx::InfluxFollower::open(sink, tokio::runtime::Handle::current())
            .map_err(|e| anyhow::anyhow!(e))
            .context("influx")?;
        let start = Start {
            name: "influx",
            position,
            required: false,
            degraded_lag: influx.degraded_lag_records,
            max_backoff: Duration::from_secs(influx.max_backoff_secs.max(1)),
            after: Some(store),
            feed: one_node.as_ref().and(self.stream.clone()),
        };
        Ok(Some(self.run(one_node_or_not(Box::new(follower), one_node), start)?.0))
    }

    /// With `[cluster] sinks_from = "stream"`: what a follower that one node at a time runs needs.
    fn one_node_settings(&self) -> Option<hj212_cluster::Settings> {
        let cluster = self.config.cluster.as_ref().filter(|c| c.sinks_from == hj212_config::ReadFrom::Stream)?;
        Some(hj212_cluster::Settings::from_config(self.config, cluster))
    }

    /// A forwarder per `[[forward]]` target, each from its own cursor.
    pub(crate) fn forwarders(&mut self, shared: &Arc<hj212_server::Shared>) -> anyhow::Result<Vec<FollowerThread>> {
        let mut threads = Vec::new();
        for target in &self.config.forward {
            let data_dir = self.config.data_dir();
            let one_node = self.one_node_settings();
            let cursor = match one_node {
                Some(_) => data_dir.stream_cursor(&format!("forward-{}", target.name)),
                None => data_dir.forward_cursor(&target.name),
            };
            let relay = Box::new(crate::relay::HubRelay(shared.clone()));
            let follower =
                hj212_forward::Forwarder::open(target.clone(), &data_dir, &cursor, self.notebook(), Some(relay))
                    .with_context(|| {
                        format!("forward {}: cannot read {} or its key files", target.name, cursor.display())
                    })?;
            let start = Start {
                name: follower.name(),
                position: hj212_follow::Cursor::load(&cursor)?.seq,
                required: false,
                degraded_lag: target.degraded_lag_records,
                max_backoff: Duration::from_secs(target.max_backoff_secs),
                after: None,
                feed: one_node.as_ref().and(self.stream.clone()),
            };
            threads.push(self.run(one_node_or_not(Box::new(follower), one_node), start)?.0);
        }
        Ok(threads)
    }

    /// The cluster publisher (with `[cluster]`), from its cursor.
    pub(crate) fn cluster(
        &mut self,
        publisher: Option<hj212_cluster::Publisher>,
        position: u64,
    ) -> anyhow::Result<Option<FollowerThread>> {
        let (Some(publisher), Some(cluster)) = (publisher, &self.config.cluster) else { return Ok(None) };
        let start = Start {
            name: "cluster",
            position,
            // Waiting for the stream is what makes a cluster node: not ready without it.
            required: cluster.ack_after == hj212_config::AckAfter::Cluster,
            degraded_lag: cluster.degraded_lag_records,
            max_backoff: Duration::from_secs(cluster.max_backoff_secs),
            after: None,
            feed: None,
        };
        Ok(Some(self.run(Box::new(publisher), start)?.0))
    }

    /// Appends a follower's evidence to the archive without making it wait.
    fn notebook(&self) -> hj212_forward::Notebook {
        let archive = self.archive.clone();
        let runtime = tokio::runtime::Handle::current();
        Box::new(move |record| {
            let archive = archive.clone();
            runtime.spawn(async move {
                if let Err(error) = archive.append(record).await {
                    tracing::error!(%error, "a forwarder's record of an upstream command was not archived");
                }
            });
        })
    }

    /// With `[cluster] alerts_from = "stream"`: the cluster the alert engine's messages are
    /// delivered in, one node at a time.
    fn alerts_cluster(&self) -> Option<hj212_cluster::Settings> {
        let cluster = self.config.cluster.as_ref().filter(|_| alerts_from_stream(self.config))?;
        Some(hj212_cluster::Settings::from_config(self.config, cluster))
    }

    /// The alert engine, from its own position, and the outbox's consumers: with a broker
    /// configured the MQTT publisher, and each `[[notify]]` channel, each from its own position.
    /// In a cluster whose engines follow the stream, each consumer delivers the engine's
    /// messages only while this node holds its lease (see `hj212_alerts::ClusterDelivery`).
    pub(crate) async fn alerts(
        &mut self,
        settings: &hj212_alerts::AlertSettings,
        position: u64,
    ) -> anyhow::Result<Alerting> {
        let (outbox_newest, outbox_wake) = watch::channel(0);
        let cluster = self.alerts_cluster();
        let open_outbox = |consumer: &str| {
            let outbox = hj212_alerts::SqliteOutbox::open_for(&settings.db_path, consumer)?;
            Ok(match &cluster {
                Some(cluster) => {
                    let delivery = hj212_cluster::Delivery::new(consumer, cluster.clone(), Handle::current());
                    outbox.in_cluster(Box::new(crate::outbox::ClusterOutbox(delivery)))
                }
                None => outbox,
            })
        };
        let mut consumers = hj212_notify::consumers(self.config);
        if self.config.mqtt.is_some() {
            consumers.push(hj212_alerts::MQTT_CONSUMER);
        }
        // Before any consumer opens: new ones start at the newest message, removed ones let go.
        hj212_alerts::register_consumers(&settings.db_path, &consumers)?;
        let mqtt = match &self.config.mqtt {
            Some(mqtt_config) => {
                let (status_tx, status_rx) = watch::channel(hj212_sink_mqtt::PublisherStatus::default());
                self.readiness.mqtt = Some(status_rx);
                let outbox = open_outbox(hj212_alerts::MQTT_CONSUMER)?;
                let stop = CancellationToken::new();
                let mqtt = mqtt_settings(self.config, mqtt_config)?;
                let run = hj212_sink_mqtt::run_publisher(
                    mqtt,
                    crate::outbox::AlertOutbox(outbox),
                    outbox_wake.clone(),
                    status_tx,
                    stop.clone(),
                );
                Some((tokio::spawn(run), stop))
            }
            None => None,
        };
        let notify_stop = CancellationToken::new();
        let notify = hj212_notify::spawn(self.config, &open_outbox, &outbox_wake, &notify_stop).context("notify")?;
        self.readiness.notify = notify.iter().map(|n| n.status.clone()).collect();
        let (rules, rules_rx) = watch::channel(Arc::new(hj212_alerts::rules_map(self.config)));
        let feed = cluster.as_ref().and(self.stream.clone());
        // A new database starts at the newest record: what came before is not alerted again.
        let new = hj212_alerts::applied_seq(settings)? == 0;
        let head = match &feed {
            Some(_) if new => newest_in_stream(self.config).await?,
            Some(_) => 0,
            None => *self.archive.durable().borrow(),
        };
        let outbox_wake_up = outbox_newest.clone();
        if let Some(cluster) = &cluster {
            // Consumers standing by look again now and then: whether the holder moved on, or went.
            tokio::spawn(poke(outbox_newest.clone(), Duration::from_secs(cluster.lease_secs) / 3));
        }
        let follower = hj212_alerts::AlertsFollower::open(settings, head, rules_rx, outbox_newest)?;
        let start = Start {
            name: "alerts",
            position,
            required: true,
            degraded_lag: self.config.followers.alerts_degraded_lag_records,
            max_backoff: self.max_backoff(),
            after: None,
            feed,
        };
        let (task, _) = self.run(Box::new(follower), start)?;
        let notify = Notifying { channels: notify.into_iter().map(|n| n.task).collect(), stop: notify_stop };
        Ok(Alerting { task, mqtt, notify, rules, outbox_wake_up })
    }

    /// The followers' names and statuses (for the gauges and the retention floor).
    pub(crate) fn watched(&self) -> Vec<hj212_follow::Reported> {
        let watched = self.readiness.followers.iter();
        watched
            .map(|w| hj212_follow::Reported { name: w.name, status: w.status.clone(), head: w.head.clone() })
            .collect()
    }
}

/// The `[[notify]]` channels' tasks and their stop token.
#[derive(Debug)]
pub(crate) struct Notifying {
    pub channels: Vec<JoinHandle<()>>,
    pub stop: CancellationToken,
}

impl Notifying {
    /// Stops the channels: each records its position; one in the middle of an attempt gets
    /// a moment, then is aborted (that message is sent again after a restart: at least once).
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        for mut channel in self.channels {
            if tokio::time::timeout(Duration::from_secs(2), &mut channel).await.is_err() {
                channel.abort();
            }
        }
    }
}

/// The alert engine and the outbox's consumers (MQTT publisher, notification channels).
pub(crate) struct Alerting {
    pub task: FollowerThread,
    pub mqtt: Option<(JoinHandle<Result<(), hj212_sink_mqtt::MqttError>>, CancellationToken)>,
    pub notify: Notifying,
    pub rules: watch::Sender<Arc<hj212_alerts::RulesMap>>,
    /// Wakes the MQTT publisher after something else queued a message (a report announced).
    pub outbox_wake_up: watch::Sender<u64>,
}

fn mqtt_settings(config: &Config, mqtt: &hj212_config::Mqtt) -> anyhow::Result<hj212_sink_mqtt::MqttSettings> {
    let settings = hj212_sink_mqtt::MqttSettings::from_config(config, mqtt).context("mqtt")?;
    // Fail at start, not later in the background (e.g. mqtts:// without the tls feature).
    settings.broker().context("mqtt")?;
    Ok(settings)
}

/// The cluster publisher (with `[cluster]`) and, with `ack_after = "cluster"`, what
/// connections wait on before they acknowledge.
pub(crate) fn cluster_publisher(
    config: &Config,
) -> anyhow::Result<Option<(hj212_cluster::Publisher, Option<hj212_server::cluster_ack::ClusterAck>)>> {
    let Some(cluster) = &config.cluster else { return Ok(None) };
    let settings = hj212_cluster::Settings::from_config(config, cluster);
    let (publisher, stored) = hj212_cluster::Publisher::open(settings, tokio::runtime::Handle::current())
        .map_err(|e| anyhow::anyhow!(e))
        .context("cluster: cannot read data_dir/cluster.cursor")?;
    let ack = (cluster.ack_after == hj212_config::AckAfter::Cluster)
        .then(|| hj212_server::cluster_ack::ClusterAck::new(stored, Duration::from_millis(cluster.ack_timeout_ms)));
    Ok(Some((publisher, ack)))
}

/// With `[cluster] store_from = "stream"`: the cluster's stream, for the store to follow.
pub(crate) fn stream_feeds(config: &Config) -> Option<Arc<hj212_cluster::StreamFeeds>> {
    let cluster = config.cluster.as_ref().filter(|c| c.store_from == hj212_config::ReadFrom::Stream)?;
    let settings = hj212_cluster::Settings::from_config(config, cluster);
    Some(Arc::new(hj212_cluster::StreamFeeds::new(settings, tokio::runtime::Handle::current())))
}

/// `[cluster] alerts_from = "stream"`: every node's alert engine follows the stream.
fn alerts_from_stream(config: &Config) -> bool {
    config.cluster.as_ref().is_some_and(|c| c.alerts_from == hj212_config::ReadFrom::Stream)
}

/// Claims the alerts database for what its engine follows (the archive, or the cluster's
/// `stream`); returns its position and whether that is the stream's.
pub(crate) fn claim_alerts(
    config: &Config,
    settings: &hj212_alerts::AlertSettings,
    stream: Option<&hj212_cluster::StreamFeeds>,
) -> anyhow::Result<(u64, bool)> {
    let stream = stream.filter(|_| alerts_from_stream(config));
    let source =
        stream.map_or_else(|| hj212_alerts::ARCHIVE_SOURCE.to_owned(), hj212_cluster::StreamFeeds::source_name);
    hj212_alerts::claim_source(&settings.db_path, &source)?;
    Ok((hj212_alerts::applied_seq(settings)?, stream.is_some()))
}

/// Wakes the outbox's consumers every `every` until the engine's side is gone.
async fn poke(newest: watch::Sender<u64>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    while !newest.is_closed() {
        ticks.tick().await;
        newest.send_modify(|_| {});
    }
}

/// The stream's newest sequence number (for a new alerts database fed from it).
async fn newest_in_stream(config: &Config) -> anyhow::Result<u64> {
    let Some(cluster) = &config.cluster else { return Ok(0) };
    let settings = hj212_cluster::Settings::from_config(config, cluster);
    // A cluster just started may still be electing its stream's leader: ask again until 30 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let error = match tokio::time::timeout(left, hj212_cluster::newest_seq(&settings)).await {
            Ok(Ok(newest)) => return Ok(newest),
            Ok(Err(error)) => anyhow::anyhow!(error),
            Err(_) => anyhow::anyhow!("no answer in 30 s"),
        };
        if tokio::time::Instant::now() + Duration::from_secs(1) >= deadline {
            return Err(error).context(
                "cluster: a new alerts database starts at the stream's newest record, which could not be read",
            );
        }
        tracing::warn!(error = %format!("{error:#}"), "the stream's newest record: asking again in 1 s");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `follower` behind the cluster's lease when `one_node` is given (see `hj212_cluster::OneNode`).
fn one_node_or_not(follower: Box<dyn Follower>, one_node: Option<hj212_cluster::Settings>) -> Box<dyn Follower> {
    match one_node {
        Some(settings) => Box::new(hj212_cluster::OneNode::new(follower, settings, tokio::runtime::Handle::current())),
        None => follower,
    }
}
