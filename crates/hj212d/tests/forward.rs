//! Forwarding to an upstream platform (issue 15): the upstream is a second hj212d with the same
//! site. Every frame the relay accepted reaches it once, in order, also when it was down for a
//! while; the relay's position advances only past what the upstream acknowledged.

mod common;

use std::time::Duration;

use common::{TestDaemon, archived, realtime};
use hj212_config::Forward;

fn forward_to(address: std::net::SocketAddr) -> Forward {
    Forward {
        cns: vec!["2011".into(), "2061".into()],
        window: 16,
        ack_timeout_secs: 2,
        connect_timeout_secs: 2,
        max_backoff_secs: 1,
        ..Forward::new("upstream", address.to_string())
    }
}

/// The QNs of the accepted real-time frames in `dir`'s archive, in archive order.
fn accepted_qns(dir: &std::path::Path) -> Vec<String> {
    archived(dir)
        .into_iter()
        .filter(|(verdict, _, text)| verdict == "accepted" && text.contains("CN=2011"))
        .filter_map(|(_, _, text)| text.find("QN=").map(|at| text[at + 3..at + 20].to_owned()))
        .collect()
}

fn forward_state(relay: &TestDaemon) -> serde_json::Value {
    let (status, body) = relay.http("/api/v1/forward");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn send_frames(relay: &TestDaemon, first: i64, count: i64) -> Vec<String> {
    let mut logger = relay.client().await;
    let mut qns = Vec::new();
    for i in first..first + count {
        let qn = format!("20261130{i:09}");
        logger.send(&realtime(&qn, &common::beijing_in(-i), 5)).await;
        assert_eq!(logger.reply().await.cn, 9014);
        qns.push(qn);
    }
    qns
}

async fn wait_for(dir: &std::path::Path, count: usize) -> Vec<String> {
    for _ in 0..200 {
        let qns = accepted_qns(dir);
        if qns.len() >= count {
            return qns;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    accepted_qns(dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_frame_reaches_the_upstream_once_in_order() {
    let upstream = TestDaemon::start().await;
    let target = forward_to(upstream.running.hj212_addr);
    let relay = TestDaemon::start_with(|config| config.forward = vec![target]).await;
    let sent = send_frames(&relay, 0, 300).await;
    let received = wait_for(upstream.dir.path(), sent.len()).await;
    assert_eq!(received, sent, "each frame once, in the order the relay accepted them");
    let relay_dir = relay.stop().await;
    let cursor = std::fs::read_to_string(relay_dir.path().join("forward-upstream.cursor")).unwrap();
    assert!(cursor.trim().parse::<u64>().unwrap() >= 300, "the position passed every acknowledged frame: {cursor}");
    upstream.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_outage_loses_nothing() {
    // A port nothing listens on yet: the upstream starts there later.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let relay = TestDaemon::start_with(|config| config.forward = vec![forward_to(port)]).await;
    let mut sent = send_frames(&relay, 0, 50).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let target = &forward_state(&relay)[0];
    assert!(target["lag_records"].as_u64().unwrap() >= 50, "{target}");
    assert!(target["last_error"].as_str().unwrap().contains("cannot connect"), "{target}");
    let upstream = TestDaemon::start_with(|config| config.server.listen = port).await;
    sent.extend(send_frames(&relay, 50, 50).await);
    let received = wait_for(upstream.dir.path(), sent.len()).await;
    assert_eq!(received, sent, "what was acknowledged during the outage is forwarded once it ends");
    let mut caught_up = false;
    for _ in 0..50 {
        let target = &forward_state(&relay)[0];
        if target["lag_records"] == 0 && target["last_error"].is_null() {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(caught_up, "GET /api/v1/forward shows the target caught up: {:?}", forward_state(&relay));
    relay.stop().await;
    upstream.stop().await;
}

/// QNs of the frames an upstream that never acknowledges receives, per connection, for
/// `for_how_long`; it answers every read with `answer` (nothing, or garbage).
fn silent_upstream(listener: &std::net::TcpListener, for_how_long: Duration, answer: &[u8]) -> Vec<Vec<String>> {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + for_how_long;
    let mut connections = Vec::new();
    while std::time::Instant::now() < deadline {
        listener.set_nonblocking(true).unwrap();
        let Ok((mut stream, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        while std::time::Instant::now() < deadline {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    text.push_str(&String::from_utf8_lossy(&buf[..n]));
                    let _ = stream.write_all(answer);
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
        connections.push(text.match_indices("QN=").map(|(at, _)| text[at + 3..at + 20].to_owned()).collect());
    }
    connections
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_never_acknowledges_gets_resends_within_the_window_and_loses_nothing() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap();
    let relay = TestDaemon::start_with(|config| config.forward = vec![forward_to(port)]).await;
    let silent = std::thread::spawn(move || silent_upstream(&listener, Duration::from_secs(6), b""));
    let sent = send_frames(&relay, 0, 40).await;
    let connections = tokio::task::spawn_blocking(move || silent.join().unwrap()).await.unwrap();
    assert!(connections.len() >= 2, "no 9014 within 2 s: reconnected and resent: {connections:?}");
    for qns in &connections {
        assert!(!qns.is_empty() && qns.len() <= 16, "at most the window in flight: {qns:?}");
        assert_eq!(qns[0], sent[0], "resent from the last acknowledged frame, with its original QN");
    }
    let upstream = TestDaemon::start_with(|config| config.server.listen = port).await;
    let received = wait_for(upstream.dir.path(), sent.len()).await;
    assert_eq!(received, sent, "every frame once at the upstream that answers");
    relay.stop().await;
    upstream.stop().await;
}

/// HJ 212-2017 §6.1 over the forwarding link: the upstream's recovery sweep asks the relay for
/// the hourly records it misses (the relay forwards only real-time data here), and the relay
/// answers from its own archive: 9011, the records as the logger sent them, 9012.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstreams_history_request_is_answered_from_the_archive_and_its_gap_closes() {
    const H: i64 = 3_600_000;
    let upstream = TestDaemon::start_with(|config| {
        config.sites[0].factors = vec!["a21026".into()];
        config.recovery.interval_secs = 1;
        config.recovery.lookback_hours = 4;
        config.recovery.grace_minutes = 0;
    })
    .await;
    let mut target = forward_to(upstream.running.hj212_addr);
    target.cns = vec!["2011".into()];
    let relay = TestDaemon::start_with(|config| {
        config.forward = vec![target];
        config.recovery.enabled = false;
    })
    .await;
    let now = hj212_archive::now_ms();
    let hour = hj212_compliance::Basis::Hour.period_start(now);
    let mut logger = relay.client().await;
    for (i, start) in [hour - 3 * H, hour - 2 * H, hour - H].into_iter().enumerate() {
        let time = hj212_proto::time::BeijingTime::from_unix_millis(start).to_seconds_string();
        logger
            .send(&common::frame(&format!(
                "QN=2026113000000000{i};ST=31;CN=2061;PW={};MN={};Flag=5;CP=&&DataTime={time};a21026-Avg=35.2,a21026-Flag=N&&",
                common::PW,
                common::MN
            )))
            .await;
        assert_eq!(logger.reply().await.cn, 9014);
    }
    send_frames(&relay, 0, 1).await;

    let mut recovery = serde_json::Value::Null;
    for _ in 0..100 {
        let (_, body) = upstream.http("/api/v1/sites");
        let sites: serde_json::Value = serde_json::from_str(&body).unwrap();
        recovery = sites[0]["recovery"].clone();
        if recovery["records"] == 3 && recovery["missing_periods"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!((recovery["records"].as_u64(), recovery["missing_periods"].as_u64()), (Some(3), Some(0)), "{recovery}");
    relay.stop().await;
    let dir = upstream.stop().await;
    let hourly = common::stored(dir.path(), common::MN).into_iter().filter(|r| r.cn == 2061).count();
    assert_eq!(hourly, 3, "the upstream's gap is closed by the relay's archive");
}

/// A relay that has its own process, started with a config file in `dir`; `forward` is added
/// to its `[[forward]]` table.
fn spawn_relay(
    dir: &std::path::Path,
    upstream: std::net::SocketAddr,
    forward: &str,
) -> (std::process::Child, std::net::SocketAddr) {
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let config = dir.join("relay.toml");
    if !config.exists() {
        let (listen, http) = (free(), free());
        let text = format!(
            "[server]\nlisten = \"{listen}\"\nhttp_listen = \"{http}\"\ndata_dir = \"data\"\nlog_level = \"warn\"\n\
             [time_sync]\nenabled = false\n[recovery]\nenabled = false\n\
             [[forward]]\nname = \"upstream\"\naddress = \"{upstream}\"\ncns = [\"2011\"]\nack_timeout_secs = 2\nmax_backoff_secs = 1\n{forward}\
             [[sites]]\nmn = \"{}\"\npassword = \"{}\"\n",
            common::MN,
            common::PW
        );
        std::fs::write(&config, text).unwrap();
    }
    let listen = std::fs::read_to_string(&config)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("listen = \"")?.strip_suffix('"')?.parse().ok())
        .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_hj212d"))
        .arg("--config")
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    (child, listen)
}

/// Sends frames `range` to a relay at `addr`, each acknowledged, until the range ends or the
/// connection breaks; returns the QNs acknowledged.
async fn send_until_broken(addr: std::net::SocketAddr, range: std::ops::Range<i64>) -> Vec<String> {
    let mut acked = Vec::new();
    let mut logger = common::Client::connect(addr).await;
    for i in range {
        let qn = format!("20261130{i:09}");
        if !logger.try_send(&realtime(&qn, &common::beijing_in(-i), 5)).await {
            break;
        }
        match logger.reply_within(Duration::from_secs(5)).await {
            Some(reply) if reply.cn == 9014 => acked.push(qn),
            _ => break,
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_stream_loses_nothing_and_resends_at_most_twice_its_window() {
    let upstream = TestDaemon::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut relay, addr) = spawn_relay(dir.path(), upstream.running.hj212_addr, "window = 16\n");
    wait_listening(addr);
    let killer = {
        let pid = relay.id();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            std::process::Command::new("kill").arg("-KILL").arg(pid.to_string()).status().unwrap();
        })
    };
    let mut sent = send_until_broken(addr, 0..100_000).await;
    killer.await.unwrap();
    let _ = relay.wait();
    assert!(sent.len() > 10 && sent.len() < 100_000, "killed mid-stream after {} frames", sent.len());

    (relay, _) = spawn_relay(dir.path(), upstream.running.hj212_addr, "");
    wait_listening(addr);
    let next = i64::try_from(sent.len()).unwrap() + 1;
    sent.extend(send_until_broken(addr, next..next + 50).await);
    let received = wait_for(upstream.dir.path(), sent.len()).await;
    let unique: std::collections::BTreeSet<&String> = received.iter().collect();
    assert_eq!(unique.len(), received.len(), "accepted once each upstream");
    // The frame in flight when the relay died may be archived (and so forwarded) without its 9014.
    assert!(sent.iter().all(|qn| unique.contains(qn)), "every frame the relay acknowledged reached the upstream");
    let duplicates = common::metric(&upstream.http("/metrics").1, "hj212_ingest_duplicates_total");
    // In flight, and acknowledged since the position was last saved (a window at most).
    assert!(duplicates <= 2 * 16, "resent after the crash: at most twice the window, {duplicates}");
    std::process::Command::new("kill").arg("-TERM").arg(relay.id().to_string()).status().unwrap();
    let _ = relay.wait();
    upstream.stop().await;
}

fn wait_listening(addr: std::net::SocketAddr) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(std::time::Instant::now() < deadline, "the relay did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The catch-up after an outage feeds the forwarder large batches: a relay killed in the middle
/// of one resends only what was in flight and what was acknowledged since its last save.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_while_catching_up_resends_at_most_twice_its_window() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pacing = "window = 16\ncatch_up_rate = 1000\n";
    let (mut relay, addr) = spawn_relay(dir.path(), port, pacing);
    wait_listening(addr);
    let sent = send_until_broken(addr, 0..3000).await;
    assert_eq!(sent.len(), 3000);
    let upstream = TestDaemon::start_with(|config| config.server.listen = port).await;
    let mut forwarded = 0;
    for _ in 0..100 {
        forwarded = accepted_qns(upstream.dir.path()).len();
        if forwarded >= 800 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::process::Command::new("kill").arg("-KILL").arg(relay.id().to_string()).status().unwrap();
    let _ = relay.wait();
    assert!((800..3000).contains(&forwarded), "killed mid catch-up: {forwarded} forwarded");

    (relay, _) = spawn_relay(dir.path(), port, pacing);
    let received = wait_for(upstream.dir.path(), sent.len()).await;
    assert_eq!(received, sent, "every frame once, in order");
    let duplicates = common::metric(&upstream.http("/metrics").1, "hj212_ingest_duplicates_total");
    println!("killed after {forwarded} of 3000 forwarded; {duplicates} resent");
    assert!(duplicates <= 2 * 16, "in flight, and acknowledged since the last save: {duplicates}");
    std::process::Command::new("kill").arg("-TERM").arg(relay.id().to_string()).status().unwrap();
    let _ = relay.wait();
    upstream.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_answering_garbage_is_treated_as_silent() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap();
    let relay = TestDaemon::start_with(|config| config.forward = vec![forward_to(port)]).await;
    // Noise, a frame with a bad CRC, a 9014 for a QN never sent, and a command without the A bit.
    let mut garbage = b"\x00\xffnoise##0010garbage0000\r\n".to_vec();
    garbage.extend(common::frame(&format!("QN=20000101000000000;ST=91;CN=9014;PW=1;MN={};Flag=4;CP=&&&&", common::MN)));
    garbage.extend(common::frame(&format!(
        "QN=20000101000000001;ST=32;CN=1062;PW=1;MN={};Flag=4;CP=&&RtdInterval=30&&",
        common::MN
    )));
    let noisy = std::thread::spawn(move || silent_upstream(&listener, Duration::from_secs(5), &garbage));
    let sent = send_frames(&relay, 0, 20).await;
    let connections = tokio::task::spawn_blocking(move || noisy.join().unwrap()).await.unwrap();
    assert!(connections.len() >= 2, "no 9014 for its frames: reconnected and resent: {connections:?}");
    let upstream = TestDaemon::start_with(|config| config.server.listen = port).await;
    let received = wait_for(upstream.dir.path(), sent.len()).await;
    assert_eq!(received, sent, "every frame once at the upstream that answers");
    relay.stop().await;
    upstream.stop().await;
}

/// The index `i` of a QN `send_frames` made (`20261130` and `i` in 9 digits) in a frame's text.
fn qn_index(text: &str) -> Option<i64> {
    let at = text.find("QN=")?;
    text.get(at + 3..at + 20)?.strip_prefix("20261130")?.parse().ok()
}

/// What [`CuttingProxy`] saw.
#[derive(Debug, Default)]
struct ProxySeen {
    /// Indexes of the frames passed to the upstream, per connection in accept order.
    passed: Vec<Vec<i64>>,
    /// Indexes the upstream acknowledged (9014) through the proxy.
    upstream_acked: std::collections::BTreeSet<i64>,
    /// Indexes whose 9014 the proxy kept from the relay.
    withheld: Vec<i64>,
    /// Which connection was cut, once it was.
    cut: Option<usize>,
}

/// A TCP proxy on 127.0.0.1 between a relay and its upstream that cuts one connection mid-window:
/// it passes the relay's frames and the upstream's answers, but keeps from the relay the 9014s
/// of frames from `hold_from` on; once it has passed frame `cut_after` and the upstream has
/// acknowledged (so archived) every frame passed, it shuts both sides, dropping what the relay
/// sent after that frame. Later connections are proxied as they are.
struct CuttingProxy {
    addr: std::net::SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<ProxySeen>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    accepting: Option<std::thread::JoinHandle<()>>,
}

impl CuttingProxy {
    fn start(upstream: std::net::SocketAddr, hold_from: i64, cut_after: i64) -> Self {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(ProxySeen::default()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let accepting = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok((relay, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    relay.set_nonblocking(false).unwrap();
                    let Ok(upstream) = std::net::TcpStream::connect(upstream) else { continue };
                    let connection = {
                        let mut seen = seen.lock().unwrap();
                        seen.passed.push(Vec::new());
                        seen.passed.len() - 1
                    };
                    let (to_relay, from_upstream) = (relay.try_clone().unwrap(), upstream.try_clone().unwrap());
                    let answers = seen.clone();
                    std::thread::spawn(move || Self::answers(&from_upstream, to_relay, &answers, hold_from));
                    let frames = seen.clone();
                    std::thread::spawn(move || Self::frames(&relay, upstream, &frames, connection, cut_after));
                }
            })
        };
        Self { addr, seen, stop, accepting: Some(accepting) }
    }

    /// Splits what `from` sends into CR LF terminated frames, handing each to `each` (false: stop).
    fn each_frame(mut from: &std::net::TcpStream, mut each: impl FnMut(&[u8]) -> bool) {
        use std::io::Read;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            match from.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            while let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
                let frame: Vec<u8> = buf.drain(..end + 2).collect();
                if !each(&frame) {
                    return;
                }
            }
        }
    }

    /// Relay → upstream, cutting after `cut_after` (once).
    fn frames(
        relay: &std::net::TcpStream,
        mut upstream: std::net::TcpStream,
        seen: &std::sync::Mutex<ProxySeen>,
        connection: usize,
        cut_after: i64,
    ) {
        use std::io::Write;
        Self::each_frame(relay, |frame| {
            let index = qn_index(&String::from_utf8_lossy(frame));
            if upstream.write_all(frame).is_err() {
                return false;
            }
            let mut state = seen.lock().unwrap();
            state.passed[connection].extend(index);
            if state.cut.is_some() || index != Some(cut_after) {
                return true;
            }
            // Mid-window: wait until the upstream has archived (acknowledged) what passed.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !state.passed[connection].iter().all(|i| state.upstream_acked.contains(i)) {
                assert!(std::time::Instant::now() < deadline, "the upstream did not acknowledge: {state:?}");
                drop(state);
                std::thread::sleep(Duration::from_millis(5));
                state = seen.lock().unwrap();
            }
            state.cut = Some(connection);
            let _ = relay.shutdown(std::net::Shutdown::Both);
            let _ = upstream.shutdown(std::net::Shutdown::Both);
            false
        });
        let _ = upstream.shutdown(std::net::Shutdown::Both);
    }

    /// Upstream → relay, keeping the 9014s from `hold_from` on until the cut.
    fn answers(
        upstream: &std::net::TcpStream,
        mut relay: std::net::TcpStream,
        seen: &std::sync::Mutex<ProxySeen>,
        hold_from: i64,
    ) {
        use std::io::Write;
        Self::each_frame(upstream, |frame| {
            let text = String::from_utf8_lossy(frame);
            if let Some(index) = qn_index(&text).filter(|_| text.contains("CN=9014")) {
                let mut state = seen.lock().unwrap();
                state.upstream_acked.insert(index);
                if state.cut.is_none() && index >= hold_from {
                    state.withheld.push(index);
                    return true;
                }
            }
            relay.write_all(frame).is_ok()
        });
        let _ = relay.shutdown(std::net::Shutdown::Both);
    }

    fn stop(mut self) -> ProxySeen {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.accepting.take().unwrap().join().unwrap();
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// For each real-time QN index in `dir`'s archive: how often it was archived accepted, and as duplicate.
fn verdicts(dir: &std::path::Path) -> std::collections::BTreeMap<i64, (usize, usize)> {
    let mut counts = std::collections::BTreeMap::<i64, (usize, usize)>::new();
    for (verdict, _, text) in archived(dir) {
        let Some(index) = qn_index(&text).filter(|_| text.contains("CN=2011")) else { continue };
        let entry = counts.entry(index).or_default();
        match verdict.as_str() {
            "accepted" => entry.0 += 1,
            "duplicate" => entry.1 += 1,
            other => panic!("QN index {index} archived as {other}"),
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_dropping_the_connection_mid_window_loses_nothing_and_duplicates_only_within_the_window() {
    // The relay gets the 9014s of frames 0..=29; frames 30..=39 reach the upstream and are
    // archived there, but the connection is cut before their 9014s come back.
    const HOLD_FROM: i64 = 30;
    const CUT_AFTER: i64 = 39;
    let upstream = TestDaemon::start().await;
    let proxy = CuttingProxy::start(upstream.running.hj212_addr, HOLD_FROM, CUT_AFTER);
    let target = forward_to(proxy.addr);
    let window = target.window;
    let relay = TestDaemon::start_with(|config| config.forward = vec![target]).await;
    let sent = send_frames(&relay, 0, 300).await;
    let received = wait_for(upstream.dir.path(), sent.len()).await;
    relay.stop().await;
    let seen = proxy.stop();
    let dir = upstream.stop().await;

    let cut = seen.cut.unwrap_or_else(|| panic!("the proxy cut the connection carrying frame 39: {seen:?}"));
    let verdicts = verdicts(dir.path());
    let lost: Vec<i64> = (0..300).filter(|i| verdicts.get(i).is_none_or(|v| v.0 == 0)).collect();
    let accepted_twice: Vec<i64> = verdicts.iter().filter(|(_, v)| v.0 > 1).map(|(i, _)| *i).collect();
    let unknown: Vec<i64> = verdicts.keys().filter(|i| !(0..300).contains(*i)).copied().collect();
    let duplicates: Vec<i64> = verdicts.iter().flat_map(|(i, v)| std::iter::repeat_n(*i, v.1)).collect();
    // Frames the proxy carried to the upstream more than once.
    let mut carried = std::collections::BTreeMap::<i64, usize>::new();
    for index in seen.passed.iter().flatten() {
        *carried.entry(*index).or_default() += 1;
    }
    let carried_again: Vec<i64> =
        carried.iter().flat_map(|(i, n)| std::iter::repeat_n(*i, n.saturating_sub(1))).collect();
    // Connections that carried frames up to the cut (one site keeps to one).
    let connections = seen.passed[..=cut].iter().filter(|p| !p.is_empty()).count();
    println!(
        "sent {}, accepted upstream {}, lost {}, accepted twice {}, duplicates upstream {} {:?}, \
         carried again by the proxy {}, 9014s withheld {:?}, frames on the cut connection {}, \
         proxied connections {}, window {window} x connections {connections}",
        sent.len(),
        received.len(),
        lost.len(),
        accepted_twice.len(),
        duplicates.len(),
        duplicates,
        carried_again.len(),
        seen.withheld,
        seen.passed[cut].len(),
        seen.passed.len(),
    );
    assert!(lost.is_empty() && unknown.is_empty(), "0 lost: {lost:?}, none unknown: {unknown:?}");
    assert!(accepted_twice.is_empty(), "each accepted exactly once: {accepted_twice:?}");
    assert!(seen.passed.len() >= 2, "the relay reconnected after the cut: {seen:?}");
    assert!(!duplicates.is_empty(), "the cut came mid-window: the unacknowledged frames were resent");
    assert!(
        (HOLD_FROM..=CUT_AFTER).all(|i| duplicates.contains(&i)),
        "every frame archived upstream whose 9014 the relay never got was resent: {duplicates:?}"
    );
    assert!(duplicates.len() <= window * connections, "duplicates within the window: {duplicates:?}");
    assert_eq!(duplicates, carried_again, "what the upstream saw twice is what the proxy carried twice");
    assert_eq!(received, sent, "accepted upstream in the order the relay accepted them");
}
