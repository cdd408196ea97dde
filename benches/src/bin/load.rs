//! End-to-end load benchmark: starts `hj212d` (release build, fsync on, embedded store) on
//! loopback and drives it with data-logger connections that wait for every 9014.
//!
//! Run: `scripts/bench-load` (builds, raises the open-file limit, runs all three parts), or
//! `target/release/load --daemon target/release/hj212d [--connections N] [--seconds S] [--rate R] [--idle N]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use hj212_benches::load::{Daemon, Run, drive, hold_idle};

#[derive(Debug, Parser)]
struct Args {
    /// The hj212d binary to benchmark.
    #[arg(long, default_value = "target/release/hj212d")]
    daemon: PathBuf,
    /// Concurrent logger connections for the throughput and latency runs.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Frames each connection keeps in flight (sent, not yet acknowledged).
    #[arg(long, default_value_t = 16)]
    window: usize,
    /// Duration of each timed run (0 skips the throughput and latency runs).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Offered rate (frames/s) for the latency run; 0 skips it, default half the measured maximum.
    #[arg(long)]
    rate: Option<u64>,
    /// Idle connections for the memory run; 0 skips it.
    #[arg(long, default_value_t = 10_000)]
    idle: usize,
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let daemon = Daemon::start(&args.daemon, args.connections.max(args.idle) + 64).await;
        println!("hj212d {} (pid {}), data on {}", daemon.addr, daemon.pid(), daemon.data_dir().display());
        let duration = Duration::from_secs(args.seconds);
        let mut rate = args.rate.unwrap_or(0);
        if args.seconds > 0 {
            let max =
                drive(daemon.addr, &Run { connections: args.connections, window: args.window, duration, rate: None })
                    .await;
            println!("max throughput: {}", max.summary());
            rate = args.rate.unwrap_or(max.per_second() / 2);
        }
        if rate > 0 && args.seconds > 0 {
            let paced = drive(
                daemon.addr,
                &Run { connections: args.connections, window: args.window, duration, rate: Some(rate) },
            )
            .await;
            println!("at {rate} frames/s offered: {}", paced.summary());
        }
        if args.idle > 0 {
            idle_memory(&daemon, daemon.addr, args.idle).await;
        }
        daemon.stop();
    });
}

async fn idle_memory(daemon: &Daemon, addr: SocketAddr, count: usize) {
    let before = daemon.rss_bytes();
    let started = Instant::now();
    let held = hold_idle(addr, count).await;
    // Let the daemon settle (buffers released, allocator caches trimmed by use).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = daemon.rss_bytes();
    let per = after.saturating_sub(before) / held.len().max(1) as u64;
    println!(
        "idle: {} connections (each authenticated by one frame) opened in {:.1} s; daemon RSS {} -> {} KiB: {per} bytes per connection",
        held.len(),
        started.elapsed().as_secs_f64(),
        before / 1024,
        after / 1024
    );
    drop(held);
}
