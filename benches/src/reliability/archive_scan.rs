//! What the daemon wrote, read back after it stopped: the archive's records (through the
//! archive crate's follower, as the daemon's own readers read it), the store's rows, and
//! `hj212-audit verify`.

use hj212_config::DataDir;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result};
use hj212_archive::{Follower, Kind, Record};

/// Calls `visit` with every record of `data_dir/archive`, in order.
///
/// # Errors
/// If a segment cannot be read.
pub fn each_record(data_dir: &Path, mut visit: impl FnMut(&Record)) -> Result<u64> {
    let mut follower = Follower::new(&DataDir::new(data_dir).archive(), 1);
    let mut count = 0;
    loop {
        let records = follower.read(u64::MAX, 2000).context("read the archive")?;
        if records.is_empty() {
            return Ok(count);
        }
        for record in &records {
            visit(record);
        }
        count += records.len() as u64;
    }
}

/// A header field of a frame's text (`MN`, `QN`, `CN`), before its CP.
pub fn header_field<'a>(frame: &'a str, key: &str) -> Option<&'a str> {
    let header = &frame[..frame.find("CP=&&")?];
    // The first field follows the `##dddd` length.
    let header = header.strip_prefix("##").and_then(|h| h.get(4..)).unwrap_or(header);
    header.split(';').find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
}

/// Received frames per (MN, QN): how often each was archived `accepted` and `duplicate`.
#[derive(Debug, Default)]
pub struct Copies {
    pub by_key: HashMap<(String, String), (u32, u32)>,
    /// Records per kind/verdict name (`received/accepted`, `event/info` ...).
    pub verdicts: BTreeMap<String, u64>,
    /// The JSON of each `refused_summary` record.
    pub summaries: Vec<String>,
    pub records: u64,
}

/// Reads the whole archive into [`Copies`].
///
/// # Errors
/// As [`each_record`].
pub fn copies(data_dir: &Path) -> Result<Copies> {
    let mut out = Copies::default();
    out.records = each_record(data_dir, |r| {
        *out.verdicts.entry(format!("{}/{}", r.kind.as_str(), r.verdict.as_str())).or_default() += 1;
        if r.kind != Kind::Received {
            return;
        }
        let text = String::from_utf8_lossy(&r.data);
        match r.verdict.as_str() {
            "refused_summary" => out.summaries.push(text.into_owned()),
            verdict @ ("accepted" | "duplicate") => {
                let (Some(mn), Some(qn)) = (header_field(&text, "MN"), header_field(&text, "QN")) else { return };
                let entry = out.by_key.entry((mn.to_owned(), qn.to_owned())).or_default();
                if verdict == "accepted" {
                    entry.0 += 1;
                } else {
                    entry.1 += 1;
                }
            }
            _ => {}
        }
    })?;
    Ok(out)
}

/// DataTimes (Unix ms) of each factor row in the store, per MN, for the given MNs.
///
/// # Errors
/// If the store cannot be opened or read.
pub fn stored_times(data_dir: &Path, mns: &[String]) -> Result<HashMap<String, HashMap<i64, u32>>> {
    let store = hj212_store::Store::open_read_only(&DataDir::new(data_dir).store()).context("open the store")?;
    let mut out = HashMap::new();
    for mn in mns {
        let mut rows: HashMap<i64, u32> = HashMap::new();
        for reading in store.readings(mn).context("read the store")? {
            *rows.entry(reading.data_time_ms).or_default() += 1;
        }
        out.insert(mn.clone(), rows);
    }
    Ok(out)
}

/// `hj212-audit verify` of `data_dir` with its public key and an optional published head:
/// (exit code, what it printed).
///
/// # Errors
/// If the auditor cannot be run.
pub fn audit_verify(audit: &Path, data_dir: &Path, public_key: &Path, head: Option<&str>) -> Result<(i32, String)> {
    let mut command = Command::new(audit);
    command.arg("verify").arg("--data-dir").arg(data_dir).arg("--public-key").arg(public_key);
    if let Some(head) = head {
        command.arg("--expect-head").arg(head);
    }
    let output = command.output().with_context(|| format!("run {}", audit.display()))?;
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    Ok((output.status.code().unwrap_or(-1), text.trim().to_owned()))
}

/// The first line of a text, for a figure.
pub fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}
