//! A daemon whose sealed segments are compressed (the default): its followers, `verify` and a
//! store rebuilt from scratch read the compressed segments as they read plain ones.

mod common;

use std::time::{Duration, Instant};

use common::*;
use hj212d::Daemon;

fn sealed_plain(archive: &std::path::Path) -> usize {
    let segments = hj212_archive::list_segments(archive).unwrap();
    segments[..segments.len() - 1].iter().filter(|(_, path)| !path.to_string_lossy().ends_with(".zst")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_rebuilt_from_compressed_segments_has_every_reading() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.archive.segment_max_bytes = 64 * 1024;
    assert!(config.archive.compress, "compression is the default");
    let running = Daemon::start(config.clone()).await.unwrap();
    let mut client = Client::connect(running.hj212_addr).await;
    for i in 0..600 {
        client.send(&realtime(&format!("20260101120{i:06}"), &beijing_in(-30 * i), 5)).await;
        assert_eq!(client.reply().await.cn, 9014);
    }
    drop(client);
    let archive = dir.path().join("archive");
    let deadline = Instant::now() + Duration::from_secs(20);
    while sealed_plain(&archive) > 0 {
        assert!(Instant::now() < deadline, "sealed segments were not compressed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.stop().await.unwrap();
    let readings = stored(dir.path(), MN);
    assert_eq!(readings.len(), 1200, "two factors per frame");
    let report = hj212_archive::verify(&archive).unwrap();
    assert!(report.compressed_segments >= 2, "{report:?}");
    assert!(report.file_bytes * 3 < report.plain_bytes, "{report:?}");

    // The store is gone: the daemon rebuilds it from the archive, mostly compressed.
    for name in ["store.sqlite", "store.sqlite-wal", "store.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.path().join(name));
    }
    let running = Daemon::start(config).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while stored(dir.path(), MN).len() < readings.len() {
        assert!(Instant::now() < deadline, "the store did not catch up from the compressed archive");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let readings_after = stored(dir.path(), MN);
    assert_eq!(readings_after, readings, "the same readings, from the same records");

    // Going back to plain segments: refused while the daemon runs, then done and checked.
    let unpack_config = dir.path().join("unpack.toml");
    let toml = format!("[server]\ndata_dir = \"{}\"\n[archive]\ncompress = false\n", dir.path().display());
    std::fs::write(&unpack_config, toml).unwrap();
    let unpack = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_hj212d"))
            .arg("unpack-archive")
            .arg(&unpack_config)
            .output()
            .unwrap()
    };
    let refused = unpack();
    assert_eq!(refused.status.code(), Some(75), "{}", String::from_utf8_lossy(&refused.stderr));
    running.stop().await.unwrap();
    let done = unpack();
    assert_eq!(done.status.code(), Some(0), "{}", String::from_utf8_lossy(&done.stderr));
    assert!(String::from_utf8_lossy(&done.stdout).contains("compressed segments unpacked"));
    let report = hj212_archive::verify(&archive).unwrap();
    assert_eq!(report.compressed_segments, 0, "{report:?}");
}
