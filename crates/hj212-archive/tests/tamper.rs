//! What a motivated forger with write access to the files can try, and how each attempt is
//! caught: by the chain, by signed checkpoints, by a head published elsewhere, or at start.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hj212_archive::{
    Archive, ArchiveError, CheckpointSettings, Kind, NewRecord, NoObserver, Settings, SigningKey, Verdict,
    VerifyOptions, list_segments, verify, verify_with,
};
use sha2::{Digest, Sha256};

const HEADER_LEN: usize = 57;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn settings(dir: &Path, interval: Duration) -> Settings {
    Settings { checkpoints: Some(CheckpointSettings { key: key(), interval }), ..Settings::in_dir(dir) }
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

fn trusted() -> VerifyOptions {
    VerifyOptions { trusted_keys: vec![key().verifying_key()], expect_head: None }
}

fn newest(dir: &Path) -> std::path::PathBuf {
    list_segments(dir).unwrap().pop().unwrap().1
}

/// Offsets of the records in a segment file (walking the length fields).
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut at = HEADER_LEN;
    let mut offsets = Vec::new();
    while at + 4 <= bytes.len() {
        offsets.push(at);
        at += 4 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize + 32;
    }
    offsets
}

/// Recomputes every hash of a segment, as a forger who knows the format would.
fn rehash(bytes: &mut [u8], mut prev: [u8; 32]) {
    for at in record_offsets(bytes) {
        let end = at + 4 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let hash: [u8; 32] = Sha256::new().chain_update(prev).chain_update(&bytes[at..end]).finalize().into();
        bytes[end..end + 32].copy_from_slice(&hash);
        prev = hash;
    }
}

fn seed(header: &[u8]) -> [u8; 32] {
    Sha256::new().chain_update(b"hj212d segment header").chain_update(header).finalize().into()
}

#[tokio::test]
async fn checkpoints_sign_the_chain_and_a_clean_stop_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    write(settings(dir.path(), Duration::ZERO), 0..300).await;
    let report = verify_with(dir.path(), &trusted()).unwrap();
    assert!(report.checkpoints >= 6, "one per batch at interval 0: {}", report.checkpoints);
    assert_eq!(report.unsigned_tail, 0);
    assert!(report.last_checkpoint.unwrap().last, "the writer's last checkpoint says it stopped");
    let stranger =
        VerifyOptions { trusted_keys: vec![SigningKey::from_bytes(&[1; 32]).verifying_key()], expect_head: None };
    let broken = verify_with(dir.path(), &stranger).unwrap_err();
    assert!(broken.problem.contains("not signed by a trusted public key"), "{broken}");
}

#[tokio::test]
async fn rewriting_a_value_and_rehashing_the_chain_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    write(settings(dir.path(), Duration::ZERO), 0..100).await;
    let path = newest(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(10).position(|w| w == b"frame 0042").unwrap();
    bytes[at + 6] = b'9';
    let seed = seed(&bytes[..HEADER_LEN]);
    rehash(&mut bytes, seed);
    std::fs::write(&path, &bytes).unwrap();
    // Every hash is consistent again, but the next checkpoint signed the old head.
    let broken = verify(dir.path()).unwrap_err();
    assert!(broken.problem.contains("signs seq"), "{broken}");
}

