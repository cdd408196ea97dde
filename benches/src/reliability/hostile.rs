//! Trial 3: hostile TCP against a daemon with the default limits: a random-bytes flood, a
//! valid 9999-byte frame replayed many times, slowloris (one byte of a frame pending on
//! thousands of connections) and thousands of silent sockets, while a real logger from
//! 127.0.0.1 must still be answered.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use hj212_sim::rng::Rng;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

use super::archive_scan::{audit_verify, copies, first_line};
use super::daemon::{Config, Daemon, describe_exit};
use super::{Ctx, Report, http, logger, metric};

#[derive(Debug, Clone)]
pub struct Options {
    pub flood_secs: u64,
    pub slowloris: usize,
    pub silent: usize,
}

/// The default per-address budget of refused bytes kept in full (docs/config.md).
const PER_PEER_BUDGET: f64 = 262_144.0;
const FLOOD_ADDRESSES: u8 = 4;
/// Connections per source address for the crowds (the default per-peer cap is 1000).
const PER_ADDRESS: usize = 750;

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

async fn connect_from(ip: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(ip, 0))?;
    socket.connect(addr).await
}

/// A logger from 127.0.0.1 connects and sends one frame: time from connect to its 9014.
async fn first_ack(addr: SocketAddr, base: i64, c: usize) -> Result<Duration> {
    let started = Instant::now();
    let mut stream = tokio::time::timeout(Duration::from_secs(30), TcpStream::connect(addr)).await??;
    stream.write_all(&logger::frame(base, c, 0).1).await?;
    let mut buf = Vec::new();
    let mut read = [0u8; 1024];
    while !String::from_utf8_lossy(&buf).contains("CN=9014") {
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut read))
            .await
            .context("no 9014 in 30 s")??;
        if n == 0 {
            bail!("the daemon closed the logger's connection");
        }
        buf.extend_from_slice(&read[..n]);
    }
    Ok(started.elapsed())
}

fn metrics(daemon: &Daemon) -> String {
    http::metrics(daemon.http)
}

/// Runs the trial.
///
/// # Errors
/// If the daemon cannot be started.
pub async fn run(ctx: &Ctx, o: &Options) -> Result<Report> {
    let dir = ctx.dir("hostile")?;
    let mut config = Config::new(&dir.join("data"))?;
    config.limits.clear();
    config.sites.push_str("[[sites]]\nmn = \"010000A8900016F000169DC0\"\npassword = \"123456\"\n");
    let mut daemon = Daemon::start(&ctx.hj212d, &dir, &config).await?;
    let mut report = Report::new(
        "hostile",
        format!(
            "the daemon with the default [limits]: a random-bytes flood for {} s from {} connections ({FLOOD_ADDRESSES} \
             addresses) beside a paced real logger; one valid 9999-byte frame replayed 2000 times; slowloris ({} \
             connections holding one byte of a frame); {} silent sockets from 127.0.0.41 and up; each time a real \
             logger from 127.0.0.1 connects and waits for its 9014",
            o.flood_secs,
            usize::from(FLOOD_ADDRESSES) * 2,
            o.slowloris,
            o.silent
        ),
    );
    let base = logger::base_ms();
    flood(&daemon, o.flood_secs, base, &mut report).await;
    replay(&daemon, &mut report).await?;
    slowloris(&daemon, o.slowloris, base, &mut report).await;
    silent(&daemon, o.silent, base, &mut report).await;
    let stop = daemon.terminate(Duration::from_secs(60)).map(describe_exit);
    report.check(
        "the daemon survives it all and stops cleanly (SIGTERM, exit 0)",
        stop.as_ref().is_ok_and(|s| s == "exit 0"),
        stop.unwrap_or_else(|e| format!("{e:#}")),
    );
    let data = dir.join("data");
    let archive = copies(&data)?;
    report.figure("`refused_summary` records after the stop", archive.summaries.len());
    let (code, text) = audit_verify(&ctx.audit, &data, &data.join("archive-signing.pub"), None)?;
    report.check("the chain verifies with the public key afterwards", code == 0, first_line(&text).to_owned());
    Ok(report)
}

