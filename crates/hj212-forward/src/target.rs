//! One forwarding target as a follower of the archive.

use std::collections::HashSet;
use std::time::Duration;

use hj212_archive::{Kind, NewRecord, Verdict};
use hj212_config::{DataDir, Forward};
use hj212_follow::{Cursor, FollowError, Follower, Interpreted, Meaning};
use hj212_proto::{Packet, SegmentText};
use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

use crate::lane::{Lane, Overdue, Pending};
use crate::link::{Heard, HistoryRequest, UpstreamCommand};
use crate::metrics::{ACK_SECONDS, CONNECTED, FRAMES};
use crate::pace::Pace;
use crate::relay::{MAX_RELAYED, Relay, Relayed};
use crate::rewrite::Rewrites;

/// Appends a record to the daemon's archive (what the upstream asked, as evidence); the
/// forwarder does not wait for it.
pub type Notebook = Box<dyn Fn(NewRecord) + Send>;

/// Relays one target's frames (see the crate's documentation).
pub struct Forwarder {
    name: &'static str,
    target: Forward,
    sites: HashSet<String>,
    cns: HashSet<u16>,
    cursor: Cursor,
    lanes: Vec<Lane>,
    /// The last record fed (relayed or not).
    fed: u64,
    /// Where history requests from the upstream are answered from.
    data_dir: DataDir,
    rewrites: Rewrites,
    pace: Pace,
    notebook: Notebook,
    /// The command channel, when `relay_commands` is on.
    relay: Option<Box<dyn Relay>>,
    relayed: Vec<Relayed>,
    /// When the position was last saved (within a batch, every `SAVE_EVERY`).
    saved: std::time::Instant,
    meters: Meters,
}

/// A crash resends what was acknowledged since the last save: at most this much of it, plus the window.
const SAVE_EVERY: Duration = Duration::from_millis(50);

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder").field("name", &self.name).field("fed", &self.fed).finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub(crate) struct Meters {
    pub sent: Counter,
    pub acked: Counter,
    pub resent: Counter,
    pub given_up: Counter,
    pub other: Counter,
    pub history: Counter,
    pub relayed: Counter,
    pub refused: Counter,
    pub connected: Gauge,
    pub ack_seconds: Histogram,
}

impl Meters {
    fn new(target: &str) -> Self {
        let frames = |outcome: &'static str| counter!(FRAMES, "target" => target.to_owned(), "outcome" => outcome);
        let meters = Self {
            sent: frames("sent"),
            acked: frames("acked"),
            resent: frames("resent"),
            given_up: frames("given_up"),
            other: frames("upstream_other"),
            history: frames("history_answered"),
            relayed: frames("upstream_relayed"),
            refused: frames("upstream_refused"),
            connected: gauge!(CONNECTED, "target" => target.to_owned()),
            ack_seconds: histogram!(ACK_SECONDS, "target" => target.to_owned()),
        };
        let counters = [&meters.sent, &meters.acked, &meters.resent, &meters.given_up, &meters.other];
        for counter in counters.into_iter().chain([&meters.history, &meters.relayed, &meters.refused]) {
            // Listed from the first scrape.
            counter.increment(0);
        }
        meters.connected.set(0.0);
        meters
    }
}

/// A frame this target relays: its site, CN, and the QN a 9014 would echo.
struct Outgoing<'a> {
    mn: &'a str,
    cn: u16,
    qn: Option<String>,
    wants_ack: bool,
}

impl Forwarder {
    /// The target's follower, resuming from its cursor file. `relay` is used when the target
    /// has `relay_commands` on.
    ///
    /// # Errors
    /// The cursor file or a rewrite's key file cannot be read.
    pub fn open(
        target: Forward,
        data_dir: &DataDir,
        notebook: Notebook,
        relay: Option<Box<dyn Relay>>,
    ) -> std::io::Result<Self> {
        // The runtime's follower name is static; one per configured target, made once at start.
        let name: &'static str = Box::leak(format!("forward:{}", target.name).into_boxed_str());
        let cursor = Cursor::load(&data_dir.forward_cursor(&target.name))?;
        let rewrites = Rewrites::load(&target).map_err(std::io::Error::other)?;
        let target_relays = target.relay_commands;
        Ok(Self {
            name,
            meters: Meters::new(&target.name),
            sites: target.sites.iter().cloned().collect(),
            cns: target.cns.iter().filter_map(|cn| cn.parse().ok()).collect(),
            fed: cursor.seq,
            cursor,
            lanes: (0..target.connections).map(|_| Lane::default()).collect(),
            pace: Pace::new(target.catch_up_rate),
            target,
            data_dir: data_dir.clone(),
            rewrites,
            notebook,
            relay: relay.filter(|_| target_relays),
            relayed: Vec::new(),
            saved: std::time::Instant::now(),
        })
    }

