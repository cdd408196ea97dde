//! `verify` and `export` over the daemon's archive.

use std::io::Write;
use std::ops::ControlFlow;

use hj212_archive::checkpoint::{load_public_key, parse_head};
use hj212_archive::{Record, VerifyOptions, flags, hex};
use hj212_config::DataDir;
use hj212_proto::time::BeijingTime;
use serde_json::json;

use crate::mask::mask_passwords;
use crate::{EX_DATAERR, EX_NOINPUT, EX_USAGE, Failure};

/// What `verify` checks beyond the chain: checkpoints against trusted keys, a published head.
pub struct VerifyArgs {
    pub public_keys: Vec<std::path::PathBuf>,
    pub expect_head: Option<String>,
}

pub fn verify(data_dir: &DataDir, args: &VerifyArgs) -> Result<(), Failure> {
    let dir = data_dir.archive();
    if !dir.is_dir() {
        return Err(Failure { message: format!("no archive at {}", dir.display()), exit_code: EX_NOINPUT });
    }
    let mut options = VerifyOptions::default();
    for path in &args.public_keys {
        let key = load_public_key(path).map_err(|e| Failure { message: e.to_string(), exit_code: EX_NOINPUT })?;
        options.trusted_keys.push(key);
    }
    if let Some(text) = &args.expect_head {
        let head =
            parse_head(text).map_err(|e| Failure { message: format!("--expect-head: {e}"), exit_code: EX_USAGE })?;
        options.expect_head = Some(head);
    }
    let started = std::time::Instant::now();
    match hj212_archive::verify_with(&dir, &options) {
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
            print_size(&report, started.elapsed());
            print_signatures(&report, !options.trusted_keys.is_empty());
            if let Some((seq, _)) = options.expect_head {
                println!("expected head: record {seq} is present with the expected hash");
            }
            Ok(())
        }
        Err(broken) => Err(Failure { message: describe(&broken), exit_code: EX_DATAERR }),
    }
}

/// How much was checked, what it takes on disk, and how fast.
fn print_size(report: &hj212_archive::Report, took: std::time::Duration) {
    #[expect(clippy::cast_precision_loss, reason = "byte counts far below 2^52")]
    let (plain, file) = (report.plain_bytes as f64 / 1e6, report.file_bytes as f64 / 1e6);
    println!(
        "size: {plain:.1} MB of records, {file:.1} MB on disk ({} of {} segments compressed); checked in {:.2} s ({:.0} MB/s)",
        report.compressed_segments,
        report.segments,
        took.as_secs_f64(),
        plain / took.as_secs_f64().max(1e-9)
    );
}

/// What the checkpoints cover, and what they do not.
fn print_signatures(report: &hj212_archive::Report, trusted: bool) {
    let Some(last) = &report.last_checkpoint else {
        println!("checkpoints: none (nothing in this archive is signed)");
        return;
    };
    let whose = if trusted {
        "a trusted key"
    } else {
        "the key they name (not checked against a trusted key: pass --public-key)"
    };
    println!(
        "checkpoints: {} signed by {whose}; the newest covers seq {} (signed {}, key {}{})",
        report.checkpoints,
        last.seq,
        BeijingTime::from_unix_millis(last.time_ms).to_rfc3339(),
        last.key_fingerprint(),
        if last.last { ", written as the daemon stopped" } else { "" }
    );
    println!("unsigned tail: {} records after the newest checkpoint", report.unsigned_tail);
    if !report.adopted.is_empty() {
        let ranges: Vec<String> = report.adopted.iter().map(|(from, to)| format!("{from}-{to}")).collect();
        println!(
            "adopted at restarts: {} (records found after a run's last checkpoint, a crash's tail, signed by the next run)",
            ranges.join(", ")
        );
    }
}

/// Which records to export.
pub struct Filter {
    mn: Option<String>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
}

impl Filter {
    /// Bounds as `rate` and `alerts` take them (`hj212_store::parse_bound`).
    pub fn new(mn: Option<String>, from: Option<&str>, to: Option<&str>) -> Result<Self, String> {
        let time = |flag: &str, value: Option<&str>| {
            value.map(|v| hj212_store::parse_bound(v).map_err(|e| format!("--{flag}: {e}"))).transpose()
        };
        Ok(Self { mn, from_ms: time("from", from)?, to_ms: time("to", to)? })
    }
}

pub enum ExportError {
    Write(std::io::Error),
    /// The chain breaks: every record before the break was printed.
    Broken(String),
}

/// Prints the records matching `filter`, in archive order, each checked against the chain:
/// at a break, everything before it has been printed and the break is the error.
pub fn export(
    data_dir: &DataDir,
    filter: &Filter,
    show_passwords: bool,
    out: &mut impl Write,
) -> Result<(), ExportError> {
    let dir = data_dir.archive();
    if !dir.is_dir() {
        return Err(ExportError::Broken(format!("no archive at {}", dir.display())));
    }
    let mut write_error = None;
    let walked = hj212_archive::walk(&dir, |record| {
        let Some(line) = export_line(&record, filter, show_passwords) else { return ControlFlow::Continue(()) };
        match writeln!(out, "{line}") {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                write_error = Some(e);
                ControlFlow::Break(())
            }
        }
    });
    if let Some(e) = write_error {
        return Err(ExportError::Write(e));
    }
    walked
        .map(|_| ())
        .map_err(|broken| ExportError::Broken(format!("{}; the records before it were exported", describe(&broken))))
}

/// "chain broken at seq N (SEGMENT byte OFFSET): PROBLEM"
pub fn describe(broken: &hj212_archive::Break) -> String {
    format!(
        "chain broken at seq {} ({} byte {}): {}",
        broken.seq,
        broken.segment.display(),
        broken.offset,
        broken.problem
    )
}

fn export_line(record: &Record, filter: &Filter, show_passwords: bool) -> Option<serde_json::Value> {
    if filter.from_ms.is_some_and(|from| record.time_ms < from) || filter.to_ms.is_some_and(|to| record.time_ms >= to) {
        return None;
    }
    let (mn, cn) = hj212_follow::identity(record).unzip();
    if filter.mn.as_ref().is_some_and(|want| mn.as_deref() != Some(want)) {
        return None;
    }
    let text = String::from_utf8_lossy(&record.data);
    let frame = if show_passwords { text.into_owned() } else { mask_passwords(&text).into_owned() };
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
