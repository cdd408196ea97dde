//! The raw-frame archive: the only writer of raw frames. Every record (frame received,
//! reply sent, daemon event) is appended to segment files with the SHA-256 of the
//! previous record in its hash, so an edit or deletion is detectable by [`verify`].
//! [`Archive::append`] resolves only after the record is fsynced; fsyncs are grouped so
//! that many connections share one (group commit). Nothing here parses HJ 212.

pub mod checkpoint;
mod compress;
mod follow;
mod format;
mod packed;
mod recover;
mod segment;
mod status;
mod verify;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot, watch};

pub use checkpoint::{Checkpoint, SignedHead};
pub use compress::{Compressed, unpack_all};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use follow::{Bookmark, Follower, read_backwards};
pub use format::{Hash, Kind, MAX_DATA, NewRecord, Record, RecordError, Verdict, flags};
pub use packed::PACKED_SUFFIX;
pub use recover::Recovery;
pub use segment::{header_of, list_segments, segment_name};
pub use status::{Failing, FollowerStatus};
pub use verify::{Break, Report, VerifyOptions, verify, verify_with, walk, walk_with};
pub use writer::{hex, now_ms, unhex};

/// Where the archive lives and how it rotates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub dir: PathBuf,
    pub segment_max_bytes: u64,
    pub segment_max_age: Duration,
    /// Delete segments older than this; `None` keeps everything.
    pub retention: Option<Duration>,
    /// Appends waiting for the writer; when full, `append` waits (backpressure).
    pub queue: usize,
    /// Bytes of records waiting for the writer; when exceeded, `append` waits too.
    pub queue_bytes: usize,
    /// Signed checkpoints of the head; `None` writes none (tools and tests).
    pub checkpoints: Option<CheckpointSettings>,
    /// After a failed write, appends are taken again only once the file system has this
    /// many bytes free (a disk with room for one small record would fail again at once).
    pub resume_free_bytes: u64,
    /// The highest sequence number other evidence (a follower's position) shows was durable:
    /// startup refuses to cut it as a crash's torn tail.
    pub durable_at_least: u64,
    /// Sealed segments are compressed at this zstd level; `None` leaves them plain.
    pub compress: Option<i32>,
}

impl Settings {
    /// An archive in `dir` with small segments and no checkpoints or retention: for tools and
    /// tests, which set what they need on top.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            segment_max_bytes: 64 * 1024,
            segment_max_age: Duration::from_secs(3600),
            retention: None,
            queue: 1024,
            queue_bytes: 64 << 20,
            checkpoints: None,
            resume_free_bytes: 0,
            durable_at_least: 0,
            compress: None,
        }
    }
}

/// How often, and with which key, the head is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointSettings {
    pub key: SigningKey,
    pub interval: Duration,
}

/// The archive cannot take or keep a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    #[error("archive I/O error: {message}")]
    Io { message: Arc<str> },
    #[error("archive has failed and accepts nothing: {reason}")]
    Failed { reason: Arc<str> },
    #[error("archive writer has stopped")]
    Closed,
    /// Refused before it is written: readers accept nothing larger.
    #[error("record of {len} bytes refused: the archive keeps records of at most {max} bytes")]
    TooLarge { len: usize, max: usize },
    /// A record in the middle of the newest segment does not verify: not a crash (a crash
    /// leaves a short or zero-filled tail) but damage or tampering. Nothing is cut.
    #[error(
        "archive segment {segment} is damaged at byte {offset} ({problem}); run `hj212-audit verify`, keep a copy, \
         and move the segment aside to start"
    )]
    Corrupt { segment: String, offset: u64, problem: String },
}

