//! `hj212-audit rate --data-dir A --data-dir B`: the rates of what the cluster's nodes received
//! together (docs/cluster.md), offline. Every node's archive is read (each record checked
//! against its chain) and applied, oldest first across the nodes, to one new store: a frame
//! both nodes received is one reading there (the store keeps the first copy of a DataTime),
//! and each node's marks, visits and rules are kept under new sequence numbers, a correction
//! pointing at the renumbered record it replaces.

use std::collections::HashMap;
use std::path::Path;

use hj212_archive::{Kind, Record, Verdict};
use hj212_config::DataDir;
use hj212_follow::{Interpreted, MarkRequest, VisitRequest};
use hj212_store::Store;

use crate::nodes::Nodes;
use crate::{EX_NOINPUT, Failure};

/// Records applied to the union store per transaction.
const APPLY_BATCH: usize = 20_000;

/// What went into the union store.
#[derive(Debug, Default)]
pub struct UnionCounts {
    pub records: usize,
    pub rows: usize,
}

/// Applies every record of every node's archive to a new store at `out`.
///
/// # Errors
/// An archive that cannot be read or does not verify (exit 65), a store that cannot be written.
pub fn build(data_dirs: &[DataDir], out: &Path) -> Result<UnionCounts, Failure> {
    let fail = |message: String| Failure { message, exit_code: EX_NOINPUT };
    let mut nodes = Nodes::open(data_dirs)?;
    let mut store = Store::open_bulk(out).map_err(|e| fail(e.to_string()))?;
    // (node, its sequence number) -> the number in the union, for corrections.
    let mut renumbered: HashMap<(usize, u64), u64> = HashMap::new();
    let mut counts = UnionCounts::default();
    let mut batch = Vec::with_capacity(APPLY_BATCH);
    while let Some((index, mut record)) = nodes.next()? {
        let union_seq = counts.records as u64 + 1;
        renumbered.insert((index, record.seq), union_seq);
        record.seq = union_seq;
        renumber_correction(&mut record, index, &renumbered);
        batch.push(Interpreted::new(record));
        counts.records += 1;
        if batch.len() >= APPLY_BATCH {
            counts.rows += store.apply(&batch).map_err(|e| fail(e.to_string()))?.rows;
            batch.clear();
        }
    }
    counts.rows += store.apply(&batch).map_err(|e| fail(e.to_string()))?.rows;
    Ok(counts)
}

/// A mark's or visit's `supersedes` names a record of its own node: the union's number now.
fn renumber_correction(record: &mut Record, node: usize, renumbered: &HashMap<(usize, u64), u64>) {
    if record.kind != Kind::Event {
        return;
    }
    let map = |old: Option<u64>| old.and_then(|seq| renumbered.get(&(node, seq)).copied());
    let rewritten = match record.verdict {
        Verdict::Mark => serde_json::from_slice::<MarkRequest>(&record.data).ok().and_then(|mut mark| {
            mark.supersedes?;
            mark.supersedes = map(mark.supersedes);
            serde_json::to_vec(&mark).ok()
        }),
        Verdict::Visit => serde_json::from_slice::<VisitRequest>(&record.data).ok().and_then(|mut visit| {
            visit.supersedes?;
            visit.supersedes = map(visit.supersedes);
            serde_json::to_vec(&visit).ok()
        }),
        _ => None,
    };
    if let Some(data) = rewritten {
        record.data = data;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(verdict: Verdict, data: Vec<u8>) -> Record {
        Record { seq: 9, kind: Kind::Event, verdict, flags: 0, time_ms: 0, peer: String::new(), data, hash: [0; 32] }
    }

    #[test]
    fn a_correction_points_at_the_renumbered_record_of_its_own_node() {
        let mark = MarkRequest {
            mn: "MN1".to_owned(),
            from_ms: 0,
            to_ms: 1,
            reason: "停产".to_owned(),
            evidence: "doc 1".to_owned(),
            author: "duty".to_owned(),
            supersedes: Some(5),
        };
        let renumbered = HashMap::from([((0, 5), 40), ((1, 5), 12)]);
        let mut record = event(Verdict::Mark, serde_json::to_vec(&mark).unwrap());
        renumber_correction(&mut record, 1, &renumbered);
        let corrected: MarkRequest = serde_json::from_slice(&record.data).unwrap();
        assert_eq!(corrected.supersedes, Some(12), "node 1's record 5, not node 0's");
        let original = MarkRequest { supersedes: None, ..mark };
        let bytes = serde_json::to_vec(&original).unwrap();
        let mut record = event(Verdict::Mark, bytes.clone());
        renumber_correction(&mut record, 1, &renumbered);
        assert_eq!(record.data, bytes, "a mark that corrects nothing is kept as it is");
    }
}
