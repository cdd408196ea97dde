//! The archive on a real file system: durability, chain verification, tampering, torn
//! tails, rotation, retention and following.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hj212_archive::{Archive, Follower, Kind, NewRecord, NoObserver, Settings, Verdict, list_segments, verify};

fn settings(dir: &Path) -> Settings {
    Settings::in_dir(dir)
}

fn frame(i: usize) -> NewRecord {
    NewRecord {
        kind: Kind::Received,
        verdict: Verdict::Accepted,
        flags: 0,
        time_ms: 1_700_000_000_000 + i64::try_from(i).unwrap(),
        peer: "127.0.0.1:40000".into(),
        data: format!("##0010frame {i:04}XXXX\r\n").into_bytes(),
    }
}

async fn write(settings: Settings, count: usize) -> Vec<u64> {
    let (archive, thread, _) = Archive::open(settings, Arc::new(NoObserver)).unwrap();
    // Batches of 100 (each waits for its fsync), so segments rotate the same way every run.
    let mut seqs = Vec::new();
    for chunk in (0..count).collect::<Vec<_>>().chunks(100) {
        let mut pending = Vec::new();
        for i in chunk {
            pending.push(archive.submit(frame(*i)).await.unwrap());
        }
        for p in pending {
            seqs.push(p.durable().await.unwrap());
        }
    }
    drop(archive);
    thread.join();
    seqs
}

#[tokio::test]
async fn appends_are_numbered_durable_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let seqs = write(settings(dir.path()), 2000).await;
    assert_eq!(seqs, (1..=2000).collect::<Vec<u64>>());
    let report = verify(dir.path()).unwrap();
    assert_eq!((report.records, report.first_seq, report.last_seq), (2000, 1, 2000));
    assert!(report.segments > 1, "64 KiB segments rotated: {}", report.segments);
    assert!(!report.incomplete_tail);
    // Reopening continues the chain.
    let more = write(settings(dir.path()), 10).await;
    assert_eq!(more, (2001..=2010).collect::<Vec<u64>>());
    assert_eq!(verify(dir.path()).unwrap().last_seq, 2010);
}

#[tokio::test]
async fn a_flipped_byte_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write(settings(dir.path()), 300).await;
    let (_, first) = &list_segments(dir.path()).unwrap()[0];
    let mut bytes = std::fs::read(first).unwrap();
    let at = bytes.windows(10).position(|w| w == b"frame 0100").unwrap();
    bytes[at + 6] = b'9';
    std::fs::write(first, &bytes).unwrap();
    let broken = verify(dir.path()).unwrap_err();
    assert_eq!(broken.seq, 101);
    assert_eq!(&broken.segment, first);
    assert!(broken.to_string().contains("record seq 101 hash does not match"), "{broken}");
}

#[tokio::test]
async fn a_removed_segment_or_record_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    write(settings(dir.path()), 2000).await;
    let segments = list_segments(dir.path()).unwrap();
    std::fs::remove_file(&segments[1].1).unwrap();
    let broken = verify(dir.path()).unwrap_err();
    assert!(broken.problem.contains("does not continue the chain"), "{broken}");

    let dir = tempfile::tempdir().unwrap();
    write(settings(dir.path()), 2000).await;
    let segments = list_segments(dir.path()).unwrap();
    std::fs::remove_file(&segments[0].1).unwrap();
    let broken = verify(dir.path()).unwrap_err();
    assert!(broken.problem.contains("no retention record explains"), "{broken}");
}

