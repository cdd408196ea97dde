//! `[store] readings_retention_days`: the daemon's store deletes readings older than it from
//! its follower's tick (a pass at start, then one an hour while there is nothing to delete)
//! and counts them; the archive keeps every frame.

mod common;

use common::{MN, TestDaemon, archived, beijing_in, config, realtime, stored};

const DELETED: &str = "hj212_store_deleted_rows_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_past_the_retention_are_deleted_and_counted_the_archive_keeps_them() {
    let retention = |c: &mut hj212_config::Config| {
        c.store.readings_retention_days = 40;
        c.followers.tick_ms = 100;
    };
    let daemon = TestDaemon::start_with(retention).await;
    let mut client = daemon.client().await;
    // A logger's memory replayed: 60 days old, then today's record.
    client.send(&realtime("20260101120000001", &beijing_in(-60 * 86_400), 5)).await;
    assert_eq!(client.reply().await.cn, 9014);
    client.send(&realtime("20260101120000002", &beijing_in(0), 5)).await;
    assert_eq!(client.reply().await.cn, 9014);
    drop(client);
    let dir = daemon.stop().await;
    assert_eq!(stored(dir.path(), MN).len(), 4, "stored when they came: the pass at start had nothing to delete");

    let mut again = config(dir.path());
    retention(&mut again);
    let running = hj212d::Daemon::start(again).await.unwrap();
    let mut deleted = 0;
    for _ in 0..40 {
        deleted = common::metric(&common::http_get(running.http_addr, "/metrics").1, DELETED);
        if deleted >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    running.stop().await.unwrap();
    assert_eq!(deleted, 2, "the old record's two readings, at the next start's pass");
    let rows = stored(dir.path(), MN);
    assert_eq!(rows.len(), 2, "today's two readings are left: {rows:?}");
    assert!(rows.iter().all(|r| r.data_time == rows[0].data_time));
    assert_eq!(archived(dir.path()).len(), 2, "the archive keeps both frames");
}