/// Writes random bytes from `ip` until `stop`, reconnecting when the daemon closes the
/// connection: (bytes written, connections).
async fn flood_one(addr: SocketAddr, ip: IpAddr, seed: u64, stop: Instant) -> (u64, u64) {
    let mut rng = Rng::new(seed);
    let noise: Vec<u8> = (0..1 << 20).map(|_| rng.next_u64().to_le_bytes()[0]).collect();
    let (mut written, mut connects) = (0u64, 0u64);
    while Instant::now() < stop {
        let Ok(mut stream) = connect_from(ip, addr).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        connects += 1;
        while Instant::now() < stop {
            let at = usize::try_from(rng.next_u64() % (noise.len() as u64 - 65_536)).unwrap_or(0);
            match tokio::time::timeout(Duration::from_millis(500), stream.write(&noise[at..at + 65_536])).await {
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(n)) => written += n as u64,
                Err(_) => {}
            }
        }
    }
    (written, connects)
}

async fn flood(daemon: &Daemon, secs: u64, base: i64, report: &mut Report) {
    let before = metrics(daemon);
    let stop = Instant::now() + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..usize::from(FLOOD_ADDRESSES) * 2)
        .map(|i| {
            let ip = loopback(11 + u8::try_from(i / 2).unwrap_or(0));
            tokio::spawn(flood_one(daemon.addr, ip, 0xF100D + i as u64, stop))
        })
        .collect();
    let control = std::sync::Arc::new(logger::Control::default());
    let spec = logger::Spec {
        addr: daemon.addr,
        c: 0,
        base,
        window: 1,
        per_second: Some(50.0),
        ack_timeout: Some(Duration::from_secs(5)),
        bind: None,
    };
    let real = tokio::spawn(logger::run(spec, control.clone()));
    let (mut sent, mut connects) = (0, 0);
    for task in tasks {
        let (bytes, n) = task.await.unwrap_or_default();
        sent += bytes;
        connects += n;
    }
    control.stop_new.store(true, std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    control.give_up.store(true, std::sync::atomic::Ordering::Relaxed);
    let tally = real.await.unwrap_or_default();
    report_flood(report, &before, &metrics(daemon), (sent, connects), &tally);
}

/// The flood's figures from the daemon's counters before and after it.
fn report_flood(report: &mut Report, before: &str, after: &str, (sent, connects): (u64, u64), tally: &logger::Tally) {
    let delta = |series: &str| metric(after, series) - metric(before, series);
    let archived = delta("hj212_archive_written_bytes_total");
    let kept = delta("hj212_ingest_refused_kept_bytes_total");
    let bound = f64::from(FLOOD_ADDRESSES) * PER_PEER_BUDGET;
    let taken = delta("hj212_ingest_received_bytes_total");
    report.figure(
        "flood: random bytes written by the flooders (taken by the kernel) / read by the daemon / connections made",
        format!("{sent} B / {taken:.0} B / {connects}"),
    );
    report.figure(
        "flood: archive bytes written during it (all records) / refused bytes kept in full",
        format!("{archived:.0} B / {kept:.0} B ({:.3} % of what the daemon read)", archived * 100.0 / taken.max(1.0)),
    );
    report.figure(
        "flood: refused bytes only counted (summarised)",
        format!("{:.0} B", delta("hj212_ingest_refused_summarised_bytes_total")),
    );
    report.figure(
        "flood: connections closed after too many bad chunks",
        format!("{:.0}", delta("hj212_connections_closed_total{reason=\"bad_frames\"}")),
    );
    report.check(
        "a flood costs the disk at most the per-address budget (256 KiB per address and interval)",
        kept <= bound && sent > 0,
        format!("kept {kept:.0} B from {FLOOD_ADDRESSES} addresses, budget {bound:.0} B"),
    );
    let mut latencies = tally.latencies_us.clone();
    latencies.sort_unstable();
    report.check(
        "a real logger beside the flood is answered",
        !tally.acked.is_empty() && tally.unacked.is_empty(),
        format!(
            "{} frames acknowledged of {} sent, p99 {:.1} ms, max {:.1} ms",
            tally.acked.len(),
            tally.sent,
            super::percentile_ms(&latencies, 99),
            super::percentile_ms(&latencies, 100)
        ),
    );
}

