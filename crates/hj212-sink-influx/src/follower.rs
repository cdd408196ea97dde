//! The sink as a follower of the archive (hj212-follow runs it): durable records are turned
//! into points, batched, and written with up to `[influx] max_in_flight` requests at once on the
//! daemon's runtime; the cursor moves strictly in order, past records whose points the server
//! accepted (or that were parked in the dead-letter file after a 4xx).
//!
//! First copy wins, as in the evidence: the runner feeds the sink only records the embedded
//! store has applied, and the store says which of their readings are changed copies of
//! readings stored from an earlier record (those go to `hj212_resend`, so they cannot
//! overwrite the first). The sink's lag therefore includes the store's.
//!
//! When the database is down a write fails, the runner backs off (0.5 s doubling to
//! `[followers] max_backoff_secs`), the batches in flight are dropped and the records are fed
//! again from the cursor: memory stays bounded by the batches in flight and nothing is lost.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hj212_follow::{FollowError, Follower, Interpreted};
use hj212_store::Store;
use tokio::io::AsyncWriteExt;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::metrics::SinkMetrics;
use crate::points::append_points;
use crate::writer::{Api, Client, Endpoint, WriteError};
use hj212_follow::Cursor;

/// How the sink writes.
#[derive(Debug, Clone)]
pub struct Settings {
    pub endpoint: Endpoint,
    /// The embedded store (`data_dir/store.sqlite`), opened read-only: which readings are
    /// changed copies.
    pub store_path: PathBuf,
    /// Where the cursor is kept (`data_dir/influx.cursor`).
    pub cursor_path: PathBuf,
    /// Where refused batches go (`data_dir/influx-dead-letter.lp`).
    pub dead_letter_path: PathBuf,
    pub batch_points: usize,
    /// Requests in flight at once: encoding the next batch overlaps the database's work on
    /// the previous ones. The cursor still moves strictly in order.
    pub max_in_flight: usize,
    pub batch_interval: Duration,
    /// (MN, name) of the configured sites, written once at start as `hj212_site` points.
    pub sites: Vec<(String, String)>,
}

impl Settings {
    /// The one conversion from the config: `[influx]`, the token read, the data dir's files.
    ///
    /// # Errors
    /// [`hj212_config::ConfigError::Io`] when the token file cannot be read.
    pub fn from_config(
        config: &hj212_config::Config,
        influx: &hj212_config::Influx,
    ) -> Result<Self, hj212_config::ConfigError> {
        let api = match influx.api {
            hj212_config::InfluxApi::V2 => Api::V2 { org: influx.org.clone(), bucket: influx.bucket.clone() },
            hj212_config::InfluxApi::V1 => Api::V1 { db: influx.db.clone() },
        };
        let data_dir = config.data_dir();
        Ok(Self {
            endpoint: Endpoint {
                base_url: influx.url.clone(),
                api,
                token: hj212_config::influx_token(config)?,
                gzip: influx.gzip,
                timeout: Duration::from_secs(influx.timeout_secs),
            },
            store_path: data_dir.store(),
            cursor_path: data_dir.influx_cursor(),
            dead_letter_path: data_dir.influx_dead_letter(),
            batch_points: influx.batch_points,
            max_in_flight: influx.max_in_flight,
            batch_interval: Duration::from_millis(influx.batch_interval_ms),
            sites: config.sites.iter().map(|s| (s.mn.clone(), s.name.clone())).collect(),
        })
    }
}

/// The time-series sink, fed by the follower runtime; its writes run on `runtime`.
#[derive(Debug)]
pub struct InfluxFollower {
    runtime: Handle,
    client: Client,
    settings: Settings,
    cursor: Cursor,
    batch: Batch,
    in_flight: VecDeque<InFlight>,
    /// Opened on first use, read-only.
    store: Option<Store>,
    metrics: SinkMetrics,
}

/// Points waiting to be written, and the archive position they reach.
#[derive(Debug, Default)]
struct Batch {
    lines: Vec<u8>,
    points: usize,
    last_seq: u64,
    started: Option<Instant>,
}

/// A batch sent and not yet confirmed; `None` for a batch without points (it only moves
/// the cursor).
#[derive(Debug)]
struct InFlight {
    task: Option<JoinHandle<Result<(), FollowError>>>,
    last_seq: u64,
}

