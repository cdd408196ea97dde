//! The sink loop: read durable records after the cursor, batch their points, write with
//! retries, move the cursor.
//!
//! First copy wins, as in the evidence: a record is written once the embedded store has
//! applied it, and the store says which of its readings are changed copies of readings stored
//! from an earlier record (those go to `hj212_resend`, so they cannot overwrite the first).
//! The sink therefore follows the store's progress; its lag includes the store's.
//!
//! Policy when the database is down: keep retrying the same batch with capped exponential
//! backoff and jitter; the archive keeps everything meanwhile, so memory stays bounded by
//! one batch and nothing is lost. Example: with `max_backoff_secs = 30`, retries wait about
//! 0.5, 1, 2, 4 ... 30, 30 s; an hour-long outage costs ~130 attempts, then the sink catches
//! up from the cursor at full speed.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hj212_archive::{Follower, FollowerStatus};
use hj212_follow::Interpreted;
use hj212_store::Store;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cursor::Cursor;
use crate::metrics::SinkMetrics;
use crate::points::append_points;
use crate::writer::{Client, Endpoint, WriteError};

/// How the sink runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub endpoint: Endpoint,
    pub archive_dir: PathBuf,
    /// The embedded store (`data_dir/store.sqlite`), opened read-only: how far it has applied
    /// the archive, and which readings are changed copies.
    pub store_path: PathBuf,
    /// Where the cursor is kept (`data_dir/influx.cursor`).
    pub cursor_path: PathBuf,
    /// Where refused batches go (`data_dir/influx-dead-letter.lp`).
    pub dead_letter_path: PathBuf,
    pub batch_points: usize,
    pub batch_interval: Duration,
    pub max_backoff: Duration,
    /// (MN, name) of the configured sites, written once at start as `hj212_site` points.
    pub sites: Vec<(String, String)>,
}

/// What the rest of the daemon may ask about the sink.
#[derive(Debug, Default)]
pub struct Status {
    /// Durable archive records not yet written.
    pub lag_records: AtomicU64,
    /// The last archive record whose points are written (the cursor), and whether writes
    /// have been failing.
    pub follower: Arc<FollowerStatus>,
    /// Receive time (Unix ms) of the oldest record read and not yet written; 0 when none.
    pub oldest_unwritten_ms: AtomicI64,
}

/// How often the lag is published. A separate task does it, so the figures keep moving
/// while the sink is stuck retrying a write (a database outage).
const LAG_REPORT_INTERVAL: Duration = Duration::from_millis(250);

/// Publishes the sink's lag (records behind the durable archive, age of the oldest one)
/// until `shutdown`.
async fn report_lag(
    metrics: SinkMetrics,
    status: Arc<Status>,
    durable: watch::Receiver<u64>,
    shutdown: CancellationToken,
) {
    loop {
        let behind = durable.borrow().saturating_sub(status.follower.position());
        status.lag_records.store(behind, Ordering::Relaxed);
        metrics.lag_records.set(behind as f64);
        let oldest = status.oldest_unwritten_ms.load(Ordering::Relaxed);
        let age =
            if behind == 0 || oldest == 0 { 0.0 } else { (hj212_archive::now_ms() - oldest).max(0) as f64 / 1000.0 };
        metrics.lag_seconds.set(age);
        tokio::select! {
            () = tokio::time::sleep(LAG_REPORT_INTERVAL) => {},
            () = shutdown.cancelled() => return,
        }
    }
}

/// Archive records read per step.
const READ_CHUNK: usize = 2000;
/// At shutdown, how long the sink waits for the store to apply what is durable before it
/// stops (the rest is written after the restart, from the cursor).
const STORE_WAIT_AT_SHUTDOWN: Duration = Duration::from_secs(5);

