//! One node at a time delivers the alert engine's messages for each outbox consumer (`[cluster]
//! alerts_from = "stream"`, see `hj212_alerts::ClusterDelivery`): every node's engine follows
//! the stream and queues the same messages; the holder of the consumer's lease (`outbox_{name}`
//! in `{stream}_LEASES`) sends them and writes how far it got (an origin: a stream sequence
//! number) to `{stream}_POSITIONS`; the others move past that point without sending.

use std::time::{Duration, Instant};

use hj212_follow::FollowError;
use metrics::{Gauge, gauge};
use tokio::runtime::Handle;

use crate::connect::{Connection, Settings};
use crate::lease::Lease;
use crate::metrics::LEASE_HELD;

/// This node's hold on delivering one outbox consumer's messages.
pub struct Delivery {
    /// `outbox:{consumer}`: the lease's name and the gauge's label.
    name: String,
    settings: Settings,
    runtime: Handle,
    /// Connected at first use (NATS may be down at the start).
    lease: Option<Lease>,
    holding: bool,
    renew_at: Instant,
    held: Gauge,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery").field("name", &self.name).field("holding", &self.holding).finish_non_exhaustive()
    }
}

impl Delivery {
    /// Called on the outbox consumer's blocking thread (it waits on NATS with `runtime`).
    pub fn new(consumer: &str, settings: Settings, runtime: Handle) -> Self {
        let name = format!("outbox:{consumer}");
        let held = gauge!(LEASE_HELD, "follower" => name.clone());
        held.set(0.0);
        Self { name, settings, runtime, lease: None, holding: false, renew_at: Instant::now(), held }
    }

    fn lease(&mut self) -> Result<&mut Lease, FollowError> {
        if self.lease.is_none() {
            let lease = self.runtime.block_on(async {
                let connection = Connection::open(&self.settings).await?;
                Lease::open(&connection.context, &self.settings, &self.name).await
            })?;
            self.lease = Some(lease);
        }
        Ok(self.lease.as_mut().expect("set above"))
    }

    /// Whether this node delivers now: the lease is renewed (or taken when free) every third
    /// of `lease_secs`. A node that cannot reach the cluster does not deliver.
    pub fn delivering(&mut self) -> bool {
        if Instant::now() < self.renew_at {
            return self.holding;
        }
        self.renew_at = Instant::now() + Duration::from_secs(self.settings.lease_secs) / 3;
        let runtime = self.runtime.clone();
        let holding = match self.lease() {
            Ok(lease) => runtime.block_on(lease.renew()),
            Err(error) => {
                tracing::warn!(lease = self.name, %error, "cannot reach the cluster: not delivering");
                false
            }
        };
        self.set_holding(holding);
        self.holding
    }

    fn set_holding(&mut self, holding: bool) {
        if holding != self.holding {
            let what = if holding { "delivers" } else { "no longer delivers" };
            tracing::info!(lease = self.name, node = self.settings.node, "this node {what} the alert messages");
        }
        self.holding = holding;
        self.held.set(if holding { 1.0 } else { 0.0 });
    }

    /// How far the cluster delivered (0: nothing yet).
    ///
    /// # Errors
    /// The cluster cannot be reached.
    pub fn delivered_through(&mut self) -> Result<u64, FollowError> {
        let runtime = self.runtime.clone();
        runtime.block_on(self.lease()?.position())
    }

    /// Writes that this node delivered through `origin`.
    ///
    /// # Errors
    /// The cluster cannot be reached, or another node wrote since (it delivers now).
    pub fn confirm(&mut self, origin: u64) -> Result<(), FollowError> {
        let runtime = self.runtime.clone();
        if runtime.block_on(self.lease()?.save(origin))? {
            return Ok(());
        }
        self.set_holding(false);
        Err(format!("{}: another node delivers now", self.name).into())
    }
}
