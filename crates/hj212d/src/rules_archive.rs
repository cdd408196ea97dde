//! Each site's effective rules in the archive (issue 16): at start and at every reload, a
//! `config` record for each site whose rules changed (no passwords or keys), so the rates of
//! any range are computed with the rules in force then, from the data directory alone.

use std::collections::HashMap;

use hj212_archive::{Archive, Kind, NewRecord, Verdict, now_ms};
use hj212_config::Config;

/// Each site's rules hash as last archived.
pub(crate) type Archived = HashMap<String, String>;

/// Appends a record for every site of `config` whose rules differ from `archived`, and
/// updates it. Returns how many were appended.
///
/// # Errors
/// The archive refused a record (the daemon cannot vouch for its rules then).
pub(crate) async fn archive_changes(
    archive: &Archive,
    config: &Config,
    archived: &mut Archived,
) -> anyhow::Result<usize> {
    // Submitted together and then awaited: a fleet's first start shares a few fsyncs instead
    // of waiting for one per site.
    let mut pending = Vec::new();
    for record in hj212_store::config_records(config) {
        if archived.get(&record.mn) == Some(&record.hash) {
            continue;
        }
        let data = serde_json::to_vec(&record)?;
        let time_ms = now_ms();
        let new =
            NewRecord { kind: Kind::Event, verdict: Verdict::Config, flags: 0, time_ms, peer: "hj212d".into(), data };
        pending.push((archive.submit(new).await?, record.mn, record.hash));
    }
    let appended = pending.len();
    for (written, mn, hash) in pending {
        written.durable().await?;
        tracing::debug!(mn, hash, "site rules archived (they changed)");
        archived.insert(mn, hash);
    }
    if appended > 0 {
        tracing::info!(sites = appended, "site rules archived (new or changed)");
    }
    Ok(appended)
}
