//! Helpers of `forward-bench`: a fleet's outage as the frames its stations send, a feeder that
//! sends them as fast as the relay acknowledges, and the forwarder's catch-up as the relay's
//! `/metrics` show it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hj212_proto::codec::{FrameEvent, Hj212Codec};
use hj212_proto::encode;
use hj212_proto::time::BeijingTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

use crate::followers::{lags, metric, scrape};
use crate::load::{PASSWORD, mn};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
/// Factor codes of a gas station and their typical values.
const FACTORS: [(&str, i64); 6] =
    [("a21026", 12), ("a21002", 48), ("a34013", 10), ("a19001", 9), ("a01012", 135), ("a01011", 12)];

/// The start of an outage of `minutes` that ended at the last full hour (Beijing and UTC
/// hours coincide): with 60 minutes, one clock hour and its hourly record.
pub fn outage_start(minutes: u32) -> i64 {
    let now = i64::try_from(std::time::UNIX_EPOCH.elapsed().map_or(0, |d| d.as_millis())).unwrap_or(0);
    now / HOUR_MS * HOUR_MS - i64::from(minutes) * MINUTE_MS
}

/// What station `site` sends in the `minutes` from `start_ms` (a whole minute), in sending
/// order: a real-time record (2011) every 30 s, a minute record (2051) after each minute and an
/// hourly record (2061) after each whole clock hour. A frame's QN is when it is sent, plus
/// `site % 1000` ms (loggers' clocks differ), so no frame repeats another.
pub fn station_frames(site: usize, start_ms: i64, minutes: u32) -> Vec<Vec<u8>> {
    let end = start_ms + i64::from(minutes) * MINUTE_MS;
    let skew = i64::try_from(site % 1000).unwrap_or(0);
    let mut frames = Vec::new();
    for t in (start_ms..end).step_by(30_000) {
        frames.push((t + skew, record(site, "2011", t, t + skew)));
    }
    for t in (start_ms..end).step_by(60_000) {
        let sent = t + MINUTE_MS + 1000 + skew;
        frames.push((sent, record(site, "2051", t, sent)));
    }
    let first_hour = (start_ms + HOUR_MS - 1) / HOUR_MS * HOUR_MS;
    for t in (first_hour..=end - HOUR_MS).step_by(3_600_000) {
        let sent = t + HOUR_MS + 2000 + skew;
        frames.push((sent, record(site, "2061", t, sent)));
    }
    frames.sort_by_key(|(sent, _)| *sent);
    frames.into_iter().map(|(_, frame)| frame).collect()
}

/// One upload of `cn` (2011 readings, or 2051/2061 statistics) with DataTime `data_ms`.
fn record(site: usize, cn: &str, data_ms: i64, qn_ms: i64) -> Vec<u8> {
    let tenth = (data_ms / 30_000).rem_euclid(10);
    let mut cp = format!("DataTime={}", BeijingTime::from_unix_millis(data_ms).to_seconds_string());
    for (code, value) in FACTORS {
        let _ = if cn == "2011" {
            write!(cp, ";{code}-Rtd={value}.{tenth},{code}-Flag=N")
        } else {
            write!(
                cp,
                ";{code}-Cou={}.{tenth},{code}-Min={}.5,{code}-Avg={value}.{tenth},{code}-Max={}.5,{code}-Flag=N",
                value * 60,
                value - 1,
                value + 1
            )
        };
    }
    let segment = format!(
        "QN={};ST=31;CN={cn};PW={PASSWORD};MN={};Flag=5;CP=&&{cp}&&",
        BeijingTime::from_unix_millis(qn_ms).to_qn_string(),
        mn(site)
    );
    encode::frame(segment.as_bytes()).expect("fits")
}

/// What [`feed`] sent and the relay acknowledged.
#[derive(Debug, Clone, Copy)]
pub struct Fed {
    pub frames: u64,
    pub acked: u64,
    pub elapsed: Duration,
}

