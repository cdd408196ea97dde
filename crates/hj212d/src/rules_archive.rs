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
    let mut appended = 0;
    for record in hj212_store::config_records(config) {
        if archived.get(&record.mn) == Some(&record.hash) {
            continue;
        }
        let data = serde_json::to_vec(&record)?;
        let time_ms = now_ms();
        let new =
            NewRecord { kind: Kind::Event, verdict: Verdict::Config, flags: 0, time_ms, peer: "hj212d".into(), data };
        archive.append(new).await?;
        tracing::info!(mn = record.mn, hash = record.hash, "site rules archived (they changed)");
        archived.insert(record.mn, record.hash);
        appended += 1;
    }
    Ok(appended)
}
