//! The publisher against a real mosquitto (test-support starts it on a free loopback port).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hj212_sink_mqtt::{MqttError, MqttSettings, Outbox, OutboxError, OutboxMessage, PublisherStatus, run_publisher};
use test_support::mosquitto::{Mosquitto, Received, Subscriber};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The outbox as a Vec behind a mutex, recording every `delivered` call.
#[derive(Debug, Clone, Default)]
struct MemOutbox(Arc<Mutex<MemState>>);

#[derive(Debug, Default)]
struct MemState {
    messages: Vec<OutboxMessage>,
    last_seq: u64,
    delivered_calls: Vec<u64>,
    largest_page: usize,
    /// The next this many `pending` / `delivered` calls fail.
    fail_pending: u32,
    fail_delivered: u32,
}

impl MemOutbox {
    fn push(&self, topic: &str, retain: bool) -> u64 {
        let mut state = self.0.lock().unwrap();
        state.last_seq += 1;
        let seq = state.last_seq;
        state.messages.push(OutboxMessage {
            seq,
            topic: topic.to_owned(),
            payload: format!("seq={seq}").into_bytes(),
            retain,
        });
        seq
    }

    fn delivered_up_to(&self) -> u64 {
        self.0.lock().unwrap().delivered_calls.last().copied().unwrap_or(0)
    }
}

impl Outbox for MemOutbox {
    fn pending(&mut self, after: u64, limit: usize) -> Result<Vec<OutboxMessage>, OutboxError> {
        let mut state = self.0.lock().unwrap();
        if state.fail_pending > 0 {
            state.fail_pending -= 1;
            return Err(OutboxError("database is locked".into()));
        }
        state.largest_page = state.largest_page.max(limit);
        Ok(state.messages.iter().filter(|m| m.seq > after).take(limit).cloned().collect())
    }

    fn delivered(&mut self, up_to: u64) -> Result<(), OutboxError> {
        let mut state = self.0.lock().unwrap();
        if state.fail_delivered > 0 {
            state.fail_delivered -= 1;
            return Err(OutboxError("disk I/O error".into()));
        }
        let previous = state.delivered_calls.last().copied().unwrap_or(0);
        assert!(up_to > previous, "delivered({up_to}) after delivered({previous})");
        assert!(up_to <= state.last_seq, "delivered({up_to}) beyond the last seq {}", state.last_seq);
        state.delivered_calls.push(up_to);
        state.messages.retain(|m| m.seq > up_to);
        Ok(())
    }
}

const MAX_IN_FLIGHT: u16 = 16;

fn settings(url: String) -> MqttSettings {
    let mqtt = hj212_config::Mqtt {
        url,
        client_id: format!("hj212d-test-{}", std::process::id()),
        keep_alive_secs: 5,
        max_in_flight: MAX_IN_FLIGHT,
        max_backoff_secs: 1,
        ..hj212_config::Mqtt::default()
    };
    MqttSettings { mqtt, password: None, ca_file: None }
}

/// A publisher running in a task, with the handles a test needs.
struct Running {
    outbox: MemOutbox,
    newest: watch::Sender<u64>,
    status: watch::Receiver<PublisherStatus>,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), MqttError>>,
}

fn start(settings: MqttSettings, outbox: &MemOutbox) -> Running {
    let (newest, newest_rx) = watch::channel(outbox.0.lock().unwrap().last_seq);
    let (status_tx, status) = watch::channel(PublisherStatus::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_publisher(settings, outbox.clone(), newest_rx, status_tx, shutdown.clone()));
    Running { outbox: outbox.clone(), newest, status, shutdown, task }
}

impl Running {
    /// Adds `n` alerts to the outbox and wakes the publisher; returns the last seq.
    fn add(&self, n: u64) -> u64 {
        let mut last = 0;
        for i in 0..n {
            last = self.outbox.push(&format!("alerts/8888888000000{}/exceedance", i % 3), false);
        }
        self.newest.send_replace(last);
        last
    }

