//! The promise across restarts and failing disks: a resend after a restart is stored once,
//! a full disk stops acknowledgements until space is freed and then they resume, and a
//! daemon refuses to start on an archive that lost records a checkpoint signed.

mod common;

use std::time::{Duration, Instant};

use common::*;
use hj212d::Daemon;

fn verdicts(data_dir: &std::path::Path) -> Vec<String> {
    archived(data_dir).into_iter().map(|(verdict, _, _)| verdict).collect()
}

#[tokio::test]
async fn a_resend_after_a_restart_is_answered_and_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let frame = realtime("20260101120000000", &beijing_in(0), 5);
    let running = Daemon::start(config(dir.path())).await.unwrap();
    let mut client = Client::connect(running.hj212_addr).await;
    client.send(&frame).await;
    assert_eq!(client.reply().await.cn, 9014);
    drop(client);
    running.stop().await.unwrap();

    // The 9014 was lost on the way: after the restart the logger sends the same frame again.
    let running = Daemon::start(config(dir.path())).await.unwrap();
    let mut client = Client::connect(running.hj212_addr).await;
    client.send(&frame).await;
    assert_eq!(client.reply().await.cn, 9014, "a resend is answered");
    drop(client);
    running.stop().await.unwrap();
    let received: Vec<String> =
        verdicts(dir.path()).into_iter().filter(|v| v == "accepted" || v == "duplicate").collect();
    assert_eq!(received, ["accepted", "duplicate"], "stored once, as without the restart");
    assert_eq!(stored(dir.path(), MN).len(), 2, "its two readings, once each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_acknowledgements_until_space_is_freed() {
    let disk = test_support::Tmpfs::mount(24 << 20);
    let data_dir = disk.path().join("data");
    let mut config = config(&data_dir);
    config.archive.resume_free_bytes = 4 << 20;
    let running = Daemon::start(config).await.unwrap();
    let http = running.http_addr;
    let mut client = Client::connect(running.hj212_addr).await;
    client.send(&realtime("20260101120000001", &beijing_in(0), 5)).await;
    assert_eq!(client.reply().await.cn, 9014);

    disk.fill("filler");
    // The segment's last block may still take a few small records; then nothing is acknowledged.
    let refused = 'refused: {
        for i in 0..60 {
            let qn = format!("20260101120001{i:03}");
            client.send(&realtime(&qn, &beijing_in(0), 5)).await;
            if client.reply_within(Duration::from_secs(2)).await.is_none() {
                break 'refused qn;
            }
        }
        panic!("60 frames acknowledged on a full disk");
    };
    let (status, body) = tokio::task::spawn_blocking(move || http_get(http, "/readyz")).await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("archive"), "{body}");

    std::fs::remove_file(disk.path().join("filler")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let acked = loop {
        assert!(Instant::now() < deadline, "acknowledgements did not resume after space was freed");
        let mut client = Client::connect(running.hj212_addr).await;
        client.send(&realtime("20260101120000003", &beijing_in(0), 5)).await;
        if let Some(reply) = client.reply_within(Duration::from_secs(1)).await {
            break reply;
        }
    };
    assert_eq!(acked.cn, 9014);
    let (status, body) = tokio::task::spawn_blocking(move || http_get(http, "/readyz")).await.unwrap();
    assert_eq!(status, 200, "{body}");
    running.shutdown_token().cancel();
    let _ = running.stop().await;
    let report = hj212_archive::verify(&data_dir.join("archive")).expect("the chain is whole");
    assert!(report.checkpoints >= 1);
    let records = hj212_archive::Follower::new(&data_dir.join("archive"), 1).read(u64::MAX, 10_000).unwrap();
    let texts: Vec<String> = records.iter().map(|r| String::from_utf8_lossy(&r.data).into_owned()).collect();
    assert!(texts.iter().any(|t| t.starts_with("resumed after a write failure")), "the outage is in the chain");
    assert!(!texts.iter().any(|t| t.contains(&refused)), "the refused frame was not written");
}

#[tokio::test]
async fn a_daemon_refuses_an_archive_that_lost_signed_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.archive.segment_max_bytes = 64 * 1024;
    let running = Daemon::start(config.clone()).await.unwrap();
    let mut client = Client::connect(running.hj212_addr).await;
    for i in 0..400 {
        client.send(&realtime(&format!("20260101120{i:06}"), &beijing_in(-i), 5)).await;
        client.reply().await;
    }
    drop(client);
    running.stop().await.unwrap();
    let segments = hj212_archive::list_segments(&dir.path().join("archive")).unwrap();
    assert!(segments.len() > 1);
    std::fs::remove_file(&segments.last().unwrap().1).unwrap();
    let error = Daemon::start(config).await.unwrap_err();
    assert!(
        matches!(error.downcast_ref(), Some(hj212_archive::ArchiveError::Corrupt { .. })),
        "refused as damaged: {error:#}"
    );
}

/// A follower failing on every retry (here the store, its database locked by another
/// process) shows: its lag keeps counting, a failing gauge, and `/readyz` says 503 with the
/// reason; once the lock is gone it catches up and the daemon is ready again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_follower_is_visible_in_its_lag_and_readyz() {
    let daemon = TestDaemon::start().await;
    let http = daemon.running.http_addr;
    let get = |path: &'static str| tokio::task::spawn_blocking(move || http_get(http, path));
    let blocker = rusqlite::Connection::open(daemon.dir.path().join("store.sqlite")).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let mut client = daemon.client().await;
    for i in 0..5 {
        client.send(&realtime(&format!("20260101120000{i:03}"), &beijing_in(-i), 5)).await;
        assert_eq!(client.reply().await.cn, 9014, "ingest goes on while the store is stuck");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (status, body) = get("/readyz").await.unwrap();
        if status == 503 {
            break body;
        }
        assert!(Instant::now() < deadline, "readyz stayed {status}: {body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(body.contains("store failing for") && body.contains("locked"), "{body}");
    let metrics = get("/metrics").await.unwrap().1;
    assert!(metric(&metrics, r#"hj212_follower_lag_records{follower="store"}"#) >= 5, "{metrics}");
    let seconds = |series: &str| -> f64 {
        let line = metrics.lines().find(|l| l.starts_with(series)).unwrap_or_else(|| panic!("{series}: {metrics}"));
        line[series.len()..].trim().parse().unwrap()
    };
    assert!(seconds(r#"hj212_follower_failing_seconds{follower="store"}"#) >= 9.0, "refreshed every 0.5 s");
    assert!(seconds(r#"hj212_follower_failing_seconds{follower="alerts"}"#) < 0.001);

    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = get("/readyz").await.unwrap();
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the store did not recover: {body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let dir = daemon.stop().await;
    assert_eq!(stored(dir.path(), MN).len(), 10, "every reading arrived once the store could write");
}
