//! Walks the whole chain and names the first record that breaks it; checks every signed
//! checkpoint and, when asked, that the archive still holds a head published elsewhere.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;

use crate::checkpoint::Checkpoint;
use crate::format::{self, Hash, Kind, Record, RecordError, Verdict};
use crate::segment::{SegmentReader, list_segments};
use crate::writer::hex;

/// What to check beyond the chain itself.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Checkpoints must be signed by one of these keys; empty: only checked to be
    /// consistent with the key they name (which anyone could have made).
    pub trusted_keys: Vec<VerifyingKey>,
    /// A record (seq, hash) published elsewhere (MQTT, the API, a report) that the archive
    /// must still hold, unchanged.
    pub expect_head: Option<(u64, Hash)>,
}

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub segments: usize,
    /// Of which compressed.
    pub compressed_segments: usize,
    pub records: u64,
    /// Bytes the records take in plain form (what was checked), and on disk.
    pub plain_bytes: u64,
    pub file_bytes: u64,
    /// First and last sequence numbers present (`first > last` when empty).
    pub first_seq: u64,
    pub last_seq: u64,
    /// The hash of the last record: publish it elsewhere to anchor the chain.
    pub head: Hash,
    /// The newest segment ends in an incomplete record (a write in progress or a crash
    /// not yet recovered); nothing before it is affected.
    pub incomplete_tail: bool,
    /// Signed checkpoints found, and the newest.
    pub checkpoints: u64,
    pub last_checkpoint: Option<Checkpoint>,
    /// Records after the newest checkpoint (not yet signed: the live tail).
    pub unsigned_tail: u64,
    /// Records a run found after the previous run's last checkpoint and signed without
    /// having written them (a crash's tail, or records appended while no daemon ran).
    pub adopted: Vec<(u64, u64)>,
}

/// Where and why the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {problem}", segment.display())]
pub struct Break {
    pub segment: PathBuf,
    /// Byte offset of the record (0 for segment-level problems).
    pub offset: usize,
    /// The sequence number the broken record should have had.
    pub seq: u64,
    pub problem: String,
}

/// Verifies every segment in `dir` (the chain only; see [`verify_with`]).
///
/// # Errors
/// The first [`Break`]: an altered, removed or reordered record or segment.
pub fn verify(dir: &Path) -> Result<Report, Break> {
    verify_with(dir, &VerifyOptions::default())
}

/// Verifies every segment in `dir`, every checkpoint, and the expected head.
///
/// # Errors
/// The first [`Break`]: an altered, removed or reordered record or segment, a checkpoint that
/// does not verify, or an expected head the archive no longer holds.
pub fn verify_with(dir: &Path, options: &VerifyOptions) -> Result<Report, Break> {
    walk_with(dir, options, |_| ControlFlow::Continue(()))
}

/// Verifies like [`verify`], handing every record that verifies to `visit` in order, so a
/// reader (export, a rebuild) gets exactly the records before a break, then the break.
/// `visit` may stop the walk; the report then covers the records visited.
///
/// # Errors
/// The first [`Break`], after every record before it was visited.
pub fn walk(dir: &Path, visit: impl FnMut(Record) -> ControlFlow<()>) -> Result<Report, Break> {
    walk_with(dir, &VerifyOptions::default(), visit)
}

