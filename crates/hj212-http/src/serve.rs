//! Serving the admin router with the bounds `axum::serve` lacks: a connection cap (the permit
//! is taken before `accept`, so further clients wait in the kernel backlog), hyper's
//! header-read timeout (also for a kept-alive connection's next request, so idle connections
//! free their slot), and a stop with a deadline: a half-sent request cannot hold up SIGTERM.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::{CONNECTIONS_ACTIVE, CONNECTIONS_CUT};

/// After a failed `accept` (e.g. out of file descriptors), wait this long before the next.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `shutdown`, within the `[http]` bounds. At `shutdown`
/// it stops accepting, lets requests in progress finish for `http.shutdown_grace_secs`, then
/// closes the connections still open.
///
/// # Errors
/// None in practice: accept errors are logged and retried.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    limits: hj212_config::Http,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let cut = CancellationToken::new();
    let header_timeout = Duration::from_secs(limits.header_read_timeout_secs);
    let lifetime = Duration::from_secs(limits.connection_max_secs);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.map_err(std::io::Error::other)?,
            () = shutdown.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "admin HTTP accept failed; retrying");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let stop = Stop { shutdown: shutdown.clone(), cut: cut.clone() };
        connections.spawn(connection(stream, router.clone(), slot, stop, header_timeout, lifetime));
    }
    drop(listener);
    connections.close();
    let grace = Duration::from_secs(limits.shutdown_grace_secs);
    if tokio::time::timeout(grace, connections.wait()).await.is_err() {
        tracing::warn!(open = connections.len(), "admin HTTP requests still open after {grace:?}; closing them");
        cut.cancel();
        connections.wait().await;
    }
    Ok(())
}

/// The client's address, in every request's extensions (sign-in limits count by it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub std::net::SocketAddr);

/// When a connection should finish its request and close (`shutdown`), and when it is cut (`cut`).
struct Stop {
    shutdown: CancellationToken,
    cut: CancellationToken,
}

/// Counts the connection as open for as long as it lives.
struct Open;

impl Open {
    fn new() -> Self {
        metrics::gauge!(CONNECTIONS_ACTIVE).increment(1.0);
        Self
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        metrics::gauge!(CONNECTIONS_ACTIVE).decrement(1.0);
    }
}

/// After `connection_max_secs`, a request in progress gets this long to finish.
const LIFETIME_GRACE: Duration = Duration::from_secs(1);

async fn connection(
    stream: TcpStream,
    router: Router,
    _slot: OwnedSemaphorePermit,
    stop: Stop,
    header_timeout: Duration,
    lifetime: Duration,
) {
    let _open = Open::new();
    let router = match stream.peer_addr() {
        Ok(peer) => router.layer(axum::Extension(Peer(peer))),
        Err(_) => router,
    };
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let mut conn = pin!(builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router)));
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = tokio::time::sleep(lifetime) => {
            // However it is used, a connection does not hold its slot for good.
            conn.as_mut().graceful_shutdown();
            if tokio::time::timeout(LIFETIME_GRACE, conn.as_mut()).await.is_err() {
                metrics::counter!(CONNECTIONS_CUT, "reason" => "lifetime").increment(1);
            }
            return;
        }
        () = stop.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                result = conn.as_mut() => result,
                () = stop.cut.cancelled() => {
                    metrics::counter!(CONNECTIONS_CUT, "reason" => "shutdown").increment(1);
                    return;
                }
            }
        }
    };
    match result {
        Err(error) if error.is_timeout() => {
            metrics::counter!(CONNECTIONS_CUT, "reason" => "header_timeout").increment(1);
            tracing::debug!(%error, "admin HTTP client did not send its headers in time");
        }
        Err(error) => tracing::debug!(%error, "admin HTTP connection ended with an error"),
        Ok(()) => {}
    }
}
