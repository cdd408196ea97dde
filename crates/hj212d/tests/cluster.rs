//! `[cluster]` against a real NATS JetStream cluster (three Debian `nats-server` processes,
//! R3): two hj212d nodes receive the same frames (multi-centre loggers) and some frames each
//! alone; the stream holds every acknowledged frame once. With `ack_after = "cluster"`, a
//! frame is acknowledged only once the stream has it, and killing the stream's leader loses
//! none of them.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream;
use common::{MN, PW, TestDaemon, beijing_in, frame, realtime};
use futures_util::StreamExt as _;
use hj212_config::{AckAfter, Cluster, ReadFrom};
use test_support::mosquitto::{Mosquitto, Subscriber};
use test_support::nats::NatsCluster;

fn cluster(nats: &NatsCluster, node: &str, ack_after: AckAfter) -> Cluster {
    Cluster { nats_url: nats.urls(), node: node.to_owned(), ack_after, ..Cluster::default() }
}

async fn node(nats: &NatsCluster, name: &str, ack_after: AckAfter) -> TestDaemon {
    let cluster = Cluster { ack_timeout_ms: 2000, ..cluster(nats, name, ack_after) };
    TestDaemon::start_with(move |config| config.cluster = Some(cluster)).await
}

/// Frame `i`: its own QN and DataTime (a second apart), so that each is a distinct record.
fn numbered(i: i64) -> Vec<u8> {
    realtime(&format!("202601011{i:08}"), &beijing_in(-(i + 1)), 5)
}

/// Sends frames 0-29, each acknowledged: 0-19 to both nodes (a multi-centre logger),
/// 20-24 to a only, 25-29 to b only; returns them.
async fn send_split(a: &TestDaemon, b: &TestDaemon) -> Vec<Vec<u8>> {
    let (mut to_a, mut to_b) = (a.client().await, b.client().await);
    let sent: Vec<Vec<u8>> = (0..30).map(numbered).collect();
    for (i, frame) in sent.iter().enumerate() {
        if i < 25 {
            to_a.send(frame).await;
            assert_eq!(to_a.reply().await.cn, 9014);
        }
        if !(20..25).contains(&i) {
            to_b.send(frame).await;
            assert_eq!(to_b.reply().await.cn, 9014);
        }
    }
    sent
}

/// The stream's frames from sites: payload -> (how many copies, the nodes that published
/// them); `None` while the stream cannot be read (the servers electing their leaders).
async fn frames_in_stream(nats: &NatsCluster) -> Option<HashMap<Vec<u8>, (usize, Vec<String>)>> {
    let client = async_nats::connect(nats.urls()).await.ok()?;
    let context = jetstream::new(client);
    let mut stream = context.get_stream("HJ212").await.ok()?;
    let total = stream.info().await.ok()?.state.messages;
    // One ordered consumer over the whole stream: one request per batch, not per message.
    let reader = stream.create_consumer(jetstream::consumer::pull::OrderedConfig::default()).await.ok()?;
    let mut messages = reader.messages().await.ok()?;
    let mut frames: HashMap<Vec<u8>, (usize, Vec<String>)> = HashMap::new();
    for _ in 0..total {
        let message = tokio::time::timeout(Duration::from_secs(5), messages.next()).await.ok()??.ok()?;
        let header = |name: &str| message.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_owned());
        if !message.subject.starts_with("hj212.records.") || header("Hj212-Kind").as_deref() != Some("received") {
            continue;
        }
        let entry = frames.entry(message.payload.to_vec()).or_default();
        entry.0 += 1;
        entry.1.push(header("Hj212-Node").unwrap_or_default());
    }
    Some(frames)
}

