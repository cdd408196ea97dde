//! Opening the data directory: the followers' positions (evidence of what was durable), the
//! archive with its signing key, and what recovery did, recorded in the chain.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hj212_archive::{Archive, CheckpointSettings, Kind, NewRecord, Settings, Verdict, WriterThread, now_ms};
use hj212_config::Config;

/// Where each follower stands in the archive, as persisted by it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Positions {
    pub store: u64,
    pub alerts: u64,
    pub influx: u64,
    pub cluster: u64,
}

impl Positions {
    fn named(self) -> [(&'static str, u64); 4] {
        [
            ("embedded store", self.store),
            ("alert engine", self.alerts),
            ("influx sink cursor", self.influx),
            ("cluster publisher cursor", self.cluster),
        ]
    }
}

/// Opens the archive (the followers' positions are evidence of what was durable), records
/// what recovery did and the start.
pub(crate) async fn open_archive(
    config: &Config,
    positions: Positions,
) -> anyhow::Result<(Archive, WriterThread, Settings)> {
    let followers = positions.named();
    let settings = archive_settings(config, &followers)?;
    let observer = Arc::new(hj212_server::metrics::ArchiveMetrics::default());
    let (archive, writer, recovery) = Archive::open(settings.clone(), observer)?;
    check_followers(recovery.next_seq - 1, &followers)?;
    if recovery.upgraded_from_v1 {
        tracing::info!("archive: continuing in a new segment of the current format (headers covered by the chain)");
    }
    if let Some((segment, at, len, kept)) = &recovery.truncated {
        tracing::warn!(segment = %segment.display(), at, len, kept = %kept.display(),
            "archive: cut a torn tail left by a crash (never acknowledged); the cut bytes are kept");
        event(&archive, format!("recovered: torn tail of {len} bytes cut at byte {at} of {}", segment.display()))
            .await?;
    }
    event(&archive, format!("started hj212d {}", env!("CARGO_PKG_VERSION"))).await?;
    Ok((archive, writer, settings))
}

/// The archive's settings; the followers' positions are evidence of what was durable, which
/// startup must never cut as a crash's torn tail.
fn archive_settings(config: &Config, followers: &[(&str, u64)]) -> anyhow::Result<Settings> {
    let key_path = hj212_config::signing_key_path(config);
    let key = hj212_archive::checkpoint::load_or_create_key(&key_path).context("archive.signing_key_file")?;
    Ok(Settings {
        dir: config.data_dir().archive(),
        segment_max_bytes: config.archive.segment_max_bytes,
        segment_max_age: Duration::from_secs(config.archive.segment_max_age_secs),
        retention: (config.archive.retention_days > 0)
            .then(|| Duration::from_secs(u64::from(config.archive.retention_days) * 86_400)),
        queue: config.limits.archive_queue,
        queue_bytes: config.limits.archive_queue_bytes,
        checkpoints: Some(CheckpointSettings {
            key,
            interval: Duration::from_secs(config.archive.checkpoint_interval_secs),
        }),
        resume_free_bytes: config.archive.resume_free_bytes,
        durable_at_least: followers.iter().map(|(_, position)| *position).max().unwrap_or(0),
        compress: config.archive.compress.then_some(config.archive.compress_level),
    })
}

/// A sink's persisted position (0 when it has none).
pub(crate) fn saved_cursor(path: &Path) -> u64 {
    std::fs::read_to_string(path).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0)
}

/// A store, engine or sink that has applied records the archive does not have would silently
/// skip the archive's next records: the archive was replaced or cut. Refuse to start.
pub(crate) fn check_followers(archive_last: u64, followers: &[(&str, u64)]) -> anyhow::Result<()> {
    for &(name, position) in followers {
        if position > archive_last {
            return Err(ArchiveBehindFollower { follower: name.to_owned(), position, archive_last }.into());
        }
    }
    Ok(())
}

/// A follower has applied records the archive no longer has: the archive is damaged (exit 65).
#[derive(Debug, thiserror::Error)]
#[error(
    "the {follower} has applied archive record {position} but the archive ends at {archive_last}: \
     the archive was replaced or cut; restore it, or remove the follower's state to rebuild it"
)]
pub(crate) struct ArchiveBehindFollower {
    follower: String,
    position: u64,
    archive_last: u64,
}

pub(crate) async fn event(archive: &Archive, text: String) -> anyhow::Result<()> {
    let record = NewRecord {
        kind: Kind::Event,
        verdict: Verdict::Info,
        flags: 0,
        time_ms: now_ms(),
        peer: "hj212d".into(),
        data: text.into_bytes(),
    };
    archive.append(record).await?;
    Ok(())
}