#[tokio::test]
async fn torn_tail_is_cut_kept_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    write(settings(dir.path()), 100).await;
    let (_, last) = list_segments(dir.path()).unwrap().pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    // A crash in the middle of a write: half a record at the end.
    let file = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
    file.set_len(len - 7).unwrap();
    drop(file);
    assert!(verify(dir.path()).unwrap().incomplete_tail);
    let (archive, thread, recovery) = Archive::open(settings(dir.path()), Arc::new(NoObserver)).unwrap();
    let (segment, cut_at, cut_len, kept) = recovery.truncated.clone().expect("torn tail reported");
    assert_eq!(segment, last);
    assert!(cut_len > 0 && cut_at + cut_len == len - 7);
    assert!(kept.exists());
    assert_eq!(recovery.next_seq, 100, "record 100 was torn; the next write reuses its number");
    assert_eq!(archive.append(frame(100)).await.unwrap(), 100);
    drop(archive);
    thread.join();
    let report = verify(dir.path()).unwrap();
    assert_eq!((report.last_seq, report.incomplete_tail), (100, false));
}

#[tokio::test]
async fn retention_removes_old_segments_and_says_so_in_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.retention = Some(Duration::ZERO);
    write(s.clone(), 3000).await;
    let segments = list_segments(dir.path()).unwrap();
    assert!(segments[0].0 > 1, "old segments were removed");
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.first_seq, segments[0].0);
    assert!(report.last_seq > 3000, "retention events are records too");
}

#[tokio::test]
async fn follower_reads_across_segments_up_to_the_durable_point() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, thread, _) = Archive::open(settings(dir.path()), Arc::new(NoObserver)).unwrap();
    for i in 0..1500 {
        archive.submit(frame(i)).await.unwrap();
    }
    let last = archive.append(frame(1500)).await.unwrap();
    let durable = *archive.durable().borrow();
    assert_eq!(durable, last);
    let mut follower = Follower::new(dir.path(), 1);
    let mut seen = Vec::new();
    loop {
        let batch = follower.read(durable, 100).unwrap();
        if batch.is_empty() {
            break;
        }
        seen.extend(batch.into_iter().map(|r| r.seq));
    }
    assert_eq!(seen, (1..=1501).collect::<Vec<u64>>());
    // A follower can start anywhere.
    let mut mid = Follower::new(dir.path(), 777);
    assert_eq!(mid.read(durable, 3).unwrap().iter().map(|r| r.seq).collect::<Vec<_>>(), [777, 778, 779]);
    drop(archive);
    thread.join();
}

#[tokio::test]
async fn damage_in_the_middle_is_not_mistaken_for_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    write(settings(dir.path()), 100).await;
    let (_, last) = list_segments(dir.path()).unwrap().pop().unwrap();
    let before = std::fs::read(&last).unwrap();
    let mut bytes = before.clone();
    let at = bytes.windows(10).position(|w| w == b"frame 0050").unwrap();
    bytes[at] = b'F';
    std::fs::write(&last, &bytes).unwrap();
    let error = Archive::open(settings(dir.path()), Arc::new(NoObserver)).unwrap_err();
    assert!(error.to_string().contains("is damaged at byte"), "{error}");
    assert_eq!(std::fs::read(&last).unwrap(), bytes, "nothing was cut");

    // A zero-filled tail (blocks allocated, data never written) is a crash, and is cut.
    let mut zeros = before;
    zeros.extend_from_slice(&[0u8; 300]);
    std::fs::write(&last, &zeros).unwrap();
    let (archive, thread, recovery) = Archive::open(settings(dir.path()), Arc::new(NoObserver)).unwrap();
    assert_eq!(recovery.truncated.unwrap().2, 300);
    drop(archive);
    thread.join();
}

#[tokio::test]
async fn a_segment_cut_off_while_being_created_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    write(settings(dir.path()), 50).await;
    // The crash came after the new file existed but before its header was complete.
    std::fs::write(dir.path().join(hj212_archive::segment_name(51)), b"HJ212A").unwrap();
    let (archive, thread, recovery) = Archive::open(settings(dir.path()), Arc::new(NoObserver)).unwrap();
    assert_eq!(recovery.next_seq, 51);
    assert!(recovery.truncated.unwrap().3.to_string_lossy().ends_with(".hjar.unfinished"));
    assert_eq!(archive.append(frame(50)).await.unwrap(), 51);
    drop(archive);
    thread.join();
    assert_eq!(verify(dir.path()).unwrap().last_seq, 51);
}

