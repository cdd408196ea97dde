//! How a connection receives its commands: a small mailbox per connection, posted to by the
//! hub, and the [`Outgoing`] command it builds a frame from.

use std::sync::{Arc, Mutex, PoisonError};

/// A command for a connection to write to its logger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub id: u64,
    pub mn: String,
    pub cn: u16,
    /// The CP content (`Key=Value;...`).
    pub cp: String,
    /// The QN, as Unix milliseconds (Beijing time in the frame).
    pub qn_ms: i64,
}

/// Commands a connection may hold unwritten; beyond it the hub retries on its next tick.
pub const MAILBOX_SIZE: usize = 4;

/// Where a connection receives its commands. One small allocation, made at the connection's
/// first authenticated frame (a channel would cost an idle connection kilobytes), and one
/// uncontended lock each time the connection waits (a `Notify` would add and remove a waiter
/// for every read).
#[derive(Debug, Default)]
pub struct Mailbox {
    pub(super) inner: Mutex<Posted>,
}

#[derive(Debug, Default)]
pub(super) struct Posted {
    pub(super) commands: Vec<Outgoing>,
    waker: Option<std::task::Waker>,
}

impl Mailbox {
    /// The commands posted since the last call; waits for one.
    pub async fn next(&self) -> Vec<Outgoing> {
        std::future::poll_fn(|cx| {
            let mut posted = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            if !posted.commands.is_empty() {
                return std::task::Poll::Ready(std::mem::take(&mut posted.commands));
            }
            if posted.waker.as_ref().is_none_or(|w| !w.will_wake(cx.waker())) {
                posted.waker = Some(cx.waker().clone());
            }
            std::task::Poll::Pending
        })
        .await
    }

    /// Posts a command; false when the connection has not taken the ones before.
    pub(super) fn post(&self, outgoing: Outgoing) -> bool {
        let mut posted = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if posted.commands.len() >= MAILBOX_SIZE {
            return false;
        }
        posted.commands.push(outgoing);
        let waker = posted.waker.take();
        drop(posted);
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }
}

/// A connection that carries a site's MN.
#[derive(Debug, Clone)]
pub struct Carrier {
    /// The connection's number (unique for the daemon's life).
    pub conn: u64,
    pub mailbox: Arc<Mailbox>,
}
