//! `hj212-audit receipts --data-dir A --data-dir B`: which nodes of a cluster received each
//! frame a site sent (docs/cluster.md "Which nodes received a frame"), from their archives
//! alone, each checked against its chain as it is read. A frame is known by the cluster
//! stream's message id (`hj212_follow::frame_key`), and copies within the stream's duplicate
//! window are one frame, as in the stream: each line is one message of the stream.
//!
//! The archives are read oldest first across the nodes, and a frame is printed once the
//! window has passed after its first copy: memory holds one window of frames, not the archive.

use std::collections::{HashMap, VecDeque};
use std::io::Write;

use hj212_config::DataDir;
use hj212_follow::{Interpreted, frame_key, identity};
use hj212_proto::time::BeijingTime;
use serde_json::json;

use crate::nodes::Nodes;
use crate::{EX_IOERR, Failure};

/// One frame and the nodes' copies of it.
struct Frame {
    first_ms: i64,
    mn: String,
    cn: u16,
    /// (node index, sequence number in its archive, verdict), in archive time order.
    copies: Vec<(usize, u64, &'static str)>,
}

/// How many frames every node received, and how many only one did.
#[derive(Debug, Default)]
pub struct Summary {
    pub frames: u64,
    pub on_every_node: u64,
    /// Per node (data dir as given): frames no other node received.
    pub only: Vec<(String, u64)>,
}

/// Prints one JSON line per frame (of site `mn`, or every site) to `out`, then the summary.
///
/// # Errors
/// An archive that cannot be read or does not verify (exit 65); output that cannot be written.
pub fn receipts(
    data_dirs: &[DataDir],
    mn: Option<&str>,
    window_ms: i64,
    out: &mut impl Write,
) -> Result<Summary, Failure> {
    let mut nodes = Nodes::open(data_dirs)?;
    let mut summary = Summary::default();
    let mut only = vec![0; data_dirs.len()];
    let mut open: HashMap<String, Frame> = HashMap::new();
    let mut order: VecDeque<(i64, String)> = VecDeque::new();
    while let Some((node, record)) = nodes.next()? {
        let now = record.time_ms;
        while order.front().is_some_and(|(first, _)| now - first > window_ms) {
            let Some((_, key)) = order.pop_front() else { break };
            if let Some(frame) = open.remove(&key) {
                print(&nodes, &key, &frame, &mut summary, &mut only, out)?;
            }
        }
        let (seq, verdict) = (record.seq, record.verdict.as_str());
        let interpreted = Interpreted::new(record);
        let Some(key) = frame_key(&interpreted) else { continue };
        let Some((site, cn)) = identity(&interpreted.record) else { continue };
        if mn.is_some_and(|mn| mn != site) {
            continue;
        }
        let frame = open.entry(key.clone()).or_insert_with(|| {
            order.push_back((now, key));
            Frame { first_ms: now, mn: site, cn, copies: Vec::new() }
        });
        frame.copies.push((node, seq, verdict));
    }
    while let Some((_, key)) = order.pop_front() {
        if let Some(frame) = open.remove(&key) {
            print(&nodes, &key, &frame, &mut summary, &mut only, out)?;
        }
    }
    summary.only = only.into_iter().enumerate().map(|(i, n)| (nodes.name(i).to_owned(), n)).collect();
    let only: serde_json::Map<_, _> = summary.only.iter().map(|(name, n)| (name.clone(), json!(n))).collect();
    let line =
        json!({ "summary": { "frames": summary.frames, "on_every_node": summary.on_every_node, "only_on": only } });
    writeln!(out, "{line}").map_err(write_failure)?;
    Ok(summary)
}

fn print(
    nodes: &Nodes,
    key: &str,
    frame: &Frame,
    summary: &mut Summary,
    only: &mut [u64],
    out: &mut impl Write,
) -> Result<(), Failure> {
    let mut received_by: Vec<usize> = frame.copies.iter().map(|(node, ..)| *node).collect();
    received_by.sort_unstable();
    received_by.dedup();
    summary.frames += 1;
    if received_by.len() == only.len() {
        summary.on_every_node += 1;
    }
    if let [single] = received_by[..] {
        only[single] += 1;
    }
    let copies: Vec<_> = frame
        .copies
        .iter()
        .map(|(node, seq, verdict)| json!({ "node": nodes.name(*node), "seq": seq, "verdict": verdict }))
        .collect();
    let line = json!({
        "key": key,
        "mn": frame.mn,
        "cn": frame.cn,
        "first_received": BeijingTime::from_unix_millis(frame.first_ms).to_rfc3339(),
        "nodes": received_by.iter().map(|node| nodes.name(*node)).collect::<Vec<_>>(),
        "copies": copies,
    });
    writeln!(out, "{line}").map_err(write_failure)
}

#[expect(clippy::needless_pass_by_value, reason = "used as map_err(write_failure)")]
fn write_failure(error: std::io::Error) -> Failure {
    Failure { message: format!("cannot write the output: {error}"), exit_code: EX_IOERR }
}
