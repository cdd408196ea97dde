//! Sealed segments compressed: read the same by every reader, and the chain still catches
//! any changed byte, a cut, a removed or reordered segment and a forged record.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hj212_archive::{
    Archive, CheckpointSettings, Follower, Kind, NewRecord, NoObserver, PACKED_SUFFIX, Record, Settings, SigningKey,
    Verdict, VerifyOptions, list_segments, unpack_all, verify, verify_with, walk,
};
use sha2::{Digest, Sha256};

const HEADER_LEN: usize = 57;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn settings(dir: &Path, segment_max_bytes: u64, compress: bool) -> Settings {
    Settings {
        segment_max_bytes,
        checkpoints: Some(CheckpointSettings { key: key(), interval: Duration::from_secs(3600) }),
        compress: compress.then_some(3),
        ..Settings::in_dir(dir)
    }
}

fn frame(i: usize) -> NewRecord {
    let value = (i * 7919) % 1000;
    NewRecord {
        kind: Kind::Received,
        verdict: Verdict::Accepted,
        flags: 0,
        time_ms: 1_700_000_000_000 + i64::try_from(i * 30_000).unwrap(),
        peer: "127.0.0.1:40000".into(),
        data: format!(
            "##0180QN=20261130{i:09};ST=31;CN=2011;PW=123456;MN=SIM{:021};Flag=5;CP=&&DataTime=20261130{i:06};\
             a21026-Rtd={value}.{};a21026-Flag=N;a21002-Rtd=4{value}.5,a21002-Flag=N&&{:04X}\r\n",
            i % 50,
            i % 10,
            i % 65536
        )
        .into_bytes(),
    }
}

/// Writes `range` in batches of 50, with the archive compressing or not.
async fn write(settings: Settings, range: std::ops::Range<usize>) {
    let (archive, thread, _) = Archive::open(settings, Arc::new(NoObserver)).unwrap();
    for chunk in range.collect::<Vec<_>>().chunks(50) {
        let mut pending = Vec::new();
        for i in chunk {
            pending.push(archive.submit(frame(*i)).await.unwrap());
        }
        for p in pending {
            p.durable().await.unwrap();
        }
    }
    drop(archive);
    thread.join();
}

fn is_packed(path: &Path) -> bool {
    path.to_string_lossy().ends_with(PACKED_SUFFIX)
}