/// Receives the archive's measurements (the daemon turns them into metrics).
pub trait Observer: Send + Sync {
    /// A batch of `records` (`bytes` long) was written and fsynced in `took`.
    fn committed(&self, records: usize, bytes: usize, took: Duration);
    /// Appends still queued after a batch was taken.
    fn queue_depth(&self, depth: usize);
    /// A write failed: appends are refused until the writer has resumed.
    fn failed(&self, error: &ArchiveError);
    /// Appends are taken again after a failure that lasted `outage`.
    fn resumed(&self, _outage: Duration) {}
    /// Something went wrong that costs no record (a rotation or retention step that will be
    /// tried again, the latest-checkpoint file).
    fn warning(&self, _error: &ArchiveError) {}
    /// A checkpoint was signed and is durable.
    fn checkpointed(&self, _head: &SignedHead) {}
    /// A sealed segment was replaced by its compressed form.
    fn compressed(&self, _segment: &std::path::Path, _done: Compressed) {}
}

/// An observer that ignores everything (tools and tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl Observer for NoObserver {
    fn committed(&self, _: usize, _: usize, _: Duration) {}
    fn queue_depth(&self, _: usize) {}
    fn failed(&self, _: &ArchiveError) {}
}

/// A handle to the archive writer; cheap to clone.
#[derive(Debug, Clone)]
pub struct Archive {
    tx: mpsc::Sender<writer::Request>,
    /// One permit per queued byte: memory stays bounded whatever the record sizes.
    bytes: Arc<Semaphore>,
    bytes_limit: u32,
    durable: watch::Receiver<u64>,
    failed: Arc<AtomicBool>,
    floor: Arc<AtomicU64>,
    checkpoint: watch::Receiver<Option<SignedHead>>,
}

/// The writer thread (and the compressor's); join it after dropping every [`Archive`] handle
/// to flush and stop.
#[derive(Debug)]
pub struct WriterThread {
    writer: std::thread::JoinHandle<()>,
    compressor: Option<std::thread::JoinHandle<()>>,
}

impl WriterThread {
    /// Waits for the writer to finish its last batch, and the compressor the segment in hand.
    pub fn join(self) {
        let _ = self.writer.join();
        if let Some(compressor) = self.compressor {
            let _ = compressor.join();
        }
    }
}

/// Wakes the writer at half the checkpoint interval, so a tail that stopped growing is
/// still signed on time; it ends once every [`Archive`] handle is gone.
fn start_checkpoint_timer(writer: mpsc::WeakSender<writer::Request>, interval: Duration) -> Result<(), ArchiveError> {
    let period = (interval / 2).max(Duration::from_millis(100));
    std::thread::Builder::new()
        .name("archive-checkpoint-timer".into())
        .spawn(move || {
            loop {
                std::thread::sleep(period);
                let Some(writer) = writer.upgrade() else { return };
                // A full queue means the writer is busy committing, and checkpoints then.
                let _ = writer.try_send(writer::Request::Tick);
            }
        })
        .map(drop)
        .map_err(|e| ArchiveError::Io { message: format!("cannot start the checkpoint timer: {e}").into() })
}

/// A pending append: resolves to the record's sequence number once it is on disk.
#[derive(Debug)]
pub struct Pending(oneshot::Receiver<Result<u64, ArchiveError>>);

impl Pending {
    /// Waits until the record is fsynced.
    ///
    /// # Errors
    /// [`ArchiveError`] if the write or fsync failed, or the writer stopped.
    pub async fn durable(self) -> Result<u64, ArchiveError> {
        self.0.await.unwrap_or(Err(ArchiveError::Closed))
    }
}

