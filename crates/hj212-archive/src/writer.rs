//! The writer thread: appends records in batches, one fsync per batch (group commit),
//! rotates segments by size and age, and applies retention.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};

use crate::format::{self, HEADER_LEN, Hash, Kind, NewRecord, RecordError, SegmentHeader, Verdict};
use crate::segment::{SegmentReader, list_segments, segment_name};
use crate::{ArchiveError, Observer, Settings};

/// Records or bytes per batch; one fsync covers a whole batch.
const MAX_BATCH_RECORDS: usize = 8192;
const MAX_BATCH_BYTES: usize = 8 << 20;

pub(crate) struct Request {
    pub record: NewRecord,
    pub done: oneshot::Sender<Result<u64, ArchiveError>>,
    /// Returns the record's bytes to the queue budget when the request is done.
    pub _permit: tokio::sync::OwnedSemaphorePermit,
}

/// What startup found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Sequence number the next record gets.
    pub next_seq: u64,
    /// A torn tail (a write cut short by a crash) that was cut off: the segment, the byte
    /// offset it was cut at, how many bytes, and where the cut bytes were kept.
    pub truncated: Option<(PathBuf, u64, u64, PathBuf)>,
}

pub(crate) struct Writer {
    settings: Settings,
    file: File,
    segment_first_seq: u64,
    segment_created: Instant,
    segment_len: u64,
    head: Hash,
    next_seq: u64,
    buf: Vec<u8>,
    durable: watch::Sender<u64>,
    failed: Arc<AtomicBool>,
    /// The lowest sequence number a follower still needs (retention keeps it).
    floor: Arc<AtomicU64>,
    observer: Arc<dyn Observer>,
}

/// The wall clock in Unix milliseconds, as records are stamped.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn io_error(context: &str, path: &Path, error: &io::Error) -> ArchiveError {
    ArchiveError::Io { message: format!("{context} {}: {error}", path.display()).into() }
}