#[tokio::test]
async fn a_new_segment_whose_header_is_still_zeros_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    write(settings(dir.path()), 50).await;
    // The blocks of the new file were allocated, its header never written.
    std::fs::write(dir.path().join(hj212_archive::segment_name(51)), [0u8; 57]).unwrap();
    let (archive, thread, recovery) = Archive::open(settings(dir.path()), Arc::new(NoObserver)).unwrap();
    assert_eq!(recovery.next_seq, 51);
    assert!(recovery.truncated.unwrap().3.to_string_lossy().ends_with(".hjar.unfinished"));
    assert_eq!(archive.append(frame(50)).await.unwrap(), 51);
    drop(archive);
    thread.join();
    assert_eq!(verify(dir.path()).unwrap().last_seq, 51);
}

#[tokio::test]
async fn retention_keeps_what_a_follower_still_needs() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.retention = Some(Duration::ZERO);
    let (archive, thread, _) = Archive::open(s, Arc::new(NoObserver)).unwrap();
    archive.set_retention_floor(1); // a follower has consumed nothing yet
    for chunk in 0..30 {
        let mut pending = Vec::new();
        for i in 0..100 {
            pending.push(archive.submit(frame(chunk * 100 + i)).await.unwrap());
        }
        for p in pending {
            p.durable().await.unwrap();
        }
    }
    drop(archive);
    thread.join();
    let segments = list_segments(dir.path()).unwrap();
    assert_eq!(segments[0].0, 1, "nothing removed while the follower is at seq 1");
    assert!(segments.len() > 2);
}

#[tokio::test]
async fn the_queue_is_bounded_by_bytes_and_big_records_still_pass() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.queue_bytes = 100;
    let (archive, thread, _) = Archive::open(s, Arc::new(NoObserver)).unwrap();
    let mut big = frame(0);
    big.data = vec![b'x'; 10_000];
    assert_eq!(archive.append(big).await.unwrap(), 1, "a record larger than the budget passes alone");
    // Many small ones at once: submits wait for budget instead of piling up in memory.
    let mut pending = Vec::new();
    for i in 0..50 {
        let a = archive.clone();
        pending.push(tokio::spawn(async move { a.append(frame(i)).await.unwrap() }));
    }
    let mut seqs = Vec::new();
    for p in pending {
        seqs.push(p.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (2..=51).collect::<Vec<u64>>());
    drop(archive);
    thread.join();
}

/// Every record the writer takes is one every reader accepts: the largest passes and reads
/// back (verify, follow, reopen); one byte more is refused before anything is written.
#[tokio::test]
async fn records_readers_cannot_read_are_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(dir.path());
    settings.segment_max_bytes = 4 << 20;
    let (archive, thread, _) = Archive::open(settings.clone(), Arc::new(NoObserver)).unwrap();
    let mut largest = frame(0);
    largest.peer = "p".repeat(300);
    largest.data = vec![b'x'; hj212_archive::MAX_DATA];
    let mut too_large = largest.clone();
    too_large.data.push(b'x');
    let refused = archive.append(too_large).await.unwrap_err();
    assert_eq!(
        refused,
        hj212_archive::ArchiveError::TooLarge { len: hj212_archive::MAX_DATA + 1, max: hj212_archive::MAX_DATA }
    );
    assert_eq!(archive.append(largest).await.unwrap(), 1);
    assert_eq!(archive.append(frame(1)).await.unwrap(), 2);
    drop(archive);
    thread.join();
    assert_eq!(verify(dir.path()).unwrap().last_seq, 2);
    let records = Follower::new(dir.path(), 1).read(2, 10).unwrap();
    assert_eq!(
        records.iter().map(|r| r.data.len()).collect::<Vec<_>>(),
        [hj212_archive::MAX_DATA, frame(1).data.len()]
    );
    let (_, _, recovery) = Archive::open(settings, Arc::new(NoObserver)).unwrap();
    assert_eq!(recovery.next_seq, 3);
}