#[tokio::test]
async fn a_record_appended_after_a_clean_stop_is_detected_and_so_is_its_adoption() {
    let dir = tempfile::tempdir().unwrap();
    write(settings(dir.path(), Duration::from_secs(3600)), 0..20).await;
    let path = newest(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    // A forged record that chains correctly from the last one.
    let offsets = record_offsets(&bytes);
    let last = *offsets.last().unwrap();
    let prev: [u8; 32] = bytes[bytes.len() - 32..].try_into().unwrap();
    let forged_at = bytes.len();
    bytes.extend_from_within(offsets[0]..offsets[1]);
    let seq = u64::from_le_bytes(bytes[last + 4..last + 12].try_into().unwrap()) + 1;
    bytes[forged_at + 4..forged_at + 12].copy_from_slice(&seq.to_le_bytes());
    let end = bytes.len() - 32;
    let hash: [u8; 32] = Sha256::new().chain_update(prev).chain_update(&bytes[forged_at..end]).finalize().into();
    bytes[end..].copy_from_slice(&hash);
    std::fs::write(&path, &bytes).unwrap();
    let broken = verify(dir.path()).unwrap_err();
    assert!(broken.problem.contains("hj212d did not write them"), "{broken}");
    // Started again, the daemon adopts it in its signed checkpoint, and verify still names it.
    write(settings(dir.path(), Duration::from_secs(3600)), 20..25).await;
    let broken = verify_with(dir.path(), &trusted()).unwrap_err();
    assert!(broken.problem.contains("were adopted at the next start"), "{broken}");
}

#[tokio::test]
async fn a_crash_tail_is_adopted_by_the_next_run_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), Duration::from_secs(3600));
    let (archive, thread, _) = Archive::open(s.clone(), Arc::new(NoObserver)).unwrap();
    for i in 0..30 {
        archive.append(frame(i)).await.unwrap();
    }
    // What a SIGKILL leaves: the records, and no checkpoint written at stop.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, crashed.path().join(path.file_name().unwrap())).unwrap();
    }
    drop(archive);
    thread.join();
    write(settings(crashed.path(), Duration::from_secs(3600)), 30..40).await;
    let report = verify_with(crashed.path(), &trusted()).unwrap();
    assert_eq!(report.adopted, [(1, 30)], "the crashed run's records were adopted at restart");
    assert_eq!(report.unsigned_tail, 0);
}

#[tokio::test]
async fn removing_the_newest_segment_or_its_tail_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    write(settings(dir.path(), Duration::ZERO), 0..1500).await;
    let report = verify(dir.path()).unwrap();
    // What was published elsewhere (MQTT, the API): the head at that time.
    let published =
        VerifyOptions { trusted_keys: vec![key().verifying_key()], expect_head: Some((report.last_seq, report.head)) };
    verify_with(dir.path(), &published).unwrap();
    let segments = list_segments(dir.path()).unwrap();
    assert!(segments.len() > 2);

    // The newest segment deleted: the chain is still whole, but shorter.
    let kept = std::fs::read(&segments.last().unwrap().1).unwrap();
    std::fs::remove_file(&segments.last().unwrap().1).unwrap();
    let broken = verify_with(dir.path(), &published).unwrap_err();
    assert!(broken.problem.contains("records were removed or cut"), "{broken}");
    let error = Archive::open(settings(dir.path(), Duration::ZERO), Arc::new(NoObserver)).unwrap_err();
    assert!(
        matches!(&error, ArchiveError::Corrupt { problem, .. } if problem.contains("records were removed or cut")),
        "{error}"
    );

    // Its last records cut at a record boundary: the same.
    let offsets = record_offsets(&kept);
    std::fs::write(&segments.last().unwrap().1, &kept[..offsets[offsets.len() - 3]]).unwrap();
    let broken = verify_with(dir.path(), &published).unwrap_err();
    assert!(broken.problem.contains("records were removed or cut"), "{broken}");
    let error = Archive::open(settings(dir.path(), Duration::ZERO), Arc::new(NoObserver)).unwrap_err();
    assert!(matches!(error, ArchiveError::Corrupt { .. }), "{error}");
}

#[tokio::test]
async fn a_changed_segment_header_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    write(settings(dir.path(), Duration::from_secs(3600)), 0..1500).await;
    let (_, first) = list_segments(dir.path()).unwrap().remove(0);
    let mut bytes = std::fs::read(&first).unwrap();
    // created_ms, which retention trusts, moved a year back.
    let created = i64::from_le_bytes(bytes[49..57].try_into().unwrap()) - 365 * 86_400_000;
    bytes[49..57].copy_from_slice(&created.to_le_bytes());
    std::fs::write(&first, &bytes).unwrap();
    let broken = verify(dir.path()).unwrap_err();
    assert_eq!(broken.seq, 1);
    assert!(broken.problem.contains("hash does not match"), "{broken}");
}

