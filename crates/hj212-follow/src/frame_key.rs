//! The identity of a frame a site sent, the same whichever node of a cluster received it: the
//! cluster stream's message id (so the stream keeps one copy) and what `hj212-audit receipts`
//! groups the nodes' archives by.

use hj212_archive::{Kind, Verdict, hex};
use sha2::{Digest, Sha256};

use crate::{Interpreted, Meaning};

/// `{class}:{mn}:{first 16 bytes of the frame's SHA-256, hex}` for a frame received from a
/// site (accepted, a resend archived `duplicate`, a wrong password); `None` for anything else
/// (events, marks, unframed traffic, frames of unknown sites). The class is `frame` for an
/// accepted frame and its resends (the same frame again), else the verdict.
pub fn frame_key(interpreted: &Interpreted) -> Option<String> {
    let record = &interpreted.record;
    let site_frame = record.kind == Kind::Received
        && matches!(interpreted.meaning, Meaning::Data(_) | Meaning::Seen { .. } | Meaning::BadPassword { .. });
    let mn = interpreted.meaning.mn().filter(|_| site_frame)?;
    let class = match record.verdict {
        Verdict::Accepted | Verdict::Duplicate => "frame",
        other => other.as_str(),
    };
    let digest = Sha256::digest(&record.data);
    Some(format!("{class}:{mn}:{}", hex(&digest[..16])))
}
