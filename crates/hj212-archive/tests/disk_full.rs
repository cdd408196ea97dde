//! A full disk: appends are refused (never acknowledged) while it is full, and taken again,
//! without a restart, once space is freed; the chain records the outage.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hj212_archive::{Archive, Follower, Kind, NewRecord, NoObserver, Settings, Verdict, verify};
use test_support::Tmpfs;

fn settings(dir: &Path) -> Settings {
    Settings::in_dir(dir)
}

fn frame(i: usize) -> NewRecord {
    NewRecord {
        kind: Kind::Received,
        verdict: Verdict::Accepted,
        flags: 0,
        time_ms: 1_700_000_000_000,
        peer: "127.0.0.1:40000".into(),
        data: format!("##0010frame {i:04}{}XXXX\r\n", "x".repeat(2000)).into_bytes(),
    }
}

#[tokio::test]
async fn a_full_disk_refuses_appends_then_resumes_once_space_is_freed() {
    let fs = Tmpfs::mount(4 << 20);
    let dir = fs.path().join("archive");
    let mut settings = settings(&dir);
    settings.resume_free_bytes = 1 << 20;
    let (archive, thread, _) = Archive::open(settings, Arc::new(NoObserver)).unwrap();
    assert_eq!(archive.append(frame(0)).await.unwrap(), 1);
    fs.fill("filler");
    let error = archive.append(frame(1)).await.unwrap_err();
    assert!(error.to_string().contains("No space left"), "{error}");
    assert!(!archive.is_healthy());
    // Retries keep failing while the disk is full: still refused, still not healthy.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(archive.append(frame(2)).await.is_err());
    assert!(!archive.is_healthy());

    std::fs::remove_file(fs.path().join("filler")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !archive.is_healthy() {
        assert!(Instant::now() < deadline, "the archive did not resume after space was freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seq = archive.append(frame(3)).await.unwrap();
    drop(archive);
    thread.join();
    let report = verify(&dir).expect("the chain is whole after the outage");
    assert_eq!(report.last_seq, seq);
    let records = Follower::new(&dir, 1).read(seq, 100).unwrap();
    let kinds: Vec<String> = records
        .iter()
        .map(|r| if r.kind == Kind::Event { String::from_utf8_lossy(&r.data).into_owned() } else { "frame".into() })
        .collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert!(kinds[1].starts_with("resumed after a write failure"), "{kinds:?}");
    assert!(kinds[1].contains("1 appends refused"), "{kinds:?}");
    assert_eq!(records[2].data, frame(3).data, "only the frame after the outage was written, nothing refused");
}

/// A new segment that cannot be created (no descriptor left, no space for its header, here a
/// folder in the way) costs no record: appends go on in the current segment, and the rotation
/// is tried again later and succeeds once the cause is gone.
#[tokio::test]
async fn a_segment_that_cannot_be_created_is_retried_and_costs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(dir.path());
    settings.segment_max_bytes = 64 * 1024;
    let (archive, thread, _) = Archive::open(settings, Arc::new(NoObserver)).unwrap();
    // Each frame is ~2 KiB: the 32nd fills the first segment, whose successor starts at 33.
    let blocker = dir.path().join(hj212_archive::segment_name(33));
    std::fs::create_dir(&blocker).unwrap();
    for i in 0..60 {
        assert_eq!(archive.append(frame(i)).await.unwrap(), i as u64 + 1, "appends go on");
    }
    assert!(archive.is_healthy());
    assert_eq!(
        hj212_archive::list_segments(dir.path()).unwrap().len(),
        2,
        "the first segment and the folder in the way"
    );
    std::fs::remove_dir(&blocker).unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(archive.append(frame(60)).await.unwrap(), 61);
    drop(archive);
    thread.join();
    let segments = hj212_archive::list_segments(dir.path()).unwrap();
    assert_eq!(segments.len(), 2, "rotated once the way was clear");
    assert!(segments[1].0 > 33);
    assert_eq!(verify(dir.path()).unwrap().last_seq, 61);
}
