//! A follower that one node of the cluster runs at a time (`[cluster] sinks_from = "stream"`):
//! the holder of its lease ([`crate::lease`]) applies the stream's records and writes its
//! position to the cluster; the other nodes stand by, their status showing that position.
//! When the holder stops renewing (killed, cut off), another node takes the lease over and
//! resumes where the holder's last written position stands: what the holder did after it
//! (at most about a second of records, and what was in flight) is done again, so a write or a
//! forward may repeat (points overwrite themselves; an upstream platform sees a resend).

use std::time::{Duration, Instant};

use hj212_follow::{FollowError, Follower, Interpreted, Rewind};
use metrics::{Gauge, gauge};
use tokio::runtime::Handle;

use crate::connect::{Connection, Settings};
use crate::lease::Lease;
use crate::metrics::LEASE_HELD;

/// How often the holder writes its position to the cluster.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// A follower behind a lease.
pub struct OneNode {
    inner: Box<dyn Follower>,
    settings: Settings,
    runtime: Handle,
    /// Connected at first use (NATS may be down at the start).
    lease: Option<Lease>,
    holding: bool,
    renew_at: Instant,
    /// The cluster's position: as the holder last wrote it, or as this node wrote it.
    cluster_position: u64,
    save_at: Instant,
    held: Gauge,
}

impl std::fmt::Debug for OneNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneNode").field("holding", &self.holding).finish_non_exhaustive()
    }
}

impl OneNode {
    pub fn new(inner: Box<dyn Follower>, settings: Settings, runtime: Handle) -> Self {
        let held = gauge!(LEASE_HELD, "follower" => inner.name());
        held.set(0.0);
        let now = Instant::now();
        Self {
            inner,
            settings,
            runtime,
            lease: None,
            holding: false,
            renew_at: now,
            cluster_position: 0,
            save_at: now,
            held,
        }
    }

    fn lease(&mut self) -> Result<&mut Lease, FollowError> {
        if self.lease.is_none() {
            let name = self.inner.name();
            let lease = self.runtime.block_on(async {
                let connection = Connection::open(&self.settings).await?;
                Lease::open(&connection.context, &self.settings, name).await
            })?;
            self.lease = Some(lease);
        }
        Ok(self.lease.as_mut().expect("set above"))
    }

    /// Renews or takes the lease when due (`now`: at once). A change of hands is a
    /// [`Rewind`]: the runner feeds this follower again from [`Follower::position`].
    fn renew(&mut self, now: bool) -> Result<(), FollowError> {
        if !now && Instant::now() < self.renew_at {
            return Ok(());
        }
        self.renew_at = Instant::now() + Duration::from_secs(self.settings.lease_secs) / 3;
        let runtime = self.runtime.clone();
        let lease = self.lease()?;
        let holding = runtime.block_on(lease.renew());
        if !holding {
            self.cluster_position = runtime.block_on(lease.position())?;
        }
        let changed = holding != self.holding;
        self.holding = holding;
        self.held.set(if holding { 1.0 } else { 0.0 });
        if changed {
            let name = self.inner.name();
            let what = if holding { "took over" } else { "let go of" };
            tracing::info!(follower = name, node = self.settings.node, "{what} the follower's lease");
            return Err(Box::new(Rewind(format!("{what} the lease on {name}"))));
        }
        Ok(())
    }

    /// Writes the holder's position to the cluster (about every second, or `now`).
    fn save(&mut self, position: u64, now: bool) -> Result<u64, FollowError> {
        if position <= self.cluster_position || !(now || Instant::now() >= self.save_at) {
            return Ok(position);
        }
        self.save_at = Instant::now() + SAVE_EVERY;
        let runtime = self.runtime.clone();
        if !runtime.block_on(self.lease()?.save(position))? {
            // Another node holds the lease and wrote its position: stand by from there.
            self.holding = false;
            self.held.set(0.0);
            return Err(Box::new(Rewind(format!("another node runs {}", self.inner.name()))));
        }
        self.cluster_position = position;
        Ok(position)
    }

    /// Where to feed from: the holder from the later of its own position and the cluster's;
    /// a node standing by from the cluster's.
    fn resume(&mut self, own: Option<u64>) -> Result<u64, FollowError> {
        let runtime = self.runtime.clone();
        self.cluster_position = runtime.block_on(self.lease()?.position())?;
        match own {
            Some(own) if self.holding => Ok(own.max(self.cluster_position)),
            _ => Ok(self.cluster_position),
        }
    }
}

impl Follower for OneNode {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn position(&mut self) -> Result<u64, FollowError> {
        match self.renew(true) {
            Err(error) if !error.is::<Rewind>() => return Err(error),
            _ => {}
        }
        let own = if self.holding { Some(self.inner.position()?) } else { None };
        self.resume(own)
    }

    fn apply(&mut self, records: &[Interpreted]) -> Result<u64, FollowError> {
        self.renew(false)?;
        if !self.holding {
            return Ok(self.cluster_position);
        }
        let position = self.inner.apply(records)?;
        self.save(position, false)
    }

    fn tick(&mut self, now_ms: i64, behind: u64) -> Result<u64, FollowError> {
        self.renew(false)?;
        if !self.holding {
            return Ok(self.cluster_position);
        }
        let position = self.inner.tick(now_ms, behind)?;
        self.save(position, false)
    }

    fn recover(&mut self) -> Result<u64, FollowError> {
        let own = if self.holding { Some(self.inner.recover()?) } else { None };
        self.resume(own)
    }

    fn finish(&mut self) -> Result<u64, FollowError> {
        if !self.holding {
            return Ok(self.cluster_position);
        }
        let position = self.inner.finish()?;
        self.save(position, true)?;
        let runtime = self.runtime.clone();
        runtime.block_on(self.lease()?.release());
        self.held.set(0.0);
        Ok(position)
    }
}
