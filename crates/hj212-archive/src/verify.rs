//! Walks the whole chain and names the first record that breaks it.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use crate::format::{Hash, Kind, Record, RecordError};
use crate::segment::{SegmentReader, list_segments};
use crate::writer::hex;

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub segments: usize,
    pub records: u64,
    /// First and last sequence numbers present (`first > last` when empty).
    pub first_seq: u64,
    pub last_seq: u64,
    /// The hash of the last record: publish it elsewhere to anchor the chain.
    pub head: Hash,
    /// The newest segment ends in an incomplete record (a write in progress or a crash
    /// not yet recovered); nothing before it is affected.
    pub incomplete_tail: bool,
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

/// Verifies every segment in `dir`.
///
/// # Errors
/// The first [`Break`]: an altered, removed or reordered record or segment.
pub fn verify(dir: &Path) -> Result<Report, Break> {
    walk(dir, |_| ControlFlow::Continue(()))
}

/// Verifies like [`verify`], handing every record that verifies to `visit` in order, so a
/// reader (export, a rebuild) gets exactly the records before a break, then the break.
/// `visit` may stop the walk; the report then covers the records visited.
///
/// # Errors
/// The first [`Break`], after every record before it was visited.
pub fn walk(dir: &Path, mut visit: impl FnMut(Record) -> ControlFlow<()>) -> Result<Report, Break> {
    let io_break = |segment: &Path, e: std::io::Error| Break {
        segment: segment.to_path_buf(),
        offset: 0,
        seq: 0,
        problem: e.to_string(),
    };
    let segments = list_segments(dir).map_err(|e| io_break(dir, e))?;
    let mut state = Walk { seq: 0, head: [0; 32], records: 0, retention: Vec::new(), incomplete_tail: false };
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
            state.start(&header);
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
        if flow.is_break() {
            return Ok(state.report(&segments[..=i]));
        }
    }
    state.check_start(&segments)?;
    Ok(state.report(&segments))
}

struct Walk {
    seq: u64,
    head: Hash,
    records: u64,
    /// (last_seq, last_hash) of segments removed by retention, as recorded in the chain.
    retention: Vec<(u64, String)>,
    incomplete_tail: bool,
}

impl Walk {
    fn report(&self, segments: &[(u64, PathBuf)]) -> Report {
        Report {
            segments: segments.len(),
            records: self.records,
            first_seq: segments.first().map_or(1, |(s, _)| *s),
            last_seq: self.seq,
            head: self.head,
            incomplete_tail: self.incomplete_tail,
        }
    }

    fn start(&mut self, header: &crate::format::SegmentHeader) {
        self.seq = header.first_seq - 1;
        self.head = header.prev_hash;
    }

    fn walk(
        &mut self,
        reader: &mut SegmentReader,
        last: bool,
        visit: &mut impl FnMut(Record) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, (usize, u64, String)> {
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
                    self.seq = record.seq;
                    self.head = record.hash;
                    self.records += 1;
                    if visit(record).is_break() {
                        return Ok(ControlFlow::Break(()));
                    }
                }
                Err(bad) if last && matches!(bad.error, RecordError::Truncated { .. }) => {
                    self.incomplete_tail = true;
                    return Ok(ControlFlow::Continue(()));
                }
                Err(bad) => {
                    return Err((bad.offset, self.seq + 1, format!("record seq {} {}", self.seq + 1, bad.error)));
                }
            }
        }
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
}
