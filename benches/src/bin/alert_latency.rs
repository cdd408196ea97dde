//! Alert latency benchmark: frame in over TCP to alert out over MQTT, under load.
//!
//! Starts a real mosquitto (test-support) and `hj212d` (release build, fsync on) with an MQTT
//! publisher, then drives `--connections` loggers at `--rate` real-time frames per second.
//! Every site has an SO2 limit of 99 with the real-time pre-alert on; each logger sends
//! 0.25, 1.25, ..., 99.25 in turn, so one frame in a hundred raises an `exceedance_warning`
//! (the next one clears it). A subscriber matches each raised message to the frame that
//! caused it (by MN and DataTime) and reports the send-to-receive latency.
//!
//! Run: `cargo build --release -p hj212d -p hj212-benches --bin hj212d --bin alert-latency &&
//! target/release/alert-latency [--rate 10000] [--seconds 20] [--connections 64]`

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use hj212_benches::latency_logger::{Pending, logger};
use hj212_benches::load::Daemon;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

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

fn main() {
    let args = Args::parse();
    let broker = test_support::mosquitto::Mosquitto::start();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let extra = format!(
            "[mqtt]\nurl = \"{}\"\n[alerts]\nearly_warning = true\n# generated DataTimes run ahead of the clock\nclock_drift_secs = 1000000000\n",
            broker.url()
        );
        let per_site = "[[sites.limits]]\nfactor = \"a21026\"\nmax = 99.0\n";
        let daemon = Daemon::start_with(&args.daemon, args.connections + 64, &extra, per_site).await;
        let pending: Pending = Arc::default();
        let latencies = Arc::new(Mutex::new(Vec::new()));
        subscribe(broker.addr, pending.clone(), latencies.clone()).await;
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
        let mut measured = latencies.lock().expect("latencies").clone();
        measured.sort_unstable();
        let missing = pending.lock().expect("pending").len();
        let pct = |p: usize| measured.get((measured.len().saturating_sub(1)) * p / 100).map_or(0.0, |us| *us as f64 / 1000.0);
        println!(
            "{acked} frames acknowledged in {elapsed:.1} s = {:.0} frames/s offered {}; {} alerts received, {missing} missing; \
             frame-to-MQTT latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
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

/// Subscribes to the alerts and records, for each raised warning, the time since its frame was sent.
async fn subscribe(broker: SocketAddr, pending: Pending, latencies: Arc<Mutex<Vec<u64>>>) {
    let mut options = MqttOptions::new("alert-latency-bench", broker.ip().to_string(), broker.port());
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut events) = AsyncClient::new(options, 1024);
    client.subscribe("hj212/alerts/+/exceedance_warning", QoS::AtLeastOnce).await.expect("subscribe");
    let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _client = client;
        let mut subscribed = Some(subscribed_tx);
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(tx) = subscribed.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let now = Instant::now();
                    let Ok(message) = serde_json::from_slice::<serde_json::Value>(&publish.payload) else { continue };
                    if message["state"] != "raised" {
                        continue;
                    }
                    let key = (
                        message["mn"].as_str().unwrap_or_default().to_owned(),
                        message["data_time"].as_str().unwrap_or_default().to_owned(),
                    );
                    if let Some(sent) = pending.lock().expect("pending").remove(&key) {
                        let micros = u64::try_from(now.duration_since(sent).as_micros()).unwrap_or(u64::MAX);
                        latencies.lock().expect("latencies").push(micros);
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    eprintln!("subscriber: {error}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), subscribed_rx).await.expect("subscribed").expect("suback");
}