    /// Waits until the outbox was told `delivered(>= seq)` and the status reports it.
    async fn wait_delivered(&self, seq: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.outbox.delivered_up_to() < seq || self.status.borrow().delivered_seq < seq {
            assert!(
                Instant::now() < deadline,
                "delivered() reached {} of {seq} within {timeout:?}; status {:?}",
                self.outbox.delivered_up_to(),
                *self.status.borrow()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_connected(&self, connected: bool) {
        let mut status = self.status.clone();
        tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| s.connected == connected))
            .await
            .unwrap_or_else(|_| panic!("status.connected never became {connected}"))
            .expect("publisher alive");
    }

    /// Shuts down and returns how long that took.
    async fn stop(self) -> Duration {
        let started = Instant::now();
        self.shutdown.cancel();
        let result = tokio::time::timeout(Duration::from_secs(10), self.task).await;
        result.expect("publisher returns after shutdown").expect("no panic").expect("publisher ends with Ok");
        started.elapsed()
    }
}

/// The seq each received message carries in its payload.
fn seqs(received: &[Received]) -> Vec<u64> {
    received
        .iter()
        .map(|r| r.payload_str().strip_prefix("seq=").and_then(|s| s.parse().ok()).expect("payload seq=N"))
        .collect()
}

/// At least once and in order: the first occurrences are exactly 1..=last, and a seq is only
/// ever followed by the next one or by an earlier one (a re-send after a reconnect restarts
/// from the first unacknowledged message and goes on in order); never by a jump ahead.
fn assert_in_order_without_gaps(seqs: &[u64], last: u64) {
    let mut firsts = Vec::new();
    let mut previous = 0;
    for &seq in seqs {
        assert!(seq <= previous + 1, "jump from {previous} to {seq} in {seqs:?}");
        if seq == previous + 1 && !firsts.contains(&seq) {
            firsts.push(seq);
        }
        previous = seq;
    }
    assert_eq!(firsts, (1..=last).collect::<Vec<_>>(), "received {seqs:?}");
}

/// Waits until the subscriber has seen every seq up to `last` (duplicates allowed).
fn wait_for_all(subscriber: &Subscriber, last: u64, timeout: Duration) -> Vec<u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = seqs(&subscriber.received());
        if (1..=last).all(|seq| got.contains(&seq)) || Instant::now() >= deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_every_message_once_in_order() {
    let broker = Mosquitto::start();
    let subscriber = Subscriber::connect(broker.addr, "hj212/#");
    let outbox = MemOutbox::default();
    // 60 waiting before the start, 40 written while running: several pages each.
    for i in 0..60 {
        outbox.push(&format!("alerts/8888888000000{}/exceedance", i % 3), false);
    }
    let running = start(settings(broker.url()), &outbox);
    running.wait_connected(true).await;
    let last = running.add(40);
    assert_eq!(last, 100);
    running.wait_delivered(100, Duration::from_secs(15)).await;

    let got = blocking(|| subscriber.wait_for(100, Duration::from_secs(10)));
    assert_eq!(seqs(&got), (1..=100).collect::<Vec<_>>());
    assert_eq!(got[0].topic, "hj212/alerts/88888880000000/exceedance");
    assert_eq!(got[1].topic, "hj212/alerts/88888880000001/exceedance");
    assert!(got.iter().all(|r| !r.retain));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(subscriber.received().len(), 100, "no duplicates without a reconnect");

    let largest_page = outbox.0.lock().unwrap().largest_page;
    assert!(largest_page <= usize::from(MAX_IN_FLIGHT), "read a page of {largest_page}");
    assert!(running.stop().await < Duration::from_secs(3));
    assert!(outbox.0.lock().unwrap().messages.is_empty(), "every delivered message may be deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_status_reaches_a_later_subscriber() {
    let broker = Mosquitto::start();
    let outbox = MemOutbox::default();
    outbox.push("status/88888880000001", true);
    let running = start(settings(broker.url()), &outbox);
    running.wait_delivered(1, Duration::from_secs(10)).await;
    running.stop().await;

    let subscriber = Subscriber::connect(broker.addr, "hj212/status/#");
    let got = blocking(|| subscriber.wait_for(1, Duration::from_secs(5)));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].topic, "hj212/status/88888880000001");
    assert_eq!(got[0].payload_str(), "seq=1");
    assert!(got[0].retain, "delivered as a retained message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_delays_but_never_loses_or_reorders() {
    let mut broker = Mosquitto::start();
    // Persistent session: the broker queues for it what arrives while it is reconnecting.
    let subscriber = Subscriber::connect_persistent(broker.addr, "hj212/#", "outage-watcher");
    let outbox = MemOutbox::default();
    let running = start(settings(broker.url()), &outbox);
    running.wait_connected(true).await;
    running.add(10);
    running.wait_delivered(10, Duration::from_secs(10)).await;

    blocking(|| broker.stop());
    running.wait_connected(false).await;
    let last = running.add(50);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(outbox.delivered_up_to(), 10, "nothing is acknowledged while the broker is down");
    assert_eq!(outbox.0.lock().unwrap().messages.len(), 50, "nothing is dropped");
    assert!(running.status.borrow().last_error.is_some());

    blocking(|| broker.restart());
    running.wait_delivered(last, Duration::from_secs(20)).await;
    let got = blocking(|| wait_for_all(&subscriber, last, Duration::from_secs(10)));
    assert_in_order_without_gaps(&got, last);
    assert!(running.status.borrow().connected);
    assert_eq!(running.status.borrow().last_error, None, "cleared on reconnect");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_crash_mid_stream_resends_from_the_first_unacknowledged() {
    let mut broker = Mosquitto::start();
    let subscriber = Subscriber::connect(broker.addr, "hj212/#");
    let outbox = MemOutbox::default();
    let mut narrow = settings(broker.url());
    narrow.mqtt.max_in_flight = 8;
    let running = start(narrow, &outbox);
    running.wait_connected(true).await;
    let connects = count_connects(&running);
    let last = running.add(5000);
    // Crash while the messages stream out.
    blocking(|| broker.kill());
    running.wait_connected(false).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before_restart = outbox.delivered_up_to();
    assert!(before_restart < last, "the crash came after the last PUBACK; the test proves nothing");
    blocking(|| broker.restart());
    running.wait_delivered(last, Duration::from_secs(30)).await;
    assert!(connects.load(std::sync::atomic::Ordering::Relaxed) >= 1, "the publisher reconnected");

    // The subscriber (clean session) misses what the crashed broker had not forwarded and what
    // came before it re-subscribed, but never sees a message before an earlier one.
    let mut seen = std::collections::HashSet::new();
    let mut newest = 0;
    for seq in seqs(&subscriber.received()) {
        if seen.insert(seq) {
            assert!(seq > newest, "{seq} first seen after {newest}");
            newest = seq;
        } else {
            // A re-send: only of messages that were not acknowledged before the crash.
            assert!(seq > before_restart, "{seq} re-sent although delivered({before_restart})");
        }
    }
    running.stop().await;
}

/// Counts the publisher's (re)connections from now on.
fn count_connects(running: &Running) -> Arc<std::sync::atomic::AtomicUsize> {
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (mut status, counter) = (running.status.clone(), count.clone());
    tokio::spawn(async move {
        let mut was = status.borrow_and_update().connected;
        while status.changed().await.is_ok() {
            let now = status.borrow_and_update().connected;
            if now && !was {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            was = now;
        }
    });
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_prompt_while_the_broker_is_down() {
    let mut broker = Mosquitto::start();
    let outbox = MemOutbox::default();
    let running = start(settings(broker.url()), &outbox);
    running.add(5);
    running.wait_delivered(5, Duration::from_secs(10)).await;
    blocking(|| broker.stop());
    running.wait_connected(false).await;
    running.add(20);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let took = running.stop().await;
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    assert_eq!(outbox.delivered_up_to(), 5);
    assert_eq!(outbox.0.lock().unwrap().messages.len(), 20, "undelivered messages stay in the outbox");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_prompt_when_the_broker_never_answered() {
    // Nothing listens on this loopback port.
    let url = format!("mqtt://{}", test_support::free_port());
    let outbox = MemOutbox::default();
    let running = start(settings(url), &outbox);
    running.add(3);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let status = running.status.borrow().clone();
    assert!(!status.connected && status.last_error.is_some(), "{status:?}");

    let took = running.stop().await;
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    assert_eq!(outbox.delivered_up_to(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_errors_are_retried() {
    let broker = Mosquitto::start();
    let subscriber = Subscriber::connect(broker.addr, "hj212/#");
    let outbox = MemOutbox::default();
    for _ in 0..3 {
        outbox.push("alerts/88888880000001/exceedance", false);
    }
    {
        let mut state = outbox.0.lock().unwrap();
        state.fail_pending = 1;
        state.fail_delivered = 1;
    }
    let running = start(settings(broker.url()), &outbox);
    let mut status = running.status.clone();
    let failed = status.wait_for(|s| s.last_error.as_deref().is_some_and(|e| e.contains("database is locked")));
    tokio::time::timeout(Duration::from_secs(5), failed).await.expect("the outbox error is reported").unwrap();
    running.wait_delivered(3, Duration::from_secs(15)).await;
    let got = blocking(|| subscriber.wait_for(3, Duration::from_secs(5)));
    assert_eq!(seqs(&got), [1, 2, 3]);
    assert_eq!(running.status.borrow().last_error, None, "cleared once the outbox works again");
    running.stop().await;
}

#[tokio::test]
async fn invalid_settings_fail_before_connecting() {
    let (_newest, newest) = watch::channel(0);
    let (status, _status_rx) = watch::channel(PublisherStatus::default());
    let settings = settings("http://127.0.0.1:1883".into());
    let error = run_publisher(settings, MemOutbox::default(), newest, status, CancellationToken::new())
        .await
        .expect_err("an http:// url is refused");
    assert!(error.to_string().contains("unknown scheme \"http\""), "{error}");
}
