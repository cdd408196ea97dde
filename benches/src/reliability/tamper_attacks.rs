//! The named attacks of the tamper trial, each applied to a copy of the data dir. Where an
//! attack removes the newest checkpoint, the forger also puts the newest remaining one in
//! `checkpoint.latest`, as someone covering their tracks would.

use hj212_config::DataDir;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use super::forge::{self, ACCEPTED, CREATED_AT, Segment};
use super::logger;

pub type Attack = fn(&Path) -> Result<()>;

pub const ATTACKS: &[(&str, Attack)] = &[
    ("truncate the newest segment in the middle of a record", truncate_mid_record),
    ("truncate the newest segment at a record boundary (its second half)", truncate_at_boundary),
    ("delete the newest segment", delete_newest),
    ("delete the oldest segment", delete_oldest),
    ("append a forged record chained correctly", append_forged),
    ("cut the stop's checkpoint record and append a forged record chained correctly", cut_checkpoint_and_append),
    ("rewrite a value in the oldest segment and re-hash everything after it", rewrite_and_rehash),
    ("rewrite a value, re-hash, and re-sign every checkpoint with the key found in data_dir", rewrite_and_resign),
    ("edit a segment header's created_ms (one day earlier)", edit_created),
    ("edit a segment header's created_ms and re-hash everything after it", edit_created_and_rehash),
    ("flip a bit in the newest record's length", flip_newest_length),
    ("flip a bit in the length of a record in the middle of the newest segment", flip_middle_length),
];

fn archive(data: &Path) -> PathBuf {
    DataDir::new(data).archive()
}

fn newest(data: &Path) -> Result<Segment> {
    forge::read_all(&archive(data))?.pop().context("no segment")
}

/// Puts the newest checkpoint still in the archive into `checkpoint.latest`, as the daemon
/// writes it (the checkpoint's text, then `record SEQ:HASH` of its own record).
fn cover_tracks(data: &Path) -> Result<()> {
    let mut latest = None;
    let _ = super::archive_scan::each_record(data, |r| {
        if r.verdict.as_str() == "checkpoint" {
            latest = Some((String::from_utf8_lossy(&r.data).into_owned(), r.seq, r.hash));
        }
    });
    let (text, seq, hash) = latest.context("no checkpoint left")?;
    write_latest(data, &text, seq, &hash)
}

fn write_latest(data: &Path, text: &str, seq: u64, hash: &[u8; 32]) -> Result<()> {
    let file = archive(data).join(hj212_archive::checkpoint::LATEST_FILE);
    Ok(std::fs::write(file, format!("{text}\nrecord {seq}:{}\n", hj212_archive::hex(hash)))?)
}

fn set_len(path: &Path, len: usize) -> Result<()> {
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    Ok(file.set_len(len as u64)?)
}

fn truncate_mid_record(data: &Path) -> Result<()> {
    let segment = newest(data)?;
    let record = &segment.records[segment.records.len() / 2];
    set_len(&segment.path, record.offset + 10)
}

fn truncate_at_boundary(data: &Path) -> Result<()> {
    let segment = newest(data)?;
    set_len(&segment.path, segment.records[segment.records.len() / 2].offset)?;
    cover_tracks(data)
}

fn delete_newest(data: &Path) -> Result<()> {
    std::fs::remove_file(newest(data)?.path)?;
    cover_tracks(data)
}

fn delete_oldest(data: &Path) -> Result<()> {
    let segments = hj212_archive::list_segments(&archive(data))?;
    Ok(std::fs::remove_file(&segments.first().context("no segment")?.1)?)
}

/// A valid frame nobody sent.
fn forged_frame() -> Vec<u8> {
    logger::frame(logger::base_ms(), 0, 9_999_999).1
}

fn append_forged(data: &Path) -> Result<()> {
    let mut segment = newest(data)?;
    let last = segment.records.last().context("empty segment")?;
    let record = forge::next_record(last, &forged_frame(), "127.0.0.1:40000");
    segment.records.push(record);
    segment.write()
}

fn cut_checkpoint_and_append(data: &Path) -> Result<()> {
    let mut segment = newest(data)?;
    let checkpoint = segment.records.pop().context("empty segment")?;
    if checkpoint.verdict() != 32 {
        bail!("the newest record is not the stop's checkpoint");
    }
    let last = segment.records.last().context("segment of one record")?;
    let record = forge::next_record(last, &forged_frame(), "127.0.0.1:40000");
    segment.records.push(record);
    segment.write()?;
    cover_tracks(data)
}

/// The same frame with another SO2 value and a correct CRC.
fn rewrite_value(frame: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(frame).ok()?;
    let segment = text.get(6..text.len().checked_sub(6)?)?;
    segment.contains("a21002-Rtd=48.1").then_some(())?;
    hj212_proto::encode::frame(segment.replace("a21002-Rtd=48.1", "a21002-Rtd=18.1").as_bytes()).ok()
}

fn rewrite_first_value(segments: &mut [Segment]) -> Result<()> {
    for record in segments.iter_mut().flat_map(|s| s.records.iter_mut()) {
        if record.verdict() == ACCEPTED
            && let Some(forged) = rewrite_value(record.data())
        {
            record.set_data(&forged);
            return Ok(());
        }
    }
    bail!("no accepted frame to rewrite")
}

fn write_all(segments: &[Segment]) -> Result<()> {
    segments.iter().try_for_each(Segment::write)
}

fn rewrite_and_rehash(data: &Path) -> Result<()> {
    let mut segments = forge::read_all(&archive(data))?;
    rewrite_first_value(&mut segments)?;
    forge::rehash(&mut segments, None);
    write_all(&segments)
}

fn rewrite_and_resign(data: &Path) -> Result<()> {
    let key = hj212_archive::checkpoint::load_or_create_key(&DataDir::new(data).default_signing_key())?;
    let mut segments = forge::read_all(&archive(data))?;
    rewrite_first_value(&mut segments)?;
    forge::rehash(&mut segments, Some(&key)).context("no checkpoint to re-sign")?;
    write_all(&segments)?;
    cover_tracks(data)
}

fn shift_created(segment: &mut Segment) {
    let created = i64::from_le_bytes(segment.header[CREATED_AT].try_into().unwrap_or_default());
    segment.header[CREATED_AT].copy_from_slice(&(created - 86_400_000).to_le_bytes());
}

fn edit_created(data: &Path) -> Result<()> {
    let mut segments = forge::read_all(&archive(data))?;
    let middle = segments.len() / 2;
    shift_created(&mut segments[middle]);
    segments[middle].write()
}

fn edit_created_and_rehash(data: &Path) -> Result<()> {
    let mut segments = forge::read_all(&archive(data))?;
    let middle = segments.len() / 2;
    shift_created(&mut segments[middle]);
    forge::rehash(&mut segments, None);
    write_all(&segments)
}

/// Flips bit 12 of a record's length (4096 more or fewer bytes).
fn flip_length(path: &Path, offset: usize) -> Result<()> {
    let mut bytes = std::fs::read(path)?;
    bytes[offset + 1] ^= 0x10;
    Ok(std::fs::write(path, bytes)?)
}

fn flip_newest_length(data: &Path) -> Result<()> {
    let segment = newest(data)?;
    flip_length(&segment.path, segment.records.last().context("empty segment")?.offset)
}

fn flip_middle_length(data: &Path) -> Result<()> {
    let segment = newest(data)?;
    flip_length(&segment.path, segment.records[segment.records.len() / 2].offset)
}
