#![cfg(feature = "tls")]
use hj212_sink_mqtt::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;
#[derive(Clone, Default)]
struct O(Arc<Mutex<(Vec<OutboxMessage>, u64)>>);
impl Outbox for O {
    fn pending(&mut self, after: u64, limit: usize) -> Result<Vec<OutboxMessage>, OutboxError> {
        Ok(self.0.lock().unwrap().0.iter().filter(|m| m.seq > after).take(limit).cloned().collect())
    }
    fn delivered(&mut self, up_to: u64) -> Result<(), OutboxError> { self.0.lock().unwrap().1 = up_to; Ok(()) }
}
async fn run(url: &str, ca: Option<&str>) -> PublisherStatus {
    let o = O::default();
    o.0.lock().unwrap().0.push(OutboxMessage { seq: 1, topic: "status/x".into(), payload: b"hi".to_vec(), retain: false });
    let (_n, nr) = tokio::sync::watch::channel(1);
    let (st, sr) = tokio::sync::watch::channel(PublisherStatus::default());
    let sd = tokio_util::sync::CancellationToken::new();
    let s = MqttSettings { url: url.into(), ca_file: ca.map(Into::into), ..Default::default() };
    let t = tokio::spawn(run_publisher(s, o.clone(), nr, st, sd.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    sd.cancel();
    println!("{url} {ca:?} -> {:?} result {:?} delivered {}", *sr.borrow(), t.await.unwrap(), o.0.lock().unwrap().1);
    let x = sr.borrow().clone(); x
}
#[tokio::test(flavor = "multi_thread")]
async fn smoke() {
    run("mqtts://127.0.0.1:18883", Some("/tmp/tlsx/ca.pem")).await;
    run("mqtts://localhost:18883", Some("/tmp/tlsx/ca.pem")).await;
    run("mqtts://localhost:18883", None).await;
    run("mqtts://localhost:18883", Some("/tmp/tlsx/nonexistent.pem")).await;
}
