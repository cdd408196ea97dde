//! Hostile peers over real TCP on loopback: floods of garbage and replays are archived within
//! a per-peer budget plus one summary, silent and surplus connections are closed, and none of
//! it keeps a logger from connecting, being answered and being stored.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::*;
use hj212_archive::{Kind, Record, Verdict};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LOGGER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const HOSTILE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const FIRST_FRAME: &str = "hj212_connections_closed_total{reason=\"first_frame_timeout\"}";
const PER_PEER: &str = "hj212_connections_refused_total{reason=\"per_peer\"}";
const EVICTED: &str = "hj212_connections_closed_total{reason=\"evicted\"}";
const SUMMARIES: &str = "hj212_ingest_refused_summaries_total";

/// Deterministic noise (xorshift), as random as a flood needs to be.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed.to_le_bytes()[0]
        })
        .collect()
}

fn from(record: &Record, ip: IpAddr) -> bool {
    record.peer == ip.to_string() || record.peer.starts_with(&format!("{ip}:"))
}

fn summaries(records: &[Record], ip: IpAddr) -> Vec<serde_json::Value> {
    records
        .iter()
        .filter(|r| r.verdict == Verdict::RefusedSummary && from(r, ip))
        .map(|r| serde_json::from_slice(&r.data).unwrap())
        .collect()
}

/// Bytes of `verdict` records from `ip` archived in full.
fn kept(records: &[Record], ip: IpAddr, verdict: Verdict) -> (usize, usize) {
    let kept: Vec<&Record> =
        records.iter().filter(|r| r.kind == Kind::Received && r.verdict == verdict && from(r, ip)).collect();
    (kept.len(), kept.iter().map(|r| r.data.len()).sum())
}

