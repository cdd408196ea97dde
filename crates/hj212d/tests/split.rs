//! Split packets (PNUM/PNO, HJ 212-2017 §6.3.2: a data segment over 1024 characters is sent in
//! parts): each part is a frame of its own, archived and answered on its own, and the readers
//! join the parts by MN, CN, DataTime and factor, so the rates see one complete record.

mod common;

use common::*;

/// An hourly record at `data_time` in two parts: SO2 and NOx, then O2.
fn parts(data_time: &str) -> [Vec<u8>; 2] {
    let part = |pno: u8, cp: &str| {
        frame(&format!(
            "QN=20260101100000001;ST=31;CN=2061;PW={PW};MN={MN};PNUM=2;PNO={pno};Flag=7;CP=&&DataTime={data_time};{cp}&&"
        ))
    };
    [part(1, "a21026-Avg=35.1,a21026-Flag=N;a21002-Avg=48.2,a21002-Flag=N"), part(2, "a19001-Avg=9.8,a19001-Flag=N")]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parts_of_a_split_record_are_answered_each_and_counted_as_one_record() {
    let daemon = TestDaemon::start_with(|config| {
        config.sites[0].factors = vec!["a21026".into(), "a21002".into(), "a19001".into()];
    })
    .await;
    // The last hour that has ended, so the record is on time and the period is due.
    let now =
        i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap();
    let start = hj212_compliance::Basis::Hour.period_start(now) - 3_600_000;
    let time = |ms: i64| hj212_proto::time::BeijingTime::from_unix_millis(ms).to_seconds_string();
    let mut client = daemon.client().await;
    for part in parts(&time(start)) {
        client.send(&part).await;
        assert_eq!(client.reply().await.cn, 9014, "each part is acknowledged");
    }
    let range = format!("from={}&to={}", time(start), time(start + 3_600_000));
    // The store follows the archive: ask until it has applied both parts.
    let (mut code, mut body) = (0, String::new());
    for _ in 0..100 {
        (code, body) = daemon.http(&format!("/api/v1/sites/{MN}/rate?{range}"));
        if body.contains("\"received\":3") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let dir = daemon.stop().await;
    let verdicts: Vec<String> = archived(dir.path()).into_iter().map(|(verdict, _, _)| verdict).collect();
    assert_eq!(verdicts, ["accepted", "accepted"], "two frames, neither a duplicate of the other");
    let factors: Vec<String> = stored(dir.path(), MN).into_iter().map(|r| r.factor).collect();
    assert_eq!(factors.len(), 3, "{factors:?}");
    assert_eq!(code, 200, "{body}");
    let rate: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((rate["due"].as_u64(), rate["received"].as_u64()), (Some(3), Some(3)), "{body}");
}
