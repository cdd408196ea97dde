//! The writer thread: appends records in batches, one fsync per batch (group commit),
//! rotates segments by size and age, applies retention, signs checkpoints, and survives a
//! failing disk: after a failed write it refuses appends (nothing is acknowledged that is
//! not durable), then retries with backoff and resumes once the cause is gone.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot, watch};

use crate::checkpoint::{Checkpoint, SignedHead, write_latest};
use crate::compress::FilesLock;
use crate::format::{self, HEADER_LEN, Hash, Kind, NewRecord, SegmentHeader, Verdict};
use crate::recover::{Newest, Recovery, open_newest};
use crate::segment::{create_segment, header_of, list_segments, packed_path, segment_name};
use crate::{ArchiveError, Observer, Settings};

/// Records or bytes per batch; one fsync covers a whole batch.
const MAX_BATCH_RECORDS: usize = 8192;
const MAX_BATCH_BYTES: usize = 8 << 20;
/// After a failed write, the first retry comes after this; each failed retry doubles it.
const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(5);
/// How often a failed writer looks at its queue (refusing appends) between retries.
const OUTAGE_POLL: Duration = Duration::from_millis(50);
/// A segment that could not be created (no descriptors, no space) is tried again after this.
const ROTATE_RETRY: Duration = Duration::from_secs(5);

pub(crate) enum Request {
    Append(Append),
    /// Time to sign the head if the interval has passed (sent by a timer while no records
    /// arrive, so the tail does not stay unsigned until the next one).
    Tick,
}

pub(crate) struct Append {
    pub record: NewRecord,
    pub done: oneshot::Sender<Result<u64, ArchiveError>>,
    /// Returns the record's bytes to the queue budget when the request is done.
    pub _permit: tokio::sync::OwnedSemaphorePermit,
}

/// What the writer tells the rest of the daemon.
pub(crate) struct Outputs {
    pub durable: watch::Sender<u64>,
    pub failed: Arc<AtomicBool>,
    /// The lowest sequence number a follower still needs (retention keeps it).
    pub floor: Arc<AtomicU64>,
    pub checkpoint: watch::Sender<Option<SignedHead>>,
    pub observer: Arc<dyn Observer>,
}

/// The segment being appended to.
struct Open {
    file: File,
    first_seq: u64,
    created: Instant,
    /// Bytes known durable: a failed write leaves the file longer, and is cut back to this.
    len: u64,
}

/// A failed write or fsync and the retries since.
struct Outage {
    error: ArchiveError,
    since: Instant,
    retry_at: Instant,
    backoff: Duration,
    refused: u64,
}

pub(crate) struct Writer {
    settings: Settings,
    segment: Open,
    /// What the next record chains from.
    chain_prev: Hash,
    /// The hash of the last record written.
    last_hash: Hash,
    next_seq: u64,
    buf: Vec<u8>,
    out: Outputs,
    outage: Option<Outage>,
    rotate_retry_at: Option<Instant>,
    /// The last record a checkpoint covers (itself included), and when it was signed.
    checkpointed: (u64, Instant),
    /// Records found after the chain's newest checkpoint at open, for this run's first checkpoint.
    adopted: Option<(u64, u64)>,
    /// Woken after each rotation to compress the sealed segment (none: segments stay plain).
    compressor: Option<std::sync::mpsc::Sender<()>>,
    /// Held while retention removes a segment, which the compressor may be replacing.
    files: FilesLock,
}

/// The wall clock in Unix milliseconds, as records are stamped.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

pub(crate) fn io_error(context: &str, path: &Path, error: &io::Error) -> ArchiveError {
    ArchiveError::Io { message: format!("{context} {}: {error}", path.display()).into() }
}

fn event(verdict: Verdict, text: String) -> NewRecord {
    NewRecord {
        kind: Kind::Event,
        verdict,
        flags: 0,
        time_ms: now_ms(),
        peer: "archive".into(),
        data: text.into_bytes(),
    }
}

