//! Opening the archive: find the newest segment, cut a tail that a crash left (never
//! acknowledged), and refuse to cut anything that other evidence shows was durable.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::checkpoint::{SignedHead, read_latest};
use crate::format::{self, HEADER_LEN, Hash, RecordError, SegmentHeader, VERSION_1, Verdict};
use crate::segment::{SegmentReader, create_segment, is_packed, list_segments};
use crate::writer::{io_error, now_ms};
use crate::{ArchiveError, Settings};

/// What startup found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Sequence number the next record gets.
    pub next_seq: u64,
    /// A torn tail (a write cut short by a crash) that was cut off: the segment, the byte
    /// offset it was cut at, how many bytes, and where the cut bytes were kept.
    pub truncated: Option<(PathBuf, u64, u64, PathBuf)>,
    /// The newest segment was of the first release's format (its header not covered by the
    /// chain); new records go to a segment of the current format.
    pub upgraded_from_v1: bool,
}

/// The newest segment, ready for appending.
pub(crate) struct Newest {
    pub file: File,
    pub first_seq: u64,
    pub len: u64,
    /// What the next record chains from.
    pub chain_prev: Hash,
    /// The hash of the last record (the chain's head).
    pub last_hash: Hash,
    pub next_seq: u64,
    /// The newest checkpoint record in the chain (0: none): records after it are adopted by
    /// this run's first checkpoint.
    pub signed_to: u64,
}

/// Opens the newest segment of the archive in `settings.dir`, creating the archive if empty.
pub(crate) fn open_newest(settings: &Settings) -> Result<(Newest, Recovery), ArchiveError> {
    let dir = &settings.dir;
    std::fs::create_dir_all(dir).map_err(|e| io_error("cannot create", dir, &e))?;
    let mut segments = list_segments(dir).map_err(|e| io_error("cannot list", dir, &e))?;
    let mut recovery = Recovery::default();
    if let Some(aside) = set_aside_unfinished_segment(&mut segments)? {
        recovery.truncated = Some(aside);
    }
    let Some((_, path)) = segments.last() else {
        let header = SegmentHeader::new(1, [0; 32], now_ms());
        let (_, file) = create_segment(dir, &header)?;
        let newest = Newest {
            file,
            first_seq: 1,
            len: HEADER_LEN as u64,
            chain_prev: header.chain_seed(),
            last_hash: header.prev_hash,
            next_seq: 1,
            signed_to: 0,
        };
        recovery.next_seq = 1;
        return Ok((newest, recovery));
    };
    let latest = read_latest(dir);
    // The checkpoint record itself is durable (it is written before the file names it).
    let durable_at_least = settings.durable_at_least.max(latest.as_ref().map_or(0, |c| c.record_seq));
    let watched = latest.as_ref().map(|c| c.record_seq);
    let (walk, torn) = recover_segment(path, durable_at_least, watched)?;
    if torn.is_some() {
        recovery.truncated = torn;
    }
    let Walked { reader, next_seq, watched_hash, newest_checkpoint } = walk;
    if let Some(latest) = &latest {
        check_against_latest(path, next_seq, watched_hash, latest)?;
    }
    let signed_to = match newest_checkpoint {
        Some(seq) => seq,
        None => signed_before(&segments)?,
    };
    recovery.next_seq = next_seq;
    let header = reader.header;
    let (chain_prev, last_hash) = (reader.chain_prev(), reader.last_hash());
    let has_records = next_seq > header.first_seq;
    // A compressed newest segment (its successor was lost) is sealed: continue after it.
    if is_packed(path) || header.version == VERSION_1 {
        recovery.upgraded_from_v1 = header.version == VERSION_1;
        if has_records || is_packed(path) {
            // Continue in a new segment of the current format.
            let header = SegmentHeader::new(next_seq, last_hash, now_ms());
            let (_, file) = create_segment(dir, &header)?;
            let newest = Newest {
                file,
                first_seq: next_seq,
                len: HEADER_LEN as u64,
                chain_prev: header.chain_seed(),
                last_hash,
                next_seq,
                signed_to,
            };
            return Ok((newest, recovery));
        }
        return rewrite_empty_v1(path, header, next_seq, signed_to).map(|newest| (newest, recovery));
    }
    let file = OpenOptions::new().append(true).open(path).map_err(|e| io_error("cannot open", path, &e))?;
    let len = file.metadata().map_err(|e| io_error("cannot stat", path, &e))?.len();
    let newest = Newest { file, first_seq: header.first_seq, len, chain_prev, last_hash, next_seq, signed_to };
    Ok((newest, recovery))
}