/// Opens the archive with compression on and waits until every sealed segment is compressed.
async fn compress_sealed(dir: &Path, segment_max_bytes: u64) {
    let (archive, thread, _) = Archive::open(settings(dir, segment_max_bytes, true), Arc::new(NoObserver)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let segments = list_segments(dir).unwrap();
        if segments[..segments.len() - 1].iter().all(|(_, path)| is_packed(path)) {
            break;
        }
        assert!(Instant::now() < deadline, "sealed segments not compressed: {segments:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(archive);
    thread.join();
}

fn all_records(dir: &Path) -> Vec<Record> {
    let mut records = Vec::new();
    walk(dir, |record| {
        records.push(record);
        ControlFlow::Continue(())
    })
    .unwrap();
    records
}

fn follow(dir: &Path, from: u64, limit: usize) -> Vec<Record> {
    let mut follower = Follower::new(dir, from);
    let mut records = Vec::new();
    loop {
        let batch = follower.read(u64::MAX, limit).unwrap();
        if batch.is_empty() {
            return records;
        }
        records.extend(batch);
    }
}

fn packed_segments(dir: &Path) -> Vec<PathBuf> {
    list_segments(dir).unwrap().into_iter().map(|(_, path)| path).filter(|path| is_packed(path)).collect()
}

fn trusted() -> VerifyOptions {
    VerifyOptions { trusted_keys: vec![key().verifying_key()], expect_head: None }
}

#[tokio::test]
async fn sealed_segments_are_compressed_and_every_reader_reads_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    write(settings(dir.path(), 256 * 1024, false), 0..6000).await;
    let plain = all_records(dir.path());
    let plain_bytes: u64 = list_segments(dir.path()).unwrap().iter().map(|(_, p)| p.metadata().unwrap().len()).sum();
    compress_sealed(dir.path(), 256 * 1024).await;
    let segments = list_segments(dir.path()).unwrap();
    assert!(packed_segments(dir.path()).len() >= 3, "{segments:?}");
    let after_bytes: u64 = segments.iter().map(|(_, p)| p.metadata().unwrap().len()).sum();
    assert!(after_bytes * 3 < plain_bytes, "{after_bytes} of {plain_bytes} bytes");

    let records = all_records(dir.path());
    assert_eq!(records[..plain.len()], plain[..], "same records, same hashes");
    verify_with(dir.path(), &trusted()).unwrap();
    // Followers from the start and from the middle of a compressed block, in small reads.
    assert_eq!(follow(dir.path(), 1, 7), records);
    assert_eq!(follow(dir.path(), 2345, 1000), records[2344..]);
    assert_eq!(follow(dir.path(), 5999, 3), records[5998..]);
}

#[tokio::test]
async fn a_reader_in_a_segment_that_gets_compressed_reads_on() {
    let dir = tempfile::tempdir().unwrap();
    write(settings(dir.path(), 64 * 1024, false), 0..2000).await;
    let expected = all_records(dir.path());
    let mut follower = Follower::new(dir.path(), 1);
    let first = follower.read(u64::MAX, 150).unwrap();
    compress_sealed(dir.path(), 64 * 1024).await;
    let mut rest = first;
    loop {
        let batch = follower.read(u64::MAX, 100).unwrap();
        if batch.is_empty() {
            break;
        }
        rest.extend(batch);
    }
    assert_eq!(rest[..expected.len()], expected[..]);
}

/// A small archive: two sealed segments compressed, and the open one.
async fn small_compressed_archive(dir: &Path) -> Vec<PathBuf> {
    write(settings(dir, 8 * 1024, false), 0..120).await;
    compress_sealed(dir, 8 * 1024).await;
    verify_with(dir, &trusted()).unwrap();
    let packed = packed_segments(dir);
    assert!(packed.len() >= 2, "{packed:?}");
    packed
}

#[tokio::test]
async fn any_changed_byte_of_a_compressed_segment_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = small_compressed_archive(dir.path()).await.remove(0);
    let original = std::fs::read(&path).unwrap();
    for at in 0..original.len() {
        let mut changed = original.clone();
        changed[at] ^= 0x10;
        std::fs::write(&path, &changed).unwrap();
        assert!(verify(dir.path()).is_err(), "a change at byte {at} of {} went unseen", original.len());
    }
    std::fs::write(&path, &original).unwrap();
    verify(dir.path()).unwrap();
}

#[tokio::test]
async fn a_cut_compressed_segment_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = small_compressed_archive(dir.path()).await.remove(0);
    let original = std::fs::read(&path).unwrap();
    for len in (0..original.len()).step_by(7).chain([original.len() - 1]) {
        std::fs::write(&path, &original[..len]).unwrap();
        let broken = verify(dir.path()).unwrap_err();
        assert!(broken.segment.to_string_lossy().contains("seg-"), "cut at {len}: {broken}");
    }
}

#[tokio::test]
async fn a_removed_or_reordered_compressed_segment_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let packed = small_compressed_archive(dir.path()).await;
    let (first, second) = (std::fs::read(&packed[0]).unwrap(), std::fs::read(&packed[1]).unwrap());
    std::fs::write(&packed[0], &second).unwrap();
    std::fs::write(&packed[1], &first).unwrap();
    let broken = verify(dir.path()).unwrap_err();
    assert!(broken.problem.contains("header says first seq"), "{broken}");
    std::fs::write(&packed[0], &first).unwrap();
    std::fs::remove_file(&packed[1]).unwrap();
    let broken = verify(dir.path()).unwrap_err();
    assert!(broken.problem.contains("does not continue the chain"), "{broken}");
}

#[tokio::test]
async fn a_forged_record_in_a_sealed_segment_is_caught_after_compression() {
    let dir = tempfile::tempdir().unwrap();
    write(settings(dir.path(), 8 * 1024, false), 0..120).await;
    // The forger rewrites a value in a sealed segment and recomputes its every hash, so the
    // segment is consistent in itself and the compressor accepts it.
    let (_, path) = list_segments(dir.path()).unwrap().remove(0);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(9).position(|w| w == b"a21026-Rt").unwrap();
    bytes[at + 11] ^= 1;
    let mut prev: [u8; 32] =
        Sha256::new().chain_update(b"hj212d segment header").chain_update(&bytes[..HEADER_LEN]).finalize().into();
    let mut offset = HEADER_LEN;
    while offset < bytes.len() {
        let end = offset + 4 + u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
        prev = Sha256::new().chain_update(prev).chain_update(&bytes[offset..end]).finalize().into();
        bytes[end..end + 32].copy_from_slice(&prev);
        offset = end + 32;
    }
    std::fs::write(&path, &bytes).unwrap();
    compress_sealed(dir.path(), 8 * 1024).await;
    assert!(is_packed(&list_segments(dir.path()).unwrap()[0].1), "the forged segment was compressed");
    let broken = verify_with(dir.path(), &trusted()).unwrap_err();
    assert!(broken.problem.contains("does not continue the chain"), "{broken}");
}