#[tokio::test]
async fn a_flipped_bit_in_a_length_near_the_end_is_damage_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    write(settings(dir.path(), Duration::from_secs(3600)), 0..200).await;
    let path = newest(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let offsets = record_offsets(&bytes);
    // Record 83's length now points past the end of the file: it looks cut short, and would
    // hide the 117 acknowledged records after it.
    bytes[offsets[82] + 2] ^= 0x08;
    std::fs::write(&path, &bytes).unwrap();
    let broken = verify(dir.path()).unwrap_err();
    assert!(broken.problem.contains("a whole record (seq 84) follows"), "{broken}");
    let error = Archive::open(settings(dir.path(), Duration::from_secs(3600)), Arc::new(NoObserver)).unwrap_err();
    assert!(matches!(error, ArchiveError::Corrupt { .. }), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing was cut");
}

#[tokio::test]
async fn a_torn_tail_that_a_follower_has_read_is_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path(), Duration::from_secs(3600));
    s.checkpoints = None;
    write(s.clone(), 0..50).await;
    let path = newest(dir.path());
    let bytes = std::fs::read(&path).unwrap();
    let offsets = record_offsets(&bytes);
    // The last record cut in half, but the store had already applied it.
    std::fs::write(&path, &bytes[..offsets[49] + 10]).unwrap();
    s.durable_at_least = 50;
    let error = Archive::open(s.clone(), Arc::new(NoObserver)).unwrap_err();
    assert!(
        matches!(&error, ArchiveError::Corrupt { problem, .. } if problem.contains("records up to seq 50 were durable")),
        "{error}"
    );
    s.durable_at_least = 49;
    let (_, thread, recovery) = Archive::open(s, Arc::new(NoObserver)).unwrap();
    assert_eq!(recovery.next_seq, 50, "a crash's tail that nothing had read is cut");
    thread.join();
}

#[tokio::test]
async fn first_release_segments_are_read_and_continued_in_the_new_format() {
    let dir = tempfile::tempdir().unwrap();
    // A version 1 segment: the first record chains from the header's prev_hash.
    let mut bytes = b"HJ212ARC".to_vec();
    bytes.push(1);
    bytes.extend_from_slice(&1u64.to_le_bytes());
    bytes.extend_from_slice(&[0; 32]);
    bytes.extend_from_slice(&1_700_000_000_000i64.to_le_bytes());
    for seq in 1..=3u64 {
        let data = b"##0010frame v1XXXX\r\n";
        let mut body = seq.to_le_bytes().to_vec();
        body.extend_from_slice(&[1, 1, 0]);
        body.extend_from_slice(&1_700_000_000_000i64.to_le_bytes());
        body.push(0);
        body.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
        body.extend_from_slice(data);
        bytes.extend_from_slice(&u32::try_from(body.len()).unwrap().to_le_bytes());
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(&[0; 32]);
    }
    rehash(&mut bytes, [0; 32]);
    std::fs::write(dir.path().join(hj212_archive::segment_name(1)), &bytes).unwrap();
    assert_eq!(verify(dir.path()).unwrap().last_seq, 3);
    let (archive, thread, recovery) =
        Archive::open(settings(dir.path(), Duration::ZERO), Arc::new(NoObserver)).unwrap();
    assert!(recovery.upgraded_from_v1);
    assert_eq!(archive.append(frame(4)).await.unwrap(), 4);
    drop(archive);
    thread.join();
    assert_eq!(list_segments(dir.path()).unwrap().len(), 2, "new records went to a new-format segment");
    let report = verify_with(dir.path(), &trusted()).unwrap();
    assert_eq!(report.adopted, [(1, 3)], "the unsigned first-release records are named");
}