impl Writer {
    /// Opens the archive in `settings.dir`, creating it, or recovering a torn tail.
    pub(crate) fn open(
        settings: Settings,
        durable: watch::Sender<u64>,
        failed: Arc<AtomicBool>,
        floor: Arc<AtomicU64>,
        observer: Arc<dyn Observer>,
    ) -> Result<(Self, Recovery), ArchiveError> {
        let dir = settings.dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| io_error("cannot create", &dir, &e))?;
        let mut segments = list_segments(&dir).map_err(|e| io_error("cannot list", &dir, &e))?;
        let mut recovery = Recovery::default();
        if let Some(aside) = set_aside_unfinished_segment(&mut segments)? {
            recovery.truncated = Some(aside);
        }
        let (first_seq, path, head, next_seq) = match segments.last() {
            None => {
                let header = SegmentHeader { first_seq: 1, prev_hash: [0; 32], created_ms: now_ms() };
                let path = create_segment(&dir, &header)?;
                (1, path, header.prev_hash, 1)
            }
            Some((first_seq, path)) => {
                let (head, next_seq, torn) = recover_segment(path)?;
                if torn.is_some() {
                    recovery.truncated = torn;
                }
                (*first_seq, path.clone(), head, next_seq)
            }
        };
        recovery.next_seq = next_seq;
        let file = OpenOptions::new().append(true).open(&path).map_err(|e| io_error("cannot open", &path, &e))?;
        let segment_len = file.metadata().map_err(|e| io_error("cannot stat", &path, &e))?.len();
        durable.send_replace(next_seq - 1);
        let writer = Self {
            settings,
            file,
            segment_first_seq: first_seq,
            segment_created: Instant::now(),
            segment_len,
            head,
            next_seq,
            buf: Vec::with_capacity(1 << 20),
            durable,
            failed,
            floor,
            observer,
        };
        Ok((writer, recovery))
    }

    /// Serves requests until every sender is gone.
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        let mut batch = Vec::with_capacity(MAX_BATCH_RECORDS);
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            let mut bytes = batch[0].record.data.len();
            while batch.len() < MAX_BATCH_RECORDS && bytes < MAX_BATCH_BYTES {
                let Ok(next) = rx.try_recv() else { break };
                bytes += next.record.data.len();
                batch.push(next);
            }
            self.observer.queue_depth(rx.len());
            self.commit(&mut batch);
        }
    }

    fn commit(&mut self, batch: &mut Vec<Request>) {
        if self.failed.load(Ordering::Relaxed) {
            let error = ArchiveError::Failed { reason: "an earlier write or fsync failed".into() };
            for request in batch.drain(..) {
                let _ = request.done.send(Err(error.clone()));
            }
            return;
        }
        let first_seq = self.next_seq;
        let records: Vec<&NewRecord> = batch.iter().map(|r| &r.record).collect();
        let written = self.write_durably(&records);
        drop(records);
        match written {
            Ok(()) => {
                // Publish first: whoever is told "durable" may rely on followers seeing it.
                self.durable.send_replace(self.next_seq - 1);
                for (i, request) in batch.drain(..).enumerate() {
                    let _ = request.done.send(Ok(first_seq + i as u64));
                }
                if let Err(error) = self.maybe_rotate() {
                    self.fail(&error);
                }
            }
            Err(error) => {
                self.fail(&error);
                for request in batch.drain(..) {
                    let _ = request.done.send(Err(error.clone()));
                }
            }
        }
    }

    /// After a failed write or fsync the file's state is unknown: accept nothing more
    /// (no acknowledgement may go out for data that might not be on disk).
    fn fail(&self, error: &ArchiveError) {
        self.failed.store(true, Ordering::Relaxed);
        self.observer.failed(error);
    }

    fn write_durably(&mut self, records: &[&NewRecord]) -> Result<(), ArchiveError> {
        self.buf.clear();
        let mut head = self.head;
        for (i, record) in records.iter().enumerate() {
            head = format::encode_record(&mut self.buf, self.next_seq + i as u64, record, &head);
        }
        let started = Instant::now();
        let path = self.segment_path();
        self.file.write_all(&self.buf).map_err(|e| io_error("cannot write", &path, &e))?;
        self.file.sync_data().map_err(|e| io_error("cannot fsync", &path, &e))?;
        self.observer.committed(records.len(), self.buf.len(), started.elapsed());
        self.head = head;
        self.next_seq += records.len() as u64;
        self.segment_len += self.buf.len() as u64;
        Ok(())
    }

    fn segment_path(&self) -> PathBuf {
        self.settings.dir.join(segment_name(self.segment_first_seq))
    }

    fn maybe_rotate(&mut self) -> Result<(), ArchiveError> {
        let too_big = self.segment_len >= self.settings.segment_max_bytes;
        let too_old = self.segment_created.elapsed() >= self.settings.segment_max_age;
        if !(too_big || too_old) || self.segment_len <= HEADER_LEN as u64 {
            return Ok(());
        }
        let header = SegmentHeader { first_seq: self.next_seq, prev_hash: self.head, created_ms: now_ms() };
        let path = create_segment(&self.settings.dir, &header)?;
        self.file = OpenOptions::new().append(true).open(&path).map_err(|e| io_error("cannot open", &path, &e))?;
        self.segment_first_seq = header.first_seq;
        self.segment_created = Instant::now();
        self.segment_len = HEADER_LEN as u64;
        self.apply_retention()
    }

    /// Deletes segments older than the retention period, first recording in the chain
    /// what is removed, so `verify` can tell retention from deletion.
    fn apply_retention(&mut self) -> Result<(), ArchiveError> {
        let Some(retention) = self.settings.retention else {
            return Ok(());
        };
        let dir = self.settings.dir.clone();
        let segments = list_segments(&dir).map_err(|e| io_error("cannot list", &dir, &e))?;
        let cutoff = now_ms() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        for pair in segments.windows(2) {
            let ((_, old), (next_first, next)) = (&pair[0], &pair[1]);
            // A segment's last record is no newer than the next segment's creation.
            let next_header = SegmentReader::open(next).map_err(|e| io_error("cannot read", next, &e))?.header;
            // The segment ends at next_first - 1; keep it if that record is still needed.
            let still_needed = *next_first > self.floor.load(Ordering::Relaxed);
            if next_header.created_ms >= cutoff || *next_first == self.segment_first_seq || still_needed {
                break;
            }
            let note = format!(
                "retention removed {} last_seq={} last_hash={}",
                old.file_name().and_then(|n| n.to_str()).unwrap_or_default(),
                next_first - 1,
                hex(&next_header.prev_hash)
            );
            let event = NewRecord {
                kind: Kind::Event,
                verdict: Verdict::Info,
                flags: 0,
                time_ms: now_ms(),
                peer: "archive".into(),
                data: note.into_bytes(),
            };
            self.write_durably(&[&event])?;
            self.durable.send_replace(self.next_seq - 1);
            std::fs::remove_file(old).map_err(|e| io_error("cannot remove", old, &e))?;
        }
        sync_dir(&dir).map_err(|e| io_error("cannot fsync", &dir, &e))
    }
}

