//! A data logger as the trials need it: unique frames (QN and DataTime), each counted as
//! acknowledged only when its 9014 arrives; after a lost connection (or an acknowledgement
//! timeout) it resends what is unacknowledged, same bytes, as a real logger does.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hj212_proto::encode;
use hj212_proto::time::BeijingTime;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

use crate::load::{PASSWORD, SITES, mn};

/// The factors of each frame: a frame adds this many rows to the store.
pub const FACTORS: [&str; 4] = ["a21026", "a21002", "a34013", "a19001"];
/// [`FACTORS`]' length, as the store's row counts are kept.
pub const FACTORS_PER_FRAME: u32 = 4;

/// Frames of every logger start here (Unix ms): 60 days before the run, on a whole second, so
/// no DataTime is in the daemon's future.
pub fn base_ms() -> i64 {
    let now = hj212_archive::now_ms();
    (now - 60 * 86_400_000) / 1000 * 1000
}

/// Connection `c` speaks for site `c % SITES`; frame `n` is at `data_time_ms(base, c, n)`.
pub fn data_time_ms(base: i64, c: usize, n: u64) -> i64 {
    let lap = i64::try_from(c / SITES).unwrap_or(0);
    base + lap * 10_000_000_000 + i64::try_from(n).unwrap_or(0) * 1000
}

/// Frame `n` of connection `c`: CN=2011 with the four [`FACTORS`], QN and DataTime unique.
pub fn frame(base: i64, c: usize, n: u64) -> (String, Vec<u8>) {
    let time = BeijingTime::from_unix_millis(data_time_ms(base, c, n));
    let qn = time.to_qn_string();
    let segment = format!(
        "QN={qn};ST=31;CN=2011;PW={PASSWORD};MN={};Flag=5;CP=&&DataTime={};a21026-Rtd={}.25,a21026-Flag=N;\
         a21002-Rtd=48.1,a21002-Flag=N;a34013-Rtd=10.5,a34013-Flag=N;a19001-Rtd=9.8,a19001-Flag=N&&",
        mn(c % SITES),
        time.to_seconds_string(),
        n % 100
    );
    let bytes = encode::frame(segment.as_bytes()).unwrap_or_default();
    (qn, bytes)
}

/// How one logger behaves.
#[derive(Debug, Clone)]
pub struct Spec {
    pub addr: SocketAddr,
    pub c: usize,
    pub base: i64,
    /// Frames sent and not yet acknowledged, at most.
    pub window: usize,
    /// New frames per second; `None`: as fast as acknowledgements allow.
    pub per_second: Option<f64>,
    /// Resend everything unacknowledged when the oldest frame waited this long.
    pub ack_timeout: Option<Duration>,
    /// Connect from this local address (127.0.0.x).
    pub bind: Option<IpAddr>,
}

/// Tells the loggers when to stop.
#[derive(Debug, Default)]
pub struct Control {
    /// No new frames after this; unacknowledged ones are still resent until acknowledged.
    pub stop_new: AtomicBool,
    /// Give up on unacknowledged frames and return.
    pub give_up: AtomicBool,
}

/// What one logger did.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Frames sent for the first time (0..sent are the frame numbers).
    pub sent: u64,
    /// Frame numbers whose 9014 arrived.
    pub acked: Vec<u64>,
    /// Frame numbers sent again (after a reconnect or an ack timeout), once per resend.
    pub resent: Vec<u64>,
    /// Still unacknowledged when the logger gave up.
    pub unacked: Vec<u64>,
    /// Send → 9014, microseconds, for frames acknowledged on their first sending.
    pub latencies_us: Vec<u32>,
    pub connects: u64,
    /// When each acknowledgement arrived (for trials that time a resumption).
    pub ack_times: Vec<Instant>,
}

struct InFlight {
    n: u64,
    qn: String,
    sent_at: Instant,
    resent: bool,
}

