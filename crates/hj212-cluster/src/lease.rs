//! One node at a time: a follower whose effects must happen once for the cluster (a point
//! written to the time-series database, a frame forwarded upstream) runs on the node that
//! holds its lease, a key in the JetStream key-value bucket `{stream}_LEASES` whose entries
//! expire `lease_secs` after their last renewal. The holder renews every third of that with a
//! compare-and-set on the revision it wrote; another node takes the key once it expired. The
//! follower's position (a stream sequence) is kept in `{stream}_POSITIONS`, written by the
//! holder with a compare-and-set too, so that the next holder resumes there.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use hj212_follow::FollowError;

use crate::connect::Settings;

/// The lease and position buckets, and this node's hold on one follower's lease.
pub(crate) struct Lease {
    leases: kv::Store,
    positions: kv::Store,
    /// The follower's key in both buckets.
    key: String,
    node: Bytes,
    /// The revision this node last wrote to the lease, while it holds it.
    held: Option<u64>,
    /// The revision of the position last read or written.
    position_revision: u64,
}

impl Lease {
    /// The buckets (created at first use) and no hold yet.
    pub(crate) async fn open(
        context: &jetstream::Context,
        settings: &Settings,
        follower: &str,
    ) -> Result<Self, FollowError> {
        let leases = bucket(context, settings, "LEASES", Duration::from_secs(settings.lease_secs)).await?;
        let positions = bucket(context, settings, "POSITIONS", Duration::ZERO).await?;
        Ok(Self {
            leases,
            positions,
            key: key(follower),
            node: Bytes::from(settings.node.clone()),
            held: None,
            position_revision: 0,
        })
    }

    /// Renews the lease, or takes it when it is free; whether this node holds it now.
    pub(crate) async fn renew(&mut self) -> bool {
        let renewed = match self.held {
            Some(revision) => self.leases.update(&self.key, self.node.clone(), revision).await.ok(),
            None => self.leases.create(&self.key, self.node.clone()).await.ok(),
        };
        self.held = renewed;
        renewed.is_some()
    }

    /// Lets the lease go (at a stop), so that another node takes over without waiting.
    pub(crate) async fn release(&mut self) {
        if self.held.take().is_some()
            && let Err(error) = self.leases.delete(&self.key).await
        {
            tracing::warn!(key = self.key, %error, "cannot release the lease; it expires on its own");
        }
    }

    /// Where the follower stands for the cluster: the position the last holder wrote (0: none).
    pub(crate) async fn position(&mut self) -> Result<u64, FollowError> {
        let Some(entry) = self.positions.entry(&self.key).await? else { return Ok(0) };
        self.position_revision = entry.revision;
        let text = std::str::from_utf8(&entry.value).unwrap_or_default();
        text.trim().parse().map_err(|_| format!("{}: the position {text:?} is not a sequence number", self.key).into())
    }

    /// Writes the position; false when another node wrote one since (this node lost the lease).
    pub(crate) async fn save(&mut self, position: u64) -> Result<bool, FollowError> {
        let value = Bytes::from(position.to_string());
        let written = if self.position_revision == 0 {
            self.positions.create(&self.key, value).await.map_err(FollowError::from)
        } else {
            self.positions.update(&self.key, value, self.position_revision).await.map_err(FollowError::from)
        };
        match written {
            Ok(revision) => {
                self.position_revision = revision;
                Ok(true)
            }
            Err(_) if self.position().await.is_ok() => Ok(false),
            Err(error) => Err(error),
        }
    }
}

/// A key for a follower's name (`forward:NAME` -> `forward_NAME`): KV keys take letters,
/// digits, `-`, `_`, `=`, `/` and `.`.
pub(crate) fn key(follower: &str) -> String {
    follower.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// The bucket `{stream}_{suffix}`, created when it does not exist. Its stream is made here
/// as a key-value bucket's (`KV_{bucket}`): the client's own `create_key_value` first asks
/// for account information that nats-server 2.9 answers in a form it does not read.
pub(crate) async fn bucket(
    context: &jetstream::Context,
    settings: &Settings,
    suffix: &str,
    max_age: Duration,
) -> Result<kv::Store, FollowError> {
    let name = format!("{}_{suffix}", settings.stream);
    let config = jetstream::stream::Config {
        name: format!("KV_{name}"),
        description: Some(format!("hj212d: the cluster's followers' {}", suffix.to_lowercase())),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age,
        storage: jetstream::stream::StorageType::File,
        num_replicas: settings.replicas,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        ..jetstream::stream::Config::default()
    };
    context.get_or_create_stream(config).await?;
    Ok(context.get_key_value(&name).await?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn follower_names_become_keys() {
        assert_eq!(super::key("forward:provincial-1"), "forward_provincial-1");
        assert_eq!(super::key("influx"), "influx");
    }
}
