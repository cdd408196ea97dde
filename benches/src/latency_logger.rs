//! The logger of the latency benchmarks (alert-latency, notify-latency): frames at a paced
//! rate, every hundredth above the limit, each such frame's due time kept by (MN, DataTime)
//! for the consumer that times it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hj212_proto::codec::{FrameEvent, Hj212Codec};
use hj212_proto::encode;
use hj212_proto::time::BeijingTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

use crate::load::{PASSWORD, mn};

/// Exceeding frames sent and not yet seen by the consumer: (MN, DataTime as RFC 3339) -> when
/// the frame was due.
pub type Pending = Arc<Mutex<HashMap<(String, String), Instant>>>;

/// One logger at `rate` frames per second for site `c`; returns the frames acknowledged.
///
/// # Panics
/// If the daemon cannot be reached or the connection fails (the benchmark is void then).
pub async fn logger(addr: SocketAddr, c: usize, rate: f64, stop: Instant, pending: Pending) -> u64 {
    let site = mn(c);
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (mut codec, mut buf) = (Hj212Codec::default(), BytesMut::with_capacity(16 * 1024));
    let base_ms = hj212_archive::now_ms() / 1000 * 1000;
    let start = Instant::now();
    let (mut sent, mut acked) = (0u64, 0u64);
    loop {
        let now = Instant::now();
        #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a positive frame count")]
        let due = (now.duration_since(start).as_secs_f64() * rate) as u64 + 1;
        let mut out = Vec::new();
        while now < stop && sent < due && sent - acked < 64 {
            // DataTime one second apart per frame: unique per site, so it identifies the frame.
            let time = BeijingTime::from_unix_millis(base_ms + i64::try_from(sent).unwrap_or(0) * 1000);
            let value = sent % 100;
            if value == 99 {
                let key = (site.clone(), time.to_rfc3339());
                // Timed from when the frame was due, not when the window let it go: time spent
                // waiting behind earlier frames counts too (no coordinated omission).
                let due_at = start + Duration::from_secs_f64(sent as f64 / rate);
                pending.lock().expect("pending").insert(key, due_at);
            }
            let segment = format!(
                "QN={};ST=31;CN=2011;PW={PASSWORD};MN={site};Flag=5;CP=&&DataTime={};a21026-Rtd={value}.25,a21026-Flag=N;\
                 a21002-Rtd=48.1,a21002-Flag=N;a19001-Rtd=9.8,a19001-Flag=N&&",
                time.to_qn_string(),
                time.to_seconds_string(),
            );
            out.extend_from_slice(&encode::frame(segment.as_bytes()).expect("fits"));
            sent += 1;
        }
        if !out.is_empty() {
            stream.write_all(&out).await.expect("write");
        }
        if now >= stop && acked == sent {
            return acked;
        }
        let read = tokio::time::timeout(Duration::from_millis(2), stream.read_buf(&mut buf)).await;
        if let Ok(result) = read
            && result.expect("read") == 0
        {
            return acked;
        }
        while let Ok(Some(FrameEvent::Frame(_))) = codec.decode(&mut buf) {
            acked += 1;
        }
    }
}
