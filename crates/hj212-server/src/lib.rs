//! TCP ingest: accepts data-logger connections, frames and judges what they send, archives
//! every frame durably, and answers only after the archive has it on disk. Knows nothing
//! of InfluxDB, MQTT or SQL; readings reach the stores through the archive.

mod admission;
mod apply;
pub mod cluster_ack;
mod connection;
mod decide;
mod decrypt;
mod dedup;
mod downlink;
pub mod keys;
pub mod metrics;
mod refused;
mod sites;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use hj212_archive::Archive;
use hj212_config::{Config, Limits, TimeSync};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use sites::{Registry, SiteEntry, SiteState, States};

use crate::admission::Admission;
use crate::dedup::Dedup;
use crate::metrics::IngestMetrics;
use crate::refused::RefusedLog;

/// State shared by all connections.
#[derive(Debug)]
pub struct Shared {
    pub limits: Limits,
    pub time_sync: TimeSync,
    pub registry: Registry,
    /// HJ 212-2025 SM4 keys and their rotation.
    pub keys: keys::KeyStore,
    pub states: States,
    pub archive: Archive,
    /// Host commands to connected loggers (the command channel).
    pub commands: Arc<hj212_commands::Hub>,
    /// What the gap-recovery sweep knows of each site (for the API).
    pub recovery: Arc<hj212_commands::recovery::Board>,
    /// `[cluster] ack_after = "cluster"`: acknowledgements also wait for the cluster's stream.
    pub cluster_ack: Option<cluster_ack::ClusterAck>,
    dedup: Dedup,
    metrics: IngestMetrics,
    admission: Arc<Admission>,
    refused: RefusedLog,
}

impl Shared {
    pub fn new(config: &Config, archive: Archive, commands: Arc<hj212_commands::Hub>) -> Self {
        Self {
            limits: config.limits.clone(),
            time_sync: config.time_sync.clone(),
            registry: Registry::new(&config.sites),
            keys: keys::KeyStore::load(config.data_dir().sm4_keys(), &config.sites),
            states: States::default(),
            archive,
            commands,
            recovery: Arc::default(),
            cluster_ack: None,
            dedup: Dedup::new(config.limits.dedup_window),
            metrics: IngestMetrics::default(),
            admission: Arc::new(Admission::new(&config.limits)),
            refused: RefusedLog::new(&config.limits),
        }
    }
}

impl Shared {
    /// Rebuilds the resend window from the archive's tail (see [`Dedup::prime`]).
    ///
    /// # Errors
    /// I/O errors reading the archive.
    pub fn prime_dedup(&self, archive_dir: &std::path::Path) -> io::Result<usize> {
        self.dedup.prime(archive_dir)
    }
}

/// Accepts connections on `listener` until `shutdown`; connection tasks run on `tracker`
/// and finish the frames they have read before closing. Refused traffic is summarised per
/// peer and interval by a task on `tracker` too.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken, tracker: TaskTracker) {
    tracker.spawn(refused::run(shared.clone(), shutdown.clone()));
    loop {
        // With every slot held by an authenticated logger, peers wait in the backlog;
        // otherwise a newcomer may take the slot of an unauthenticated connection.
        tokio::select! {
            () = shared.admission.room() => {}
            () = shutdown.cancelled() => return,
        }
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) if is_transient(&error) => {
                    tracing::warn!(%error, "accept failed; retrying shortly");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(error) => {
                    tracing::error!(%error, "accept failed; the listener stops");
                    return;
                }
            },
            () = shutdown.cancelled() => return,
        };
        match shared.admission.admit(peer_key(peer.ip())) {
            Ok(ticket) => {
                shared.metrics.connections.increment(1);
                tracker.spawn(connection::run(stream, peer, shared.clone(), shutdown.clone(), ticket));
            }
            // Dropping the stream closes it; counted, and not logged per connection (a flood).
            Err(refusal) => tracing::debug!(%peer, reason = refusal.as_str(), "connection refused"),
        }
    }
}

/// What per-peer limits and budgets count by: the IPv4 address, or an IPv6 /64 (one site's
/// network, whose 2^64 addresses one attacker can use at will).
pub(crate) fn peer_key(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip.to_canonical() {
        std::net::IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            std::net::IpAddr::V6(prefix.into())
        }
        v4 @ std::net::IpAddr::V4(_) => v4,
    }
}

/// Out of file descriptors or buffers: wait for connections to close, then go on.
fn is_transient(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(23 | 24 | 105)) // ENFILE, EMFILE, ENOBUFS (Linux)
        || matches!(error.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_counted_by_ipv4_address_or_ipv6_64() {
        let key = |text: &str| peer_key(text.parse().unwrap()).to_string();
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }
}
