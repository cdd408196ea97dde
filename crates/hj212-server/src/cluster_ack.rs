//! `[cluster] ack_after = "cluster"`: a frame is acknowledged once the cluster's stream holds
//! it too, not only this node's archive. The publisher follower moves `stored` past each
//! record the stream acknowledged; a connection waits on it after the local fsync.

use std::time::{Duration, Instant};

use metrics::{Counter, Histogram, counter, histogram};
use tokio::sync::watch;

pub const ACK_TIMEOUTS: &str = "hj212_cluster_ack_timeouts_total";
pub const ACK_WAIT: &str = "hj212_cluster_ack_wait_seconds";

/// What connections wait on before they acknowledge.
#[derive(Debug)]
pub struct ClusterAck {
    stored: watch::Receiver<u64>,
    timeout: Duration,
    wait: Histogram,
    timeouts: Counter,
}

impl ClusterAck {
    /// `stored`: the last archive record the stream holds; `timeout`: how long a frame waits.
    pub fn new(stored: watch::Receiver<u64>, timeout: Duration) -> Self {
        Self { stored, timeout, wait: histogram!(ACK_WAIT), timeouts: counter!(ACK_TIMEOUTS) }
    }

    /// True once the stream holds every record up to `seq`; false after the timeout (the
    /// frame is then not acknowledged: the logger sends it again).
    pub async fn stored(&self, seq: u64) -> bool {
        let mut stored = self.stored.clone();
        if *stored.borrow_and_update() >= seq {
            return true;
        }
        let started = Instant::now();
        let held = matches!(tokio::time::timeout(self.timeout, stored.wait_for(|&at| at >= seq)).await, Ok(Ok(_)));
        if held {
            self.wait.record(started.elapsed().as_secs_f64());
        } else {
            self.timeouts.increment(1);
        }
        held
    }
}

/// Registers descriptions; call once at startup.
pub fn describe() {
    metrics::describe_counter!(
        ACK_TIMEOUTS,
        "ack_after = \"cluster\": frames not acknowledged because the stream did not store them in time (the connection is closed; the logger resends)"
    );
    metrics::describe_histogram!(
        ACK_WAIT,
        "ack_after = \"cluster\": time from the local fsync to the stream's acknowledgement"
    );
    counter!(ACK_TIMEOUTS).increment(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_the_stream_then_gives_up() {
        let (tx, rx) = watch::channel(5);
        let ack = ClusterAck::new(rx, Duration::from_millis(200));
        assert!(ack.stored(5).await);
        let later = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.send(9).unwrap();
            tx
        });
        assert!(ack.stored(8).await);
        let _tx = later.await.unwrap();
        assert!(!ack.stored(10).await, "nothing stored past 9");
    }
}
