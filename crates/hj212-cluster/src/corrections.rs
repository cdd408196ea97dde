//! A correction (a mark or a visit that supersedes an earlier one) made on a node whose store
//! follows its own archive names the record it replaces by that record's number in the
//! archive, while a store fed from the stream knows records by their stream sequence (a node
//! whose store follows the stream takes stream sequences, and says so in the `Hj212-Numbered`
//! header). The stream's reader finds the number: the site's
//! messages before the correction are scanned, headers only, for the one the same node
//! published under that archive number. Corrections are rare (people submit them), so the
//! scan costs little.

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::stream::Stream;
use futures_util::StreamExt as _;
use hj212_follow::{FollowError, Interpreted, Meaning};

use crate::message::{NODE, SEQ};

/// Points `interpreted`'s `supersedes` (a mark's or a visit's) at the stream sequence of the
/// record it names, published by `node` on `subject`; at nothing when the stream no longer
/// holds it (older than `max_age_hours`): the correction then stands on its own.
///
/// # Errors
/// The stream cannot be read (the reader fails and is opened again).
pub(crate) async fn renumber(
    stream: &Stream,
    interpreted: &mut Interpreted,
    subject: &str,
    node: &str,
) -> Result<(), FollowError> {
    let seq = interpreted.record.seq;
    let supersedes = match &mut interpreted.meaning {
        Meaning::Mark(mark) => &mut mark.supersedes,
        Meaning::Visit(visit) => &mut visit.supersedes,
        _ => return Ok(()),
    };
    let Some(named) = *supersedes else { return Ok(()) };
    let found = find(stream, subject, node, named, seq).await?;
    if found.is_none() {
        tracing::warn!(
            seq,
            node,
            named,
            "a correction names a record the stream no longer holds: it stands on its own"
        );
    }
    *supersedes = found;
    Ok(())
}

/// The stream sequence of the message `node` published on `subject` as its archive record
/// `named`, looking at messages before `before`.
async fn find(stream: &Stream, subject: &str, node: &str, named: u64, before: u64) -> Result<Option<u64>, FollowError> {
    let config = OrderedConfig {
        filter_subject: subject.to_owned(),
        headers_only: true,
        deliver_policy: DeliverPolicy::All,
        ..OrderedConfig::default()
    };
    let mut messages = stream.create_consumer(config).await?.messages().await?;
    let named = named.to_string();
    while let Some(message) = messages.next().await {
        let message = message?;
        let info = message.info()?;
        let (at, pending) = (info.stream_sequence, info.pending);
        if at >= before {
            return Ok(None);
        }
        let header = |name: &str| message.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_owned());
        if header(NODE).as_deref() == Some(node) && header(SEQ).as_deref() == Some(named.as_str()) {
            return Ok(Some(at));
        }
        if pending == 0 {
            break;
        }
    }
    Ok(None)
}
