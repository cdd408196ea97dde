//! The time-series sink against a real VictoriaMetrics on loopback.

mod common;

use std::time::{Duration, Instant};

use common::*;
use hj212_config::{CrcSetting, Influx, InfluxApi};
use test_support::VictoriaMetrics;

const REJECTED: &str = "hj212_influx_failures_total{kind=\"rejected\"}";

fn influx(vm: &VictoriaMetrics, api: InfluxApi) -> Influx {
    Influx {
        url: vm.url(),
        api,
        org: "ops".into(),
        bucket: "hj212".into(),
        db: "hj212".into(),
        batch_points: 100,
        batch_interval_ms: 100,
        ..Influx::default()
    }
}

/// Waits until `selector` has `samples` samples in total, returning the export.
fn wait_samples(vm: &VictoriaMetrics, selector: &str, samples: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let series = vm.export(selector);
        let count: usize = series.iter().map(|s| s["timestamps"].as_array().unwrap().len()).sum();
        if count >= samples || Instant::now() > deadline {
            return series;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn find<'a>(series: &'a [serde_json::Value], name: &str, factor: &str) -> &'a serde_json::Value {
    series
        .iter()
        .find(|s| s["metric"]["__name__"] == name && s["metric"]["factor"] == factor)
        .unwrap_or_else(|| panic!("no {name} for {factor} in {series:?}"))
}

