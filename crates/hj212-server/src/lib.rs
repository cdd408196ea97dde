//! TCP ingest: accepts data-logger connections, frames and judges what they send, archives
//! every frame durably, and answers only after the archive has it on disk. Knows nothing
//! of InfluxDB, MQTT or SQL; readings reach the stores through the archive.

mod connection;
mod decide;
mod decrypt;
mod dedup;
pub mod keys;
pub mod metrics;
mod sites;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use hj212_archive::Archive;
use hj212_config::{Config, Limits, TimeSync};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use sites::{Registry, SiteEntry, SiteState, States};

use crate::dedup::Dedup;
use crate::metrics::IngestMetrics;

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
    dedup: Dedup,
    metrics: IngestMetrics,
}

impl Shared {
    pub fn new(config: &Config, archive: Archive) -> Self {
        Self {
            limits: config.limits.clone(),
            time_sync: config.time_sync.clone(),
            registry: Registry::new(&config.sites),
            keys: keys::KeyStore::load(config.server.data_dir.join("keys"), &config.sites),
            states: States::default(),
            archive,
            dedup: Dedup::new(config.limits.dedup_window),
            metrics: IngestMetrics::default(),
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
/// and finish the frames they have read before closing.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken, tracker: TaskTracker) {
    let permits = Arc::new(Semaphore::new(shared.limits.max_connections));
    loop {
        // The permit is taken before accept: over the limit, peers wait in the backlog.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            () = shutdown.cancelled() => return,
        };
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
        shared.metrics.connections.increment(1);
        tracker.spawn(connection::run(stream, peer, shared.clone(), shutdown.clone(), permit));
    }
}

/// Out of file descriptors or buffers: wait for connections to close, then go on.
fn is_transient(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(23 | 24 | 105)) // ENFILE, EMFILE, ENOBUFS (Linux)
        || matches!(error.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted)
}