/// The newest checkpoint record in the segments before the newest, newest first (the newest
/// had none: a rotation shortly before a crash). First-release segments hold none, so the walk
/// stops there; with none at all, everything present is unsigned.
fn signed_before(segments: &[(u64, PathBuf)]) -> Result<u64, ArchiveError> {
    let older = &segments[..segments.len().saturating_sub(1)];
    for (_, path) in older.iter().rev() {
        let mut reader = SegmentReader::open(path).map_err(|e| io_error("cannot read", path, &e))?;
        if reader.header.version == VERSION_1 {
            break;
        }
        let mut newest = None;
        while let Ok(Some(record)) = reader.next_record() {
            if record.verdict == Verdict::Checkpoint {
                newest = Some(record.seq);
            }
        }
        if let Some(seq) = newest {
            return Ok(seq);
        }
    }
    Ok(segments.first().map_or(0, |(first_seq, _)| first_seq - 1))
}

/// An empty first-release segment gets a current header in place (it holds no record).
fn rewrite_empty_v1(path: &Path, old: SegmentHeader, next_seq: u64, signed_to: u64) -> Result<Newest, ArchiveError> {
    let header = SegmentHeader::new(old.first_seq, old.prev_hash, now_ms());
    let mut file = OpenOptions::new().write(true).open(path).map_err(|e| io_error("cannot open", path, &e))?;
    file.set_len(0).map_err(|e| io_error("cannot truncate", path, &e))?;
    file.seek(SeekFrom::Start(0)).map_err(|e| io_error("cannot seek", path, &e))?;
    file.write_all(&header.encode()).map_err(|e| io_error("cannot write", path, &e))?;
    file.sync_all().map_err(|e| io_error("cannot fsync", path, &e))?;
    let file = OpenOptions::new().append(true).open(path).map_err(|e| io_error("cannot open", path, &e))?;
    Ok(Newest {
        file,
        first_seq: header.first_seq,
        len: HEADER_LEN as u64,
        chain_prev: header.chain_seed(),
        last_hash: header.prev_hash,
        next_seq,
        signed_to,
    })
}

/// `checkpoint.latest` names the newest checkpoint's record: the archive must still hold it
/// (it is durable before the file names it), and where the newest segment holds it, with the
/// same hash (else the checkpoint was replaced, say by a forged record).
fn check_against_latest(
    path: &Path,
    next_seq: u64,
    watched_hash: Option<Hash>,
    latest: &SignedHead,
) -> Result<(), ArchiveError> {
    let corrupt = |problem: String| ArchiveError::Corrupt { segment: path.display().to_string(), offset: 0, problem };
    if latest.record_seq >= next_seq {
        return Err(corrupt(format!(
            "the archive ends at seq {} but {} names checkpoint record {}: records were removed or cut",
            next_seq - 1,
            crate::checkpoint::LATEST_FILE,
            latest.record_seq
        )));
    }
    if watched_hash.is_some_and(|hash| hash != latest.record_hash) {
        return Err(corrupt(format!(
            "record {} is not the checkpoint {} names: the archive was rewritten",
            latest.record_seq,
            crate::checkpoint::LATEST_FILE
        )));
    }
    Ok(())
}