impl Writer {
    /// Opens the archive in `settings.dir`, creating it, or recovering a torn tail.
    pub(crate) fn open(
        settings: Settings,
        out: Outputs,
        compressor: Option<std::sync::mpsc::Sender<()>>,
        files: FilesLock,
    ) -> Result<(Self, Recovery), ArchiveError> {
        let (newest, recovery) = open_newest(&settings)?;
        let Newest { file, first_seq, len, chain_prev, last_hash, next_seq, signed_to } = newest;
        // Records after the chain's newest checkpoint were not signed by the run that wrote them.
        let adopted = (next_seq - 1 > signed_to).then_some((signed_to + 1, next_seq - 1));
        out.durable.send_replace(next_seq - 1);
        let writer = Self {
            settings,
            segment: Open { file, first_seq, created: Instant::now(), len },
            chain_prev,
            last_hash,
            next_seq,
            buf: Vec::with_capacity(1 << 20),
            out,
            outage: None,
            rotate_retry_at: None,
            checkpointed: (next_seq - 1, Instant::now()),
            adopted,
            compressor,
            files,
        };
        Ok((writer, recovery))
    }

    /// Serves requests until every sender is gone, then signs a last checkpoint.
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        let mut batch = Vec::with_capacity(MAX_BATCH_RECORDS);
        while let Some(first) = self.next_request(&mut rx) {
            let Request::Append(first) = first else {
                self.maybe_checkpoint(false);
                continue;
            };
            batch.push(first);
            let mut bytes = batch[0].record.data.len();
            while batch.len() < MAX_BATCH_RECORDS && bytes < MAX_BATCH_BYTES {
                let Ok(next) = rx.try_recv() else { break };
                if let Request::Append(next) = next {
                    bytes += next.record.data.len();
                    batch.push(next);
                }
            }
            self.out.observer.queue_depth(rx.len());
            self.commit(&mut batch);
            self.maybe_checkpoint(false);
        }
        self.maybe_checkpoint(true);
    }

    /// The next request; while failed, retries on a timer even without traffic, so the
    /// archive (and readiness) comes back as soon as the disk does.
    fn next_request(&mut self, rx: &mut mpsc::Receiver<Request>) -> Option<Request> {
        loop {
            if self.outage.is_none() {
                return rx.blocking_recv();
            }
            self.try_resume();
            if self.outage.is_some() {
                match rx.try_recv() {
                    Ok(request) => return Some(request),
                    Err(TryRecvError::Disconnected) => return None,
                    Err(TryRecvError::Empty) => std::thread::sleep(OUTAGE_POLL),
                }
            }
        }
    }

    fn commit(&mut self, batch: &mut Vec<Append>) {
        if let Some(outage) = &mut self.outage {
            // Not written, so not acknowledged: the loggers send these again later.
            outage.refused += batch.len() as u64;
            let error = ArchiveError::Failed { reason: outage.error.to_string().into() };
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
                self.out.durable.send_replace(self.next_seq - 1);
                for (i, request) in batch.drain(..).enumerate() {
                    let _ = request.done.send(Ok(first_seq + i as u64));
                }
                self.maybe_rotate();
            }
            Err(error) => {
                self.begin_outage(error.clone());
                for request in batch.drain(..) {
                    let _ = request.done.send(Err(error.clone()));
                }
            }
        }
    }

    /// After a failed write or fsync the file's tail is unknown: accept nothing until it has
    /// been cut back to what is durable and a write succeeds again.
    fn begin_outage(&mut self, error: ArchiveError) {
        self.out.failed.store(true, Ordering::Relaxed);
        self.out.observer.failed(&error);
        let now = Instant::now();
        self.outage = Some(Outage { error, since: now, retry_at: now + FIRST_RETRY, backoff: FIRST_RETRY, refused: 0 });
    }

    /// Cuts the segment back to its durable length, then appends a record saying what
    /// happened; the archive is healthy again once that record is on disk.
    fn try_resume(&mut self) {
        let Some(outage) = &self.outage else { return };
        if Instant::now() < outage.retry_at {
            return;
        }
        let note = format!(
            "resumed after a write failure lasting {:.1} s ({} appends refused, none acknowledged): {}",
            outage.since.elapsed().as_secs_f64(),
            outage.refused,
            outage.error
        );
        let resumed = self
            .enough_free_space()
            .and_then(|()| self.reopen_at_durable_length())
            .and_then(|()| self.write_durably(&[&event(Verdict::Info, note)]));
        let Some(outage) = &mut self.outage else { return };
        match resumed {
            Ok(()) => {
                let lasted = outage.since.elapsed();
                self.outage = None;
                self.out.failed.store(false, Ordering::Relaxed);
                self.out.durable.send_replace(self.next_seq - 1);
                self.out.observer.resumed(lasted);
            }
            Err(error) => {
                outage.error = error;
                outage.backoff = (outage.backoff * 2).min(MAX_RETRY);
                outage.retry_at = Instant::now() + outage.backoff;
            }
        }
    }

    fn enough_free_space(&self) -> Result<(), ArchiveError> {
        let dir = &self.settings.dir;
        let stats = rustix::fs::statvfs(dir).map_err(|e| io_error("cannot stat the file system of", dir, &e.into()))?;
        let free = stats.f_bavail.saturating_mul(stats.f_frsize);
        if free < self.settings.resume_free_bytes {
            return Err(ArchiveError::Io {
                message: format!(
                    "{free} bytes free on the file system of {}; waiting for {} (archive.resume_free_bytes)",
                    dir.display(),
                    self.settings.resume_free_bytes
                )
                .into(),
            });
        }
        Ok(())
    }

    fn reopen_at_durable_length(&mut self) -> Result<(), ArchiveError> {
        let path = self.segment_path();
        let file = OpenOptions::new().write(true).open(&path).map_err(|e| io_error("cannot open", &path, &e))?;
        file.set_len(self.segment.len).map_err(|e| io_error("cannot truncate", &path, &e))?;
        file.sync_all().map_err(|e| io_error("cannot fsync", &path, &e))?;
        // A new descriptor: the old one may carry the failed fsync's error state.
        self.segment.file =
            OpenOptions::new().append(true).open(&path).map_err(|e| io_error("cannot open", &path, &e))?;
        Ok(())
    }

    fn write_durably(&mut self, records: &[&NewRecord]) -> Result<(), ArchiveError> {
        self.buf.clear();
        let mut prev = self.chain_prev;
        for (i, record) in records.iter().enumerate() {
            prev = format::encode_record(&mut self.buf, self.next_seq + i as u64, record, &prev);
        }
        let started = Instant::now();
        let path = self.segment_path();
        self.segment.file.write_all(&self.buf).map_err(|e| io_error("cannot write", &path, &e))?;
        self.segment.file.sync_data().map_err(|e| io_error("cannot fsync", &path, &e))?;
        self.out.observer.committed(records.len(), self.buf.len(), started.elapsed());
        self.chain_prev = prev;
        self.last_hash = prev;
        self.next_seq += records.len() as u64;
        self.segment.len += self.buf.len() as u64;
        Ok(())
    }

    fn segment_path(&self) -> PathBuf {
        self.settings.dir.join(segment_name(self.segment.first_seq))
    }

    fn maybe_rotate(&mut self) {
        let too_big = self.segment.len >= self.settings.segment_max_bytes;
        let too_old = self.segment.created.elapsed() >= self.settings.segment_max_age;
        let waiting = self.rotate_retry_at.is_some_and(|at| Instant::now() < at);
        if !(too_big || too_old) || self.segment.len <= HEADER_LEN as u64 || waiting {
            return;
        }
        let header = SegmentHeader::new(self.next_seq, self.last_hash, now_ms());
        match create_segment(&self.settings.dir, &header) {
            Ok((_, file)) => {
                self.segment =
                    Open { file, first_seq: header.first_seq, created: Instant::now(), len: HEADER_LEN as u64 };
                self.chain_prev = header.chain_seed();
                self.rotate_retry_at = None;
                if let Some(compressor) = &self.compressor {
                    let _ = compressor.send(());
                }
                self.apply_retention();
            }
            Err(error) => {
                // The current segment stays valid and keeps taking records meanwhile.
                self.out.observer.warning(&error);
                self.rotate_retry_at = Some(Instant::now() + ROTATE_RETRY);
            }
        }
    }

    /// Signs the head when the interval has passed and records were added since the last
    /// checkpoint, and always as the writer stops (marked `last`: nothing may follow it).
    fn maybe_checkpoint(&mut self, stopping: bool) {
        let Some(settings) = &self.settings.checkpoints else { return };
        let head_seq = self.next_seq - 1;
        let due = self.checkpointed.1.elapsed() >= settings.interval && head_seq > self.checkpointed.0;
        if self.outage.is_some() || head_seq == 0 || !(due || stopping) {
            return;
        }
        let checkpoint = Checkpoint::sign(&settings.key, head_seq, self.last_hash, now_ms(), self.adopted, stopping);
        if let Err(error) = self.write_durably(&[&event(Verdict::Checkpoint, checkpoint.encode())]) {
            self.begin_outage(error);
            return;
        }
        self.out.durable.send_replace(self.next_seq - 1);
        self.checkpointed = (self.next_seq - 1, Instant::now());
        self.adopted = None;
        let head = SignedHead { checkpoint, record_seq: self.next_seq - 1, record_hash: self.last_hash };
        if let Err(error) = write_latest(&self.settings.dir, &head) {
            self.out.observer.warning(&io_error("cannot write the latest checkpoint in", &self.settings.dir, &error));
        }
        self.out.observer.checkpointed(&head);
        self.out.checkpoint.send_replace(Some(head));
    }

    /// Deletes segments older than the retention period, first recording in the chain
    /// what is removed, so `verify` can tell retention from deletion.
    fn apply_retention(&mut self) {
        let Some(retention) = self.settings.retention else { return };
        let dir = self.settings.dir.clone();
        let segments = match list_segments(&dir) {
            Ok(segments) => segments,
            Err(e) => return self.out.observer.warning(&io_error("cannot list", &dir, &e)),
        };
        let cutoff = now_ms() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        for pair in segments.windows(2) {
            let ((_, old), (next_first, next)) = (&pair[0], &pair[1]);
            // A segment's last record is no newer than the next segment's creation.
            let next_header = match header_of(next) {
                Ok(header) => header,
                Err(e) => return self.out.observer.warning(&io_error("cannot read", next, &e)),
            };
            // The segment ends at next_first - 1; keep it if that record is still needed.
            let still_needed = *next_first > self.out.floor.load(Ordering::Relaxed);
            if next_header.created_ms >= cutoff || *next_first == self.segment.first_seq || still_needed {
                break;
            }
            let note = format!(
                "retention removed {} last_seq={} last_hash={}",
                old.file_name().and_then(|n| n.to_str()).unwrap_or_default(),
                next_first - 1,
                hex(&next_header.prev_hash)
            );
            if let Err(error) = self.write_durably(&[&event(Verdict::Info, note)]) {
                return self.begin_outage(error);
            }
            self.out.durable.send_replace(self.next_seq - 1);
            if let Err(e) = self.remove_segment(old) {
                return self.out.observer.warning(&io_error("cannot remove", old, &e));
            }
        }
        if let Err(e) = sync_dir(&dir) {
            self.out.observer.warning(&io_error("cannot fsync", &dir, &e));
        }
    }
}

impl Writer {
    /// Removes a segment in whichever form it is (plain, compressed, or both while a
    /// compression was interrupted).
    fn remove_segment(&self, path: &Path) -> io::Result<()> {
        let _files = self.files.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let plain = path.to_string_lossy().strip_suffix(crate::PACKED_SUFFIX).map(PathBuf::from);
        let plain = plain.unwrap_or_else(|| path.to_path_buf());
        for form in [packed_path(&plain), plain] {
            match std::fs::remove_file(&form) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Lower-case hex of bytes (hashes, keys, signatures).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// The bytes of `N * 2` hex digits ([`hex`]'s output); `None` for anything else.
pub fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != N * 2 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}