    /// The site, CN and QN of a frame this target relays.
    fn relayed<'a>(&self, record: &'a Interpreted) -> Option<Outgoing<'a>> {
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
        Some(Outgoing { mn, cn, qn: packet.qn.map(str::to_owned), wants_ack: packet.wants_ack() })
    }

    /// The lane a site keeps to (FNV-1a of its MN: stable across restarts).
    fn lane_of(&self, mn: &str) -> usize {
        let hash = mn.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        usize::try_from(hash % self.lanes.len() as u64).unwrap_or(0)
    }

    /// Queues one archived frame on its site's lane; waits while that lane's window is full.
    fn queue(&mut self, record: &Interpreted, relayed: &Outgoing<'_>) -> Result<(), FollowError> {
        let seq = record.record.seq;
        let Some(bytes) = self.rewrites.apply(relayed.mn, relayed.cn, &record.record.data) else {
            tracing::warn!(
                target = self.target.name,
                seq,
                mn = relayed.mn,
                "forwarding: frame cannot be rewritten; skipped"
            );
            self.meters.given_up.increment(1);
            return Ok(());
        };
        let pending = relayed.qn.clone().filter(|_| relayed.wants_ack && self.target.wait_ack).map(|qn| Pending {
            seq,
            qn,
            mn: self.rewrites.upstream_mn(relayed.mn).to_owned(),
            bytes: bytes.to_vec(),
            sent: std::time::Instant::now(),
            sends: 1,
            done: false,
        });
        let lane = self.lane_of(relayed.mn);
        self.lanes[lane].queue(seq, &bytes, pending);
        self.meters.sent.increment(1);
        if self.lanes[lane].in_flight.len() >= self.target.window {
            self.flush_all()?;
            self.hear_all()?;
            self.drain(lane, self.target.window - 1)?;
            if self.saved.elapsed() >= SAVE_EVERY {
                self.save()?;
            }
        }
        Ok(())
    }

    /// Waits for the catch-up rate limit's next token, taking in acknowledgements meanwhile.
    fn paced(&mut self) -> Result<(), FollowError> {
        while let Err(wait) = self.pace.take() {
            self.flush_all()?;
            self.hear_all()?;
            self.overdue_all()?;
            // Short enough to take in acknowledgements and notice overdue ones in time.
            std::thread::sleep(wait.min(Duration::from_millis(100)));
        }
        Ok(())
    }

    fn flush_all(&mut self) -> Result<(), FollowError> {
        for lane in &mut self.lanes {
            lane.flush(&self.target, &self.meters)?;
        }
        Ok(())
    }

    /// Takes in what every lane's upstream connection has sent.
    fn hear_all(&mut self) -> Result<(), FollowError> {
        for lane in 0..self.lanes.len() {
            for heard in self.lanes[lane].hear(None, &self.meters)? {
                self.handle(lane, heard)?;
            }
        }
        Ok(())
    }

    /// Waits until `lane` has at most `keep` frames in flight.
    fn drain(&mut self, lane: usize, keep: usize) -> Result<(), FollowError> {
        let timeout = Duration::from_secs(self.target.ack_timeout_secs);
        while self.lanes[lane].in_flight.len() > keep {
            if let Overdue::GivenUp { qn, sends } = self.lanes[lane].overdue(&self.target, &self.meters)? {
                self.gave_up(&qn, sends);
                continue;
            }
            let waited = self.lanes[lane].oldest_waited().unwrap_or_default();
            for heard in self.lanes[lane].hear(Some(timeout.saturating_sub(waited)), &self.meters)? {
                self.handle(lane, heard)?;
            }
        }
        Ok(())
    }

    /// Resends or gives up the overdue oldest frame of every lane.
    fn overdue_all(&mut self) -> Result<(), FollowError> {
        for lane in 0..self.lanes.len() {
            while let Overdue::GivenUp { qn, sends } = self.lanes[lane].overdue(&self.target, &self.meters)? {
                self.gave_up(&qn, sends);
            }
        }
        Ok(())
    }

    fn gave_up(&self, qn: &str, sends: u32) {
        tracing::warn!(
            target = self.target.name,
            qn,
            sends,
            "forwarding: the upstream acknowledged later frames but not this one on every send; given up \
             (it stays in the archive, answerable to the upstream's history request)"
        );
    }

    /// What the upstream sent on `lane`, other than a 9014.
    fn handle(&mut self, lane: usize, heard: Heard) -> Result<(), FollowError> {
        match heard {
            Heard::History(request) => self.answer_history(lane, &request),
            Heard::Command(command) => self.command(lane, &command),
            Heard::Ack { .. } | Heard::Other => {
                self.meters.other.increment(1);
                Ok(())
            }
        }
    }

    fn answer_history(&mut self, lane: usize, request: &HistoryRequest) -> Result<(), FollowError> {
        let mn = self.rewrites.site_mn(&request.mn).to_owned();
        // Any CN the upstream asks for, but only of the sites this target is given.
        let records = if self.target.forwards(&mn) {
            crate::history::archived(&self.data_dir, &mn, request)?
        } else {
            Vec::new()
        };
        tracing::info!(
            target = self.target.name,
            mn,
            cn = request.cn,
            records = records.len(),
            "forwarding: history request from the upstream answered from the archive"
        );
        let lane = &mut self.lanes[lane];
        lane.send(&request.accepted, &self.target, &self.meters)?;
        for record in &records {
            let bytes = self.rewrites.apply(&mn, request.cn, record).unwrap_or_default();
            lane.send(&bytes, &self.target, &self.meters)?;
        }
        let end = if records.is_empty() { &request.no_data } else { &request.done };
        lane.send(end, &self.target, &self.meters)?;
        self.meters.history.increment(1);
        Ok(())
    }

    /// A command from the upstream for a logger: archived as evidence, then relayed through
    /// the command channel (`relay_commands`) or refused (9011 QnRtn=2). A 1012 time set
    /// reaches the loggers only when relayed.
    fn command(&mut self, lane: usize, command: &UpstreamCommand) -> Result<(), FollowError> {
        let mn = self.rewrites.site_mn(&command.mn).to_owned();
        let outcome = match self.relay.as_ref() {
            _ if !self.target.forwards(&mn) => Err(format!("{mn} is not a site of this target")),
            None => Err("relay_commands is off".to_owned()),
            Some(_) if self.relayed.len() >= MAX_RELAYED => Err(format!("{MAX_RELAYED} relayed commands unfinished")),
            Some(relay) => relay.submit(&mn, command.cn, &command.cp),
        };
        match outcome {
            Ok(id) => {
                tracing::info!(
                    target = self.target.name,
                    mn,
                    cn = command.cn,
                    qn = command.qn,
                    id,
                    "forwarding: command from the upstream relayed to the logger"
                );
                self.note(&mn, command, &format!("relayed as command {id}"));
                self.relayed.push(Relayed::new(id, lane, command));
                self.meters.relayed.increment(1);
            }
            Err(reason) => {
                tracing::warn!(
                    target = self.target.name,
                    mn,
                    cn = command.cn,
                    qn = command.qn,
                    reason,
                    "forwarding: command from the upstream refused (QnRtn=2)"
                );
                self.note(&mn, command, &format!("refused: {reason}"));
                self.lanes[lane].send(&command.refused, &self.target, &self.meters)?;
                self.meters.refused.increment(1);
            }
        }
        Ok(())
    }

    /// Passes the loggers' answers to relayed commands back to the upstream.
    fn pass_answers(&mut self) -> Result<(), FollowError> {
        let Some(relay) = self.relay.as_ref() else { return Ok(()) };
        let mut i = 0;
        while i < self.relayed.len() {
            let progress =
                relay.progress(self.relayed[i].id).unwrap_or(crate::Progress { finished: true, ..Default::default() });
            let lane = self.relayed[i].lane;
            for answer in self.relayed[i].answers(progress) {
                self.lanes[lane].send(&answer, &self.target, &self.meters)?;
            }
            if progress.finished {
                self.relayed.swap_remove(i);
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    /// Archives what the upstream asked of a logger and what became of it.
    fn note(&self, mn: &str, command: &UpstreamCommand, outcome: &str) {
        let text = serde_json::json!({
            "event": "upstream_command",
            "target": self.target.name,
            "mn": mn,
            "cn": command.cn,
            "qn": command.qn,
            "outcome": outcome,
            "frame": String::from_utf8_lossy(&command.data),
        });
        (self.notebook)(NewRecord {
            kind: Kind::Event,
            verdict: Verdict::Info,
            flags: 0,
            time_ms: hj212_archive::now_ms(),
            peer: self.target.address.clone(),
            data: text.to_string().into_bytes(),
        });
    }

    /// Before the oldest frame not yet acknowledged (or written, when no 9014 is asked), else
    /// the last fed.
    fn position_now(&self) -> u64 {
        self.lanes.iter().filter_map(Lane::holds_back).min().unwrap_or(self.fed)
    }

    /// Saves and returns the position.
    fn save(&mut self) -> Result<u64, FollowError> {
        self.cursor.advance(self.position_now())?;
        self.saved = std::time::Instant::now();
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
        for record in records {
            if let Some(relayed) = self.relayed(record) {
                self.paced()?;
                self.queue(record, &relayed)?;
            }
            self.fed = record.record.seq;
        }
        self.flush_all()?;
        self.hear_all()?;
        self.overdue_all()?;
        self.save()
    }

    fn tick(&mut self, _now_ms: i64, _behind: u64) -> Result<u64, FollowError> {
        self.hear_all()?;
        self.pass_answers()?;
        self.overdue_all()?;
        self.save()
    }

    fn recover(&mut self) -> Result<u64, FollowError> {
        // A broken link resends from what the upstream has not acknowledged, not from the last
        // save: duplicates stay within the window however large the batch was.
        let position = self.position_now();
        for lane in &mut self.lanes {
            lane.reset(&self.meters);
        }
        self.cursor.advance(position)?;
        self.fed = self.cursor.seq;
        Ok(self.cursor.seq)
    }

    fn finish(&mut self) -> Result<u64, FollowError> {
        self.flush_all()?;
        for lane in 0..self.lanes.len() {
            self.drain(lane, 0)?;
        }
        self.save()
    }
}