/// Sends `bytes`, half-closes, and waits for the daemon to finish with the connection.
async fn send_all_and_close(mut client: Client, bytes: &[u8]) {
    client.send(bytes).await;
    client.stream.shutdown().await.unwrap();
    assert!(client.closed_within(Duration::from_secs(8)).await, "the daemon reads everything, then closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_random_bytes_is_archived_within_the_budget_plus_one_summary() {
    const BUDGET: u64 = 16 * 1024;
    const CONNECTIONS: u64 = 16;
    const PER_CONNECTION: usize = 128 * 1024;
    let daemon = TestDaemon::start_with(|c| {
        c.limits.refused_bytes_per_peer = BUDGET;
        c.limits.max_bad_frames = u32::MAX;
    })
    .await;
    let addr = daemon.running.hj212_addr;
    let floods: Vec<_> = (0..CONNECTIONS)
        .map(|seed| {
            tokio::spawn(async move {
                let client = Client::connect_from(HOSTILE, addr).await;
                send_all_and_close(client, &noise(PER_CONNECTION, seed + 1)).await;
            })
        })
        .collect();
    // A logger elsewhere is served as usual meanwhile.
    let mut logger = Client::connect_from(LOGGER, addr).await;
    logger.send(&realtime("20260101120000001", &beijing_in(0), 5)).await;
    assert_eq!(logger.reply().await.cn, 9014);
    for flood in floods {
        flood.await.unwrap();
    }
    drop(logger);
    let dir = daemon.stop().await;
    let records = records(dir.path());
    let (_, bytes) = kept(&records, HOSTILE, Verdict::Unframed);
    assert!(bytes as u64 <= BUDGET, "{bytes} bytes of garbage archived, budget {BUDGET}");
    let summaries = summaries(&records, HOSTILE);
    assert_eq!(summaries.len(), 1, "one summary for the peer and interval, whatever its connections: {summaries:?}");
    let summary = &summaries[0];
    assert_eq!(summary["kept_bytes"].as_u64(), Some(bytes as u64));
    let counted = bytes as u64 + summary["summarised_bytes"].as_u64().unwrap();
    let sent = CONNECTIONS * PER_CONNECTION as u64;
    // Only whitespace between chunks is skipped rather than counted.
    assert!(counted <= sent && counted > sent * 9 / 10, "{counted} of {sent} bytes accounted for");
    assert!(summary["summarised"]["unframed"].as_u64().unwrap() > 0);
    assert!(!summary["first_bytes"].as_str().unwrap().is_empty());
    let archive_bytes: u64 = std::fs::read_dir(dir.path().join("archive"))
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().len())
        .sum();
    assert!(archive_bytes < 64 * 1024, "{archive_bytes} bytes of archive for {sent} bytes of garbage");
    assert_eq!(kept(&records, LOGGER, Verdict::Accepted).0, 1);
    assert_eq!(stored(dir.path(), MN).len(), 2, "the logger's frame is stored (two factors)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_frame_replayed_is_answered_every_time_and_archived_within_the_budget() {
    const BUDGET: u64 = 8 * 1024;
    const COPIES: usize = 1500;
    let daemon = TestDaemon::start_with(|c| c.limits.refused_bytes_per_peer = BUDGET).await;
    let frame = realtime("20260101120000001", &beijing_in(0), 5);
    let stream = tokio::net::TcpStream::connect(daemon.running.hj212_addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let copies = frame.repeat(COPIES);
    let write = tokio::spawn(async move { writer.write_all(&copies).await.unwrap() });
    let mut received = Vec::new();
    let replies = |bytes: &[u8]| bytes.windows(8).filter(|w| w == b"CN=9014;").count();
    while replies(&received) < COPIES {
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), reader.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "closed after {} replies", replies(&received));
        received.extend_from_slice(&chunk[..n]);
    }
    write.await.unwrap();
    drop((reader, received));
    let dir = daemon.stop().await;
    let records = records(dir.path());
    assert_eq!(kept(&records, LOGGER, Verdict::Accepted).0, 1);
    let (copies_kept, bytes) = kept(&records, LOGGER, Verdict::Duplicate);
    // The budget, plus the few copies read before the original was on disk (always kept).
    assert!(bytes as u64 <= BUDGET + 4 * frame.len() as u64, "{copies_kept} copies, {bytes} bytes archived");
    let summaries = summaries(&records, LOGGER);
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    let summarised = summaries[0]["summarised"]["duplicate"].as_u64().unwrap();
    assert_eq!(copies_kept as u64 + summarised, COPIES as u64 - 1, "every copy is archived or counted");
    assert_eq!(stored(dir.path(), MN).len(), 2, "stored once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_an_authenticated_frame_is_closed_at_the_first_frame_deadline() {
    let daemon = TestDaemon::start_with(|c| c.limits.first_frame_timeout_secs = 1).await;
    let closed = daemon.metric(FIRST_FRAME);
    let mut silent = daemon.client().await;
    let mut slow = daemon.client().await;
    let mut logger = daemon.client().await;
    logger.send(&realtime("20260101120000001", &beijing_in(0), 5)).await;
    assert_eq!(logger.reply().await.cn, 9014);
    // A slowloris: the start of a frame, then a byte every 200 ms (never idle, never done).
    slow.send(b"##0100QN=").await;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if slow.stream.write_all(b"1").await.is_err() {
            break;
        }
    }
    assert!(silent.closed_within(Duration::from_secs(1)).await, "the silent connection is closed after 1 s");
    assert!(slow.closed_within(Duration::from_secs(1)).await, "the slow one too");
    assert_eq!(daemon.wait_metric(FIRST_FRAME, closed + 2).await, closed + 2);
    // The logger authenticated: only the idle timeout applies to it.
    logger.send(&realtime("20260101120000002", &beijing_in(0), 5)).await;
    assert_eq!(logger.reply().await.cn, 9014);
    let dir = daemon.stop().await;
    let partial =
        archived(dir.path()).into_iter().filter(|(v, _, text)| v == "unframed" && text.starts_with("##0100QN="));
    assert_eq!(partial.count(), 1, "the slow connection's partial frame is archived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_the_per_peer_limit_is_refused() {
    let daemon = TestDaemon::start_with(|c| c.limits.max_connections_per_peer = 2).await;
    let refused = daemon.metric(PER_PEER);
    let addr = daemon.running.hj212_addr;
    let mut first = Client::connect_from(LOGGER, addr).await;
    let mut second = Client::connect_from(LOGGER, addr).await;
    for (i, client) in [&mut first, &mut second].into_iter().enumerate() {
        client.send(&realtime(&format!("2026010112000000{i}"), &beijing_in(0), 5)).await;
        assert_eq!(client.reply().await.cn, 9014);
    }
    let mut third = Client::connect_from(LOGGER, addr).await;
    assert!(third.closed_within(Duration::from_secs(2)).await, "a third connection from one address is closed");
    assert_eq!(daemon.wait_metric(PER_PEER, refused + 1).await, refused + 1);
    let mut elsewhere = Client::connect_from(HOSTILE, addr).await;
    elsewhere.send(&realtime("20260101120000005", &beijing_in(0), 5)).await;
    assert_eq!(elsewhere.reply().await.cn, 9014, "another address has its own limit");
    drop(first);
    // Once one closes, the address may connect again.
    let mut again = None;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut client = Client::connect_from(LOGGER, addr).await;
        client.send(&realtime("20260101120000006", &beijing_in(0), 5)).await;
        if let Some(reply) = client.reply_within(Duration::from_millis(500)).await {
            again = Some(reply.cn);
            break;
        }
    }
    assert_eq!(again, Some(9014));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_from_one_address_do_not_lock_a_logger_out() {
    let daemon = TestDaemon::start_with(|c| {
        c.limits.max_connections = 20;
        c.limits.max_unauthenticated = 10;
    })
    .await;
    let evicted = daemon.metric(EVICTED);
    let addr = daemon.running.hj212_addr;
    let mut silent = Vec::new();
    for _ in 0..50 {
        silent.push(Client::connect_from(HOSTILE, addr).await);
    }
    // Let the daemon accept them all (each one beyond 10 evicts an older one).
    daemon.wait_metric(EVICTED, evicted + 40).await;
    let mut logger = Client::connect_from(LOGGER, addr).await;
    logger.send(&realtime("20260101120000001", &beijing_in(0), 5)).await;
    assert_eq!(logger.reply().await.cn, 9014, "the logger gets in and is answered");
    assert_eq!(daemon.wait_metric(EVICTED, evicted + 41).await, evicted + 41);
    assert!(silent[0].closed_within(Duration::from_secs(1)).await, "the oldest silent socket was closed");
    // Further silent sockets evict each other, never the authenticated logger.
    for _ in 0..20 {
        silent.push(Client::connect_from(HOSTILE, addr).await);
    }
    logger.send(&realtime("20260101120000002", &beijing_in(0), 5)).await;
    assert_eq!(logger.reply().await.cn, 9014);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_still_raises_its_alert_after_the_budget_is_spent() {
    let daemon = TestDaemon::start_with(|c| {
        c.limits.refused_bytes_per_peer = 1024;
        c.limits.max_bad_frames = u32::MAX;
    })
    .await;
    let mut client = daemon.client().await;
    // Small rejected chunks, so the budget is spent down to a few bytes (one large chunk
    // would be summarised and leave it untouched).
    client.send(&b"##00x1 not a frame at all ".repeat(200)).await;
    let wrong = frame(&format!(
        "QN=20260101120000001;ST=31;CN=2011;PW=999999;MN={MN};Flag=5;CP=&&DataTime={};a21026-Rtd=1&&",
        beijing_in(0)
    ));
    client.send(&wrong).await;
    // Good frames from the same peer are answered and stored whatever its budget.
    client.send(&realtime("20260101120000002", &beijing_in(0), 5)).await;
    assert_eq!(client.reply().await.cn, 9014);
    let mut alerts = String::new();
    for _ in 0..50 {
        alerts = daemon.http("/api/v1/alerts?state=all").1;
        if alerts.contains("auth_failure") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(alerts.contains("\"auth_failure\""), "{alerts}");
    drop(client);
    let dir = daemon.stop().await;
    let records = records(dir.path());
    assert_eq!(kept(&records, LOGGER, Verdict::BadPassword).0, 1, "kept in full beyond the budget");
    assert!(kept(&records, LOGGER, Verdict::Unframed).1 <= 1024);
    assert_eq!(stored(dir.path(), MN).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_is_appended_at_the_end_of_each_interval() {
    let daemon = TestDaemon::start_with(|c| {
        c.limits.refused_interval_secs = 1;
        c.limits.refused_bytes_per_peer = 1024;
        c.limits.max_bad_frames = u32::MAX;
    })
    .await;
    let before = daemon.metric(SUMMARIES);
    let mut client = daemon.client().await;
    client.send(&noise(16 * 1024, 3)).await;
    assert!(daemon.wait_metric(SUMMARIES, before + 1).await > before, "a summary while the daemon runs");
    let after_first = daemon.metric(SUMMARIES);
    client.send(&noise(16 * 1024, 4)).await;
    assert!(daemon.wait_metric(SUMMARIES, after_first + 1).await > after_first, "and one for the next interval");
    drop(client);
    let dir = daemon.stop().await;
    let summaries = summaries(&records(dir.path()), LOGGER);
    assert!(summaries.len() >= 2, "{summaries:?}");
    for pair in summaries.windows(2) {
        assert!(pair[0]["to_ms"].as_i64() <= pair[1]["from_ms"].as_i64(), "intervals do not overlap: {pair:?}");
    }
}