/// Lower-case hex of a hash.
pub fn hex(hash: &Hash) -> String {
    use std::fmt::Write;
    hash.iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn create_segment(dir: &Path, header: &SegmentHeader) -> Result<PathBuf, ArchiveError> {
    let path = dir.join(segment_name(header.first_seq));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| io_error("cannot create", &path, &e))?;
    file.write_all(&header.encode()).map_err(|e| io_error("cannot write", &path, &e))?;
    file.sync_all().map_err(|e| io_error("cannot fsync", &path, &e))?;
    sync_dir(dir).map_err(|e| io_error("cannot fsync", dir, &e))?;
    Ok(path)
}

type TornTail = Option<(PathBuf, u64, u64, PathBuf)>;

/// A crash while a new segment was being created can leave it without a complete header
/// (and so without records). It is moved aside and the previous segment continues.
fn set_aside_unfinished_segment(segments: &mut Vec<(u64, PathBuf)>) -> Result<TornTail, ArchiveError> {
    let Some((_, path)) = segments.last() else { return Ok(None) };
    let bytes = std::fs::read(path).map_err(|e| io_error("cannot read", path, &e))?;
    if bytes.len() >= HEADER_LEN || SegmentHeader::decode(&bytes).is_some() {
        return Ok(None);
    }
    let kept = path.with_extension("hjar.unfinished");
    std::fs::rename(path, &kept).map_err(|e| io_error("cannot move aside", path, &e))?;
    let (_, path) = segments.pop().expect("checked above");
    Ok(Some((path, 0, bytes.len() as u64, kept)))
}

/// Walks the newest segment. A crash mid-write leaves a record cut short at the end of the
/// file, or a tail of zeros (blocks allocated, data not yet written); such a tail was never
/// acknowledged (acks follow fsync), so its bytes are kept beside the segment and cut off.
/// Any other failure is damage, not a crash: the archive refuses to open rather than cut
/// acknowledged records. Returns the chain head, the next sequence number and what was cut.
fn recover_segment(path: &Path) -> Result<(Hash, u64, TornTail), ArchiveError> {
    let mut reader = SegmentReader::open(path).map_err(|e| io_error("cannot read", path, &e))?;
    let mut next_seq = reader.header.first_seq;
    loop {
        match reader.next_record() {
            Ok(Some(record)) => next_seq = record.seq + 1,
            Ok(None) => return Ok((reader.head(), next_seq, None)),
            Err(bad) => {
                let cut_at = bad.offset as u64;
                let cut_len = reader.len() as u64 - cut_at;
                let bytes = std::fs::read(path).map_err(|e| io_error("cannot read", path, &e))?;
                let torn = matches!(bad.error, RecordError::Truncated { .. })
                    || bytes.get(bad.offset..).is_some_and(|tail| tail.iter().all(|b| *b == 0));
                if !torn {
                    return Err(ArchiveError::Corrupt {
                        segment: path.display().to_string(),
                        offset: cut_at,
                        problem: bad.error.to_string(),
                    });
                }
                let kept = path.with_extension(format!("hjar.torn-{cut_at}"));
                std::fs::write(&kept, &bytes[bad.offset..]).map_err(|e| io_error("cannot write", &kept, &e))?;
                let file = OpenOptions::new().write(true).open(path).map_err(|e| io_error("cannot open", path, &e))?;
                file.set_len(cut_at).map_err(|e| io_error("cannot truncate", path, &e))?;
                file.sync_all().map_err(|e| io_error("cannot fsync", path, &e))?;
                return Ok((reader.head(), next_seq, Some((path.to_path_buf(), cut_at, cut_len, kept))));
            }
        }
    }
}