/// [`walk`] with the checks of [`verify_with`].
///
/// # Errors
/// As [`verify_with`], after every record before the break was visited.
pub fn walk_with(
    dir: &Path,
    options: &VerifyOptions,
    mut visit: impl FnMut(Record) -> ControlFlow<()>,
) -> Result<Report, Break> {
    let io_break = |segment: &Path, e: std::io::Error| Break {
        segment: segment.to_path_buf(),
        offset: 0,
        seq: 0,
        problem: e.to_string(),
    };
    let segments = list_segments(dir).map_err(|e| io_break(dir, e))?;
    let mut state = Walk::new(options, dir);
    for (i, (name_seq, path)) in segments.iter().enumerate() {
        let mut reader = SegmentReader::open(path).map_err(|e| io_break(path, e))?;
        let header = reader.header;
        let fail = |offset, seq, problem: String| Break { segment: path.clone(), offset, seq, problem };
        if header.first_seq != *name_seq {
            return Err(fail(
                0,
                *name_seq,
                format!("header says first seq {} but the name says {name_seq}", header.first_seq),
            ));
        }
        if i == 0 {
            state.seq = header.first_seq - 1;
            state.head = header.prev_hash;
            state.first_present = header.first_seq;
        } else if header.first_seq != state.seq + 1 || header.prev_hash != state.head {
            return Err(fail(
                0,
                state.seq + 1,
                format!(
                    "segment does not continue the chain: expected seq {} after hash {}, found seq {} after {} (a segment was removed or altered)",
                    state.seq + 1,
                    hex(&state.head),
                    header.first_seq,
                    hex(&header.prev_hash)
                ),
            ));
        }
        let last = i + 1 == segments.len();
        let flow =
            state.walk(&mut reader, last, &mut visit).map_err(|(offset, seq, problem)| fail(offset, seq, problem))?;
        state.plain_bytes += reader.offset() as u64;
        state.file_bytes += path.metadata().map_or(0, |m| m.len());
        state.compressed_segments += usize::from(crate::segment::is_packed(path));
        if flow.is_break() {
            return Ok(state.report(&segments[..=i]));
        }
    }
    state.check_start(&segments)?;
    let first_seq = segments.first().map_or(1, |(s, _)| *s);
    state.check_pins(first_seq, dir)?;
    state.check_nothing_after_stop(&segments)?;
    Ok(state.report(&segments))
}

type WalkError = (usize, u64, String);

struct Walk<'a> {
    options: &'a VerifyOptions,
    seq: u64,
    head: Hash,
    records: u64,
    /// (last_seq, last_hash) of segments removed by retention, as recorded in the chain.
    retention: Vec<(u64, String)>,
    incomplete_tail: bool,
    checkpoints: u64,
    /// The newest checkpoint and the sequence number of its own record.
    last_checkpoint: Option<(u64, Checkpoint)>,
    adopted: Vec<(u64, u64)>,
    /// Records that must be in the archive with a given hash, what names each, and the hash
    /// found: the expected head, and the checkpoint record `checkpoint.latest` names.
    pins: Vec<Pin>,
    /// The first record present (segments before it were removed by retention).
    first_present: u64,
    plain_bytes: u64,
    file_bytes: u64,
    compressed_segments: usize,
}

struct Pin {
    seq: u64,
    hash: Hash,
    named_by: &'static str,
    found: Option<Hash>,
}

impl<'a> Walk<'a> {
    fn new(options: &'a VerifyOptions, dir: &Path) -> Self {
        let mut pins = Vec::new();
        if let Some((seq, hash)) = options.expect_head {
            pins.push(Pin { seq, hash, named_by: "the expected head", found: None });
        }
        if let Some(latest) = crate::checkpoint::read_latest(dir) {
            let named_by = "checkpoint.latest";
            pins.push(Pin { seq: latest.record_seq, hash: latest.record_hash, named_by, found: None });
        }
        Self {
            options,
            seq: 0,
            head: [0; 32],
            records: 0,
            retention: Vec::new(),
            incomplete_tail: false,
            checkpoints: 0,
            last_checkpoint: None,
            adopted: Vec::new(),
            pins,
            first_present: 1,
            plain_bytes: 0,
            file_bytes: 0,
            compressed_segments: 0,
        }
    }

    fn report(self, segments: &[(u64, PathBuf)]) -> Report {
        let first_seq = segments.first().map_or(1, |(s, _)| *s);
        Report {
            segments: segments.len(),
            compressed_segments: self.compressed_segments,
            records: self.records,
            plain_bytes: self.plain_bytes,
            file_bytes: self.file_bytes,
            first_seq,
            last_seq: self.seq,
            head: self.head,
            incomplete_tail: self.incomplete_tail,
            checkpoints: self.checkpoints,
            unsigned_tail: self.seq - self.last_checkpoint.as_ref().map_or(first_seq - 1, |(seq, _)| *seq),
            last_checkpoint: self.last_checkpoint.map(|(_, checkpoint)| checkpoint),
            adopted: self.adopted,
        }
    }