/// Sends the [`station_frames`] of `stations` stations to `addr` over `loggers` connections
/// (connection `l` speaks for the stations `s % loggers == l`, their frames interleaved in
/// sending order), `window` frames in flight on each, as fast as the relay acknowledges.
///
/// # Panics
/// On connection or I/O errors.
pub async fn feed(
    addr: SocketAddr,
    stations: usize,
    loggers: usize,
    window: usize,
    start_ms: i64,
    minutes: u32,
) -> Fed {
    let started = Instant::now();
    let loggers = loggers.clamp(1, stations.max(1));
    let tasks: Vec<_> = (0..loggers)
        .map(|l| {
            tokio::spawn(async move {
                let mut frames: Vec<(usize, Vec<u8>)> = Vec::new();
                for site in (l..stations).step_by(loggers) {
                    frames.extend(station_frames(site, start_ms, minutes).into_iter().enumerate());
                }
                // The n-th frame of every station, then the (n+1)-th: sending order, as the stations interleave.
                frames.sort_by_key(|(n, _)| *n);
                let frames: Vec<Vec<u8>> = frames.into_iter().map(|(_, frame)| frame).collect();
                (frames.len() as u64, pump(addr, &frames, window).await)
            })
        })
        .collect();
    let (mut frames, mut acked) = (0, 0);
    for task in tasks {
        let (sent, answered) = task.await.expect("feeder task");
        frames += sent;
        acked += answered;
    }
    Fed { frames, acked, elapsed: started.elapsed() }
}

/// Sends `frames` with up to `window` unanswered; returns the 9014s received.
async fn pump(addr: SocketAddr, frames: &[Vec<u8>], window: usize) -> u64 {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut codec = Hj212Codec::default();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let (mut next, mut acked, mut out) = (0, 0, Vec::new());
    while acked < frames.len() {
        while next < frames.len() && next - acked < window.max(1) {
            out.extend_from_slice(&frames[next]);
            next += 1;
        }
        if !out.is_empty() {
            stream.write_all(&out).await.expect("write");
            out.clear();
        }
        let Ok(read) = tokio::time::timeout(Duration::from_secs(60), stream.read_buf(&mut buf)).await else {
            eprintln!("no 9014 for 60 s: {} frames of this connection unacknowledged", frames.len() - acked);
            break;
        };
        if read.expect("read") == 0 {
            eprintln!("the relay closed a connection: {} frames unacknowledged", frames.len() - acked);
            break;
        }
        // Only 9014s answer frames: anything else the relay sends (a command) is left unanswered.
        while let Ok(Some(event)) = codec.decode(&mut buf) {
            if let FrameEvent::Frame(frame) = event
                && frame.data().windows(8).any(|w| w == b"CN=9014;")
            {
                acked += 1;
            }
        }
    }
    acked as u64
}

/// `hj212_forward_frames_total` of `target` and `outcome`, summed over any further labels.
pub fn forward_frames(page: &str, target: &str, outcome: &str) -> f64 {
    let (target, outcome) = (format!("target=\"{target}\""), format!("outcome=\"{outcome}\""));
    page.lines()
        .filter_map(|l| l.strip_prefix("hj212_forward_frames_total{"))
        .filter_map(|rest| rest.split_once("} "))
        .filter(|(labels, _)| labels.split(',').any(|l| l == target) && labels.split(',').any(|l| l == outcome))
        .filter_map(|(_, value)| value.trim().parse::<f64>().ok())
        .sum()
}

/// `hj212_ingest_frames_total` accepted and duplicate on the daemon at `http`.
pub fn ingest_counts(http: SocketAddr) -> (f64, f64) {
    let page = scrape(http);
    let count = |outcome| metric(&page, &format!("hj212_ingest_frames_total{{outcome=\"{outcome}\"}}")).unwrap_or(0.0);
    (count("accepted"), count("duplicate"))
}