async fn connect(spec: &Spec) -> std::io::Result<TcpStream> {
    let socket = if spec.addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(ip) = spec.bind {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(spec.addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Runs one logger until `control` says so; see [`Control`].
pub async fn run(spec: Spec, control: Arc<Control>) -> Tally {
    let mut tally = Tally::default();
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let started = Instant::now();
    loop {
        let done = control.stop_new.load(Ordering::Relaxed) && in_flight.is_empty();
        if done || control.give_up.load(Ordering::Relaxed) {
            break;
        }
        let Ok(mut stream) = connect(&spec).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tally.connects += 1;
        if resend(&spec, &mut stream, &mut in_flight, &mut tally).await.is_err() {
            continue;
        }
        converse(&spec, &mut stream, &control, &mut in_flight, &mut tally, started).await;
    }
    tally.unacked = in_flight.iter().map(|f| f.n).collect();
    tally
}

async fn resend(
    spec: &Spec,
    stream: &mut TcpStream,
    in_flight: &mut VecDeque<InFlight>,
    tally: &mut Tally,
) -> std::io::Result<()> {
    let mut out = Vec::new();
    for f in in_flight.iter_mut() {
        out.extend_from_slice(&frame(spec.base, spec.c, f.n).1);
        f.sent_at = Instant::now();
        f.resent = true;
        tally.resent.push(f.n);
    }
    if !out.is_empty() {
        stream.write_all(&out).await?;
    }
    Ok(())
}

/// One connection's life: send within the window and pacing, match 9014s by QN.
async fn converse(
    spec: &Spec,
    stream: &mut TcpStream,
    control: &Control,
    in_flight: &mut VecDeque<InFlight>,
    tally: &mut Tally,
    started: Instant,
) {
    let mut buf = Vec::with_capacity(4096);
    let mut read = [0u8; 4096];
    loop {
        if control.give_up.load(Ordering::Relaxed) {
            return;
        }
        let stop_new = control.stop_new.load(Ordering::Relaxed);
        if stop_new && in_flight.is_empty() {
            return;
        }
        let due = spec.per_second.map_or(u64::MAX, |r| {
            #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a frame count")]
            let due = (started.elapsed().as_secs_f64() * r) as u64 + 1;
            due
        });
        let mut out = Vec::new();
        while !stop_new && in_flight.len() < spec.window && tally.sent < due {
            let (qn, bytes) = frame(spec.base, spec.c, tally.sent);
            out.extend_from_slice(&bytes);
            in_flight.push_back(InFlight { n: tally.sent, qn, sent_at: Instant::now(), resent: false });
            tally.sent += 1;
        }
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            return;
        }
        if let Some(timeout) = spec.ack_timeout
            && in_flight.front().is_some_and(|f| f.sent_at.elapsed() > timeout)
            && resend(spec, stream, in_flight, tally).await.is_err()
        {
            return;
        }
        match tokio::time::timeout(Duration::from_millis(5), stream.read(&mut read)).await {
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(n)) => buf.extend_from_slice(&read[..n]),
            Err(_) => continue,
        }
        take_acks(&mut buf, in_flight, tally);
    }
}

/// Consumes complete reply lines from `buf`, counting each 9014 against its frame.
fn take_acks(buf: &mut Vec<u8>, in_flight: &mut VecDeque<InFlight>, tally: &mut Tally) {
    while let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
        let line: Vec<u8> = buf.drain(..end + 2).collect();
        let text = String::from_utf8_lossy(&line);
        if !text.contains("CN=9014") {
            continue;
        }
        let Some(qn) = text.split(';').find_map(|f| f.strip_prefix("QN=").or_else(|| f.split("QN=").nth(1))) else {
            continue;
        };
        if let Some(at) = in_flight.iter().position(|f| f.qn == qn) {
            let Some(f) = in_flight.remove(at) else { continue };
            if !f.resent {
                tally.latencies_us.push(u32::try_from(f.sent_at.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            tally.acked.push(f.n);
            tally.ack_times.push(Instant::now());
        }
    }
}

/// Runs `count` loggers built by `spec_of` until `control` stops them.
pub fn spawn_all(
    count: usize,
    spec_of: impl Fn(usize) -> Spec,
    control: &Arc<Control>,
) -> Vec<tokio::task::JoinHandle<Tally>> {
    (0..count).map(|c| tokio::spawn(run(spec_of(c), control.clone()))).collect()
}

/// Waits for loggers, keeping their tallies in order (a failed task gives an empty one).
pub async fn join_all(tasks: Vec<tokio::task::JoinHandle<Tally>>) -> Vec<Tally> {
    let mut tallies = Vec::with_capacity(tasks.len());
    for task in tasks {
        tallies.push(task.await.unwrap_or_default());
    }
    tallies
}
