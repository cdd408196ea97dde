//! One node asks a site for its history (`[cluster] store_from = "stream"`): the stores of
//! all nodes follow the stream, so every node's gap-recovery sweep sees the same missing
//! hours; a site connected to several nodes would be asked once by each. Before it asks, a
//! node claims the site in the key-value bucket `{stream}_RECOVERY`: the claim is its own for
//! [`CLAIM_HOLD`] after its last request, and the other nodes leave the site alone meanwhile.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use hj212_follow::FollowError;
use tokio::runtime::Handle;

use crate::connect::{Connection, Settings};
use crate::lease::{bucket, key};

/// How long a node keeps a site after its last history request: longer than a request's whole
/// course (3 sends 10 s apart, then the logger's answer), so that one request is never doubled.
pub const CLAIM_HOLD: Duration = Duration::from_secs(600);

/// This node's claims on sites' gap recovery.
pub struct RecoveryClaims {
    settings: Settings,
    runtime: Handle,
    /// Opened at first use (NATS may be down at the start).
    claims: Mutex<Option<kv::Store>>,
}

impl std::fmt::Debug for RecoveryClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryClaims").field("node", &self.settings.node).finish_non_exhaustive()
    }
}

impl RecoveryClaims {
    pub fn new(settings: Settings, runtime: Handle) -> Self {
        Self { settings, runtime, claims: Mutex::new(None) }
    }

    /// Whether this node may ask `mn` for its history now: no other node asked it within
    /// [`CLAIM_HOLD`] (the claim is then taken, or renewed). Called on a blocking thread; a
    /// node that cannot reach the cluster does not ask.
    pub fn claim(&self, mn: &str) -> bool {
        match self.runtime.block_on(self.try_claim(mn)) {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(%mn, %error, "gap recovery: cannot reach the cluster to claim the site; not asking");
                false
            }
        }
    }

    async fn try_claim(&self, mn: &str) -> Result<bool, FollowError> {
        let claims = self.claims().await?;
        let (key, node) = (key(mn), Bytes::from(self.settings.node.clone()));
        Ok(match claims.entry(&key).await? {
            Some(entry) if entry.operation == kv::Operation::Put && entry.value != node => false,
            Some(entry) => claims.update(&key, node, entry.revision).await.is_ok(),
            None => claims.create(&key, node).await.is_ok(),
        })
    }

    async fn claims(&self) -> Result<kv::Store, FollowError> {
        if let Some(claims) = self.claims.lock().unwrap_or_else(PoisonError::into_inner).clone() {
            return Ok(claims);
        }
        let connection = Connection::open(&self.settings).await?;
        let claims = bucket(&connection.context, &self.settings, "RECOVERY", CLAIM_HOLD).await?;
        *self.claims.lock().unwrap_or_else(PoisonError::into_inner) = Some(claims.clone());
        Ok(claims)
    }
}