type TornTail = Option<(PathBuf, u64, u64, PathBuf)>;

/// The newest segment, walked to its end.
struct Walked {
    reader: SegmentReader,
    next_seq: u64,
    /// The hash of the record asked for, if this segment holds it.
    watched_hash: Option<Hash>,
    /// The newest checkpoint record in this segment.
    newest_checkpoint: Option<u64>,
}

/// A crash while a new segment was being created can leave it without a complete header
/// (cut short, or its blocks allocated and still zero), and so without records. It is moved
/// aside and the previous segment continues.
fn set_aside_unfinished_segment(segments: &mut Vec<(u64, PathBuf)>) -> Result<TornTail, ArchiveError> {
    let Some((_, path)) = segments.last().filter(|(_, path)| !is_packed(path)) else { return Ok(None) };
    let bytes = std::fs::read(path).map_err(|e| io_error("cannot read", path, &e))?;
    if bytes.len() > HEADER_LEN || SegmentHeader::decode(&bytes).is_some() {
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
/// It is damage, not a crash, and nothing is cut, when the bad record is not cut short, when
/// a whole record follows it, or when other evidence (a checkpoint, a follower's position)
/// shows it was durable: the archive then refuses to open.
fn recover_segment(path: &Path, durable_at_least: u64, watch: Option<u64>) -> Result<(Walked, TornTail), ArchiveError> {
    let mut reader = SegmentReader::open(path).map_err(|e| io_error("cannot read", path, &e))?;
    let mut next_seq = reader.header.first_seq;
    let mut watched_hash = None;
    let mut newest_checkpoint = None;
    loop {
        let bad = match reader.next_record() {
            Ok(Some(record)) => {
                next_seq = record.seq + 1;
                if Some(record.seq) == watch {
                    watched_hash = Some(record.hash);
                }
                if record.verdict == Verdict::Checkpoint {
                    newest_checkpoint = Some(record.seq);
                }
                continue;
            }
            Ok(None) => return Ok((Walked { reader, next_seq, watched_hash, newest_checkpoint }, None)),
            Err(bad) if is_packed(path) => {
                let (offset, problem) = (bad.offset as u64, bad.error.to_string());
                return Err(ArchiveError::Corrupt { segment: path.display().to_string(), offset, problem });
            }
            Err(bad) => bad,
        };
        let bytes = reader.plain_bytes();
        let tail = &bytes[bad.offset..];
        let crash_like = matches!(bad.error, RecordError::Truncated { .. }) || tail.iter().all(|b| *b == 0);
        let problem = if !crash_like {
            Some(bad.error.to_string())
        } else if let Some((at, seq)) = format::find_record_after(bytes, bad.offset, next_seq) {
            Some(format!("{}, yet a whole record (seq {seq}) follows at byte {at}: damage, not a crash", bad.error))
        } else if durable_at_least >= next_seq {
            Some(format!(
                "{}, yet records up to seq {durable_at_least} were durable (a checkpoint or a follower has them)",
                bad.error
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(ArchiveError::Corrupt {
                segment: path.display().to_string(),
                offset: bad.offset as u64,
                problem,
            });
        }
        let cut_at = bad.offset as u64;
        let cut_len = tail.len() as u64;
        let kept = path.with_extension(format!("hjar.torn-{cut_at}"));
        std::fs::write(&kept, tail).map_err(|e| io_error("cannot write", &kept, &e))?;
        let file = OpenOptions::new().write(true).open(path).map_err(|e| io_error("cannot open", path, &e))?;
        file.set_len(cut_at).map_err(|e| io_error("cannot truncate", path, &e))?;
        file.sync_all().map_err(|e| io_error("cannot fsync", path, &e))?;
        let torn = Some((path.to_path_buf(), cut_at, cut_len, kept));
        return Ok((Walked { reader, next_seq, watched_hash, newest_checkpoint }, torn));
    }
}
