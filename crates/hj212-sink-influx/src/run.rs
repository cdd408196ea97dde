//! The sink loop: read durable records after the cursor, batch their points, write with
//! retries, move the cursor.
//!
//! Policy when the database is down: keep retrying the same batch with capped exponential
//! backoff and jitter; the archive keeps everything meanwhile, so memory stays bounded by
//! one batch and nothing is lost. Example: with `max_backoff_secs = 30`, retries wait about
//! 0.5, 1, 2, 4 ... 30, 30 s; an hour-long outage costs ~130 attempts, then the sink catches
//! up from the cursor at full speed.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hj212_archive::{Follower, Record};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
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
}

/// Archive records read per step.
const READ_CHUNK: usize = 2000;

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
    let mut follower = Follower::new(&settings.archive_dir, cursor.seq + 1);
    let metrics = SinkMetrics::default();
    write_site_metadata(&client, &settings.sites).await;
    let mut batch = Batch::default();
    loop {
        let target = *durable.borrow_and_update();
        let (f, records) = read(follower, target).await?;
        follower = f;
        for record in &records {
            batch.add(record);
            if batch.points >= settings.batch_points {
                flush(&client, &settings, &mut batch, &mut cursor, &metrics, &shutdown).await?;
            }
        }
        let behind = target.saturating_sub(follower.next_seq() - 1);
        if behind > 0 {
            continue;
        }
        let due = batch.started.is_some_and(|t| t.elapsed() >= settings.batch_interval);
        if due || (shutdown.is_cancelled() && *durable.borrow() == target) {
            flush(&client, &settings, &mut batch, &mut cursor, &metrics, &shutdown).await?;
        }
        report_lag(&metrics, &status, target, cursor.seq, batch.oldest_ms);
        if shutdown.is_cancelled() && *durable.borrow() == target && batch.is_empty() {
            return Ok(());
        }
        let wait =
            batch.started.map_or(Duration::from_secs(1), |t| settings.batch_interval.saturating_sub(t.elapsed()));
        tokio::select! {
            _ = durable.changed() => {},
            () = shutdown.cancelled(), if !shutdown.is_cancelled() => {},
            () = tokio::time::sleep(wait) => {},
        }
    }
}

/// Best effort: site names are metadata, rewritten at every start.
async fn write_site_metadata(client: &Client, sites: &[(String, String)]) {
    if sites.is_empty() {
        return;
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let lines = crate::points::site_points(sites, i64::try_from(now).unwrap_or(i64::MAX));
    if let Err(error) = client.send(client.encode(&lines)).await {
        tracing::warn!(%error, "could not write site metadata to InfluxDB; readings are not affected");
    }
}

async fn read(mut follower: Follower, target: u64) -> std::io::Result<(Follower, Vec<Record>)> {
    tokio::task::spawn_blocking(move || {
        let records = follower.read(target, READ_CHUNK);
        records.map(|r| (follower, r))
    })
    .await
    .map_err(std::io::Error::other)?
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
    fn add(&mut self, record: &Record) {
        let added = append_points(record, &mut self.lines);
        self.points += added;
        self.last_seq = record.seq;
        if added > 0 && self.started.is_none() {
            self.started = Some(Instant::now());
            self.oldest_ms = Some(record.time_ms);
        }
    }

    fn is_empty(&self) -> bool {
        self.points == 0
    }
}

/// Writes the batch (retrying until it succeeds, is refused, or shutdown gives up), then
/// moves the cursor past it.
async fn flush(
    client: &Client,
    settings: &Settings,
    batch: &mut Batch,
    cursor: &mut Cursor,
    metrics: &SinkMetrics,
    shutdown: &CancellationToken,
) -> std::io::Result<()> {
    let done = std::mem::take(batch);
    if done.points > 0 {
        let body = client.encode(&done.lines);
        let mut delay = Duration::from_millis(500);
        loop {
            match client.send(body.clone()).await {
                Ok(()) => {
                    metrics.points.increment(done.points as u64);
                    metrics.batches.increment(1);
                    break;
                }
                Err(error @ WriteError::Rejected { .. }) => {
                    SinkMetrics::failure(error.kind());
                    tracing::error!(%error, points = done.points, "InfluxDB refused a batch; it goes to the dead-letter file");
                    park(&settings.dead_letter_path, &error, &done.lines).await?;
                    metrics.dead_letter.increment(done.points as u64);
                    break;
                }
                Err(error) => {
                    SinkMetrics::failure(error.kind());
                    if shutdown.is_cancelled() {
                        // Not written, cursor not moved: the points go out after the restart.
                        tracing::warn!(%error, "InfluxDB unreachable at shutdown; points will be written after restart");
                        return Ok(());
                    }
                    tracing::warn!(%error, retry_in = ?delay, "InfluxDB write failed; retrying");
                    metrics.retries.increment(1);
                    tokio::select! {
                        () = tokio::time::sleep(jitter(delay)) => {},
                        () = shutdown.cancelled() => {},
                    }
                    delay = (delay * 2).min(settings.max_backoff);
                }
            }
        }
    }
    if done.last_seq > cursor.seq {
        cursor.advance(done.last_seq)?;
    }
    Ok(())
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

fn report_lag(metrics: &SinkMetrics, status: &Status, durable: u64, cursor: u64, oldest_ms: Option<i64>) {
    let behind = durable.saturating_sub(cursor);
    status.lag_records.store(behind, Ordering::Relaxed);
    metrics.lag_records.set(behind as f64);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let age = oldest_ms.map_or(0.0, |ms| (i64::try_from(now).unwrap_or(i64::MAX) - ms).max(0) as f64 / 1000.0);
    metrics.lag_seconds.set(if behind == 0 { 0.0 } else { age });
}
