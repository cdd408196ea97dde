//! The daemon scraped by a real Prometheus (the scrape config of deploy/prometheus, at a 1 s
//! interval): what the frame counters say in PromQL is exactly what was sent.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use test_support::prometheus::{JOB, Prometheus};

const ACCEPTED: u32 = 12;
const BAD_CRC: u32 = 3;
const BAD_PASSWORD: u32 = 2;

/// `frame` with its CRC replaced by a different one.
fn with_bad_crc(mut frame: Vec<u8>) -> Vec<u8> {
    let crc = frame.len() - 6..frame.len() - 2;
    let replacement: &[u8] = if &frame[crc.clone()] == b"0000" { b"FFFF" } else { b"0000" };
    frame[crc].copy_from_slice(replacement);
    frame
}

fn wrong_password(qn: &str) -> Vec<u8> {
    frame(&format!(
        "QN={qn};ST=31;CN=2011;PW=999999;MN={MN};Flag=5;CP=&&DataTime={};a21026-Rtd=1.0,a21026-Flag=N&&",
        beijing_in(0)
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sees_every_frame_by_outcome() {
    let daemon = TestDaemon::start_with(|c| {
        c.limits.max_auth_failures = 100;
        c.limits.max_bad_frames = 100;
    })
    .await;
    let mut client = daemon.client().await;
    for i in 0..ACCEPTED {
        let qn = format!("20260101120000{i:03}");
        client.send(&realtime(&qn, &beijing_in(0), 5)).await;
        let reply = client.reply().await;
        assert_eq!((reply.cn, reply.qn.as_deref()), (9014, Some(qn.as_str())), "frame {i} acknowledged");
    }
    for i in 0..BAD_CRC {
        client.send(&with_bad_crc(realtime(&format!("20260101120001{i:03}"), &beijing_in(0), 5))).await;
    }
    for i in 0..BAD_PASSWORD {
        client.send(&wrong_password(&format!("20260101120002{i:03}"))).await;
    }
    assert!(client.reply_within(Duration::from_millis(300)).await.is_none(), "refused frames get no reply");

    let prometheus = Prometheus::start(daemon.running.http_addr);
    // Every other outcome (duplicate, unknown_mn, parse_error, ...) is exported as 0.
    let expected: BTreeMap<String, f64> =
        [("accepted", ACCEPTED), ("bad_password", BAD_PASSWORD), ("bad_crc", BAD_CRC)]
            .into_iter()
            .map(|(outcome, n)| (outcome.to_owned(), f64::from(n)))
            .collect();
    let up_query = format!("up{{job=\"{JOB}\"}}");
    let frames_query = format!("sum by (outcome) (hj212_ingest_frames_total{{job=\"{JOB}\"}})");
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut up, mut frames, mut outcomes) = (Vec::new(), BTreeMap::new(), 0);
    while Instant::now() < deadline {
        up = prometheus.vector(&up_query).into_iter().map(|(_, v)| v).collect();
        let samples = prometheus.vector(&frames_query);
        outcomes = samples.len();
        frames = samples
            .into_iter()
            .filter(|(_, v)| *v > 0.0)
            .map(|(labels, v)| (labels["outcome"].as_str().unwrap_or_default().to_owned(), v))
            .collect();
        if up == [1.0] && frames == expected && outcomes >= 7 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(up, [1.0], "{up_query} within 30 s; prometheus log:\n{}", prometheus.log());
    assert_eq!(frames, expected, "{frames_query} (non-zero) within 30 s; prometheus log:\n{}", prometheus.log());
    assert!(outcomes >= 7, "every outcome of docs/metrics.md is exported, zeros too: {outcomes} series");

    // The refused frames are also counted by reason, as the AuthFailures rule reads them.
    let auth = prometheus.vector(&format!("hj212_ingest_auth_failures_total{{job=\"{JOB}\",reason=\"bad_password\"}}"));
    assert_eq!(auth.iter().map(|(_, v)| *v).collect::<Vec<_>>(), [f64::from(BAD_PASSWORD)]);
    drop(client);
    daemon.stop().await;
}
