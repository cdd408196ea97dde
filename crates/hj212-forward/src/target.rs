//! One forwarding target as a follower of the archive.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hj212_archive::{Kind, Verdict};
use hj212_config::Forward;
use hj212_follow::{Cursor, FollowError, Follower, Interpreted, Meaning};
use hj212_proto::{Packet, SegmentText};
use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

use crate::link::{Heard, HistoryRequest, Link};
use crate::metrics::{ACK_SECONDS, CONNECTED, FRAMES};

/// A frame written to the upstream, waiting for its 9014.
#[derive(Debug)]
struct Pending {
    seq: u64,
    qn: String,
    sent: Instant,
    acked: bool,
}

/// Relays one target's frames (see the crate's documentation).
#[derive(Debug)]
pub struct Forwarder {
    name: &'static str,
    target: Forward,
    sites: HashSet<String>,
    cns: HashSet<u16>,
    cursor: Cursor,
    link: Option<Link>,
    in_flight: VecDeque<Pending>,
    /// The last record fed (relayed or not).
    fed: u64,
    /// Where history requests from the upstream are answered from.
    data_dir: hj212_config::DataDir,
    meters: Meters,
}

/// Records one history answer sends, at most (a larger range is answered in part, oldest first).
const MAX_HISTORY_RECORDS: usize = 1000;

#[derive(Debug)]
struct Meters {
    sent: Counter,
    acked: Counter,
    resent: Counter,
    other: Counter,
    history: Counter,
    refused: Counter,
    connected: Gauge,
    ack_seconds: Histogram,
}

impl Forwarder {
    /// The target's follower, resuming from its cursor file.
    ///
    /// # Errors
    /// The cursor file cannot be read.
    pub fn open(target: Forward, data_dir: &hj212_config::DataDir) -> std::io::Result<Self> {
        // The runtime's follower name is static; one per configured target, made once at start.
        let name: &'static str = Box::leak(format!("forward:{}", target.name).into_boxed_str());
        let label = target.name.clone();
        let meters = Meters {
            sent: counter!(FRAMES, "target" => label.clone(), "outcome" => "sent"),
            acked: counter!(FRAMES, "target" => label.clone(), "outcome" => "acked"),
            resent: counter!(FRAMES, "target" => label.clone(), "outcome" => "resent"),
            other: counter!(FRAMES, "target" => label.clone(), "outcome" => "upstream_other"),
            history: counter!(FRAMES, "target" => label.clone(), "outcome" => "history_answered"),
            refused: counter!(FRAMES, "target" => label.clone(), "outcome" => "upstream_refused"),
            connected: gauge!(CONNECTED, "target" => label.clone()),
            ack_seconds: histogram!(ACK_SECONDS, "target" => label),
        };
        for counter in [&meters.sent, &meters.acked, &meters.resent, &meters.other, &meters.history, &meters.refused] {
            // Listed from the first scrape.
            counter.increment(0);
        }
        let cursor = Cursor::load(&data_dir.forward_cursor(&target.name))?;
        Ok(Self {
            name,
            sites: target.sites.iter().cloned().collect(),
            cns: target.cns.iter().filter_map(|cn| cn.parse().ok()).collect(),
            fed: cursor.seq,
            cursor,
            target,
            link: None,
            in_flight: VecDeque::new(),
            data_dir: data_dir.clone(),
            meters,
        })
    }

    /// The QN and whether the upstream is asked for a 9014, for a frame this target relays.
    fn relayed(&self, record: &Interpreted) -> Option<(Option<String>, bool)> {
        if record.record.kind != Kind::Received || record.record.verdict != Verdict::Accepted {
            return None;
        }
        let (mn, cn) = match &record.meaning {
            Meaning::Data(upload) => (upload.mn.as_str(), upload.cn),
            Meaning::Seen { mn, cn, duplicate: false } => (mn.as_str(), *cn),
            _ => return None,
        };
        if !self.cns.contains(&cn) || !(self.sites.is_empty() || self.sites.contains(mn)) {
            return None;
        }
        // "##" + 4-digit length, the data segment, 4 CRC digits and CR LF.
        let bytes = &record.record.data;
        let segment = bytes.get(6..bytes.len().checked_sub(6)?)?;
        let text = SegmentText::new(segment);
        let packet = Packet::parse_text(&text).ok()?;
        Some((packet.qn.map(str::to_owned), packet.wants_ack()))
    }

    fn link(&mut self) -> Result<&mut Link, FollowError> {
        if self.link.is_none() {
            let timeout = Duration::from_secs(self.target.connect_timeout_secs);
            let link = Link::connect(&self.target.address, timeout)
                .map_err(|e| format!("forward {}: cannot connect to {}: {e}", self.target.name, self.target.address))?;
            tracing::info!(target = self.target.name, address = self.target.address, "forwarding: connected");
            self.meters.connected.set(1.0);
            self.link = Some(link);
        }
        Ok(self.link.as_mut().expect("connected above"))
    }

