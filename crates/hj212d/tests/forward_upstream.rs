//! Forwarding (issue 15), what the upstream sees and says: sites under the MN, password and
//! SM4 key the upstream gave them; a frame the upstream refuses on every resend given up
//! without holding back the rest; the upstream's commands refused and archived (a 1012 never
//! reaches the logger), or relayed to the logger with its answers passed back.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use bytes::BytesMut;
use common::{Client, MN, PW, TestDaemon, archived, frame, realtime};
use hj212_config::{Encryption, Forward, Rewrite};
use hj212_proto::codec::{FrameEvent, Hj212Codec};
use hj212_proto::encode::{self, ReplyTo};
use hj212_proto::{Packet, SegmentText};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Decoder;

const UPSTREAM_MN: &str = "UPSTREAM0000000000000001";
const UPSTREAM_PW: &str = "up-pass-7";

fn target(address: std::net::SocketAddr) -> Forward {
    Forward {
        cns: vec!["2011".into()],
        ack_timeout_secs: 1,
        connect_timeout_secs: 2,
        max_backoff_secs: 1,
        ..Forward::new("platform", address.to_string())
    }
}

/// A frame as a test platform reads it.
struct Heard {
    cn: u16,
    qn: String,
    cp: String,
    mn: String,
}

/// A scripted upstream platform: reads the relay's frames, acknowledges data frames unless
/// their QN is in `refuse`, and sends what the test asks.
struct Platform {
    stream: TcpStream,
    codec: Hj212Codec,
    buf: BytesMut,
    refuse: HashSet<String>,
}

impl Platform {
    async fn accept(listener: &TcpListener) -> Self {
        let (stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept()).await.unwrap().unwrap();
        Self { stream, codec: Hj212Codec::default(), buf: BytesMut::new(), refuse: HashSet::new() }
    }

    /// The next frame within `wait`; data frames are acknowledged (9014) unless refused.
    async fn next(&mut self, wait: Duration) -> Option<Heard> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(FrameEvent::Frame(frame)) = self.codec.decode(&mut self.buf).unwrap() {
                let text = SegmentText::new(frame.data());
                let packet = Packet::parse_text(&text).unwrap();
                let heard = Heard {
                    cn: packet.cn.code(),
                    qn: packet.qn.unwrap_or_default().to_owned(),
                    cp: packet.cp.to_owned(),
                    mn: packet.mn.to_owned(),
                };
                if heard.cn == 2011 && !self.refuse.contains(&heard.qn) {
                    let ack = encode::data_response(&ReplyTo::from(&packet)).unwrap();
                    self.stream.write_all(&ack).await.unwrap();
                }
                return Some(heard);
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
    }

    async fn send(&mut self, segment: &str) {
        self.stream.write_all(&frame(segment)).await.unwrap();
    }
}