/// Appends a frame record that chains correctly from the last one (what a forger who knows
/// the format can do), numbered after it.
fn forge_append(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let offsets = record_offsets(&bytes);
    let last = *offsets.last().unwrap();
    let prev: [u8; 32] = bytes[bytes.len() - 32..].try_into().unwrap();
    let seq = u64::from_le_bytes(bytes[last + 4..last + 12].try_into().unwrap()) + 1;
    let forged_at = bytes.len();
    bytes.extend_from_within(offsets[0]..offsets[1]);
    bytes[forged_at + 4..forged_at + 12].copy_from_slice(&seq.to_le_bytes());
    let end = bytes.len() - 32;
    let hash: [u8; 32] = Sha256::new().chain_update(prev).chain_update(&bytes[forged_at..end]).finalize().into();
    bytes[end..].copy_from_slice(&hash);
    std::fs::write(path, &bytes).unwrap();
}

#[tokio::test]
async fn deleting_checkpoint_latest_does_not_let_a_forged_record_through() {
    let dir = tempfile::tempdir().unwrap();
    write(settings(dir.path(), Duration::from_secs(3600)), 0..20).await;
    forge_append(&newest(dir.path()));
    std::fs::remove_file(dir.path().join("checkpoint.latest")).unwrap();
    // The next start finds the record after the chain's stop checkpoint and must adopt it.
    write(settings(dir.path(), Duration::from_secs(3600)), 20..25).await;
    let broken = verify_with(dir.path(), &trusted()).unwrap_err();
    assert!(broken.problem.contains("follow the checkpoint written when the daemon stopped"), "{broken}");
}

#[tokio::test]
async fn a_replaced_stop_checkpoint_is_caught_at_start_and_by_the_published_head() {
    let dir = tempfile::tempdir().unwrap();
    write(settings(dir.path(), Duration::from_secs(3600)), 0..20).await;
    let published = hj212_archive::checkpoint::read_latest(dir.path()).unwrap();
    let path = newest(dir.path());
    let bytes = std::fs::read(&path).unwrap();
    // The stop checkpoint cut off, and a forged record put at its place.
    std::fs::write(&path, &bytes[..*record_offsets(&bytes).last().unwrap()]).unwrap();
    forge_append(&path);
    let error = Archive::open(settings(dir.path(), Duration::from_secs(3600)), Arc::new(NoObserver)).unwrap_err();
    assert!(
        matches!(&error, ArchiveError::Corrupt { problem, .. } if problem.contains("is not the checkpoint")),
        "{error}"
    );
    let broken = verify(dir.path()).unwrap_err();
    assert!(broken.problem.contains("checkpoint.latest names"), "{broken}");
    // With checkpoint.latest gone too, the head published at the time still tells.
    std::fs::remove_file(dir.path().join("checkpoint.latest")).unwrap();
    let options = VerifyOptions {
        trusted_keys: vec![key().verifying_key()],
        expect_head: Some(hj212_archive::checkpoint::parse_head(&published.expect_head()).unwrap()),
    };
    let broken = verify_with(dir.path(), &options).unwrap_err();
    assert!(broken.problem.contains("the archive was rewritten"), "{broken}");
}

#[tokio::test]
async fn a_flipped_bit_in_the_newest_records_length_is_damage_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    write(settings(dir.path(), Duration::from_secs(3600)), 0..50).await;
    let path = newest(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    // The newest record is the checkpoint written at the stop; its length now reads as cut short.
    let last = *record_offsets(&bytes).last().unwrap();
    bytes[last + 1] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let broken = verify(dir.path()).unwrap_err();
    assert!(broken.problem.contains("records were removed or cut"), "{broken}");
    let error = Archive::open(settings(dir.path(), Duration::from_secs(3600)), Arc::new(NoObserver)).unwrap_err();
    assert!(matches!(&error, ArchiveError::Corrupt { problem, .. } if problem.contains("were durable")), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing was cut");
}

#[tokio::test]
async fn a_tail_that_stops_growing_is_signed_within_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, thread, _) =
        Archive::open(settings(dir.path(), Duration::from_millis(300)), Arc::new(NoObserver)).unwrap();
    let mut last = 0;
    for i in 0..5 {
        last = archive.append(frame(i)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(900)).await;
    let head = archive.latest_checkpoint().borrow().clone().expect("signed while idle");
    assert_eq!(head.checkpoint.seq, last, "the whole tail, without a stop or another record");
    assert!(!head.checkpoint.last);
    drop(archive);
    thread.join();
}
