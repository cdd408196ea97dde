//! Notification latency benchmark: frame in over TCP to alert out at a local webhook, under load.
//!
//! Starts `hj212d` (release build, fsync on) with a `[[notify]]` webhook channel pointing at a
//! local HTTP receiver (test-support), then drives `--connections` loggers at `--rate`
//! real-time frames per second. Every site has an SO2 limit of 99 with the real-time
//! pre-alert on; each logger sends 0.25, 1.25, ..., 99.25 in turn, so one frame in a hundred
//! raises an `exceedance_warning` (the next one clears it). The channel is routed to raised
//! warnings only and its rate limit set out of the way; each webhook request is matched to the
//! frame that caused it (by MN and DataTime) and timed from when that frame was due.
//!
//! Run: `cargo build --release -p hj212d -p hj212-benches --bin hj212d --bin notify-latency &&
//! target/release/notify-latency [--rate 10000] [--seconds 20] [--connections 64]`

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use clap::Parser;
use hj212_benches::load::{Daemon, PASSWORD, mn};
use hj212_proto::codec::{FrameEvent, Hj212Codec};
use hj212_proto::encode;
use hj212_proto::time::BeijingTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value = "target/release/hj212d")]
    daemon: PathBuf,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Offered real-time frames per second, all loggers together.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

/// Send instants of the frames that should raise an alert, by (MN, DataTime as RFC 3339).
type Pending = Arc<Mutex<HashMap<(String, String), Instant>>>;

fn main() {
    let args = Args::parse();
    let receiver = test_support::receiver::Receiver::start();
    let secrets = tempfile::tempdir().expect("temp dir");
    let url_file = secrets.path().join("webhook.url");
    std::fs::write(&url_file, receiver.url("/hook")).expect("url file");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let extra = format!(
            "[alerts]\nearly_warning = true\n# generated DataTimes run ahead of the clock\nclock_drift_secs = 1000000000\n\
             [[notify]]\nname = \"bench\"\nkind = \"webhook\"\nurl_file = \"{}\"\n\
             kinds = [\"exceedance_warning\"]\nstates = [\"raised\"]\nmax_per_minute = 1000000\n",
            url_file.display()
        );
        let per_site = "[[sites.limits]]\nfactor = \"a21026\"\nmax = 99.0\n";
        let daemon = Daemon::start_with(&args.daemon, args.connections + 64, &extra, per_site).await;
        let pending: Pending = Arc::default();
        let started = Instant::now();
        let stop = started + Duration::from_secs(args.seconds);
        let per_logger = args.rate as f64 / args.connections as f64;
        let loggers: Vec<_> = (0..args.connections)
            .map(|c| tokio::spawn(logger(daemon.addr, c, per_logger, stop, pending.clone())))
            .collect();
        let mut acked = 0u64;
        for logger in loggers {
            acked += logger.await.expect("logger");
        }
        let elapsed = started.elapsed().as_secs_f64();
        // Let the last alerts arrive.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let expected = pending.lock().expect("pending").len();
        let mut measured = latencies(&receiver, &pending);
        measured.sort_unstable();
        let missing = pending.lock().expect("pending").len();
        let pct = |p: usize| measured.get((measured.len().saturating_sub(1)) * p / 100).map_or(0.0, |us| *us as f64 / 1000.0);
        println!(
            "{acked} frames acknowledged in {elapsed:.1} s = {:.0} frames/s offered {}; {expected} alerts due, {} received \
             at the webhook, {missing} missing; frame-to-webhook latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            acked as f64 / elapsed,
            args.rate,
            measured.len(),
            pct(50),
            pct(99),
            pct(100)
        );
        daemon.stop();
    });
}

/// For each webhook request, the time from its frame being due to its arrival (µs); matched
/// requests are taken out of `pending`.
fn latencies(receiver: &test_support::receiver::Receiver, pending: &Pending) -> Vec<u64> {
    let mut pending = pending.lock().expect("pending");
    let mut measured = Vec::new();
    for request in receiver.accepted("/hook") {
        let Ok(message) = serde_json::from_slice::<serde_json::Value>(&request.body) else { continue };
        let key = (
            message["mn"].as_str().unwrap_or_default().to_owned(),
            message["data_time"].as_str().unwrap_or_default().to_owned(),
        );
        if let Some(due) = pending.remove(&key) {
            measured.push(u64::try_from(request.at.saturating_duration_since(due).as_micros()).unwrap_or(u64::MAX));
        }
    }
    measured
}

/// One logger at `rate` frames per second; returns the frames acknowledged.
async fn logger(addr: SocketAddr, c: usize, rate: f64, stop: Instant, pending: Pending) -> u64 {
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
