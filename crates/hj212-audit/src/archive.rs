//! `verify` and `export` over the daemon's archive.

use std::io::Write;
use std::path::Path;

use hj212_archive::{Follower, Kind, Record, flags, hex, list_segments};
use hj212_proto::framer::{self, FramerConfig, Scan};
use hj212_proto::time::BeijingTime;
use hj212_proto::{Packet, SegmentText};
use serde_json::json;

use crate::{EX_DATAERR, EX_NOINPUT, Failure};

const PASSWORD_MASK: &str = "***";

pub fn verify(data_dir: &Path) -> Result<(), Failure> {
    let dir = data_dir.join("archive");
    if !dir.is_dir() {
        return Err(Failure { message: format!("no archive at {}", dir.display()), exit_code: EX_NOINPUT });
    }
    match hj212_archive::verify(&dir) {
        Ok(report) => {
            println!(
                "ok: {} records in {} segments, seq {}..{}, head {}{}",
                report.records,
                report.segments,
                report.first_seq,
                report.last_seq,
                hex(&report.head),
                if report.incomplete_tail { " (the newest segment ends in a record being written)" } else { "" }
            );
            Ok(())
        }
        Err(broken) => Err(Failure {
            message: format!(
                "chain broken at seq {} ({} byte {}): {}",
                broken.seq,
                broken.segment.display(),
                broken.offset,
                broken.problem
            ),
            exit_code: EX_DATAERR,
        }),
    }
}

/// Which records to export.
pub struct Filter {
    mn: Option<String>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
}

impl Filter {
    pub fn new(mn: Option<String>, from: Option<&str>, to: Option<&str>) -> Result<Self, String> {
        let time = |flag: &str, value: Option<&str>| {
            value
                .map(|v| BeijingTime::parse(v).map(|t| t.unix_millis()).map_err(|e| format!("--{flag}: {e}")))
                .transpose()
        };
        Ok(Self { mn, from_ms: time("from", from)?, to_ms: time("to", to)? })
    }
}

pub enum ExportError {
    Write(std::io::Error),
    Archive(String),
}

pub fn export(data_dir: &Path, filter: &Filter, show_passwords: bool, out: &mut impl Write) -> Result<(), ExportError> {
    let dir = data_dir.join("archive");
    let segments = list_segments(&dir).map_err(|e| ExportError::Archive(format!("{}: {e}", dir.display())))?;
    let Some((first_seq, _)) = segments.first() else { return Ok(()) };
    let mut follower = Follower::new(&dir, *first_seq);
    loop {
        let records = follower.read(u64::MAX, 1000).map_err(|e| ExportError::Archive(e.to_string()))?;
        if records.is_empty() {
            return Ok(());
        }
        for record in &records {
            if let Some(line) = export_line(record, filter, show_passwords) {
                writeln!(out, "{line}").map_err(ExportError::Write)?;
            }
        }
    }
}

fn export_line(record: &Record, filter: &Filter, show_passwords: bool) -> Option<serde_json::Value> {
    if filter.from_ms.is_some_and(|from| record.time_ms < from) || filter.to_ms.is_some_and(|to| record.time_ms >= to) {
        return None;
    }
    let (mn, cn) = frame_identity(record);
    if filter.mn.as_ref().is_some_and(|want| mn.as_deref() != Some(want)) {
        return None;
    }
    let text = String::from_utf8_lossy(&record.data);
    let frame = if show_passwords || record.kind == Kind::Event { text.into_owned() } else { mask_password(&text) };
    let marks: Vec<&str> = [(flags::FUTURE_TIME, "future_time"), (flags::BACKFILL, "backfill")]
        .iter()
        .filter(|(bit, _)| record.flags & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    Some(json!({
        "seq": record.seq,
        "kind": record.kind.as_str(),
        "verdict": record.verdict.as_str(),
        "marks": marks,
        "time": BeijingTime::from_unix_millis(record.time_ms).to_rfc3339(),
        "time_ms": record.time_ms,
        "peer": record.peer,
        "mn": mn,
        "cn": cn,
        "frame": frame,
        "hash": hex(&record.hash),
    }))
}

fn frame_identity(record: &Record) -> (Option<String>, Option<u16>) {
    if record.kind == Kind::Event {
        return (None, None);
    }
    let Scan::Frame(layout) = framer::scan(&record.data, &FramerConfig::default(), true) else { return (None, None) };
    let text = SegmentText::new(layout.data(&record.data));
    match Packet::parse_text(&text) {
        Ok(packet) => (Some(packet.mn.to_owned()), Some(packet.cn.code())),
        Err(_) => (None, None),
    }
}

/// Replaces every `PW=value` with `PW=***`.
fn mask_password(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("PW=") {
        out.push_str(&rest[..at + 3]);
        out.push_str(PASSWORD_MASK);
        rest = &rest[at + 3..];
        let end = rest.find([';', ',', '&']).unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_passwords() {
        assert_eq!(mask_password("QN=1;PW=123456;MN=M;CP=&&&&"), "QN=1;PW=***;MN=M;CP=&&&&");
        assert_eq!(mask_password("no password"), "no password");
        assert_eq!(mask_password("PW=1;PW=2"), "PW=***;PW=***");
    }
}
