//! The daemon over real TCP on 127.0.0.1, with raw bytes, as data loggers talk to it.

mod common;

use std::time::Duration;

use common::*;
use hj212_config::CrcSetting;

const QUIET: Duration = Duration::from_millis(300);
const BAD_PW: &str = "hj212_ingest_auth_failures_total{reason=\"bad_password\"}";
const CLOSED: &str = "hj212_connections_closed_total{reason=\"auth_failures\"}";
const OVERSIZE: &str = "hj212_ingest_conformance_notes_total{note=\"oversize\"}";
const TOO_LONG: &str = "hj212_ingest_unframed_total{reason=\"too_long\"}";
const IDLE: &str = "hj212_connections_closed_total{reason=\"idle\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_frame_is_acked_archived_and_stored() {
    let daemon = TestDaemon::start().await;
    let mut client = daemon.client().await;
    let data_time = beijing_in(0);
    client.send(&realtime("20260101120000001", &data_time, 5)).await;
    let reply = client.reply().await;
    assert_eq!(
        (reply.cn, reply.qn.as_deref(), reply.st.as_deref(), reply.flag),
        (9014, Some("20260101120000001"), Some("91"), Some(4))
    );
    assert_eq!(reply.cp, "");
    // Flag=4: no ack wanted, none sent.
    client.send(&realtime("20260101120000002", &data_time, 4)).await;
    assert!(client.reply_within(QUIET).await.is_none());
    drop(client);
    let dir = daemon.stop().await;
    let verdicts: Vec<String> = archived(dir.path()).into_iter().map(|(v, _, _)| v).collect();
    assert_eq!(verdicts, ["accepted", "accepted"]);
    let rows = stored(dir.path(), MN);
    assert_eq!(rows.len(), 2, "two factors, one DataTime (the second frame repeats the key)");
    assert_eq!(rows[0].factor, "a21002");
    assert_eq!(rows[1].rtd.as_deref(), Some("35.2"));
    assert!(!hj212_archive::verify(&dir.path().join("archive")).unwrap().incomplete_tail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_frame_gets_its_verdict() {
    let daemon = TestDaemon::start_with(|c| {
        c.sites.push(site("LD130133000015", "123456", CrcSetting::Hj212));
        c.sites.push(site("Y80110010000010", "123456", CrcSetting::Hj212));
        c.sites.push(site("4201003", "123456", CrcSetting::Any));
        c.sites.push(site("0507A010003242", "123456", CrcSetting::Hj212));
        c.limits.max_bad_frames = 100;
        c.limits.max_auth_failures = 100;
    })
    .await;
    let mut client = daemon.client().await;
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/frames/");
    for file in ["real.txt", "standard-derived.txt"] {
        for line in std::fs::read_to_string(format!("{root}{file}")).unwrap().lines() {
            client.send(line.as_bytes()).await;
            client.send(b"\r\n").await;
        }
    }
    let mut acked = Vec::new();
    while let Some(reply) = client.reply_within(Duration::from_secs(2)).await {
        acked.push((reply.cn, reply.qn.unwrap_or_default()));
    }
    drop(client);
    let dir = daemon.stop().await;
    let verdicts: Vec<String> = archived(dir.path()).into_iter().map(|(v, _, _)| v).collect();
    // real.txt: 1 is the Appendix A frame (PW=100000), 3 sends PW=000000, 4/6/9 have bad CRCs,
    // 7 and 8 reuse line 5's (MN, CN, QN) with other data (so they are not resends), 10 and 14
    // are not configured, 15 uses swapped MODBUS (allowed for that site), 17 and 18 cannot be framed.
    let real = "bad_password accepted bad_password bad_crc accepted bad_crc accepted accepted bad_crc \
                unknown_mn accepted accepted accepted unknown_mn accepted accepted unframed unframed";
    // standard-derived.txt: line 5 shares line 4's (MN, CN=1011, QN) but not its content.
    let derived = "accepted accepted accepted accepted accepted accepted accepted accepted accepted \
                   accepted accepted accepted accepted accepted accepted accepted accepted accepted";
    let expected: Vec<&str> = real.split_whitespace().chain(derived.split_whitespace()).collect();
    assert_eq!(verdicts, expected);
    // A 9014 for every accepted frame with the A bit (Flag=5 or 7), in order.
    let t = |qn: &str| (9014, qn.to_owned());
    let (std_qn, split_qn) = ("20160801085857223", "20160801085857534");
    assert_eq!(
        acked,
        [
            t("20231008123340461"),
            t("20231008132300648"),
            t(std_qn),
            t(std_qn),
            t(std_qn),
            t(std_qn),
            t(std_qn),
            t("20160801085000001"),
            t("20160801090000001"),
            t(std_qn),
            t(split_qn),
            t("20160802000000001"),
            t(split_qn),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_and_half_frames() {
    let daemon = TestDaemon::start().await;
    let mut client = daemon.client().await;
    let now = beijing_in(0);
    let frames: Vec<Vec<u8>> = (0..20).map(|i| realtime(&format!("2026010112000{i:04}"), &now, 5)).collect();
    // Sticky: all twenty in one write.
    client.send(&frames.concat()).await;
    for i in 0..20 {
        assert_eq!(client.reply().await.qn.unwrap(), format!("2026010112000{i:04}"));
    }
    // Half frames: one byte at a time.
    let slow = realtime("20260101130000000", &now, 5);
    for byte in &slow {
        client.send(std::slice::from_ref(byte)).await;
    }
    assert_eq!(client.reply().await.qn.unwrap(), "20260101130000000");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_unknown_mn_are_refused_and_not_stored() {
    let daemon = TestDaemon::start_with(|c| c.limits.max_auth_failures = 3).await;
    let (bad_pw_before, closed_before) = (daemon.metric(BAD_PW), daemon.metric(CLOSED));
    let mut client = daemon.client().await;
    let bad_pw = frame(&format!(
        "QN=20260101120000000;ST=31;CN=2011;PW=999999;MN={MN};Flag=5;CP=&&DataTime={};a21026-Rtd=1&&",
        beijing_in(0)
    ));
    let unknown = frame(&format!(
        "QN=20260101120000001;ST=31;CN=2011;PW={PW};MN=NOSUCHMN;Flag=5;CP=&&DataTime={};a21026-Rtd=1&&",
        beijing_in(0)
    ));
    client.send(&bad_pw).await;
    client.send(&unknown).await;
    assert!(client.reply_within(QUIET).await.is_none(), "no 9014 for refused frames");
    client.send(&bad_pw).await;
    assert!(client.closed_within(Duration::from_secs(2)).await, "closed after 3 consecutive failures");
    assert_eq!(daemon.wait_metric(BAD_PW, bad_pw_before + 2).await, bad_pw_before + 2);
    assert_eq!(daemon.wait_metric(CLOSED, closed_before + 1).await, closed_before + 1);
    let dir = daemon.stop().await;
    let archived = archived(dir.path());
    assert_eq!(
        archived.iter().map(|(v, _, _)| v.as_str()).collect::<Vec<_>>(),
        ["bad_password", "unknown_mn", "bad_password"]
    );
    assert!(stored(dir.path(), MN).is_empty());
    assert!(stored(dir.path(), "NOSUCHMN").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_reach_the_logs_or_metrics() {
    let daemon = TestDaemon::start().await;
    let mut client = daemon.client().await;
    client.send(&frame(&format!("QN=20260101120000000;ST=31;CN=2011;PW=S3cr3tPW;MN={MN};Flag=5;CP=&&&&"))).await;
    assert!(client.reply_within(QUIET).await.is_none());
    let (_, metrics) = daemon.http("/metrics");
    let (_, sites) = daemon.http("/api/v1/sites");
    assert!(!metrics.contains("S3cr3tPW") && !sites.contains("S3cr3tPW") && !sites.contains(PW));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resends_are_answered_every_time_but_stored_once() {
    let daemon = TestDaemon::start().await;
    let before = daemon.metric("hj212_ingest_duplicates_total");
    let mut client = daemon.client().await;
    let frame = realtime("20260101120000000", &beijing_in(0), 5);
    for _ in 0..3 {
        client.send(&frame).await;
        assert_eq!(client.reply().await.qn.as_deref(), Some("20260101120000000"));
    }
    assert_eq!(daemon.metric("hj212_ingest_duplicates_total"), before + 2);
    let dir = daemon.stop().await;
    let verdicts: Vec<String> = archived(dir.path()).into_iter().map(|(v, _, _)| v).collect();
    assert_eq!(verdicts, ["accepted", "duplicate", "duplicate"]);
    assert_eq!(stored(dir.path(), MN).len(), 2, "two factors, stored once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_frames_with_one_datatime_are_both_kept() {
    // 2005-style loggers without QN may spread factors over two frames of one DataTime.
    let daemon = TestDaemon::start().await;
    let mut client = daemon.client().await;
    let dt = beijing_in(0);
    client.send(&frame(&format!("ST=32;CN=2011;PW={PW};MN={MN};CP=&&DataTime={dt};w01018-Rtd=40.1&&"))).await;
    client.send(&frame(&format!("ST=32;CN=2011;PW={PW};MN={MN};CP=&&DataTime={dt};w21003-Rtd=1.2&&"))).await;
    client.send(&frame(&format!("ST=32;CN=2011;PW={PW};MN={MN};CP=&&DataTime={dt};w21003-Rtd=1.2&&"))).await;
    tokio::time::sleep(QUIET).await;
    let dir = daemon.stop().await;
    let verdicts: Vec<String> = archived(dir.path()).into_iter().map(|(v, _, _)| v).collect();
    assert_eq!(verdicts, ["accepted", "accepted", "duplicate"]);
    assert_eq!(stored(dir.path(), MN).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn future_and_backfilled_data_are_marked() {
    let daemon = TestDaemon::start_with(|c| c.time_sync.enabled = false).await;
    let mut client = daemon.client().await;
    client.send(&realtime("20260101120000000", &beijing_in(3600), 5)).await;
    client.reply().await;
    client.send(&realtime("20260101120000001", &beijing_in(-7200), 5)).await;
    client.reply().await;
    let rf = frame(&format!(
        "QN=20260101120000002;ST=31;CN=2011;PW={PW};MN={MN};Flag=5;RF=1;CP=&&DataTime={};a21026-Rtd=1&&",
        beijing_in(0)
    ));
    client.send(&rf).await;
    client.reply().await;
    let dir = daemon.stop().await;
    let marks: Vec<u8> = archived(dir.path()).into_iter().map(|(_, m, _)| m).collect();
    assert_eq!(
        marks,
        [
            hj212_archive::flags::FUTURE_TIME,
            hj212_archive::flags::BACKFILL,
            hj212_archive::flags::BACKFILL | hj212_archive::flags::RESENT
        ]
    );
    let rows = stored(dir.path(), MN);
    assert_eq!(rows.iter().filter(|r| r.marks == hj212_archive::flags::FUTURE_TIME).count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_packets_are_each_answered_and_all_stored() {
    let daemon = TestDaemon::start().await;
    let mut client = daemon.client().await;
    let dt = "20160801080000";
    let p1 = frame(&format!(
        "QN=20160801085857534;ST=32;CN=2061;PW={PW};MN={MN};Flag=7;PNUM=2;PNO=1;CP=&&DataTime={dt};w00000-Avg=17.5,w00000-Flag=N&&"
    ));
    let p2 = frame(&format!(
        "QN=20160801085857535;ST=32;CN=2061;PW={PW};MN={MN};Flag=7;PNUM=2;PNO=2;CP=&&DataTime={dt};w01018-Avg=40.1,w01018-Flag=N&&"
    ));
    client.send(&[p1, p2].concat()).await;
    assert_eq!(client.reply().await.qn.as_deref(), Some("20160801085857534"));
    assert_eq!(client.reply().await.qn.as_deref(), Some("20160801085857535"));
    let dir = daemon.stop().await;
    let factors: Vec<String> = stored(dir.path(), MN).into_iter().map(|r| r.factor).collect();
    assert_eq!(factors, ["w00000", "w01018"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_calibration_request_and_heartbeat() {
    let daemon = TestDaemon::start().await;
    let mut client = daemon.client().await;
    client.send(&frame(&format!("QN=20260101120000000;ST=32;CN=1013;PW={PW};MN={MN};Flag=4;CP=&&&&"))).await;
    let ack = client.reply().await;
    assert_eq!((ack.cn, ack.qn.as_deref()), (9013, Some("20260101120000000")));
    let set = client.reply().await;
    assert_eq!(set.cn, 1012);
    let system_time = set.cp.strip_prefix("SystemTime=").expect("1012 carries SystemTime");
    let set_to = hj212_proto::time::BeijingTime::parse(system_time).unwrap().unix_millis();
    let now =
        i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap();
    assert!((now - set_to).abs() < 5_000, "1012 carries the current Beijing time");
    assert_eq!(set.flag, Some(5), "a command asks for an answer");
    // HJ 212-2025 heartbeat 9015 gets 9013 with the 2025 Flag.
    client.send(&frame(&format!("QN=20260101120000001;ST=32;CN=9015;PW={PW};MN={MN};Flag=9;CP=&&&&"))).await;
    let beat = client.reply().await;
    assert_eq!((beat.cn, beat.flag), (9013, Some(8)));
    let (_, sites) = daemon.http("/api/v1/sites");
    let sites: serde_json::Value = serde_json::from_str(&sites).unwrap();
    assert!(sites[0]["last_time_set"].is_string());
    let dir = daemon.stop().await;
    let export = hj212_archive::Follower::new(&dir.path().join("archive"), 1).read(u64::MAX, 100).unwrap();
    assert!(
        export.iter().any(|r| r.kind == hj212_archive::Kind::Sent && r.data.windows(7).any(|w| w == b"CN=1012")),
        "the 1012 is in the audit trail"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_drift_is_corrected_once_per_interval() {
    let daemon = TestDaemon::start().await;
    let mut client = daemon.client().await;
    // Resent old real-time data: late, but by changing amounts: not a clock problem.
    for (i, age) in [-7200, -7000, -6800].iter().enumerate() {
        client.send(&realtime(&format!("2026010111000000{i}"), &beijing_in(*age), 5)).await;
        assert_eq!(client.reply().await.cn, 9014);
    }
    assert!(client.reply_within(QUIET).await.is_none(), "backfill is not drift");
    // A clock 120 s behind, three frames in a row: corrected once.
    for i in 0..3 {
        // Successive real-time frames: each DataTime a second later, offset about -120 s.
        client.send(&realtime(&format!("2026010112000000{i}"), &beijing_in(-120 + i), 5)).await;
        assert_eq!(client.reply().await.cn, 9014);
    }
    assert_eq!(client.reply().await.cn, 1012, "120 s off three times: corrected");
    client.send(&realtime("20260101120000009", &beijing_in(-116), 5)).await;
    assert_eq!(client.reply().await.cn, 9014);
    assert!(client.reply_within(QUIET).await.is_none(), "rate-limited");
    let (_, sites) = daemon.http("/api/v1/sites");
    let sites: serde_json::Value = serde_json::from_str(&sites).unwrap();
    let offset = sites[0]["clock_offset_ms"].as_i64().unwrap();
    assert!((-125_000..=-115_000).contains(&offset), "{offset}");
    assert_eq!(sites[0]["online"], true);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_frames_and_the_length_limit() {
    let daemon = TestDaemon::start_with(|c| c.limits.max_frame_len = 2000).await;
    let (oversize, too_long) = (daemon.metric(OVERSIZE), daemon.metric(TOO_LONG));
    let mut client = daemon.client().await;
    let items: Vec<String> = (0..60).map(|i| format!("a{:05}-Rtd={i}.5,a{:05}-Flag=N", 30000 + i, 30000 + i)).collect();
    let big = frame(&format!(
        "QN=20260101120000000;ST=31;CN=2011;PW={PW};MN={MN};Flag=5;CP=&&DataTime={};{}&&",
        beijing_in(0),
        items.join(";")
    ));
    assert!(big.len() > 1024 + 12 && big.len() < 2000);
    client.send(&big).await;
    assert_eq!(client.reply().await.cn, 9014, "over 1024 is accepted and noted");
    let huge = frame(&format!(
        "QN=20260101120000001;ST=31;CN=2011;PW={PW};MN={MN};Flag=5;CP=&&DataTime={};{};{}&&",
        beijing_in(0),
        items.join(";"),
        items.join(";")
    ));
    client.send(&huge).await;
    client.send(&realtime("20260101120000002", &beijing_in(0), 5)).await;
    assert_eq!(client.reply().await.qn.as_deref(), Some("20260101120000002"), "the next frame still gets through");
    assert_eq!(daemon.metric(OVERSIZE), oversize + 1);
    assert_eq!(daemon.metric(TOO_LONG), too_long + 1);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_sender_is_served_and_idle_connections_close() {
    let daemon = TestDaemon::start_with(|c| c.limits.idle_timeout_secs = 1).await;
    let idle = daemon.metric(IDLE);
    let mut client = daemon.client().await;
    let frame = realtime("20260101120000000", &beijing_in(0), 5);
    for chunk in frame.chunks(40) {
        client.send(chunk).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(client.reply().await.cn, 9014, "gaps under the idle timeout are fine");
    assert!(client.closed_within(Duration::from_secs(3)).await, "closed after 1 s idle");
    assert_eq!(daemon.wait_metric(IDLE, idle + 1).await, idle + 1);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_skipped_and_repeated_garbage_closes() {
    let daemon = TestDaemon::start_with(|c| c.limits.max_bad_frames = 3).await;
    let mut client = daemon.client().await;
    let mut stream = b"AT+CSQ\r\n+CSQ: 20,0\r\n".to_vec();
    stream.extend_from_slice(&realtime("20260101120000000", &beijing_in(0), 5));
    client.send(&stream).await;
    assert_eq!(client.reply().await.cn, 9014);
    for _ in 0..3 {
        client.send(b"##00x1 not a frame at all ").await;
    }
    assert!(client.closed_within(Duration::from_secs(2)).await);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints() {
    let daemon = TestDaemon::start().await;
    assert_eq!(daemon.http("/healthz"), (200, "ok\n".to_owned()));
    assert_eq!(daemon.http("/readyz"), (200, "ready\n".to_owned()));
    let mut client = daemon.client().await;
    client.send(&realtime("20260101120000000", &beijing_in(0), 5)).await;
    client.reply().await;
    let (status, metrics) = daemon.http("/metrics");
    assert_eq!(status, 200);
    // Every sample line parses as `name{labels} value`.
    for line in metrics.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (name, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
        assert!(name.starts_with("hj212_"), "{line}");
    }
    for name in [
        "hj212_ingest_frames_total{outcome=\"accepted\"}",
        "hj212_archive_fsync_seconds_bucket",
        "hj212_build_info",
        "hj212_connections_active",
        "hj212_ingest_ack_latency_seconds_count",
    ] {
        assert!(metrics.contains(name), "{name} missing");
    }
    let (_, sites) = daemon.http("/api/v1/sites");
    let sites: serde_json::Value = serde_json::from_str(&sites).unwrap();
    assert_eq!(sites[0]["mn"], MN);
    assert_eq!(sites[0]["online"], true);
    assert!(sites[0]["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_carries_several_sites() {
    let daemon = TestDaemon::start_with(|c| c.sites.push(site("SECONDMN", "654321", CrcSetting::Hj212))).await;
    let mut client = daemon.client().await;
    client.send(&realtime("20260101120000000", &beijing_in(0), 5)).await;
    let second = frame(&format!(
        "QN=20260101120000001;ST=31;CN=2011;PW=654321;MN=SECONDMN;Flag=5;CP=&&DataTime={};a21026-Rtd=2&&",
        beijing_in(0)
    ));
    client.send(&second).await;
    assert_eq!(client.reply().await.qn.as_deref(), Some("20260101120000000"));
    let reply = client.reply().await;
    assert!(String::from_utf8_lossy(&reply.raw).contains("MN=SECONDMN;"), "{}", String::from_utf8_lossy(&reply.raw));
    let dir = daemon.stop().await;
    assert_eq!(
        stored(dir.path(), "SECONDMN").len(),
        1,
        "applied {}",
        hj212_store::Store::open(&dir.path().join("store.sqlite")).unwrap().applied_seq().unwrap()
    );
}
