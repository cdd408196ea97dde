//! Compresses sealed segments on a thread of their own, at low priority, so the append path
//! and its fsyncs are unchanged. A segment is replaced only once its compressed form is
//! durable and reads back to the same chain: a crash at any step leaves one complete form
//! (a leftover temporary file is removed at the next start).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::packed::{self, Packed};
use crate::segment::{is_packed, list_segments, packed_path, read_into};
use crate::writer::{io_error, sync_dir};
use crate::{ArchiveError, Observer};

const TEMP_SUFFIX: &str = ".tmp";

/// How long the read buffer (a segment's size) is kept without a segment to compress.
const KEEP_BUFFER: Duration = Duration::from_secs(60);

/// The compressor's nice value: acknowledging frames and the followers come first.
const NICE: i32 = 19;

/// Held while a segment file is replaced or removed: compression and retention never act on
/// the same segment at once.
pub(crate) type FilesLock = Arc<Mutex<()>>;

/// What one compression did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compressed {
    pub plain_bytes: u64,
    pub packed_bytes: u64,
    pub took: Duration,
}

/// Starts the compressor; each message on `woken`'s sender (one at start, one per rotation)
/// makes it compress every sealed plain segment. Once the sender is gone it stops after the
/// segment in hand (join the handle to wait for that).
pub(crate) fn start(
    dir: PathBuf,
    level: i32,
    lock: FilesLock,
    observer: Arc<dyn Observer>,
    woken: Receiver<()>,
) -> Result<JoinHandle<()>, ArchiveError> {
    std::thread::Builder::new()
        .name("archive-compress".into())
        .spawn(move || {
            lower_priority();
            remove_leftovers(&dir, observer.as_ref());
            run(&dir, level, &lock, observer.as_ref(), &woken);
        })
        .map_err(|e| ArchiveError::Io { message: format!("cannot start the compressor thread: {e}").into() })
}

fn lower_priority() {
    // Linux keeps the nice value per thread: this one only. Refused, it runs as it is.
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), NICE);
}

fn run(dir: &Path, level: i32, lock: &FilesLock, observer: &dyn Observer, woken: &Receiver<()>) {
    // A sealed segment is read into this buffer, kept for its capacity while segments keep
    // coming (a fresh one cost the thread about as much in page faults as compressing) and
    // given back when none came for a while.
    let mut plain = Vec::new();
    loop {
        match woken.recv_timeout(KEEP_BUFFER) {
            Ok(()) => {}
            Err(RecvTimeoutError::Timeout) => {
                plain = Vec::new();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
        // Passes until one went by without a rotation (whose segment it may not have listed).
        loop {
            while woken.try_recv().is_ok() {}
            let segments = match list_segments(dir) {
                Ok(segments) => segments,
                Err(e) => {
                    observer.warning(&io_error("cannot list", dir, &e));
                    break;
                }
            };
            let mut rotated = false;
            // The newest segment is the one being appended to.
            let sealed = &segments[..segments.len().saturating_sub(1)];
            for (_, path) in sealed.iter().filter(|(_, path)| !is_packed(path)) {
                match woken.try_recv() {
                    Err(TryRecvError::Disconnected) => return,
                    Ok(()) => rotated = true,
                    Err(TryRecvError::Empty) => {}
                }
                match compress(path, level, lock, &mut plain) {
                    Ok(Some(done)) => observer.compressed(path, done),
                    Ok(None) => {}
                    Err(error) => observer.warning(&error),
                }
            }
            if !rotated {
                break;
            }
        }
    }
}

/// Temporary files of a compression (or an unpacking) a crash interrupted.
fn remove_leftovers(dir: &Path, observer: &dyn Observer) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with("seg-")
            && name.ends_with(TEMP_SUFFIX)
            && let Err(e) = std::fs::remove_file(&path)
        {
            observer.warning(&io_error("cannot remove", &path, &e));
        }
    }
}