#[tokio::test]
async fn a_segment_that_does_not_verify_stays_plain_for_verify_to_name() {
    let dir = tempfile::tempdir().unwrap();
    write(settings(dir.path(), 8 * 1024, false), 0..120).await;
    let (_, path) = list_segments(dir.path()).unwrap().remove(1);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[HEADER_LEN + 100] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let before = verify(dir.path()).unwrap_err();
    let (archive, thread, _) = Archive::open(settings(dir.path(), 8 * 1024, true), Arc::new(NoObserver)).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(archive);
    thread.join();
    assert!(path.exists(), "the damaged segment is kept as it is");
    assert_eq!(verify(dir.path()).unwrap_err(), before);
}

#[tokio::test]
async fn retention_removes_compressed_segments_and_the_chain_says_so() {
    let dir = tempfile::tempdir().unwrap();
    write(settings(dir.path(), 8 * 1024, false), 0..300).await;
    compress_sealed(dir.path(), 8 * 1024).await;
    let first_before = list_segments(dir.path()).unwrap()[0].0;
    let retained = Settings { retention: Some(Duration::ZERO), ..settings(dir.path(), 8 * 1024, true) };
    write(retained, 300..600).await;
    let segments = list_segments(dir.path()).unwrap();
    assert!(segments[0].0 > first_before, "old segments were removed");
    let files = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("seg-"));
    assert_eq!(files.count(), segments.len(), "no segment left in a second form");
    verify_with(dir.path(), &trusted()).unwrap();
}

#[tokio::test]
async fn an_archive_whose_newest_segment_is_compressed_continues_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let packed = small_compressed_archive(dir.path()).await;
    // Everything after the last compressed segment is gone (and with it the stop checkpoint,
    // so checkpoint.latest goes too: this test is about reopening, not about the loss).
    for (_, path) in list_segments(dir.path()).unwrap().into_iter().filter(|(_, p)| !is_packed(p)) {
        std::fs::remove_file(path).unwrap();
    }
    let _ = std::fs::remove_file(dir.path().join("checkpoint.latest"));
    let last = all_records(dir.path()).last().unwrap().seq;
    let (archive, thread, recovery) =
        Archive::open(settings(dir.path(), 8 * 1024, false), Arc::new(NoObserver)).unwrap();
    assert_eq!(recovery.next_seq, last + 1);
    assert_eq!(archive.append(frame(999)).await.unwrap(), last + 1);
    drop(archive);
    thread.join();
    assert!(packed.iter().all(|p| p.exists()));
    assert!(verify(dir.path()).unwrap().last_seq > last);
}

#[tokio::test]
async fn unpacking_restores_the_plain_segments_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    write(settings(dir.path(), 8 * 1024, false), 0..120).await;
    let original: Vec<(PathBuf, Vec<u8>)> =
        list_segments(dir.path()).unwrap().into_iter().map(|(_, p)| (p.clone(), std::fs::read(&p).unwrap())).collect();
    compress_sealed(dir.path(), 8 * 1024).await;
    let packed = packed_segments(dir.path()).len();
    assert!(packed >= 2);
    assert_eq!(unpack_all(dir.path()).unwrap(), packed);
    assert!(packed_segments(dir.path()).is_empty());
    for (path, bytes) in &original[..original.len() - 1] {
        assert_eq!(&std::fs::read(path).unwrap(), bytes, "{} differs", path.display());
    }
    verify_with(dir.path(), &trusted()).unwrap();

    // A damaged compressed segment is named and left as it is.
    compress_sealed(dir.path(), 8 * 1024).await;
    let first = packed_segments(dir.path()).remove(0);
    let mut bytes = std::fs::read(&first).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&first, &bytes).unwrap();
    let error = unpack_all(dir.path()).unwrap_err();
    assert!(matches!(error, hj212_archive::ArchiveError::Corrupt { .. }), "{error}");
    assert!(first.exists());
}