/// Runs until `shutdown`; then writes what is pending (one attempt round) and returns.
///
/// # Errors
/// Only when the cursor or archive cannot be read; write failures are retried forever.
pub async fn run(
    settings: Settings,
    mut durable: watch::Receiver<u64>,
    shutdown: CancellationToken,
    status: Arc<Status>,
) -> std::io::Result<()> {
    let client = Client::new(settings.endpoint.clone()).map_err(std::io::Error::other)?;
    let mut cursor = Cursor::load(&settings.cursor_path)?;
    let mut source = Source {
        follower: Follower::new(&settings.archive_dir, cursor.seq + 1),
        store_path: settings.store_path.clone(),
        store: None,
    };
    let metrics = SinkMetrics::default();
    status.follower.applied(cursor.seq);
    let reporter_stop = CancellationToken::new();
    tokio::spawn(report_lag(metrics.clone(), status.clone(), durable.clone(), reporter_stop.clone()));
    let _stop_reporter = reporter_stop.drop_guard();
    write_site_metadata(&client, &settings.sites).await;
    let sender = Sender {
        client,
        dead_letter_path: settings.dead_letter_path.clone(),
        max_backoff: settings.max_backoff,
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
        status: status.clone(),
    };
    let mut pipeline = Pipeline { in_flight: VecDeque::new(), stopped: false, status: status.clone() };
    let mut batch = Batch::default();
    let mut store_wait: Option<Instant> = None;
    loop {
        let target = *durable.borrow_and_update();
        let (s, chunk) = match read(source, target).await {
            Ok(read) => read,
            Err((s, error)) => {
                // An unreadable segment, an I/O error, a store not readable: retry with a pause.
                status.follower.failed(&error, hj212_archive::now_ms());
                tracing::error!(%error, "influx sink cannot read the archive or the store; retrying in 5 s");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(5)) => {},
                    () = shutdown.cancelled() => return pipeline.drain(&mut cursor).await,
                }
                source = s;
                continue;
            }
        };
        source = s;
        let next_seq = source.follower.next_seq();
        if chunk.records.is_empty() && chunk.readable > next_seq - 1 {
            // Durable but not readable yet (should not happen): do not spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for archived in &chunk.records {
            let changed: Vec<&str> = chunk
                .changed
                .get(&archived.record.seq)
                .map(|f| f.iter().map(String::as_str).collect())
                .unwrap_or_default();
            batch.add(archived, &changed);
            if batch.points >= settings.batch_points {
                pipeline.push(std::mem::take(&mut batch), &sender, &mut cursor).await?;
            }
        }
        if chunk.readable > next_seq - 1 {
            continue;
        }
        let stopping = shutdown.is_cancelled()
            && *durable.borrow() == target
            && store_caught_up(&mut store_wait, chunk.readable, target);
        let due = batch.started.is_some_and(|t| t.elapsed() >= settings.batch_interval);
        if due || stopping || (batch.points == 0 && batch.last_seq > 0) {
            pipeline.push(std::mem::take(&mut batch), &sender, &mut cursor).await?;
        }
        if stopping || pipeline.stopped {
            return pipeline.drain(&mut cursor).await;
        }
        let oldest = pipeline.oldest_ms().or(batch.oldest_ms).unwrap_or(0);
        status.oldest_unwritten_ms.store(oldest, Ordering::Relaxed);
        let wait =
            batch.started.map_or(Duration::from_millis(200), |t| settings.batch_interval.saturating_sub(t.elapsed()));
        tokio::select! {
            _ = durable.changed() => {},
            () = shutdown.cancelled(), if !shutdown.is_cancelled() => {},
            () = tokio::time::sleep(wait) => {},
        }
        // Confirm what has finished meanwhile, so the cursor and lag stay current.
        pipeline.confirm_finished(&mut cursor).await?;
    }
}

/// At shutdown: whether the store has applied everything durable, or has been given
/// [`STORE_WAIT_AT_SHUTDOWN`] to do so (its feed may have stopped).
fn store_caught_up(waiting_since: &mut Option<Instant>, readable: u64, durable: u64) -> bool {
    if readable >= durable {
        return true;
    }
    let since = *waiting_since.get_or_insert_with(Instant::now);
    if since.elapsed() < STORE_WAIT_AT_SHUTDOWN {
        return false;
    }
    tracing::warn!(
        readable,
        durable,
        "the store has not applied every record; their points are written after a restart"
    );
    true
}

/// Best effort: site names are metadata, rewritten at every start.
async fn write_site_metadata(client: &Client, sites: &[(String, String)]) {
    if sites.is_empty() {
        return;
    }
    let lines = crate::points::site_points(sites, hj212_archive::now_ms());
    if let Err(error) = client.send(client.encode(&lines)).await {
        tracing::warn!(%error, "could not write site metadata to InfluxDB; readings are not affected");
    }
}

