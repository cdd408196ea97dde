//! What a message costs a JetStream R3 stream on this machine, by its shape: starts three
//! nats-servers on loopback (Debian `nats-server`, as the tests do), publishes to a stream like
//! hj212d's (file storage, R3, a duplicate window, a subject per site) as fast as the
//! acknowledgements allow, and reports messages and frames per second and the servers' CPU
//! time per message and per frame. Nothing else runs: this is the stream's own price, the
//! ceiling of a cluster whose nodes and stream share the machine.
//!
//! Shapes: hj212d's message (one frame of six readings, the eight `Hj212-*` headers and a message id),
//! the same frame with the message id only, and several frames in one message.
//!
//! `target/release/stream-cost [--seconds 15] [--frames 1,4,16,64]`

use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage, stream};
use bytes::Bytes;
use clap::Parser;
use hj212_benches::load::cpu_seconds_of;

#[derive(Debug, Parser)]
struct Args {
    /// Seconds each shape is published for.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Frames per message of the shapes with the message id only (1 is always measured with
    /// hj212d's headers too).
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
    frames: Vec<usize>,
    /// Publications awaiting their acknowledgement at once.
    #[arg(long, default_value_t = 4096)]
    window: usize,
}

/// A real-time upload of six readings, as long as hj212d archives one (the bytes only matter by their size).
const FRAME: &[u8] = b"##0302QN=20261202120000001;ST=22;CN=2011;PW=123456;MN=LOAD00000000000000000001;Flag=5;\
CP=&&DataTime=20261202120000;a21026-Rtd=12.25,a21026-Flag=N;a21002-Rtd=48.1,a21002-Flag=N;\
a34013-Rtd=10.5,a34013-Flag=N;a19001-Rtd=9.8,a19001-Flag=N;a01012-Rtd=135.2,a01012-Flag=N;\
a01011-Rtd=12.4,a01011-Flag=N&&4F01\r\n";

/// What one shape measured.
struct Measured {
    messages: u64,
    elapsed: Duration,
    nats_cpu: f64,
}

fn main() {
    let args = Args::parse();
    let nats = test_support::nats::NatsCluster::start(3);
    nats.wait_healthy(Duration::from_secs(30));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let mut shapes = vec![(1, true)];
    shapes.extend(args.frames.iter().map(|&frames| (frames.max(1), false)));
    println!("| frames per message | headers | messages/s | frames/s | NATS CPU per message | per frame |");
    println!("|---|---|---|---|---|---|");
    for (frames, hj212d_headers) in shapes {
        let measured = runtime.block_on(publish(&nats, &args, frames, hj212d_headers));
        let seconds = measured.elapsed.as_secs_f64();
        #[expect(clippy::cast_precision_loss, reason = "message counts")]
        let (per_second, per_message_us) =
            (measured.messages as f64 / seconds, measured.nats_cpu * 1e6 / measured.messages.max(1) as f64);
        #[expect(clippy::cast_precision_loss, reason = "a small count")]
        let per_frame_us = per_message_us / frames as f64;
        println!(
            "| {frames} | {} | {per_second:.0} | {:.0} | {per_message_us:.1} µs | {per_frame_us:.1} µs |",
            if hj212d_headers { "hj212d's (8 and the id)" } else { "message id" },
            per_second * frames as f64,
        );
    }
}

/// Publishes one shape for `args.seconds` to a new stream; the servers' CPU time is counted
/// from the first publication to the last acknowledgement.
async fn publish(nats: &test_support::nats::NatsCluster, args: &Args, frames: usize, hj212d_headers: bool) -> Measured {
    let client = async_nats::connect(nats.urls()).await.expect("connect");
    let context = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(30))
        .max_ack_inflight(args.window * 2)
        .build(client);
    let name = format!("COST{frames}{}", u8::from(hj212d_headers));
    let config = stream::Config {
        name: name.clone(),
        subjects: vec![format!("{}.>", name.to_lowercase())],
        num_replicas: 3,
        duplicate_window: Duration::from_secs(600),
        storage: stream::StorageType::File,
        ..stream::Config::default()
    };
    context.get_or_create_stream(config).await.expect("stream");
    let payload = Bytes::from(FRAME.repeat(frames));
    let pids = nats.pids();
    let cpu = || pids.iter().map(|&pid| cpu_seconds_of(pid)).sum::<f64>();
    let cpu_before = cpu();
    let started = Instant::now();
    let stop = started + Duration::from_secs(args.seconds);
    let mut in_flight: std::collections::VecDeque<PublishAckFuture> = std::collections::VecDeque::new();
    let mut messages = 0u64;
    while Instant::now() < stop {
        while in_flight.len() < args.window {
            let subject = format!("{}.records.LOAD{:020}", name.to_lowercase(), messages % 100);
            let message = shaped(payload.clone(), messages, hj212d_headers);
            in_flight.push_back(context.send_publish(subject, message).await.expect("publish"));
            messages += 1;
        }
        // Await the older half: the servers always have the other half to work on.
        for _ in 0..(args.window / 2).max(1) {
            if let Some(ack) = in_flight.pop_front() {
                ack.await.expect("acknowledged");
            }
        }
    }
    for ack in in_flight {
        ack.await.expect("acknowledged");
    }
    let measured = Measured { messages, elapsed: started.elapsed(), nats_cpu: cpu() - cpu_before };
    // Each shape on servers without the last one's stream to keep.
    context.delete_stream(&name).await.expect("delete the stream");
    measured
}

/// Message `n`: its own message id, and hj212d's headers when asked (values of their usual length).
fn shaped(payload: Bytes, n: u64, hj212d_headers: bool) -> PublishMessage {
    let mut headers = HeaderMap::new();
    if hj212d_headers {
        for (name, value) in [
            ("Hj212-Node", "node-a".to_owned()),
            ("Hj212-Seq", (1_000_000 + n).to_string()),
            ("Hj212-Kind", "received".to_owned()),
            ("Hj212-Verdict", "accepted".to_owned()),
            ("Hj212-Flags", "0".to_owned()),
            ("Hj212-Time-Ms", (1_796_000_000_000 + n).to_string()),
            ("Hj212-Peer", "127.0.0.1:40000".to_owned()),
            ("Hj212-Hash", "ab".repeat(32)),
        ] {
            headers.insert(name, value);
        }
    }
    let id = format!("LOAD00000000000000000001:2011:{n:017}:{:016x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    PublishMessage::build().headers(headers).message_id(id).payload(payload)
}