impl Archive {
    /// Opens (or creates) the archive and starts its writer thread.
    ///
    /// # Errors
    /// [`ArchiveError::Io`] when the directory or newest segment cannot be used.
    pub fn open(
        settings: Settings,
        observer: Arc<dyn Observer>,
    ) -> Result<(Self, WriterThread, Recovery), ArchiveError> {
        let (durable_tx, durable) = watch::channel(0);
        let (checkpoint_tx, checkpoint) = watch::channel(checkpoint::read_latest(&settings.dir));
        let failed = Arc::new(AtomicBool::new(false));
        let floor = Arc::new(AtomicU64::new(u64::MAX));
        let queue = settings.queue.max(1);
        let bytes_limit = u32::try_from(settings.queue_bytes.clamp(1, Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
        let bytes = Arc::new(Semaphore::new(bytes_limit as usize));
        let outputs = writer::Outputs {
            durable: durable_tx,
            failed: failed.clone(),
            floor: floor.clone(),
            checkpoint: checkpoint_tx,
            observer,
        };
        let settings_checkpoints = settings.checkpoints.clone();
        let files = compress::FilesLock::default();
        // The compressor starts once the archive has opened (never on one refused as damaged).
        let compress = settings.compress.map(|level| (level, std::sync::mpsc::channel()));
        let wake = compress.as_ref().map(|(_, (wake, _))| wake.clone());
        let (dir, observer) = (settings.dir.clone(), outputs.observer.clone());
        let (writer, recovery) = writer::Writer::open(settings, outputs, wake, files.clone())?;
        let compressor = match compress {
            Some((level, (wake, woken))) => {
                let _ = wake.send(());
                Some(compress::start(dir, level, files, observer, woken)?)
            }
            None => None,
        };
        let (tx, rx) = mpsc::channel(queue);
        if let Some(checkpoints) = &settings_checkpoints {
            start_checkpoint_timer(tx.downgrade(), checkpoints.interval)?;
        }
        let thread = std::thread::Builder::new()
            .name("archive-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| ArchiveError::Io { message: format!("cannot start the writer thread: {e}").into() })?;
        let threads = WriterThread { writer: thread, compressor };
        Ok((Self { tx, bytes, bytes_limit, durable, failed, floor, checkpoint }, threads, recovery))
    }

    /// Queues a record (waiting while the queue is full) and returns a handle that
    /// resolves once it is durable. Submit several before awaiting to pipeline.
    ///
    /// # Errors
    /// [`ArchiveError::Closed`] when the writer has stopped, [`ArchiveError::TooLarge`] for
    /// data over [`MAX_DATA`].
    pub async fn submit(&self, record: NewRecord) -> Result<Pending, ArchiveError> {
        if record.data.len() > MAX_DATA {
            return Err(ArchiveError::TooLarge { len: record.data.len(), max: MAX_DATA });
        }
        let (done, wait) = oneshot::channel();
        // A record larger than the whole budget still passes, alone.
        let cost = u32::try_from(record.data.len()).unwrap_or(u32::MAX).clamp(1, self.bytes_limit);
        let permit = self.bytes.clone().acquire_many_owned(cost).await.map_err(|_| ArchiveError::Closed)?;
        let request = writer::Request::Append(writer::Append { record, done, _permit: permit });
        self.tx.send(request).await.map_err(|_| ArchiveError::Closed)?;
        Ok(Pending(wait))
    }

    /// Appends a record and waits until it is fsynced.
    ///
    /// # Errors
    /// As [`Archive::submit`] and [`Pending::durable`].
    pub async fn append(&self, record: NewRecord) -> Result<u64, ArchiveError> {
        self.submit(record).await?.durable().await
    }

    /// The highest sequence number known to be on disk, updated after each fsync.
    pub fn durable(&self) -> watch::Receiver<u64> {
        self.durable.clone()
    }

    /// The newest signed checkpoint (from the previous run until this one signs its first).
    pub fn latest_checkpoint(&self) -> watch::Receiver<Option<SignedHead>> {
        self.checkpoint.clone()
    }

    /// Records from `seq` on are still needed by a follower (store, sink): retention keeps
    /// every segment holding one of them, however old.
    pub fn set_retention_floor(&self, seq: u64) {
        self.floor.store(seq, Ordering::Relaxed);
    }

    /// False from a failed write or fsync until the writer has resumed (not ready meanwhile).
    pub fn is_healthy(&self) -> bool {
        !self.failed.load(Ordering::Relaxed)
    }

    /// Records queued for the writer.
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}