async fn logger_sends(relay: &TestDaemon, count: i64) -> (Client, Vec<String>) {
    let mut logger = relay.client().await;
    let mut qns = Vec::new();
    for i in 0..count {
        let qn = format!("20261130{i:09}");
        logger.send(&realtime(&qn, &common::beijing_in(-i), 5)).await;
        assert_eq!(logger.reply().await.cn, 9014);
        qns.push(qn);
    }
    (logger, qns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_site_reaches_the_upstream_under_its_upstream_mn_password_and_sm4_key() {
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("upstream.key");
    std::fs::write(&key_file, "0123456789ABCDEF").unwrap();
    let upstream = TestDaemon::start_with(|config| {
        let site = &mut config.sites[0];
        (site.mn, site.password) = (UPSTREAM_MN.into(), UPSTREAM_PW.into());
        site.encryption = Encryption::Required;
        site.key_file = Some(key_file.clone());
    })
    .await;
    let rewrite = Rewrite {
        mn: MN.into(),
        upstream_mn: Some(UPSTREAM_MN.into()),
        upstream_password: Some(UPSTREAM_PW.into()),
        key_file: Some(key_file.clone()),
    };
    let forward = Forward { rewrite: vec![rewrite], ..target(upstream.running.hj212_addr) };
    let relay = TestDaemon::start_with(|config| config.forward = vec![forward]).await;
    let (_logger, sent) = logger_sends(&relay, 20).await;

    let mut received = Vec::new();
    for _ in 0..100 {
        received = archived(upstream.dir.path())
            .into_iter()
            .filter(|(verdict, _, text)| verdict == "accepted" && text.contains("CN=2011"))
            .collect();
        if received.len() >= sent.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let qns: Vec<&str> =
        received.iter().filter_map(|(_, _, text)| text.split("QN=").nth(1)).map(|t| &t[..17]).collect();
    assert_eq!(qns, sent, "every frame, once, in order, accepted by an upstream that requires its own key");
    assert!(received.iter().all(|(_, _, text)| text.contains(&format!("MN={UPSTREAM_MN}"))));
    let refused = archived(upstream.dir.path()).into_iter().filter(|(verdict, _, _)| verdict != "accepted").count();
    assert_eq!(refused, 0, "no bad password, no decrypt failure upstream");
    relay.stop().await;
    upstream.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_the_upstream_refuses_on_every_resend_is_given_up_and_the_rest_flows() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let forward = Forward { resends: 2, ..target(listener.local_addr().unwrap()) };
    let relay = TestDaemon::start_with(|config| config.forward = vec![forward]).await;
    let (_logger, sent) = logger_sends(&relay, 10).await;
    let mut platform = Platform::accept(&listener).await;
    platform.refuse.insert(sent[2].clone());
    let mut seen = Vec::new();
    while let Some(heard) = platform.next(Duration::from_secs(4)).await {
        seen.push(heard.qn);
    }
    let copies = |qn: &str| seen.iter().filter(|q| *q == qn).count();
    assert_eq!(copies(&sent[2]), 2, "the refused frame sent `resends` times: {seen:?}");
    assert!(sent.iter().filter(|qn| **qn != sent[2]).all(|qn| copies(qn) == 1), "the others once each: {seen:?}");
    assert_eq!(relay.metric(r#"hj212_forward_frames_total{target="platform",outcome="given_up"}"#), 1);
    let state: serde_json::Value = serde_json::from_str(&relay.http("/api/v1/forward").1).unwrap();
    assert_eq!(state[0]["lag_records"], 0, "the position passed the given-up frame: {state}");
    relay.stop().await;
}

/// The relay's archived records of the upstream's commands.
fn upstream_command_events(dir: &std::path::Path) -> Vec<serde_json::Value> {
    common::records(dir)
        .into_iter()
        .filter(|r| r.kind == hj212_archive::Kind::Event)
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.data).ok())
        .filter(|event| event["event"] == "upstream_command")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_time_set_is_refused_archived_and_never_reaches_the_logger() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay = TestDaemon::start_with(|config| config.forward = vec![target(listener.local_addr().unwrap())]).await;
    let (mut logger, _) = logger_sends(&relay, 1).await;
    let mut platform = Platform::accept(&listener).await;
    assert_eq!(platform.next(Duration::from_secs(5)).await.unwrap().cn, 2011);
    let qn = "20261130120000123";
    platform.send(&format!("QN={qn};ST=31;CN=1012;PW={PW};MN={MN};Flag=5;CP=&&SystemTime=20261130120000&&")).await;
    let answer = platform.next(Duration::from_secs(5)).await.expect("an answer to the 1012");
    assert_eq!((answer.cn, answer.qn.as_str(), answer.cp.as_str()), (9011, qn, "QnRtn=2"));
    assert!(logger.reply_within(Duration::from_millis(1500)).await.is_none(), "nothing relayed to the logger");
    let dir = relay.stop().await;
    let events = upstream_command_events(dir.path());
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!((&events[0]["cn"], &events[0]["qn"]), (&serde_json::json!(1012), &serde_json::json!(qn)));
    assert!(events[0]["outcome"].as_str().unwrap().starts_with("refused"), "{}", events[0]);
    assert!(events[0]["frame"].as_str().unwrap().contains("SystemTime=20261130120000"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_commands_pass_an_upstream_command_to_the_logger_and_its_answers_back() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let forward = Forward { relay_commands: true, ..target(listener.local_addr().unwrap()) };
    let relay = TestDaemon::start_with(|config| {
        config.forward = vec![forward];
        config.recovery.enabled = false;
    })
    .await;
    let (mut logger, _) = logger_sends(&relay, 1).await;
    let mut platform = Platform::accept(&listener).await;
    assert_eq!(platform.next(Duration::from_secs(5)).await.unwrap().cn, 2011);
    let upstream_qn = "20261130120000456";
    platform.send(&format!("QN={upstream_qn};ST=31;CN=1000;PW={PW};MN={MN};Flag=5;CP=&&OverTime=5;ReCount=3&&")).await;

    let command = logger.reply().await;
    assert_eq!((command.cn, command.cp.as_str()), (1000, "OverTime=5;ReCount=3"), "the logger gets the command");
    let qn = command.qn.unwrap();
    assert_ne!(qn, upstream_qn, "under the relay's own QN");
    let answer = |cn: u16, cp: &str| frame(&format!("QN={qn};ST=91;CN={cn};PW={PW};MN={MN};Flag=4;CP=&&{cp}&&"));
    logger.send(&answer(9011, "QnRtn=1")).await;
    logger.send(&answer(9012, "ExeRtn=1")).await;

    let mut answers = Vec::new();
    while answers.len() < 2 {
        let heard = platform.next(Duration::from_secs(5)).await.expect("the logger's answers passed back");
        answers.push((heard.cn, heard.qn, heard.cp, heard.mn));
    }
    let expected = |cn: u16, cp: &str| (cn, upstream_qn.to_owned(), cp.to_owned(), MN.to_owned());
    assert_eq!(answers, vec![expected(9011, "QnRtn=1"), expected(9012, "ExeRtn=1")]);
    let dir = relay.stop().await;
    let events = upstream_command_events(dir.path());
    assert!(events[0]["outcome"].as_str().unwrap().starts_with("relayed as command"), "{events:?}");
}