/// Waits until the stream holds `count` site frames.
async fn wait_for_frames(nats: &NatsCluster, count: usize) -> HashMap<Vec<u8>, (usize, Vec<String>)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let frames = frames_in_stream(nats).await;
        let held = frames.as_ref().map_or(0, HashMap::len);
        if held >= count || tokio::time::Instant::now() >= deadline {
            return frames.unwrap_or_default();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_both_nodes_received_is_in_the_stream_once() {
    let nats = NatsCluster::start(3);
    nats.wait_healthy(Duration::from_secs(20));
    let (a, b) = (node(&nats, "a", AckAfter::Local).await, node(&nats, "b", AckAfter::Local).await);
    let sent = send_split(&a, &b).await;
    let frames = wait_for_frames(&nats, 30).await;
    assert_eq!(frames.len(), 30, "every frame either node acknowledged is in the stream");
    for (i, frame) in sent.iter().enumerate() {
        let (copies, nodes) = &frames[frame];
        assert_eq!(*copies, 1, "frame {i} stored once, published by {nodes:?}");
    }
    let only_b = &frames[&sent[27]].1;
    assert_eq!(only_b, &["b"], "a frame only b received is b's");
    // Both nodes published the 20 shared frames: the later copy of each was a duplicate (the
    // counter is the two nodes' together: a test's nodes share one metrics registry).
    let series = "hj212_cluster_duplicates_total";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while a.metric(series) < 20 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(a.metric(series), 20);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ack_after_cluster_no_acknowledged_frame_is_lost_when_the_leader_dies() {
    let mut nats = NatsCluster::start(3);
    nats.wait_healthy(Duration::from_secs(20));
    let a = node(&nats, "a", AckAfter::Cluster).await;
    let mut logger = a.client().await;
    let mut acknowledged = Vec::new();
    let mut killed = None;
    for i in 0..60 {
        if i == 20 {
            let leader = stream_leader(&nats).await;
            let index = nats.index_of(&leader).expect("the leader is one of ours");
            nats.kill(index);
            killed = Some(index);
        }
        if i == 40 {
            nats.restart(killed.take().expect("killed at 20"));
        }
        let frame = numbered(i);
        if !logger.try_send(&frame).await {
            logger = a.client().await;
            logger.send(&frame).await;
        }
        // Not acknowledged while the stream elects a leader: the logger sends it again.
        loop {
            match logger.reply_within(Duration::from_secs(8)).await {
                Some(reply) if reply.cn == 9014 => break,
                _ => {
                    logger = a.client().await;
                    logger.send(&frame).await;
                }
            }
        }
        acknowledged.push(frame);
    }
    // With no stream at all, a frame on disk here is still not acknowledged.
    for index in 0..3 {
        nats.kill(index);
    }
    let unheard = numbered(60);
    let timeouts = a.metric("hj212_connections_closed_total{reason=\"cluster_timeout\"}");
    logger.send(&unheard).await;
    assert!(logger.reply_within(Duration::from_secs(4)).await.is_none(), "no 9014 without the stream");
    assert!(logger.closed_within(Duration::from_secs(2)).await, "the connection is closed: the logger resends");
    assert_eq!(a.metric("hj212_connections_closed_total{reason=\"cluster_timeout\"}"), timeouts + 1);
    for index in 0..3 {
        nats.restart(index);
    }
    // The servers elect their leaders again; the logger resends until it is acknowledged.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(tokio::time::Instant::now() < deadline, "acknowledged within 60 s of the stream's return");
        let mut logger = a.client().await;
        logger.send(&unheard).await;
        if logger.reply_within(Duration::from_secs(4)).await.is_some_and(|reply| reply.cn == 9014) {
            break;
        }
    }
    acknowledged.push(unheard);
    let frames = wait_for_frames(&nats, acknowledged.len()).await;
    for (i, frame) in acknowledged.iter().enumerate() {
        let copies = frames.get(frame).map_or(0, |(copies, _)| *copies);
        assert_eq!(copies, 1, "acknowledged frame {i} is in the stream once");
    }
    a.stop().await;
}

/// The server name of the stream's leader.
async fn stream_leader(nats: &NatsCluster) -> String {
    let client = async_nats::connect(nats.urls()).await.expect("connect to NATS");
    let mut stream = jetstream::new(client).get_stream("HJ212").await.expect("the stream exists");
    let info = stream.info().await.expect("stream info");
    info.cluster.as_ref().and_then(|c| c.leader.clone()).expect("a leader")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_could_not_publish_catches_up_in_big_batches() {
    let mut nats = NatsCluster::start(3);
    nats.wait_healthy(Duration::from_secs(20));
    // One batch in flight: the acknowledgements the client may await at once must still
    // hold the whole batch being sent and the one before it.
    let cluster = Cluster { max_in_flight: 1, ..cluster(&nats, "a", AckAfter::Local) };
    let a = TestDaemon::start_with(move |config| config.cluster = Some(cluster)).await;
    for index in 0..3 {
        nats.kill(index);
    }
    // Acknowledged while the stream is away (ack_after = "local"), in one burst: the
    // publisher then has more than one batch of acknowledgements to wait for at once.
    let sent: Vec<Vec<u8>> = (0..3000).map(numbered).collect();
    let mut logger = a.client().await;
    logger.send(&sent.concat()).await;
    for _ in 0..sent.len() {
        assert_eq!(logger.reply().await.cn, 9014, "acknowledged without the stream");
    }
    for index in 0..3 {
        nats.restart(index);
    }
    let frames = wait_for_frames(&nats, sent.len()).await;
    let missing = sent.iter().filter(|frame| !frames.contains_key(*frame)).count();
    assert_eq!(missing, 0, "every frame reaches the stream once it is back");
    a.stop().await;
}

/// A node whose store follows the cluster's stream.
async fn reading_node(nats: &NatsCluster, name: &str) -> TestDaemon {
    let cluster = Cluster { store_from: ReadFrom::Stream, ..cluster(nats, name, AckAfter::Local) };
    TestDaemon::start_with(move |config| config.cluster = Some(cluster)).await
}

/// A store's readings without what differs between stores fed the same frames (the
/// position each was applied at, when it was received).
fn readings(node: &TestDaemon) -> Vec<hj212_store::Reading> {
    let mut readings = common::stored(node.dir.path(), common::MN);
    for reading in &mut readings {
        reading.archive_seq = 0;
        reading.received_ms = 0;
    }
    readings
}

/// Waits until `node`'s store holds readings of `frames` DataTimes.
async fn wait_for_readings(node: &TestDaemon, frames: usize) -> Vec<hj212_store::Reading> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let readings = readings(node);
        let times: std::collections::BTreeSet<_> = readings.iter().map(|r| r.data_time_ms).collect();
        if times.len() >= frames || tokio::time::Instant::now() >= deadline {
            return readings;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_fed_from_the_stream_hold_what_the_nodes_received_together() {
    let nats = NatsCluster::start(3);
    nats.wait_healthy(Duration::from_secs(20));
    let (a, b) = (reading_node(&nats, "a").await, reading_node(&nats, "b").await);
    let sent = send_split(&a, &b).await;
    // A single node fed the union, for comparison.
    let single = TestDaemon::start().await;
    let mut to_single = single.client().await;
    for frame in &sent {
        to_single.send(frame).await;
        assert_eq!(to_single.reply().await.cn, 9014);
    }
    let union = wait_for_readings(&single, 30).await;
    assert_eq!(union.len(), 60, "the single node stored the 30 frames' two factors");
    let same = |readings: Vec<hj212_store::Reading>| readings.len() == union.len() && readings == union;
    assert!(same(wait_for_readings(&a, 30).await), "node a's store is the union, as on a single node");
    assert!(same(wait_for_readings(&b, 30).await), "node b's store is the union, as on a single node");
    // A node that received nothing (a replacement for a dead disk) builds the same store.
    let c = reading_node(&nats, "c").await;
    assert!(same(wait_for_readings(&c, 30).await), "a new node's store is rebuilt from the stream");
    // (The lag gauge cannot be read per node here: the nodes of a test share one registry.)
    let (status, ready) = c.http("/readyz");
    assert_eq!(status, 200, "{ready}");
    for node in [a, b, c, single] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_is_not_fed_from_another_source_than_it_was_built_from() {
    let a = TestDaemon::start().await;
    let mut logger = a.client().await;
    logger.send(&numbered(0)).await;
    assert_eq!(logger.reply().await.cn, 9014);
    let dir = a.stop().await;
    let mut config = common::config(dir.path());
    // Refused before any server is asked.
    let nats_url = vec!["nats://127.0.0.1:1".to_owned()];
    config.cluster =
        Some(Cluster { nats_url, node: "a".to_owned(), store_from: ReadFrom::Stream, ..Cluster::default() });
    let error = hj212d::Daemon::start(config).await.expect_err("the store was built from the archive");
    let message = format!("{error:#}");
    assert!(message.contains("the store was built from archive and is now to be fed from stream:HJ212"), "{message}");
}

const TOKEN: &str = "cluster-test-token-0123456789";

/// A node with an admin token, its store fed from `store_from`.
async fn node_with_token(nats: &NatsCluster, name: &str, store_from: ReadFrom) -> (TestDaemon, tempfile::TempDir) {
    let token_dir = tempfile::tempdir().unwrap();
    let token_file = token_dir.path().join("admin.token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let cluster = Cluster { store_from, ..cluster(nats, name, AckAfter::Local) };
    let node = TestDaemon::start_with(|config| {
        config.cluster = Some(cluster);
        config.server.admin_token_file = Some(token_file.clone());
    })
    .await;
    (node, token_dir)
}

fn call(node: &TestDaemon, method: &str, path: &str, body: Option<&serde_json::Value>) -> (u16, serde_json::Value) {
    let body = body.map(serde_json::Value::to_string);
    let (status, text) = common::http_request(node.running.http_addr, method, path, Some(TOKEN), body.as_deref());
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {status} {text}")))
}

fn visit(work: &str, supersedes: Option<u64>) -> serde_json::Value {
    serde_json::json!({
        "arrived_at": beijing_in(-60),
        "left_at": beijing_in(0),
        "by": "duty engineer",
        "work": work,
        "result": "back in service",
        "supersedes": supersedes,
    })
}

/// `node`'s visits of the site once it lists `count`: (work, seq, superseded_by).
async fn listed_visits(node: &TestDaemon, count: usize) -> Vec<(String, u64, Option<u64>)> {
    let path = format!("/api/v1/sites/{}/visits", common::MN);
    for _ in 0..300 {
        let (status, list) = call(node, "GET", &path, None);
        assert_eq!(status, 200, "{list}");
        let visits = list["visits"].as_array().unwrap();
        if visits.len() >= count {
            let mut listed: Vec<_> = visits
                .iter()
                .map(|v| {
                    let work = v["visit"]["work"].as_str().unwrap_or_default().to_owned();
                    (work, v["visit"]["seq"].as_u64().unwrap_or_default(), v["superseded_by"].as_u64())
                })
                .collect();
            listed.sort();
            return listed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{count} visits never listed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrections_replace_what_they_name_in_a_store_fed_from_the_stream() {
    let nats = NatsCluster::start(3);
    nats.wait_healthy(Duration::from_secs(20));
    let (b, _b_token) = node_with_token(&nats, "b", ReadFrom::Stream).await;
    // b's frames first, so that the stream's numbers and a's archive's differ.
    let mut logger = b.client().await;
    for i in 0..5 {
        logger.send(&numbered(i)).await;
        assert_eq!(logger.reply().await.cn, 9014);
    }
    wait_for_frames(&nats, 5).await;
    // a's store follows its archive: its corrections name a's archive numbers.
    let (a, _a_token) = node_with_token(&nats, "a", ReadFrom::Archive).await;
    let path = format!("/api/v1/sites/{}/visits", common::MN);
    let (status, first) = call(&a, "POST", &path, Some(&visit("a: first", None)));
    assert_eq!(status, 201, "{first}");
    let first_on_a = first["seq"].as_u64().unwrap();
    listed_visits(&a, 1).await;
    let (status, second) = call(&a, "POST", &path, Some(&visit("a: corrected", Some(first_on_a))));
    assert_eq!(status, 201, "{second}");
    // b's store follows the stream: its API takes the numbers its lists show.
    let (status, third) = call(&b, "POST", &path, Some(&visit("b: first", None)));
    assert_eq!(status, 201, "{third}");
    let listed = listed_visits(&b, 3).await;
    let seq_of = |work: &str| listed.iter().find(|(w, ..)| w == work).map(|(_, seq, _)| *seq).expect("listed");
    assert_eq!(
        listed.iter().find(|(w, ..)| w == "a: first").and_then(|(.., by)| *by),
        Some(seq_of("a: corrected")),
        "a's correction replaces a's first record in b's store: {listed:?}"
    );
    let (status, fourth) = call(&b, "POST", &path, Some(&visit("b: corrected", Some(seq_of("b: first")))));
    assert_eq!(status, 201, "{fourth}");
    let listed = listed_visits(&b, 4).await;
    let by = |work: &str| listed.iter().find(|(w, ..)| w == work).and_then(|(.., by)| *by);
    let seq_of = |work: &str| listed.iter().find(|(w, ..)| w == work).map(|(_, seq, _)| *seq);
    assert_eq!(by("b: first"), seq_of("b: corrected"), "b's correction replaces b's first: {listed:?}");
    assert_eq!((by("a: corrected"), by("b: corrected")), (None, None), "{listed:?}");
    a.stop().await;
    b.stop().await;
}

/// A node whose store, sink and forwarding target follow the stream, forwarding to `upstream`.
async fn forwarding_node(nats: &NatsCluster, name: &str, upstream: std::net::SocketAddr) -> TestDaemon {
    let cluster = Cluster {
        store_from: ReadFrom::Stream,
        sinks_from: ReadFrom::Stream,
        lease_secs: 3,
        ..cluster(nats, name, AckAfter::Local)
    };
    let target = hj212_config::Forward {
        cns: vec!["2011".into()],
        ack_timeout_secs: 2,
        connect_timeout_secs: 2,
        max_backoff_secs: 1,
        ..hj212_config::Forward::new("upstream", upstream.to_string())
    };
    TestDaemon::start_with(move |config| {
        config.cluster = Some(cluster);
        config.forward = vec![target];
    })
    .await
}

/// The upstream's archived real-time frames by verdict: (accepted, resends archived `duplicate`).
fn upstream_frames(upstream: &TestDaemon) -> (Vec<String>, usize) {
    let received: Vec<_> =
        common::archived(upstream.dir.path()).into_iter().filter(|(_, _, text)| text.contains("CN=2011")).collect();
    let accepted = received.iter().filter(|(verdict, ..)| verdict == "accepted").map(|(.., text)| text.clone());
    let resent = received.iter().filter(|(verdict, ..)| verdict == "duplicate").count();
    (accepted.collect(), resent)
}

async fn wait_upstream(upstream: &TestDaemon, count: usize) -> (Vec<String>, usize) {
    for _ in 0..300 {
        let frames = upstream_frames(upstream);
        if frames.0.len() >= count {
            return frames;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    upstream_frames(upstream)
}

/// The node holding the lease of the follower `key` (the nodes of a test share one metrics
/// registry, so the `hj212_cluster_lease_held` gauge cannot tell them apart here).
async fn lease_holder(nats: &NatsCluster, key: &str) -> Option<String> {
    let client = async_nats::connect(nats.urls()).await.ok()?;
    let leases = jetstream::new(client).get_key_value("HJ212_LEASES").await.ok()?;
    let holder = leases.get(key).await.ok()??;
    Some(String::from_utf8_lossy(&holder).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_at_a_time_forwards_what_the_nodes_received_each_frame_once() {
    let nats = NatsCluster::start(3);
    nats.wait_healthy(Duration::from_secs(20));
    let upstream = TestDaemon::start().await;
    let address = upstream.running.hj212_addr;
    let (a, b) = (forwarding_node(&nats, "a", address).await, forwarding_node(&nats, "b", address).await);
    send_split(&a, &b).await;
    let (accepted, resent) = wait_upstream(&upstream, 30).await;
    assert_eq!((accepted.len(), resent), (30, 0), "each frame forwarded once, by one node");
    // The holder stops: the other takes the forwarder over where it stood.
    let first = lease_holder(&nats, "forward_upstream").await.expect("a node holds the forwarder's lease");
    let (holder, other) = if first == "a" { (a, b) } else { (b, a) };
    holder.stop().await;
    let mut logger = other.client().await;
    for i in 30..40 {
        logger.send(&numbered(i)).await;
        assert_eq!(logger.reply().await.cn, 9014);
    }
    let (accepted, resent) = wait_upstream(&upstream, 40).await;
    assert_eq!((accepted.len(), resent), (40, 0), "the survivor forwards the rest, nothing twice");
    let survivor = if first == "a" { "b" } else { "a" };
    assert_eq!(
        lease_holder(&nats, "forward_upstream").await.as_deref(),
        Some(survivor),
        "the survivor holds the forwarder"
    );
    other.stop().await;
    upstream.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_at_a_time_writes_what_the_nodes_received_to_the_time_series_database() {
    let nats = NatsCluster::start(3);
    nats.wait_healthy(Duration::from_secs(20));
    let vm = test_support::VictoriaMetrics::start();
    let node = |name: &str| {
        let cluster = Cluster {
            store_from: ReadFrom::Stream,
            sinks_from: ReadFrom::Stream,
            lease_secs: 3,
            ..cluster(&nats, name, AckAfter::Local)
        };
        let influx = hj212_config::Influx {
            url: vm.url(),
            org: "ops".into(),
            bucket: "hj212".into(),
            db: "hj212".into(),
            batch_points: 100,
            batch_interval_ms: 100,
            ..hj212_config::Influx::default()
        };
        TestDaemon::start_with(move |config| {
            config.cluster = Some(cluster);
            config.influx = Some(influx);
        })
    };
    let (a, b) = (node("a").await, node("b").await);
    send_split(&a, &b).await;
    // Each of the 30 frames once: both nodes writing would store each sample twice.
    let selector = r#"{__name__="hj212_rtd",factor="a21026"}"#;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let samples = loop {
        let series = vm.export(selector);
        let samples: usize = series.iter().map(|s| s["timestamps"].as_array().map_or(0, Vec::len)).sum();
        if samples >= 30 || tokio::time::Instant::now() >= deadline {
            break samples;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let again: usize = vm.export(selector).iter().map(|s| s["timestamps"].as_array().map_or(0, Vec::len)).sum();
    assert_eq!((samples, again), (30, 30), "each frame's point written once, by one node");
    let holder = lease_holder(&nats, "influx").await;
    assert!(matches!(holder.as_deref(), Some("a" | "b")), "one node holds the sink: {holder:?}");
    a.stop().await;
    b.stop().await;
}

/// A node whose store and alert engine follow the stream, publishing alerts to `broker`, with
/// an hourly SO2 limit of 35 and an admin token (in the folder returned).
async fn alerting_node(nats: &NatsCluster, name: &str, broker: &Mosquitto) -> (TestDaemon, tempfile::TempDir) {
    let token_dir = tempfile::tempdir().unwrap();
    let token_file = token_dir.path().join("admin.token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let cluster = Cluster {
        store_from: ReadFrom::Stream,
        alerts_from: ReadFrom::Stream,
        lease_secs: 3,
        ..cluster(nats, name, AckAfter::Local)
    };
    let mqtt = hj212_config::Mqtt { url: broker.url(), max_backoff_secs: 1, ..hj212_config::Mqtt::default() };
    let limit = hj212_config::FactorLimit {
        factor: "a21026".into(),
        max: Some(35.0),
        min: None,
        basis: hj212_config::LimitBasis::Hour,
        reference_o2: None,
        max_step: None,
        range: None,
    };
    let node = TestDaemon::start_with(move |config| {
        config.cluster = Some(cluster);
        config.mqtt = Some(mqtt);
        config.sites[0].limits = vec![limit];
        config.server.admin_token_file = Some(token_file);
    })
    .await;
    (node, token_dir)
}

/// An hourly SO2 average for the hour `hours_ago` hours before this one.
fn hourly_so2(qn: u32, hours_ago: i64, so2: f64) -> Vec<u8> {
    let now_ms =
        i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap();
    let start = hj212_compliance::Basis::Hour.period_start(now_ms) - hours_ago * 3_600_000;
    let data_time = hj212_proto::time::BeijingTime::from_unix_millis(start).to_seconds_string();
    frame(&format!(
        "QN=20261201000000{qn:03};ST=31;CN=2061;PW={PW};MN={MN};Flag=5;CP=&&DataTime={data_time};a21026-Avg={so2},a21026-Flag=N&&"
    ))
}

async fn send_to(node: &TestDaemon, frames: &[Vec<u8>]) {
    let mut logger = node.client().await;
    for frame in frames {
        logger.send(frame).await;
        assert_eq!(logger.reply().await.cn, 9014);
    }
}

/// The alert messages received so far, as (message id, state), after `count` came (or 30 s)
/// and a moment more for any that should not come.
fn alert_messages(alerts: &Subscriber, count: usize) -> Vec<(String, String)> {
    alerts.wait_for(count, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    let json = |payload: &[u8]| serde_json::from_slice::<serde_json::Value>(payload).unwrap();
    let messages = alerts.received().into_iter().map(|m| json(&m.payload));
    messages
        .map(|m| (m["id"].as_str().unwrap_or_default().to_owned(), m["state"].as_str().unwrap_or_default().to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_raises_each_alert_once_and_a_survivor_delivers_what_comes_after() {
    let nats = NatsCluster::start(3);
    nats.wait_healthy(Duration::from_secs(20));
    let broker = Mosquitto::start();
    let alerts = Subscriber::connect(broker.addr, "hj212/alerts/#");
    let ((a, _a_token), (b, _b_token)) =
        (alerting_node(&nats, "a", &broker).await, alerting_node(&nats, "b", &broker).await);
    // Over the limit (to both nodes), worse (b only), back under it (a only): each node's
    // engine sees all three from the stream, and one node sends each message.
    // (Each waits for the message before: the stream's order is the order the nodes publish.)
    send_to(&a, &[hourly_so2(1, 3, 50.0)]).await;
    send_to(&b, &[hourly_so2(1, 3, 50.0)]).await;
    alert_messages(&alerts, 1);
    send_to(&b, &[hourly_so2(2, 2, 60.0)]).await;
    alert_messages(&alerts, 2);
    send_to(&a, &[hourly_so2(3, 1, 10.0)]).await;
    let sent = alert_messages(&alerts, 3);
    let states: Vec<&str> = sent.iter().map(|(_, state)| state.as_str()).collect();
    assert_eq!(states, ["raised", "updated", "cleared"], "each message once: {sent:?}");
    for node in [&a, &b] {
        let (code, body) = node.http("/api/v1/alerts?state=all");
        let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!((code, listed["count"].as_u64()), (200, Some(1)), "both engines hold the alert: {body}");
        assert_eq!(listed["alerts"][0]["messages"], 3, "{body}");
    }

    // Acknowledged on a, it is acknowledged on b too (the acknowledgement's record reaches b's
    // engine through the stream).
    let (_, listed) = call(&a, "GET", "/api/v1/alerts?state=all", None);
    let alert_id = listed["alerts"][0]["alert_id"].as_str().unwrap().to_owned();
    let note = serde_json::json!({ "by": "duty", "note": "on site" });
    let (code, acked) = call(&a, "POST", &format!("/api/v1/alerts/{alert_id}/ack"), Some(&note));
    assert_eq!((code, acked["acked_by"].as_str()), (200, Some("duty")), "{acked}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, listed) = call(&b, "GET", "/api/v1/alerts?state=all", None);
        let alert = &listed["alerts"][0];
        if alert["acked_by"] == "duty" {
            assert_eq!(alert["ack_note"], "on site", "{alert}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "b does not show a's acknowledgement: {alert}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The node delivering stops; the other takes over and sends only what is new.
    let first = lease_holder(&nats, "outbox_mqtt").await.expect("a node delivers the alerts");
    let (holder, other) = if first == "a" { (a, b) } else { (b, a) };
    holder.stop().await;
    send_to(&other, &[hourly_so2(4, 0, 80.0)]).await;
    let after = alert_messages(&alerts, 4);
    assert_eq!(after.len(), 4, "the new alert, and nothing sent again: {after:?}");
    assert_eq!(after[3].1, "raised");
    let ids: std::collections::HashSet<&String> = after.iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), 4, "no message twice: {after:?}");
    let survivor = if first == "a" { "b" } else { "a" };
    assert_eq!(lease_holder(&nats, "outbox_mqtt").await.as_deref(), Some(survivor));
    other.stop().await;
}

/// An hourly SO2 average from `MN` for the hour starting at `start_ms`, with its own QN.
fn hour_record(qn: &str, start_ms: i64) -> Vec<u8> {
    let data_time = hj212_proto::time::BeijingTime::from_unix_millis(start_ms).to_seconds_string();
    frame(&format!(
        "QN={qn};ST=31;CN=2061;PW={PW};MN={MN};Flag=5;CP=&&DataTime={data_time};a21026-Avg=35.2,a21026-Flag=N&&"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_hour_is_asked_for_by_one_node_of_the_cluster() {
    let nats = NatsCluster::start(3);
    nats.wait_healthy(Duration::from_secs(20));
    let node = |name: &str| {
        let cluster = Cluster { store_from: ReadFrom::Stream, ..cluster(&nats, name, AckAfter::Local) };
        TestDaemon::start_with(move |config| {
            config.cluster = Some(cluster);
            config.sites[0].factors = vec!["a21026".into()];
            config.recovery.interval_secs = 1;
            config.recovery.lookback_hours = 3;
            config.recovery.grace_minutes = 0;
            config.recovery.bases = vec![hj212_config::RecoveryBasis::Hour];
        })
    };
    let (a, b) = (node("a").await, node("b").await);
    // A multi-centre logger: connected to both, the same hours to each, one hour lost to both.
    let hour = |ms: i64| hj212_compliance::Basis::Hour.period_start(ms);
    let now = hj212_archive::now_ms();
    let missing = hour(now) - 2 * 3_600_000;
    let (mut to_a, mut to_b) = (a.client().await, b.client().await);
    for (i, start) in (1..=3).map(|back| hour(now) - back * 3_600_000).enumerate() {
        if start != missing {
            for logger in [&mut to_a, &mut to_b] {
                logger.send(&hour_record(&format!("2026120110000000{i}"), start)).await;
                assert_eq!(logger.reply().await.cn, 9014);
            }
        }
    }
    // Both stores see the gap; each sweep runs every second. One node asks.
    let (from_a, from_b) =
        tokio::join!(to_a.reply_within(Duration::from_secs(15)), to_b.reply_within(Duration::from_secs(15)));
    let asked: Vec<_> = [from_a, from_b].into_iter().flatten().collect();
    assert_eq!(asked.len(), 1, "one request for the cluster: {asked:?}");
    assert_eq!(asked[0].cn, 2061);
    a.stop().await;
    b.stop().await;
}