/// Where the sink reads: the archive, gated by the store's progress.
#[derive(Debug)]
struct Source {
    follower: Follower,
    store_path: PathBuf,
    /// Opened on first use, read-only.
    store: Option<Store>,
}

/// Records the store has applied, and which of their readings are changed copies.
#[derive(Debug, Default)]
struct Chunk {
    records: Vec<Interpreted>,
    /// Archive records that may be read now: the durable ones the store has applied.
    readable: u64,
    /// Per record: the factors whose values differ from the copy stored from an earlier record.
    changed: HashMap<u64, Vec<String>>,
}

impl Source {
    fn read(&mut self, durable: u64) -> std::io::Result<Chunk> {
        let store = match &mut self.store {
            Some(store) => store,
            None => self.store.insert(Store::open_read_only(&self.store_path).map_err(std::io::Error::other)?),
        };
        let readable = durable.min(store.applied_seq().map_err(std::io::Error::other)?);
        let records = Interpreted::all(self.follower.read(readable, READ_CHUNK)?);
        let mut changed: HashMap<u64, Vec<String>> = HashMap::new();
        if let (Some(first), Some(last)) = (records.first(), records.last()) {
            let (first, last) = (first.record.seq, last.record.seq);
            for (seq, factor) in store.changed_copies(first, last).map_err(std::io::Error::other)? {
                changed.entry(seq).or_default().push(factor);
            }
        }
        Ok(Chunk { records, readable, changed })
    }
}

/// Reads the next records off the async workers; the source comes back either way.
async fn read(mut source: Source, durable: u64) -> Result<(Source, Chunk), (Source, std::io::Error)> {
    let position = source.follower.next_seq();
    let (dir, store_path) = (source.follower.dir().to_path_buf(), source.store_path.clone());
    let task = tokio::task::spawn_blocking(move || {
        let chunk = source.read(durable);
        (source, chunk)
    });
    match task.await {
        Ok((source, Ok(chunk))) => Ok((source, chunk)),
        Ok((source, Err(error))) => Err((source, error)),
        Err(error) => {
            let source = Source { follower: Follower::new(&dir, position), store_path, store: None };
            Err((source, std::io::Error::other(error)))
        }
    }
}

/// Points waiting to be written, and the archive position they reach.
#[derive(Debug, Default)]
struct Batch {
    lines: Vec<u8>,
    points: usize,
    last_seq: u64,
    started: Option<Instant>,
    oldest_ms: Option<i64>,
}

impl Batch {
    fn add(&mut self, archived: &Interpreted, changed_copies: &[&str]) {
        let added = append_points(archived, changed_copies, &mut self.lines);
        let record = &archived.record;
        self.points += added;
        self.last_seq = record.seq;
        if added > 0 && self.started.is_none() {
            self.started = Some(Instant::now());
            self.oldest_ms = Some(record.time_ms);
        }
    }
}

/// Requests in flight at once: encoding the next batch overlaps the database's work on
/// the previous ones. The cursor still moves strictly in order.
const MAX_IN_FLIGHT: usize = 4;

/// A batch sent and not yet confirmed.
#[derive(Debug)]
struct InFlight {
    /// `None` for a batch without points (it only moves the cursor).
    task: Option<JoinHandle<std::io::Result<()>>>,
    last_seq: u64,
    oldest_ms: Option<i64>,
}

/// Batches in flight, oldest first.
#[derive(Debug)]
struct Pipeline {
    in_flight: VecDeque<InFlight>,
    /// A batch was given up at shutdown: the cursor must not move again in this run.
    stopped: bool,
    /// Where the cursor and the oldest unwritten record are published.
    status: Arc<Status>,
}

impl Pipeline {
    /// Sends `batch` (or just queues its position when it has no points), then confirms
    /// batches in order while more than `MAX_IN_FLIGHT` are out.
    async fn push(&mut self, batch: Batch, sender: &Sender, cursor: &mut Cursor) -> std::io::Result<()> {
        if self.stopped {
            return Ok(());
        }
        let task = (batch.points > 0).then(|| tokio::spawn(sender.clone().write(batch.lines, batch.points)));
        if self.in_flight.is_empty()
            && let Some(oldest) = batch.oldest_ms
        {
            self.status.oldest_unwritten_ms.store(oldest, Ordering::Relaxed);
        }
        self.in_flight.push_back(InFlight { task, last_seq: batch.last_seq, oldest_ms: batch.oldest_ms });
        while self.in_flight.len() > MAX_IN_FLIGHT {
            self.confirm_oldest(cursor).await?;
        }
        self.confirm_finished(cursor).await
    }

