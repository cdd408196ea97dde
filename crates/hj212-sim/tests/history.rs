//! A station answering history requests over a real socket. The host is an in-process double
//! (hj212d's side of the exchange is being built separately): it acknowledges uploads as the
//! daemon does, and sends a 2061 request once the simulated period has been sent.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use hj212_proto::Packet;
use hj212_proto::codec::{FrameEvent, Hj212Codec};
use hj212_proto::encode::{self, CommandHeader, History, HostCommand, ReplyTo};
use hj212_proto::model::Version;
use hj212_proto::time::BeijingTime;
use hj212_sim::{Faults, Options, ProfileChoice, Simulation, Summary};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Decoder;

const HOUR_MS: i64 = 3_600_000;
const REQUEST_QN: &str = "20260301100000123";

/// A frame from the station, owned.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    cn: u16,
    qn: Option<String>,
    cp: String,
    /// Flag bit A: the station asked for a 9014.
    asks_ack: bool,
}

/// The host's end of one station connection.
struct Host {
    stream: TcpStream,
    buf: BytesMut,
    codec: Hj212Codec,
    mn: String,
}

impl Host {
    async fn accept(listener: &TcpListener) -> Self {
        let (stream, _) = listener.accept().await.unwrap();
        Self { stream, buf: BytesMut::new(), codec: Hj212Codec::default(), mn: String::new() }
    }

    /// The next frame, after answering it with a 9014 when it asks for one; `None` once the station closed.
    async fn next(&mut self) -> Option<Seen> {
        loop {
            if let Some(FrameEvent::Frame(frame)) = self.codec.decode(&mut self.buf).unwrap() {
                let text = std::str::from_utf8(frame.data()).unwrap();
                let packet = Packet::parse(text).unwrap();
                let asks_ack = packet.wants_ack();
                if asks_ack {
                    self.stream.write_all(&encode::data_response(&ReplyTo::from(&packet)).unwrap()).await.unwrap();
                }
                packet.mn.clone_into(&mut self.mn);
                let qn = packet.qn.map(str::to_owned);
                return Some(Seen { cn: packet.cn.code(), qn, cp: packet.cp.to_owned(), asks_ack });
            }
            if self.stream.read_buf(&mut self.buf).await.unwrap() == 0 {
                return None;
            }
        }
    }

    /// Reads until the station has sent `count` frames of `cn`, returning every frame read.
    async fn until(&mut self, cn: u16, count: usize) -> Vec<Seen> {
        let mut seen = Vec::new();
        while seen.iter().filter(|s: &&Seen| s.cn == cn).count() < count {
            seen.push(self.next().await.expect("the station sends the whole period"));
        }
        seen
    }

    async fn request_hours(&mut self, begin: &str, end: &str) {
        let at = |t| BeijingTime::parse(t).unwrap();
        let command = HostCommand::History { kind: History::Hourly, begin: at(begin), end: at(end) };
        let header =
            CommandHeader { qn: at(REQUEST_QN), st: "31", pw: "123456", mn: &self.mn, version: Version::Hj212_2017 };
        self.stream.write_all(&command.encode(&header).unwrap()).await.unwrap();
    }

    /// Everything until the station closes (after lingering). Drop the host then, so that the
    /// station's clean close does not wait for it.
    async fn rest(&mut self) -> Vec<Seen> {
        let mut seen = Vec::new();
        while let Some(frame) = self.next().await {
            seen.push(frame);
        }
        seen
    }
}

/// One gas station sending six hours (hourly 2011, 2051 every 30 min, 2061), then lingering.
fn simulation(faults: Faults) -> Simulation {
    let options = Options {
        stations: 1,
        profile: ProfileChoice::Gas,
        password: Some("123456".into()),
        rtd_interval_secs: 3600,
        min_interval_mins: 30,
        start_ms: Some(BeijingTime::parse("20260301000000").unwrap().unix_millis()),
        duration_ms: 6 * HOUR_MS,
        accel: 0.0,
        linger: Duration::from_secs(2),
        faults,
        ..Options::default()
    };
    Simulation::new(options).unwrap()
}

async fn start(faults: Faults) -> (TcpListener, tokio::task::JoinHandle<Summary>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let sim = simulation(faults);
    (listener, tokio::spawn(async move { hj212_sim::run(&sim, addr).await }))
}

fn data_time(seen: &Seen) -> &str {
    seen.cp.strip_prefix("DataTime=").map(|rest| &rest[..14]).unwrap()
}

fn only(seen: &[Seen], cn: u16) -> Vec<&Seen> {
    seen.iter().filter(|s| s.cn == cn).collect()
}