    fn walk(
        &mut self,
        reader: &mut SegmentReader,
        last: bool,
        visit: &mut impl FnMut(Record) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, WalkError> {
        loop {
            match reader.next_record() {
                Ok(None) => return Ok(ControlFlow::Continue(())),
                Ok(Some(record)) => {
                    if record.seq != self.seq + 1 {
                        return Err((
                            reader.offset(),
                            self.seq + 1,
                            format!("record has seq {}, expected {}", record.seq, self.seq + 1),
                        ));
                    }
                    if record.kind == Kind::Event {
                        self.note_retention(&record.data);
                    }
                    if record.verdict == Verdict::Checkpoint {
                        self.check_checkpoint(&record).map_err(|problem| (reader.offset(), record.seq, problem))?;
                    }
                    for pin in self.pins.iter_mut().filter(|p| p.seq == record.seq) {
                        pin.found = Some(record.hash);
                    }
                    self.seq = record.seq;
                    self.head = record.hash;
                    self.records += 1;
                    if visit(record).is_break() {
                        return Ok(ControlFlow::Break(()));
                    }
                }
                Err(bad) if last && matches!(bad.error, RecordError::Truncated { .. }) => {
                    // A torn write leaves nothing whole after it; a whole record after it
                    // means the bytes were damaged (a flipped length hides what follows).
                    if let Some((at, seq)) = format::find_record_after(reader.plain_bytes(), bad.offset, self.seq + 1) {
                        return Err((
                            bad.offset,
                            self.seq + 1,
                            format!(
                                "record seq {} {}, yet a whole record (seq {seq}) follows at byte {at}: the archive is damaged",
                                self.seq + 1,
                                bad.error
                            ),
                        ));
                    }
                    self.incomplete_tail = true;
                    return Ok(ControlFlow::Continue(()));
                }
                Err(bad) => {
                    return Err((bad.offset, self.seq + 1, format!("record seq {} {}", self.seq + 1, bad.error)));
                }
            }
        }
    }

    /// A checkpoint signs the record just before it, with a trusted key (or at least with
    /// the key it names).
    fn check_checkpoint(&mut self, record: &Record) -> Result<(), String> {
        let text = String::from_utf8_lossy(&record.data);
        let checkpoint = Checkpoint::parse(&text).map_err(|e| format!("checkpoint record {}: {e}", record.seq))?;
        if checkpoint.seq + 1 != record.seq || checkpoint.head != self.head {
            return Err(format!(
                "checkpoint record {} signs seq {} with hash {}, but the record before it is seq {} with hash {}",
                record.seq,
                checkpoint.seq,
                hex(&checkpoint.head),
                self.seq,
                hex(&self.head)
            ));
        }
        let trusted = &self.options.trusted_keys;
        let valid = if trusted.is_empty() {
            checkpoint.self_consistent()
        } else {
            trusted.iter().any(|key| checkpoint.signed_by(key))
        };
        if !valid {
            let whose = if trusted.is_empty() { "the key it names" } else { "a trusted public key" };
            return Err(format!(
                "checkpoint record {} is not signed by {whose} (it names key {}): the chain up to it was rewritten or forged",
                record.seq,
                checkpoint.key_fingerprint()
            ));
        }
        if let Some((from, to)) = checkpoint.adopted {
            self.check_adoption(from, to, record.seq)?;
            self.adopted.push((from, to));
        }

        self.checkpoints += 1;
        self.last_checkpoint = Some((record.seq, checkpoint));
        Ok(())
    }

    /// Adopted records start right after the previous checkpoint's record (or, with none in
    /// sight, no later than the first record present) and end before the adopting checkpoint;
    /// after the checkpoint written at a clean stop there is nothing to adopt.
    fn check_adoption(&self, from: u64, to: u64, record_seq: u64) -> Result<(), String> {
        let expected_from = self.last_checkpoint.as_ref().map(|(seq, _)| seq + 1);
        if let Some((_, previous)) = self.last_checkpoint.as_ref().filter(|(_, c)| c.last) {
            return Err(format!(
                "records {from}-{to} follow the checkpoint written when the daemon stopped (covering seq {}) and were adopted at the next start: hj212d did not write them",
                previous.seq
            ));
        }
        let starts_right = expected_from.map_or(from <= self.first_present, |expected| from == expected);
        if !starts_right || to < from || to >= record_seq {
            return Err(format!(
                "checkpoint record {record_seq} adopts records {from}-{to}, which do not follow the previous checkpoint{}",
                expected_from.map(|e| format!(" (expected from {e})")).unwrap_or_default()
            ));
        }
        Ok(())
    }

    fn note_retention(&mut self, data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let Some(rest) = text.strip_prefix("retention removed ") else {
            return;
        };
        let field = |name: &str| rest.split(' ').find_map(|kv| kv.strip_prefix(name));
        if let (Some(seq), Some(hash)) = (field("last_seq=").and_then(|s| s.parse().ok()), field("last_hash=")) {
            self.retention.push((seq, hash.to_owned()));
        }
    }

    /// A chain that does not start at seq 1 must start where a retention record says.
    fn check_start(&self, segments: &[(u64, PathBuf)]) -> Result<(), Break> {
        let Some((first_seq, path)) = segments.first() else {
            return Ok(());
        };
        if *first_seq == 1 {
            return Ok(());
        }
        let header = SegmentReader::open(path).map(|r| r.header).ok();
        let explained = header.is_some_and(|h| {
            self.retention.iter().any(|(seq, hash)| *seq + 1 == h.first_seq && *hash == hex(&h.prev_hash))
        });
        if explained {
            Ok(())
        } else {
            Err(Break {
                segment: path.clone(),
                offset: 0,
                seq: 1,
                problem: format!(
                    "the chain starts at seq {first_seq} and no retention record explains the earlier records (segments were removed)"
                ),
            })
        }
    }

    /// The checkpoint written as the daemon stopped is the end, until a start adopts more.
    fn check_nothing_after_stop(&self, segments: &[(u64, PathBuf)]) -> Result<(), Break> {
        let Some((record_seq, checkpoint)) = &self.last_checkpoint else { return Ok(()) };
        if !checkpoint.last || *record_seq == self.seq {
            return Ok(());
        }
        Err(Break {
            segment: segments.last().map(|(_, path)| path.clone()).unwrap_or_default(),
            offset: 0,
            seq: record_seq + 1,
            problem: format!(
                "records {}-{} follow the checkpoint written when the daemon stopped: hj212d did not write them",
                record_seq + 1,
                self.seq
            ),
        })
    }

    /// The head published elsewhere, and the checkpoint record `checkpoint.latest` names, must
    /// be in the archive, unchanged.
    fn check_pins(&self, first_seq: u64, dir: &Path) -> Result<(), Break> {
        for pin in &self.pins {
            let seq = pin.seq;
            let fail = |problem: String| Err(Break { segment: dir.to_path_buf(), offset: 0, seq, problem });
            match pin.found {
                Some(found) if found == pin.hash => {}
                Some(found) => {
                    return fail(format!(
                        "record {seq} has hash {}, not the {} that {} names: the archive was rewritten",
                        hex(&found),
                        hex(&pin.hash),
                        pin.named_by
                    ));
                }
                None if seq < first_seq => {
                    return fail(format!(
                        "record {seq}, which {} names, is no longer in the archive (it starts at seq {first_seq}); cannot check it",
                        pin.named_by
                    ));
                }
                None => {
                    return fail(format!(
                        "the archive ends at seq {}, before record {seq}, which {} names: records were removed or cut",
                        self.seq, pin.named_by
                    ));
                }
            }
        }
        Ok(())
    }
}