    /// Confirms the batches at the front that are already done, without waiting.
    async fn confirm_finished(&mut self, cursor: &mut Cursor) -> std::io::Result<()> {
        while self.in_flight.front().is_some_and(|f| f.task.as_ref().is_none_or(JoinHandle::is_finished)) {
            self.confirm_oldest(cursor).await?;
        }
        Ok(())
    }

    async fn confirm_oldest(&mut self, cursor: &mut Cursor) -> std::io::Result<()> {
        let Some(InFlight { task, last_seq, .. }) = self.in_flight.pop_front() else { return Ok(()) };
        if let Some(task) = task {
            match task.await.map_err(std::io::Error::other)? {
                Ok(()) => {}
                // Given up at shutdown: the cursor stays, the points go out after the restart.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                    self.in_flight.clear();
                    self.stopped = true;
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        cursor.advance(last_seq)?;
        self.status.follower.applied(last_seq);
        let next = self.in_flight.iter().find_map(|f| f.oldest_ms).unwrap_or(0);
        self.status.oldest_unwritten_ms.store(next, Ordering::Relaxed);
        Ok(())
    }

    async fn drain(&mut self, cursor: &mut Cursor) -> std::io::Result<()> {
        while !self.in_flight.is_empty() {
            self.confirm_oldest(cursor).await?;
        }
        Ok(())
    }

    fn oldest_ms(&self) -> Option<i64> {
        self.in_flight.iter().find_map(|f| f.oldest_ms)
    }
}

/// What a write task needs.
#[derive(Debug, Clone)]
struct Sender {
    client: Client,
    dead_letter_path: PathBuf,
    max_backoff: Duration,
    metrics: SinkMetrics,
    shutdown: CancellationToken,
    status: Arc<Status>,
}

impl Sender {
    /// Writes one batch, retrying until it succeeds, is refused (then parked in the
    /// dead-letter file), or shutdown gives up (`Interrupted`).
    async fn write(self, lines: Vec<u8>, points: usize) -> std::io::Result<()> {
        let body = self.client.encode(&lines);
        let mut delay = Duration::from_millis(500);
        loop {
            match self.client.send(body.clone()).await {
                Ok(()) => {
                    self.metrics.points.increment(points as u64);
                    self.metrics.batches.increment(1);
                    return Ok(());
                }
                Err(error @ WriteError::Rejected { .. }) => {
                    SinkMetrics::failure(error.kind());
                    tracing::error!(%error, points, "InfluxDB refused a batch; it goes to the dead-letter file");
                    park(&self.dead_letter_path, &error, &lines).await?;
                    self.metrics.dead_letter.increment(points as u64);
                    return Ok(());
                }
                Err(error) => {
                    SinkMetrics::failure(error.kind());
                    if self.shutdown.is_cancelled() {
                        tracing::warn!(%error, "InfluxDB unreachable at shutdown; points will be written after restart");
                        return Err(std::io::Error::new(std::io::ErrorKind::Interrupted, error.to_string()));
                    }
                    tracing::warn!(%error, retry_in = ?delay, "InfluxDB write failed; retrying");
                    self.status.follower.failed(&error, hj212_archive::now_ms());
                    self.metrics.retries.increment(1);
                    tokio::select! {
                        () = tokio::time::sleep(jitter(delay)) => {},
                        () = self.shutdown.cancelled() => {},
                    }
                    delay = (delay * 2).min(self.max_backoff);
                }
            }
        }
    }
}

/// Between 50 % and 100 % of `delay`, so many daemons do not retry in step.
fn jitter(delay: Duration) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    delay / 2 + delay.mul_f64(f64::from(nanos % 1000) / 2000.0)
}

async fn park(path: &std::path::Path, error: &WriteError, lines: &[u8]) -> std::io::Result<()> {
    let mut file = tokio::fs::OpenOptions::new().create(true).append(true).open(path).await?;
    let header = format!("# refused: {error}\n");
    file.write_all(header.as_bytes()).await?;
    file.write_all(lines).await?;
    file.sync_data().await
}