#[tokio::test]
async fn history_request_returns_the_records_as_first_sent() {
    let (listener, run) = start(Faults::default()).await;
    let mut host = Host::accept(&listener).await;
    let uploads = host.until(2061, 6).await;
    host.request_hours("20260301020000", "20260301030000").await;
    let answer = host.rest().await;
    drop(host);
    let summary = run.await.unwrap();

    let first: Vec<&Seen> = only(&uploads, 2061)
        .into_iter()
        .filter(|s| ["20260301020000", "20260301030000"].contains(&data_time(s)))
        .collect();
    assert_eq!(first.len(), 2);
    let cns: Vec<u16> = answer.iter().map(|s| s.cn).collect();
    assert_eq!(cns, [9011, 2061, 2061, 9012], "{answer:#?}");
    assert_eq!(answer[0].cp, "QnRtn=1");
    assert_eq!(
        (answer[1].cp.as_str(), answer[2].cp.as_str()),
        (first[0].cp.as_str(), first[1].cp.as_str()),
        "same DataTime and values"
    );
    assert_eq!(answer[3].cp, "ExeRtn=1");
    assert!(answer.iter().all(|s| s.qn.as_deref() == Some(REQUEST_QN)), "every answer echoes the request's QN");

    let c = &summary.totals;
    assert_eq!((c.history_requests, c.history_answered, c.records_resent), (1, 1, 2));
    assert_eq!(c.acked_frames[&2061], 6 + 2, "the records sent again are acknowledged too");
    assert_eq!((c.failed, c.unsent, c.dropped_uploads), (0, 0, 0));
}

#[tokio::test]
async fn refusing_station_answers_qnrtn_2_only() {
    let (listener, run) = start(Faults { refuse_history_percent: 100.0, ..Faults::default() }).await;
    let mut host = Host::accept(&listener).await;
    host.until(2061, 6).await;
    host.request_hours("20260301020000", "20260301030000").await;
    let answer = host.rest().await;
    drop(host);
    let summary = run.await.unwrap();

    assert_eq!(answer, [Seen { cn: 9011, qn: Some(REQUEST_QN.into()), cp: "QnRtn=2".into(), asks_ack: false }]);
    assert_eq!(summary.sites[0].host_answers, "refuses-history");
    let c = &summary.totals;
    assert_eq!((c.history_requests, c.history_refused, c.history_answered, c.records_resent), (1, 1, 0, 0));
}

#[tokio::test]
async fn dropped_upload_is_absent_on_the_wire_but_held() {
    let (listener, run) = start(Faults { drop_percent: 100.0, ..Faults::default() }).await;
    let mut host = Host::accept(&listener).await;
    // The last 2051 goes out with the last (dropped) 2061.
    let uploads = host.until(2051, 12).await;
    host.request_hours("20260301000000", "20260301050000").await;
    let answer = host.rest().await;
    drop(host);
    let summary = run.await.unwrap();

    assert!(only(&uploads, 2061).is_empty() && only(&answer, 2061).len() == 6, "{uploads:#?} {answer:#?}");
    let hours: Vec<&str> = only(&answer, 2061).into_iter().map(data_time).collect();
    assert_eq!(
        hours,
        ["20260301000000", "20260301010000", "20260301020000", "20260301030000", "20260301040000", "20260301050000"]
    );
    assert_eq!(answer.last().map(|s| s.cp.as_str()), Some("ExeRtn=1"));
    let asking: Vec<&Seen> = uploads.iter().chain(&answer).filter(|s| s.asks_ack).collect();
    assert!(asking.is_empty(), "a lossy link's logger is a Flag=4 logger, its answers too: {asking:#?}");
    let c = &summary.totals;
    assert_eq!((c.dropped_uploads, c.records_resent, c.frames.get(&2061)), (6, 6, None));
    // Hourly 2011 and half-hourly 2051 records, plus the six recovered hours: six factors each.
    assert_eq!(c.readings, (6 + 12 + 6) * 6, "recovered records add store rows");
}

#[tokio::test]
async fn slow_station_waits_before_answering() {
    let faults = Faults { slow_history_percent: 100.0, slow_history: Duration::from_millis(400), ..Faults::default() };
    let (listener, run) = start(faults).await;
    let mut host = Host::accept(&listener).await;
    host.until(2061, 6).await;
    host.request_hours("20260301020000", "20260301030000").await;
    let asked = tokio::time::Instant::now();
    let first = host.next().await.unwrap();
    let waited = asked.elapsed();
    let answer = host.rest().await;
    drop(host);
    let summary = run.await.unwrap();

    assert_eq!((first.cn, first.cp.as_str()), (9011, "QnRtn=1"));
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    assert_eq!(answer.iter().map(|s| s.cn).collect::<Vec<_>>(), [2061, 2061, 9012]);
    assert_eq!(summary.sites[0].host_answers, "slow-history");
}

#[tokio::test]
async fn silent_station_never_answers() {
    let (listener, run) = start(Faults { silent_history_percent: 100.0, ..Faults::default() }).await;
    let mut host = Host::accept(&listener).await;
    host.until(2061, 6).await;
    host.request_hours("20260301020000", "20260301030000").await;
    let answer = host.rest().await;
    drop(host);
    let summary = run.await.unwrap();

    assert_eq!(answer, []);
    let c = &summary.totals;
    assert_eq!((c.history_requests, c.history_ignored, c.history_answered), (1, 1, 0));
}