    /// Takes in what the upstream has sent (waiting up to `wait`).
    fn hear(&mut self, wait: Option<Duration>) -> Result<(), FollowError> {
        let Some(link) = self.link.as_mut() else { return Ok(()) };
        for heard in link.hear(wait)? {
            match heard {
                Heard::Ack(qn) => {
                    if let Some(pending) = self.in_flight.iter_mut().find(|p| !p.acked && p.qn == qn) {
                        pending.acked = true;
                        self.meters.acked.increment(1);
                        self.meters.ack_seconds.record(pending.sent.elapsed().as_secs_f64());
                    }
                }
                Heard::History(request) => self.answer_history(&request)?,
                // Other commands (1012, settings) are not relayed to the loggers.
                Heard::Refused(answer) => {
                    self.link()?.send(&answer)?;
                    self.meters.refused.increment(1);
                }
                Heard::Other => self.meters.other.increment(1),
            }
        }
        while self.in_flight.front().is_some_and(|p| p.acked) {
            self.in_flight.pop_front();
        }
        Ok(())
    }

    /// Answers a history request from the archive (HJ 212-2017 §6.1: 9011, the records as the
    /// logger sent them, 9012), so the upstream heals its own gaps without reaching the logger.
    fn answer_history(&mut self, request: &HistoryRequest) -> Result<(), FollowError> {
        let records = self.archived(request)?;
        tracing::info!(
            target = self.target.name,
            mn = request.mn,
            cn = request.cn,
            records = records.len(),
            "forwarding: history request from the upstream answered from the archive"
        );
        let link = self.link()?;
        link.send(&request.accepted)?;
        for record in &records {
            link.send(record)?;
        }
        link.send(if records.is_empty() { &request.no_data } else { &request.done })?;
        self.meters.history.increment(1);
        Ok(())
    }

    /// The frames of `request`'s site and CN in its range, as archived (first copy of each DataTime).
    fn archived(&self, request: &HistoryRequest) -> Result<Vec<Vec<u8>>, FollowError> {
        let store = self.data_dir.store();
        if !store.exists() {
            return Ok(Vec::new());
        }
        let seqs = hj212_store::Store::open_read_only(&store)?.records_in(
            &request.mn,
            request.cn,
            request.from_ms,
            request.to_ms,
            MAX_HISTORY_RECORDS,
        )?;
        let archive: PathBuf = self.data_dir.archive();
        let mut frames = Vec::with_capacity(seqs.len());
        for seq in seqs {
            let mut reader = hj212_archive::Follower::new(&archive, seq);
            if let Some(record) = reader.read(seq, 1)?.into_iter().next() {
                frames.push(record.data);
            }
        }
        Ok(frames)
    }

    /// Waits for the oldest frame's 9014; a missing one breaks the link (resent from the cursor).
    fn wait_for_oldest(&mut self) -> Result<(), FollowError> {
        let timeout = Duration::from_secs(self.target.ack_timeout_secs);
        while let Some(oldest) = self.in_flight.front() {
            let waited = oldest.sent.elapsed();
            if waited >= timeout {
                return Err(format!(
                    "forward {}: no 9014 for QN {} within {} s; reconnecting and resending from the last acknowledged frame",
                    self.target.name, oldest.qn, self.target.ack_timeout_secs
                )
                .into());
            }
            self.hear(Some(timeout.saturating_sub(waited)))?;
        }
        Ok(())
    }

    /// Saves and returns the position: before the oldest unacknowledged frame, else the last fed.
    fn save(&mut self) -> Result<u64, FollowError> {
        let position = self.in_flight.front().map_or(self.fed, |p| p.seq - 1);
        self.cursor.advance(position)?;
        Ok(self.cursor.seq)
    }
}

impl Follower for Forwarder {
    fn name(&self) -> &'static str {
        self.name
    }

    fn position(&mut self) -> Result<u64, FollowError> {
        Ok(self.cursor.seq)
    }

    fn apply(&mut self, records: &[Interpreted]) -> Result<u64, FollowError> {
        // One write per window, not one per frame: the forwarder's thread shares the CPU with
        // ingest and every other follower.
        let mut out = Vec::new();
        for record in records {
            if let Some((qn, wants_ack)) = self.relayed(record) {
                out.extend_from_slice(&record.record.data);
                self.meters.sent.increment(1);
                if let Some(qn) = qn.filter(|_| wants_ack && self.target.wait_ack) {
                    let seq = record.record.seq;
                    self.in_flight.push_back(Pending { seq, qn, sent: Instant::now(), acked: false });
                    if self.in_flight.len() >= self.target.window {
                        self.link()?.send(&out)?;
                        out.clear();
                        self.hear(Some(Duration::from_millis(100)))?;
                        if self.in_flight.len() >= self.target.window {
                            self.wait_for_oldest()?;
                        }
                    }
                }
            }
            self.fed = record.record.seq;
        }
        if !out.is_empty() {
            self.link()?.send(&out)?;
        }
        self.hear(None)?;
        self.save()
    }

    fn tick(&mut self, _now_ms: i64, _behind: u64) -> Result<u64, FollowError> {
        self.hear(None)?;
        let timeout = Duration::from_secs(self.target.ack_timeout_secs);
        if self.in_flight.front().is_some_and(|p| p.sent.elapsed() >= timeout) {
            self.wait_for_oldest()?;
        }
        self.save()
    }

    fn recover(&mut self) -> Result<u64, FollowError> {
        if self.link.take().is_some() {
            self.meters.connected.set(0.0);
        }
        self.meters.resent.increment(self.in_flight.len() as u64);
        self.in_flight.clear();
        self.fed = self.cursor.seq;
        Ok(self.cursor.seq)
    }

    fn finish(&mut self) -> Result<u64, FollowError> {
        self.wait_for_oldest()?;
        self.save()
    }
}