impl InFlight {
    fn finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl InfluxFollower {
    /// The sink at its saved cursor; the sites' names are written in the background.
    ///
    /// # Errors
    /// The cursor file cannot be read, or the HTTP client cannot be built.
    pub fn open(settings: Settings, runtime: Handle) -> Result<Self, FollowError> {
        let client = Client::new(settings.endpoint.clone())?;
        let cursor = Cursor::load(&settings.cursor_path)?;
        runtime.spawn(write_site_metadata(client.clone(), settings.sites.clone()));
        Ok(Self {
            runtime,
            client,
            settings,
            cursor,
            batch: Batch::default(),
            in_flight: VecDeque::new(),
            store: None,
            metrics: SinkMetrics::default(),
        })
    }

    /// Per record of `records`: the factors whose values differ from the copy the store keeps.
    fn changed_copies(&mut self, records: &[Interpreted]) -> Result<HashMap<u64, Vec<String>>, FollowError> {
        let mut changed: HashMap<u64, Vec<String>> = HashMap::new();
        let (Some(first), Some(last)) = (records.first(), records.last()) else { return Ok(changed) };
        let store = match &mut self.store {
            Some(store) => store,
            None => self.store.insert(Store::open_read_only(&self.settings.store_path)?),
        };
        for (seq, factor) in store.changed_copies(first.record.seq, last.record.seq)? {
            changed.entry(seq).or_default().push(factor);
        }
        Ok(changed)
    }

    /// Sends the batch being filled (or queues its position when it has no points), then
    /// waits for the oldest while more than `max_in_flight` are out.
    fn send(&mut self) -> Result<(), FollowError> {
        let batch = std::mem::take(&mut self.batch);
        let task = (batch.points > 0).then(|| {
            let (client, path, metrics) =
                (self.client.clone(), self.settings.dead_letter_path.clone(), self.metrics.clone());
            self.runtime.spawn(write(client, batch.lines, batch.points, path, metrics))
        });
        self.in_flight.push_back(InFlight { task, last_seq: batch.last_seq });
        while self.in_flight.len() > self.settings.max_in_flight {
            self.confirm_oldest()?;
        }
        self.confirm_finished()
    }

    /// Confirms the batches at the front that are already done, without waiting.
    fn confirm_finished(&mut self) -> Result<(), FollowError> {
        while self.in_flight.front().is_some_and(InFlight::finished) {
            self.confirm_oldest()?;
        }
        Ok(())
    }

    fn confirm_oldest(&mut self) -> Result<(), FollowError> {
        let Some(InFlight { task, last_seq }) = self.in_flight.pop_front() else { return Ok(()) };
        if let Some(task) = task {
            self.runtime.block_on(task)??;
        }
        self.cursor.advance(last_seq)?;
        Ok(())
    }
}

impl Follower for InfluxFollower {
    fn name(&self) -> &'static str {
        "influx"
    }

    fn position(&mut self) -> Result<u64, FollowError> {
        Ok(self.cursor.seq)
    }

    fn apply(&mut self, records: &[Interpreted]) -> Result<u64, FollowError> {
        let changed = self.changed_copies(records)?;
        for archived in records {
            let copies: Vec<&str> =
                changed.get(&archived.record.seq).map(|f| f.iter().map(String::as_str).collect()).unwrap_or_default();
            let added = append_points(archived, &copies, &mut self.batch.lines);
            self.batch.points += added;
            self.batch.last_seq = archived.record.seq;
            if added > 0 && self.batch.started.is_none() {
                self.batch.started = Some(Instant::now());
            }
            if self.batch.points >= self.settings.batch_points {
                self.send()?;
            }
        }
        // Records without points only move the cursor: no need to wait for a batch to fill.
        if self.batch.points == 0 && self.batch.last_seq > self.cursor.seq {
            self.send()?;
        }
        self.confirm_finished()?;
        self.position()
    }

    fn tick(&mut self, _now_ms: i64, _behind: u64) -> Result<u64, FollowError> {
        if self.batch.started.is_some_and(|t| t.elapsed() >= self.settings.batch_interval) {
            self.send()?;
        }
        self.confirm_finished()?;
        self.position()
    }

    fn recover(&mut self) -> Result<u64, FollowError> {
        // What was in flight is written again from the cursor (a rewrite is idempotent).
        for in_flight in self.in_flight.drain(..) {
            if let Some(task) = in_flight.task {
                task.abort();
            }
        }
        self.batch = Batch::default();
        self.store = None;
        self.metrics.retries.increment(1);
        self.position()
    }

    fn finish(&mut self) -> Result<u64, FollowError> {
        if self.batch.points > 0 || self.batch.last_seq > self.cursor.seq {
            self.send()?;
        }
        while !self.in_flight.is_empty() {
            self.confirm_oldest()?;
        }
        self.position()
    }
}

/// One attempt to write a batch. A refused one (4xx: the data itself is wrong) is parked in
/// the dead-letter file and counts as written; any other failure is the runner's to retry.
async fn write(
    client: Client,
    lines: Vec<u8>,
    points: usize,
    dead_letter_path: PathBuf,
    metrics: SinkMetrics,
) -> Result<(), FollowError> {
    match client.send(client.encode(&lines)).await {
        Ok(()) => {
            metrics.points.increment(points as u64);
            metrics.batches.increment(1);
            Ok(())
        }
        Err(error @ WriteError::Rejected { .. }) => {
            SinkMetrics::failure(error.kind());
            tracing::error!(%error, points, "InfluxDB refused a batch; it goes to the dead-letter file");
            park(&dead_letter_path, &error, &lines).await?;
            metrics.dead_letter.increment(points as u64);
            Ok(())
        }
        Err(error) => {
            SinkMetrics::failure(error.kind());
            Err(error.into())
        }
    }
}

/// Best effort: site names are metadata, rewritten at every start.
async fn write_site_metadata(client: Client, sites: Vec<(String, String)>) {
    if sites.is_empty() {
        return;
    }
    let lines = crate::points::site_points(&sites, hj212_archive::now_ms());
    if let Err(error) = client.send(client.encode(&lines)).await {
        tracing::warn!(%error, "could not write site metadata to InfluxDB; readings are not affected");
    }
}

async fn park(path: &std::path::Path, error: &WriteError, lines: &[u8]) -> std::io::Result<()> {
    let mut file = tokio::fs::OpenOptions::new().create(true).append(true).open(path).await?;
    let header = format!("# refused: {error}\n");
    file.write_all(header.as_bytes()).await?;
    file.write_all(lines).await?;
    file.sync_data().await
}