async fn readings_arrive(api: InfluxApi) {
    let vm = VictoriaMetrics::start();
    let daemon = TestDaemon::start_with(|c| {
        c.influx = Some(influx(&vm, api));
        c.sites.push(site("LD130133000015", "000000", CrcSetting::Hj212));
    })
    .await;
    let mut client = daemon.client().await;
    // A 2005-era frame (no QN, no Flag: no reply) and a 2017 minute frame.
    client.send(b"##0136ST=32;CN=2011;PW=000000;MN=LD130133000015;CP=&&DataTime=20160824003817;011-Rtd=231.0,011-Flag=N;B01-Rtd=36.91;060-Rtd=1.803,060-Flag=N&&1dc0\r\n").await;
    client.send(&frame(&format!("QN=20160801085000001;ST=32;CN=2051;PW={PW};MN={MN};Flag=5;CP=&&DataTime=20160801084000;w00000-Cou=10.5,w00000-Min=16.4,w00000-Avg=17.5,w00000-Max=20.1,w00000-Flag=D&&"))).await;
    assert_eq!(client.reply().await.cn, 9014);

    let legacy = wait_samples(&vm, r#"{__name__="hj212_rtd",mn="LD130133000015"}"#, 3);
    let cod = find(&legacy, "hj212_rtd", "011");
    assert_eq!(cod["metric"]["factor_2017"], "w01018");
    assert_eq!(
        (&cod["metric"]["st"], &cod["metric"]["cn"], &cod["metric"]["flag"]),
        (&"32".into(), &"2011".into(), &"N".into())
    );
    assert_eq!(cod["values"], serde_json::json!([231]));
    // DataTime 2016-08-24 00:38:17 is Beijing time: 16:38:17 UTC.
    assert_eq!(cod["timestamps"], serde_json::json!([1_471_970_297_000_i64]));
    assert_eq!(find(&legacy, "hj212_rtd", "B01")["metric"]["factor_2017"], "w00000");

    let minute = wait_samples(&vm, &format!(r#"{{__name__=~"hj212_(min|avg|max|cou)",mn="{MN}"}}"#), 4);
    assert_eq!(minute.len(), 4);
    let avg = find(&minute, "hj212_avg", "w00000");
    assert_eq!((&avg["metric"]["flag"], &avg["values"]), (&"D".into(), &serde_json::json!([17.5])));
    assert_eq!(avg["timestamps"], serde_json::json!([1_470_012_000_000_i64]));
    assert!(avg["metric"].get("factor_2017").is_none(), "2017 codes carry no mapping tag");
    let sites = wait_samples(&vm, r#"{__name__="hj212_site_name"}"#, 0);
    let _ = sites; // VictoriaMetrics keeps numeric fields only; InfluxDB keeps the name.
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_arrive_with_tags_values_and_timestamps_v2() {
    readings_arrive(InfluxApi::V2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_arrive_with_tags_values_and_timestamps_v1() {
    readings_arrive(InfluxApi::V1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_delays_but_loses_nothing() {
    let mut vm = VictoriaMetrics::start();
    let daemon = TestDaemon::start_with(|c| {
        // Small batches: the sink has many of them stuck during the outage, and its lag must
        // still be reported (it once froze when its loop blocked on the fifth).
        c.influx = Some(Influx {
            max_backoff_secs: 1,
            degraded_lag_records: 10,
            batch_points: 10,
            ..influx(&vm, InfluxApi::V2)
        });
        c.time_sync.enabled = false;
    })
    .await;
    let written_before = daemon.metric("hj212_influx_points_total");
    vm.stop();
    let mut client = daemon.client().await;
    let base = 1_767_225_600_000_i64; // 2026-01-01T08:00:00+08:00
    for i in 0..300 {
        let t = hj212_proto::time::BeijingTime::from_unix_millis(base + i * 60_000);
        client.send(&realtime(&t.to_qn_string(), &t.to_seconds_string(), 5)).await;
        assert_eq!(client.reply().await.cn, 9014, "acknowledged while the database is down");
    }
    // The lag keeps being reported while every write fails (the sink's loop is stuck retrying).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, ready) = daemon.http("/readyz");
    assert!(ready.starts_with("ready\ndegraded: influx is "), "{ready}");
    let behind: u64 = ready.split("influx is ").nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap();
    assert!(behind >= 300, "all 300 frames are behind: {ready}");
    assert!(daemon.metric(r#"hj212_follower_lag_records{follower="influx"}"#) >= 300);
    let retries = daemon.metric("hj212_influx_retries_total");
    assert!(retries > 0, "the sink retried");
    vm.restart();
    let series = wait_samples(&vm, &format!(r#"{{__name__="hj212_rtd",mn="{MN}"}}"#), 600);
    assert_eq!(series.len(), 2, "a21026 and a21002");
    for s in &series {
        let stamps = s["timestamps"].as_array().unwrap();
        let unique: std::collections::HashSet<i64> = stamps.iter().map(|t| t.as_i64().unwrap()).collect();
        assert_eq!((stamps.len(), unique.len()), (300, 300), "every reading exactly once");
    }
    let written = daemon.wait_metric("hj212_influx_points_total", written_before + 600).await;
    // Other tests in this process may write too; the exact check is the export above.
    assert!(written >= written_before + 600);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_goes_to_the_dead_letter_file_and_the_sink_goes_on() {
    // VictoriaMetrics accepts anything well formed, so this one fault comes from a stand-in
    // that answers the first write with 400 and a message, then 204.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let mut bodies = Vec::new();
        for (i, stream) in listener.incoming().take(3).enumerate() {
            let mut stream = stream.unwrap();
            let body = read_request(&mut stream);
            let response = if i == 1 {
                "HTTP/1.1 400 Bad Request\r\nContent-Length: 36\r\nConnection: close\r\n\r\nunable to parse: field type conflict"
            } else {
                "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
            };
            std::io::Write::write_all(&mut stream, response.as_bytes()).unwrap();
            bodies.push(body);
        }
        bodies
    });
    let daemon = TestDaemon::start_with(|c| {
        c.influx = Some(Influx {
            url: format!("http://{addr}"),
            org: "ops".into(),
            bucket: "b".into(),
            gzip: false,
            batch_interval_ms: 50,
            ..Influx::default()
        });
    })
    .await;
    // The first request is the site metadata; the second (400) and third carry readings.
    let (parked, written, rejected) = (
        daemon.metric("hj212_influx_dead_letter_points_total"),
        daemon.metric("hj212_influx_points_total"),
        daemon.metric(REJECTED),
    );
    let mut client = daemon.client().await;
    client.send(&realtime("20260101120000001", &beijing_in(0), 5)).await;
    client.reply().await;
    assert_eq!(daemon.wait_metric("hj212_influx_dead_letter_points_total", parked + 2).await, parked + 2);
    client.send(&realtime("20260101120000002", &beijing_in(0), 5)).await;
    client.reply().await;
    // Other tests in this process may write points too; the exact check is the third body below.
    assert!(
        daemon.wait_metric("hj212_influx_points_total", written + 2).await >= written + 2,
        "the next batch is written"
    );
    assert_eq!(daemon.metric(REJECTED), rejected + 1);
    let dir = daemon.stop().await;
    let bodies = server.join().unwrap();
    assert!(bodies[1].contains("hj212,mn=010000A8900016F000169DC0"));
    assert_eq!(
        bodies[2].lines().filter(|l| l.starts_with("hj212,mn=010000A8900016F000169DC0")).count(),
        2,
        "{bodies:?}"
    );
    let parked = std::fs::read_to_string(dir.path().join("influx-dead-letter.lp")).unwrap();
    assert!(parked.starts_with("# refused: HTTP 400: unable to parse: field type conflict\nhj212,mn="), "{parked}");
}

fn read_request(stream: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).unwrap();
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                return body.to_owned();
            }
        }
        if n == 0 {
            return String::new();
        }
    }
}

/// First copy wins in the TSDB as in the store and the rates: a later accepted frame with the
/// same (MN, CN, DataTime) and other values (and another flag) does not overwrite or add to
/// `hj212`; its points are in `hj212_resend`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_with_other_values_does_not_overwrite_the_first_copy() {
    let vm = VictoriaMetrics::start();
    let daemon = TestDaemon::start_with(|c| c.influx = Some(influx(&vm, InfluxApi::V2))).await;
    let mut client = daemon.client().await;
    let hourly = |qn: &str, so2: &str, nox_flag: &str| {
        frame(&format!(
            "QN={qn};ST=31;CN=2061;PW={PW};MN={MN};Flag=5;CP=&&DataTime=20260101080000;\
             a21026-Avg={so2},a21026-Flag=N;a21002-Avg=48.1,a21002-Flag={nox_flag}&&"
        ))
    };
    client.send(&hourly("20260101090000001", "10.5", "N")).await;
    assert_eq!(client.reply().await.cn, 9014);
    // Another QN and other content: not a resend of the same frame, so it is accepted.
    client.send(&hourly("20260101093000001", "99.5", "D")).await;
    assert_eq!(client.reply().await.cn, 9014);
    // A third frame after both, so the export below waits for everything.
    client.send(&realtime("20260101100000001", "20260101100000", 5)).await;
    assert_eq!(client.reply().await.cn, 9014);
    wait_samples(&vm, &format!(r#"{{__name__="hj212_rtd",mn="{MN}"}}"#), 2);

    let first = vm.export(&format!(r#"{{__name__="hj212_avg",mn="{MN}",cn="2061"}}"#));
    let so2 = find(&first, "hj212_avg", "a21026");
    assert_eq!((&so2["values"], &so2["metric"]["flag"]), (&serde_json::json!([10.5]), &"N".into()), "{first:?}");
    assert_eq!(first.len(), 2, "one series per factor: the resend's flag D adds none: {first:?}");
    assert_eq!(find(&first, "hj212_avg", "a21002")["metric"]["flag"], "N");
    let resent = wait_samples(&vm, &format!(r#"{{__name__="hj212_resend_avg",mn="{MN}"}}"#), 2);
    assert_eq!(find(&resent, "hj212_resend_avg", "a21026")["values"], serde_json::json!([99.5]));
    assert_eq!(find(&resent, "hj212_resend_avg", "a21002")["metric"]["flag"], "D");
    let dir = daemon.stop().await;
    let so2_stored = stored(dir.path(), MN).into_iter().find(|r| r.cn == 2061 && r.factor == "a21026").unwrap();
    assert_eq!(so2_stored.avg.as_deref(), Some("10.5"), "the store keeps the first copy too");
}