/// Compresses one sealed segment and removes its plain form. `None` when there was nothing to
/// do (retention removed it meanwhile).
fn compress(
    plain: &Path,
    level: i32,
    lock: &FilesLock,
    bytes: &mut Vec<u8>,
) -> Result<Option<Compressed>, ArchiveError> {
    let started = Instant::now();
    match read_into(plain, bytes) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("cannot read", plain, &e)),
    }
    let packed_bytes = packed::pack(bytes, level).map_err(|e| io_error("cannot compress", plain, &e))?;
    let packed_bytes = check_reads_back(plain, bytes, packed_bytes)?;
    let target = packed_path(plain);
    let mut temp = target.clone().into_os_string();
    temp.push(TEMP_SUFFIX);
    let temp = PathBuf::from(temp);
    write_durably(&temp, &packed_bytes)?;
    let dir = plain.parent().unwrap_or(Path::new("."));
    let _files = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !plain.exists() {
        let _ = std::fs::remove_file(&temp);
        return Ok(None);
    }
    std::fs::rename(&temp, &target).map_err(|e| io_error("cannot rename", &temp, &e))?;
    sync_dir(dir).map_err(|e| io_error("cannot fsync", dir, &e))?;
    std::fs::remove_file(plain).map_err(|e| io_error("cannot remove", plain, &e))?;
    sync_dir(dir).map_err(|e| io_error("cannot fsync", dir, &e))?;
    Ok(Some(Compressed {
        plain_bytes: bytes.len() as u64,
        packed_bytes: packed_bytes.len() as u64,
        took: started.elapsed(),
    }))
}

/// The compressed form must read back whole: every block decompresses to the plain segment's
/// records, and the blocks cover it to its last byte (`pack` checked the plain chain).
/// Returns the compressed bytes.
fn check_reads_back(plain: &Path, plain_bytes: &[u8], packed_bytes: Vec<u8>) -> Result<Vec<u8>, ArchiveError> {
    let mismatch = |what: String| ArchiveError::Io {
        message: format!("the compressed form of {} does not read back ({what}); kept plain", plain.display()).into(),
    };
    let packed = Packed::parse(packed_bytes).map_err(|e| mismatch(e.to_string()))?;
    if let Some((_, problem)) = &packed.damage {
        return Err(mismatch(problem.clone()));
    }
    packed.matches_plain(plain_bytes).map_err(|e| mismatch(e.to_string()))?;
    let end = packed.blocks.last().map_or(crate::format::HEADER_LEN as u64, packed::Block::plain_end);
    if end != plain_bytes.len() as u64 {
        return Err(mismatch(format!("it covers {end} of {} bytes", plain_bytes.len())));
    }
    Ok(packed.into_bytes())
}

/// Turns every compressed segment in `dir` back into its plain form, byte for byte (for a
/// release that reads only plain segments); each is checked whole before it replaces the
/// compressed file. Only with no writer running on `dir`. Returns how many were unpacked.
///
/// # Errors
/// I/O errors, or [`ArchiveError::Corrupt`] for a segment that does not verify (it and the
/// ones after it are left compressed).
pub fn unpack_all(dir: &Path) -> Result<usize, ArchiveError> {
    let segments = list_segments(dir).map_err(|e| io_error("cannot list", dir, &e))?;
    let mut unpacked = 0;
    for (_, path) in segments.iter().filter(|(_, path)| is_packed(path)) {
        let bytes = std::fs::read(path).map_err(|e| io_error("cannot read", path, &e))?;
        let corrupt =
            |problem: String| ArchiveError::Corrupt { segment: path.display().to_string(), offset: 0, problem };
        let packed = Packed::parse(bytes).map_err(|e| corrupt(e.to_string()))?;
        let plain = packed.unpack().map_err(|e| corrupt(e.to_string()))?;
        let target = PathBuf::from(path.to_string_lossy().strip_suffix(packed::PACKED_SUFFIX).unwrap_or_default());
        let mut temp = target.clone().into_os_string();
        temp.push(TEMP_SUFFIX);
        let temp = PathBuf::from(temp);
        write_durably(&temp, &plain)?;
        std::fs::rename(&temp, &target).map_err(|e| io_error("cannot rename", &temp, &e))?;
        sync_dir(dir).map_err(|e| io_error("cannot fsync", dir, &e))?;
        std::fs::remove_file(path).map_err(|e| io_error("cannot remove", path, &e))?;
        sync_dir(dir).map_err(|e| io_error("cannot fsync", dir, &e))?;
        unpacked += 1;
    }
    Ok(unpacked)
}

fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), ArchiveError> {
    let written = std::fs::File::create(path).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    written.map_err(|e| {
        let _ = std::fs::remove_file(path);
        io_error("cannot write", path, &e)
    })
}
