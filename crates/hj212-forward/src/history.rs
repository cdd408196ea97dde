//! Answering the upstream's history requests from the archive (HJ 212-2017 §6.1: 9011, the
//! records as the logger sent them, 9012), so a platform heals its own gaps without reaching
//! the logger.

use hj212_config::DataDir;
use hj212_follow::FollowError;

use crate::link::HistoryRequest;

/// Records one history answer sends, at most (a larger range is answered in part, oldest first).
const MAX_HISTORY_RECORDS: usize = 1000;

/// The archived frames of `mn`'s `request.cn` records in the request's range (the first copy
/// of each DataTime), as archived.
pub(crate) fn archived(data_dir: &DataDir, mn: &str, request: &HistoryRequest) -> Result<Vec<Vec<u8>>, FollowError> {
    let store = data_dir.store();
    if !store.exists() {
        return Ok(Vec::new());
    }
    let seqs = hj212_store::Store::open_read_only(&store)?.records_in(
        mn,
        request.cn,
        request.from_ms,
        request.to_ms,
        MAX_HISTORY_RECORDS,
    )?;
    let archive = data_dir.archive();
    let mut frames = Vec::with_capacity(seqs.len());
    for seq in seqs {
        let mut reader = hj212_archive::Follower::new(&archive, seq);
        if let Some(record) = reader.read(seq, 1)?.into_iter().next() {
            frames.push(record.data);
        }
    }
    Ok(frames)
}
