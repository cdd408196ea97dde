//! `hj212-audit verify` and `export` on an archive written by the archive crate.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use hj212_archive::{Archive, Kind, NewRecord, NoObserver, Settings, Verdict, list_segments};

const BIN: &str = env!("CARGO_BIN_EXE_hj212-audit");
const FRAME_A: &[u8] = b"##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n";
const FRAME_B: &[u8] = b"##0136ST=32;CN=2011;PW=000000;MN=LD130133000015;CP=&&DataTime=20160824003817;011-Rtd=231.0,011-Flag=N;B01-Rtd=36.91;060-Rtd=1.803,060-Flag=N&&1dc0\r\n";

async fn write_archive(data_dir: &Path) {
    // 2026-01-01T08:00:00+08:00 and one hour later
    write_records(data_dir, &[(1_767_225_600_000, FRAME_A.to_vec()), (1_767_229_200_000, FRAME_B.to_vec())]).await;
}

async fn write_records(data_dir: &Path, records: &[(i64, Vec<u8>)]) {
    let settings = Settings { segment_max_bytes: 1 << 20, ..Settings::in_dir(data_dir.join("archive")) };
    write_with(settings, records).await;
}

async fn write_with(settings: Settings, records: &[(i64, Vec<u8>)]) {
    let (archive, thread, _) = Archive::open(settings, Arc::new(NoObserver)).unwrap();
    for (time_ms, data) in records {
        let record = NewRecord {
            kind: Kind::Received,
            verdict: Verdict::Accepted,
            flags: 0,
            time_ms: *time_ms,
            peer: "127.0.0.1:1".into(),
            data: data.clone(),
        };
        archive.append(record).await.unwrap();
    }
    drop(archive);
    thread.join();
}

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (out.status.code(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[tokio::test]
async fn verify_passes_then_names_the_tampered_record() {
    let dir = tempfile::tempdir().unwrap();
    write_archive(dir.path()).await;
    let data_dir = dir.path().to_str().unwrap();
    let (code, stdout, _) = run(&["verify", "--data-dir", data_dir]);
    assert_eq!(code, Some(0));
    assert!(stdout.starts_with("ok: 2 records in 1 segments, seq 1..2, head "), "{stdout}");

    let (_, segment) = &list_segments(&dir.path().join("archive")).unwrap()[0];
    let mut bytes = std::fs::read(segment).unwrap();
    let at = bytes.windows(7).position(|w| w == b"B01-Rtd").unwrap();
    bytes[at + 8] = b'9'; // 36.91 -> 96.91
    std::fs::write(segment, bytes).unwrap();
    let (code, _, stderr) = run(&["verify", "--data-dir", data_dir]);
    assert_eq!(code, Some(65));
    assert!(stderr.starts_with("Error: chain broken at seq 2 ("), "{stderr}");
    assert!(stderr.contains("hash does not match"), "{stderr}");
}

#[tokio::test]
async fn export_filters_and_masks_passwords() {
    let dir = tempfile::tempdir().unwrap();
    write_archive(dir.path()).await;
    let data_dir = dir.path().to_str().unwrap();
    let (code, stdout, _) = run(&["export", "--data-dir", data_dir]);
    assert_eq!(code, Some(0));
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["verdict"], "accepted");
    assert_eq!(lines[0]["time"], "2026-01-01T08:00:00.000+08:00");
    assert_eq!(lines[0]["peer"], "127.0.0.1:1");
    assert_eq!(lines[0]["cn"], 1062);
    assert!(lines[0]["frame"].as_str().unwrap().contains(";PW=***;"));
    assert_eq!(lines[0]["hash"].as_str().unwrap().len(), 64);

    let (_, stdout, _) = run(&["export", "--data-dir", data_dir, "--mn", "LD130133000015"]);
    assert_eq!(stdout.lines().count(), 1);
    let (_, stdout, _) = run(&["export", "--data-dir", data_dir, "--from", "20260101083000", "--show-passwords"]);
    let only: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(only["mn"], "LD130133000015");
    assert!(only["frame"].as_str().unwrap().contains(";PW=000000;"));
    let (_, stdout, _) = run(&["export", "--data-dir", data_dir, "--to", "20260101083000"]);
    assert_eq!(stdout.lines().count(), 1);

    let (code, _, stderr) = run(&["export", "--data-dir", data_dir, "--from", "yesterday"]);
    assert_eq!(code, Some(64));
    assert!(stderr.starts_with("Error: --from: \"yesterday\" is not a date"), "{stderr}");
}

#[tokio::test]
async fn export_takes_dates_like_rate() {
    let dir = tempfile::tempdir().unwrap();
    write_archive(dir.path()).await;
    let data_dir = dir.path().to_str().unwrap();
    let (code, stdout, stderr) = run(&["export", "--data-dir", data_dir, "--from", "2026-01-01", "--to", "2026-01-02"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.lines().count(), 2);
    let (_, stdout, _) = run(&["export", "--data-dir", data_dir, "--from", "2026-01-02"]);
    assert_eq!(stdout.lines().count(), 0);
}

/// Hourly frames of one site, each spelling its password differently.
fn spelled_frames() -> (Vec<(i64, Vec<u8>)>, [&'static str; 4]) {
    let secrets = ["pwSpace1", "pwTab22", "pwLower3", "pwAmp44"];
    let keys = ["PW =", "PW\t= ", "pw=", "PW="];
    let mut records = Vec::new();
    for (i, (key, secret)) in (0i64..).zip(keys.iter().zip(secrets)) {
        let tail = if i == 3 { "&&" } else { ";" };
        let segment = format!(
            "QN=2026010108000000{i};ST=32;CN=2061;MN=M1;{key}{secret}{tail}CP=&&DataTime=20260101080000;a01-Avg=1&&"
        );
        records.push((1_767_225_600_000 + i, hj212_proto::encode::frame(segment.as_bytes()).unwrap()));
    }
    (records, secrets)
}

#[tokio::test]
async fn export_masks_every_spelling_of_pw() {
    let dir = tempfile::tempdir().unwrap();
    let (records, secrets) = spelled_frames();
    write_records(dir.path(), &records).await;
    let (code, stdout, _) = run(&["export", "--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(code, Some(0));
    assert_eq!(stdout.lines().count(), 4);
    for secret in secrets {
        assert!(!stdout.contains(secret), "{secret} leaked: {stdout}");
    }
    assert_eq!(stdout.matches("***").count(), 4, "{stdout}");
    let (_, shown, _) = run(&["export", "--data-dir", dir.path().to_str().unwrap(), "--show-passwords"]);
    assert!(secrets.iter().all(|s| shown.contains(s)));
}

/// Ten records; one byte of the sixth is flipped.
async fn damaged_archive(data_dir: &Path) {
    let records: Vec<(i64, Vec<u8>)> = (0..10).map(|i| (1_767_225_600_000 + i * 1000, FRAME_B.to_vec())).collect();
    write_records(data_dir, &records).await;
    let (_, segment) = &list_segments(&data_dir.join("archive")).unwrap()[0];
    let mut bytes = std::fs::read(segment).unwrap();
    let sixth = bytes.windows(7).enumerate().filter(|(_, w)| *w == b"B01-Rtd").nth(5).unwrap().0;
    bytes[sixth + 8] = b'9';
    std::fs::write(segment, bytes).unwrap();
}

#[tokio::test]
async fn export_prints_the_records_before_a_break_then_names_it() {
    let dir = tempfile::tempdir().unwrap();
    damaged_archive(dir.path()).await;
    let (code, stdout, stderr) = run(&["export", "--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(code, Some(65), "{stderr}");
    let seqs: Vec<u64> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert!(stderr.starts_with("Error: chain broken at seq 6 ("), "{stderr}");
    assert!(stderr.contains(" byte ") && stderr.contains("hash does not match"), "{stderr}");
}

#[tokio::test]
async fn rebuild_ledger_applies_the_records_before_a_break_then_names_it() {
    let dir = tempfile::tempdir().unwrap();
    damaged_archive(dir.path()).await;
    let out = dir.path().join("rebuilt.sqlite");
    let (code, _, stderr) =
        run(&["rebuild-ledger", "--data-dir", dir.path().to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code, Some(65), "{stderr}");
    assert!(stderr.starts_with("Error: chain broken at seq 6 ("), "{stderr}");
    assert!(stderr.contains("5 archive records") && stderr.contains("up to seq 5"), "{stderr}");
    let store = hj212_store::Store::open(&out).unwrap();
    assert_eq!(store.applied_seq().unwrap(), 5);
}

/// `[store] readings_retention_days` deletes readings from the daemon's store, never from the
/// archive: the ledger kept in the store answers as before, and `rebuild-ledger` still rebuilds
/// the ledger and every reading from the archive.
#[tokio::test]
async fn rebuild_ledger_works_after_the_store_deleted_old_readings() {
    const MN: &str = "RETAIN000000000000000001";
    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 86_400_000;
    // 2026-11-01T00:00:00+08:00
    const START: i64 = 1_793_462_400_000;
    let dir = tempfile::tempdir().unwrap();
    let frames: Vec<(i64, Vec<u8>)> = (0..4 * 24)
        .map(|hour| {
            let t = START + hour * HOUR;
            let flag = if hour % 11 == 0 { "D" } else { "N" };
            let text = format!(
                "QN=20261101000000001;ST=31;CN=2061;PW=1;MN={MN};Flag=5;CP=&&DataTime={};a21026-Avg=2{}.5,a21026-Flag={flag}&&",
                hj212_proto::time::BeijingTime::from_unix_millis(t).to_seconds_string(),
                hour % 10
            );
            (t + HOUR + 60_000, hj212_proto::encode::frame(text.as_bytes()).unwrap())
        })
        .collect();
    write_records(dir.path(), &frames).await;
    let records = hj212_archive::Follower::new(&dir.path().join("archive"), 1).read(96, 1000).unwrap();
    let mut store = hj212_store::Store::open(&dir.path().join("store.sqlite")).unwrap();
    store.apply(&hj212_follow::Interpreted::all(records)).unwrap();
    let site = hj212_config::Site { factors: vec!["a21026".into()], ..hj212_config::Site::new(MN, "1") };
    let rules = hj212_store::rules_for(&site);
    let days = hj212_compliance::Range { from_ms: START, to_ms: START + 4 * DAY };
    let later = START + 30 * DAY;
    let summary = store.site_summary(&site, &rules, days, later).unwrap().unwrap();
    assert_eq!((summary.due, summary.received), (96, 96));
    let pruned = store.prune_readings(START + 3 * DAY, 100_000, later).unwrap();
    assert_eq!((pruned.readings, store.count().unwrap()), (72, 24), "three days of the four deleted");
    assert_eq!(store.site_summary(&site, &rules, days, later).unwrap().unwrap(), summary, "the ledger answers");
    drop(store);

    let out = dir.path().join("rebuilt.sqlite");
    let (code, stdout, stderr) =
        run(&["rebuild-ledger", "--data-dir", dir.path().to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("96 archive records, 96 readings"), "{stdout}");
    let rebuilt = hj212_store::Store::open(&out).unwrap();
    assert_eq!(rebuilt.count().unwrap(), 96, "every reading, from the archive");
    assert_eq!(rebuilt.site_summary(&site, &rules, days, later).unwrap().unwrap(), summary);
    let detailed = rebuilt.site_rate(&site, &rules, days, later).unwrap().report;
    assert_eq!((detailed.due, detailed.received, detailed.valid), (summary.due, summary.received, summary.valid));
}

/// With the daemon's public key, verify checks every signed checkpoint; a key that did not
/// sign them fails it, and so does an archive that no longer holds a published head.
#[tokio::test]
async fn verify_checks_checkpoints_against_the_public_key_and_a_published_head() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("archive-signing.key");
    let key = hj212_archive::checkpoint::load_or_create_key(&key_path).unwrap();
    let public = key_path.with_extension("pub");
    let settings = |segment_max_bytes| Settings {
        dir: dir.path().join("archive"),
        segment_max_bytes,
        segment_max_age: Duration::from_secs(3600),
        retention: None,
        queue: 16,
        queue_bytes: 64 << 20,
        checkpoints: Some(hj212_archive::CheckpointSettings { key: key.clone(), interval: Duration::ZERO }),
        resume_free_bytes: 0,
        durable_at_least: 0,
        compress: None,
    };
    let (archive, thread, _) = Archive::open(settings(64 * 1024), Arc::new(NoObserver)).unwrap();
    for i in 0..600 {
        let record = NewRecord {
            kind: Kind::Received,
            verdict: Verdict::Accepted,
            flags: 0,
            time_ms: 1_767_225_600_000 + i,
            peer: "127.0.0.1:1".into(),
            data: FRAME_B.to_vec(),
        };
        archive.append(record).await.unwrap();
    }
    let published = archive.latest_checkpoint().borrow().clone().unwrap().expect_head();
    drop(archive);
    thread.join();
    let data_dir = dir.path().to_str().unwrap();
    let public = public.to_str().unwrap();
    let (code, stdout, stderr) =
        run(&["verify", "--data-dir", data_dir, "--public-key", public, "--expect-head", &published]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("signed by a trusted key") && stdout.contains("written as the daemon stopped"), "{stdout}");
    assert!(stdout.contains("unsigned tail: 0 records"), "{stdout}");
    assert!(stdout.contains("expected head: record"), "{stdout}");

    let stranger = dir.path().join("stranger.pub");
    hj212_archive::checkpoint::load_or_create_key(&dir.path().join("stranger.key")).unwrap();
    let (code, _, stderr) = run(&["verify", "--data-dir", data_dir, "--public-key", stranger.to_str().unwrap()]);
    assert_eq!(code, Some(65));
    assert!(stderr.contains("not signed by a trusted public key"), "{stderr}");

    let segments = list_segments(&dir.path().join("archive")).unwrap();
    assert!(segments.len() > 1);
    std::fs::remove_file(&segments.last().unwrap().1).unwrap();
    let (code, _, stderr) =
        run(&["verify", "--data-dir", data_dir, "--public-key", public, "--expect-head", &published]);
    assert_eq!(code, Some(65));
    assert!(stderr.contains("records were removed or cut"), "{stderr}");
    let (code, _, stderr) = run(&["verify", "--data-dir", data_dir, "--expect-head", "12"]);
    assert_eq!(code, Some(64), "{stderr}");
}

#[tokio::test]
async fn verify_export_and_rebuild_ledger_read_compressed_segments_as_plain_ones() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<(i64, Vec<u8>)> = (0..3000).map(|i| (1_767_225_600_000 + i * 1000, FRAME_B.to_vec())).collect();
    let settings =
        |compress| Settings { segment_max_bytes: 64 * 1024, compress, ..Settings::in_dir(dir.path().join("archive")) };
    write_with(settings(None), &records).await;
    let data_dir = dir.path().to_str().unwrap();
    let plain_export = run(&["export", "--data-dir", data_dir]).1;
    let rebuilt = |name: &str| {
        let out = dir.path().join(name);
        let said = run(&["rebuild-ledger", "--data-dir", data_dir, "--out", out.to_str().unwrap()]).1;
        said.replace(out.to_str().unwrap(), "OUT")
    };
    let plain_rebuild = rebuilt("plain.sqlite");

    let (archive, thread, _) = Archive::open(settings(Some(3)), Arc::new(NoObserver)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let segments = list_segments(&dir.path().join("archive")).unwrap();
        let sealed = &segments[..segments.len() - 1];
        if sealed.len() >= 3 && sealed.iter().all(|(_, p)| p.extension().is_some_and(|e| e == "zst")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not compressed: {segments:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(archive);
    thread.join();
    let (code, stdout, _) = run(&["verify", "--data-dir", data_dir]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("segments compressed"), "{stdout}");
    assert_eq!(run(&["export", "--data-dir", data_dir]).1, plain_export);
    assert_eq!(rebuilt("packed.sqlite"), plain_rebuild);
}