async fn replay(daemon: &Daemon, report: &mut Report) -> Result<()> {
    const COPIES: usize = 2000;
    let frame = crate::realtime_frame(9999 + 12);
    let before = metrics(daemon);
    let stream = connect_from(loopback(21), daemon.addr).await?;
    let (mut reader, mut writer) = stream.into_split();
    let acks = tokio::spawn(async move {
        let (mut count, mut carry) = (0usize, Vec::new());
        let mut read = [0u8; 8192];
        while count < COPIES {
            match tokio::time::timeout(Duration::from_secs(30), reader.read(&mut read)).await {
                Ok(Ok(n)) if n > 0 => carry.extend_from_slice(&read[..n]),
                _ => break,
            }
            let text = String::from_utf8_lossy(&carry).into_owned();
            count += text.matches("CN=9014").count();
            let keep = text.rfind("\r\n").map_or(0, |i| i + 2);
            carry.drain(..keep.min(carry.len()));
        }
        count
    });
    let started = Instant::now();
    for _ in 0..COPIES {
        writer.write_all(&frame).await?;
    }
    let acked = acks.await.unwrap_or(0);
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = metrics(daemon);
    let delta = |series: &str| metric(&after, series) - metric(&before, series);
    let archived = delta("hj212_archive_written_bytes_total");
    let sent = (frame.len() * COPIES) as f64;
    report.figure(
        "replay: one valid frame of 9999 data bytes sent 2000 times / 9014s received",
        format!("{sent:.0} B / {acked} in {:.1} s", elapsed.as_secs_f64()),
    );
    report.figure(
        "replay: archive bytes written (the frame, the copies kept, every 9014 sent) / copies only counted",
        format!("{archived:.0} B / {:.0}", delta("hj212_ingest_refused_summarised_total{outcome=\"duplicate\"}")),
    );
    let bound = frame.len() as f64 + PER_PEER_BUDGET + COPIES as f64 * 400.0;
    report.check(
        "every replayed copy is answered, and the copies cost the disk at most the budget plus the replies",
        acked == COPIES && archived <= bound,
        format!("{acked}/{COPIES} answered; archived {archived:.0} B, bound {bound:.0} B (frame + 256 KiB + 400 B per reply)"),
    );
    Ok(())
}

/// Opens `count` connections from 127.0.0.`first` and up, `PER_ADDRESS` per address, each
/// sending `bytes` (nothing when empty).
async fn crowd(addr: SocketAddr, first: u8, count: usize, bytes: &[u8]) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(count);
    for i in 0..count {
        let ip = loopback(first + u8::try_from(i / PER_ADDRESS).unwrap_or(200));
        let Ok(mut stream) = connect_from(ip, addr).await else { break };
        if !bytes.is_empty() && stream.write_all(bytes).await.is_err() {
            continue;
        }
        streams.push(stream);
    }
    streams
}

async fn slowloris(daemon: &Daemon, count: usize, base: i64, report: &mut Report) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = daemon.rss_bytes();
    let held = crowd(daemon.addr, 31, count, b"#").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = daemon.rss_bytes();
    let open = metric(&metrics(daemon), "hj212_connections_active");
    let ack = first_ack(daemon.addr, base, 1).await;
    let per = after.saturating_sub(before) / held.len().max(1) as u64;
    report
        .figure("slowloris: connections holding one byte / open in the daemon", format!("{} / {open:.0}", held.len()));
    report.figure("slowloris: daemon RSS before → after", format!("{} → {} KiB", before / 1024, after / 1024));
    report.check(
        "a connection with one byte of a frame pending costs about what a silent one does (< 4 KiB)",
        per < 4096 && held.len() == count,
        format!("{per} bytes per connection over {} connections", held.len()),
    );
    report.check(
        "a real logger is answered during slowloris",
        ack.is_ok(),
        ack.map_or_else(|e| format!("{e:#}"), |d| format!("9014 {} after connecting", super::ms(d))),
    );
}

async fn silent(daemon: &Daemon, count: usize, base: i64, report: &mut Report) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = metrics(daemon);
    let mut held = crowd(daemon.addr, 41, count, b"").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ack = first_ack(daemon.addr, base, 2).await;
    let after = metrics(daemon);
    let mut byte = [0u8; 1];
    let closed = held.iter_mut().filter(|s| matches!(s.try_read(&mut byte), Ok(0))).count();
    let evicted = metric(&after, "hj212_connections_closed_total{reason=\"evicted\"}")
        - metric(&before, "hj212_connections_closed_total{reason=\"evicted\"}");
    report.figure(
        "silent: sockets opened / unauthenticated in the daemon / closed by it to make room",
        format!(
            "{} / {:.0} / {evicted:.0} (closed as seen by the clients: {closed})",
            held.len(),
            metric(&after, "hj212_connections_unauthenticated")
        ),
    );
    report.check(
        "thousands of silent sockets do not lock a logger out (9014 within 5 s)",
        ack.as_ref().is_ok_and(|d| *d < Duration::from_secs(5)),
        ack.map_or_else(|e| format!("{e:#}"), |d| format!("9014 {} after connecting", super::ms(d))),
    );
    drop(held);
}