/// Waits (at most `limit`) until every follower but the forwarders has a lag of 0.
pub async fn others_caught_up(http: SocketAddr, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        let now = lags(&scrape(http));
        let others: Vec<u64> = now.iter().filter(|(name, _)| !name.starts_with("forward:")).map(|(_, l)| *l).collect();
        if !others.is_empty() && others.iter().all(|&lag| lag == 0) {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// The forwarder's lag in archive records (`None` while the relay does not answer).
pub fn forward_lag(http: SocketAddr, target: &str) -> Option<u64> {
    lags(&scrape(http)).get(&format!("forward:{target}")).copied()
}

/// One sample of the relay's forwarding counters.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Seconds since the watch began.
    pub at: f64,
    pub acked: f64,
    pub sent: f64,
}

/// The forwarder's catch-up, sampled from the relay's `/metrics`.
#[derive(Debug, Clone)]
pub struct Trace {
    pub samples: Vec<Sample>,
    /// Until the forwarder's lag was 0 (or the limit).
    pub took: Duration,
    pub complete: bool,
}

/// Samples `target`'s counters every `every` until its lag is 0 (at most `limit`).
pub async fn watch(http: SocketAddr, target: &str, every: Duration, limit: Duration) -> Trace {
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut n = 0;
    loop {
        n += 1;
        let page = scrape(http);
        let at = started.elapsed();
        if !page.is_empty() {
            let (acked, sent) = (forward_frames(&page, target, "acked"), forward_frames(&page, target, "sent"));
            samples.push(Sample { at: at.as_secs_f64(), acked, sent });
            if lags(&page).get(&format!("forward:{target}")) == Some(&0) {
                return Trace { samples, took: at, complete: true };
            }
        }
        if at >= limit {
            return Trace { samples, took: at, complete: false };
        }
        tokio::time::sleep_until((started + every * n).into()).await;
    }
}

impl Trace {
    /// Frames acknowledged by the upstream by the end.
    pub fn acked(&self) -> f64 {
        self.samples.last().map_or(0.0, |s| s.acked)
    }

    /// Seconds until the first acknowledgement was seen.
    pub fn first_ack(&self) -> Option<f64> {
        self.samples.iter().find(|s| s.acked > 0.0).map(|s| s.at)
    }

    /// Acknowledged (or, with `sent`, sent) frames per second between consecutive samples.
    pub fn rates(&self, sent: bool) -> Vec<f64> {
        let count = |s: &Sample| if sent { s.sent } else { s.acked };
        self.samples.windows(2).map(|w| (count(&w[1]) - count(&w[0])) / (w[1].at - w[0].at).max(1e-3)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_of_a_station() {
        let start = 1_767_225_600_000; // 2026-01-01 00:00 UTC, 08:00 in Beijing
        let frames = station_frames(7, start, 60);
        assert_eq!(frames.len(), 120 + 60 + 1);
        let text: Vec<String> = frames.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect();
        let count = |cn: &str| text.iter().filter(|t| t.contains(&format!(";CN={cn};"))).count();
        assert_eq!((count("2011"), count("2051"), count("2061")), (120, 60, 1));
        assert!(text[0].contains("CN=2011") && text[0].contains("DataTime=20260101080000;"));
        assert!(text.last().is_some_and(|t| t.contains("CN=2061") && t.contains("DataTime=20260101080000;")));
        let mut qns: Vec<&str> = text.iter().map(|t| &t[t.find("QN=").unwrap_or(0)..][..20]).collect();
        qns.sort_unstable();
        qns.dedup();
        assert_eq!(qns.len(), frames.len(), "every QN differs");
        assert_eq!(station_frames(7, start + 30 * MINUTE_MS, 60).len(), 180, "no whole clock hour");
    }

    #[test]
    fn forwarded_frames_are_summed_by_target_and_outcome() {
        let page = "hj212_forward_frames_total{target=\"bench\",outcome=\"acked\"} 10\n\
                    hj212_forward_frames_total{target=\"bench\",outcome=\"acked\",connection=\"1\"} 5\n\
                    hj212_forward_frames_total{target=\"bench\",outcome=\"sent\"} 20\n\
                    hj212_forward_frames_total{target=\"other\",outcome=\"acked\"} 7\n";
        assert!((forward_frames(page, "bench", "acked") - 15.0).abs() < f64::EPSILON);
        assert!((forward_frames(page, "bench", "sent") - 20.0).abs() < f64::EPSILON);
    }
}
