//! One forwarding target as a follower of the archive.

use std::collections::HashSet;
use std::time::Duration;

use hj212_archive::{Kind, NewRecord, Verdict};
use hj212_config::{DataDir, Forward};
use hj212_follow::{Cursor, FollowError, Follower, Interpreted, Meaning};
use hj212_proto::model::Flag;

use crate::lane::{Lane, Overdue, Pending};
use crate::pace::Pace;
use crate::relay::{Relay, Relayed};
use crate::rewrite::Rewrites;

mod meters;
mod upstream;

pub(crate) use meters::Meters;

/// The QN and the Flag's A bit of an archived frame, read from its header (before `CP=&&`)
/// without parsing the CP again: the archive's reader has parsed and checked it already.
fn qn_and_ack(frame: &[u8]) -> (Option<String>, bool) {
    let header = frame.windows(5).position(|w| w == b"CP=&&").map_or(frame, |at| &frame[..at]);
    // "##" + 4-digit length before the first field.
    let fields = header.get(6..).unwrap_or_default().split(|b| *b == b';');
    let (mut qn, mut ack) = (None, false);
    for field in fields {
        if let Some(value) = field.strip_prefix(b"QN=") {
            qn = std::str::from_utf8(value).ok().map(str::to_owned);
        } else if let Some(value) = field.strip_prefix(b"Flag=") {
            ack = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()).is_some_and(|bits| Flag(bits).ack());
        }
    }
    (qn, ack)
}

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
    /// When the saved position was last fsynced.
    synced: std::time::Instant,
    meters: Meters,
}

/// A power cut resends what was acknowledged since the last fsync of the position: at most this
/// much (a killed process, only what was in flight: every save reaches the kernel).
const SYNC_EVERY: Duration = Duration::from_secs(1);

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder").field("name", &self.name).field("fed", &self.fed).finish_non_exhaustive()
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
    /// The target's follower, resuming from its cursor file (`data_dir.forward_cursor`, or
    /// `stream_cursor` when it follows the cluster's stream). `relay` is used when the target
    /// has `relay_commands` on.
    ///
    /// # Errors
    /// The cursor file or a rewrite's key file cannot be read.
    pub fn open(
        target: Forward,
        data_dir: &DataDir,
        cursor_path: &std::path::Path,
        notebook: Notebook,
        relay: Option<Box<dyn Relay>>,
    ) -> std::io::Result<Self> {
        // The runtime's follower name is static; one per configured target, made once at start.
        let name: &'static str = Box::leak(format!("forward:{}", target.name).into_boxed_str());
        let cursor = Cursor::load(cursor_path)?;
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
            synced: std::time::Instant::now(),
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
        let (qn, wants_ack) = qn_and_ack(&record.record.data);
        Some(Outgoing { mn, cn, qn, wants_ack })
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
            self.save()?;
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

    /// Before the oldest frame not yet acknowledged (or written, when no 9014 is asked), else
    /// the last fed.
    fn position_now(&self) -> u64 {
        self.lanes.iter().filter_map(Lane::holds_back).min().unwrap_or(self.fed)
    }

    /// Saves and returns the position: every time, for a killed process; fsynced every
    /// `SYNC_EVERY`, for a power cut.
    fn save(&mut self) -> Result<u64, FollowError> {
        let position = self.position_now();
        if self.synced.elapsed() >= SYNC_EVERY {
            self.cursor.advance(position)?;
            self.synced = std::time::Instant::now();
        } else {
            self.cursor.advance_unsynced(position)?;
        }
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
        self.cursor.advance(self.position_now())?;
        Ok(self.cursor.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::qn_and_ack;

    #[test]
    fn the_qn_and_the_a_bit_come_from_the_header_in_any_order() {
        let frame =
            hj212_proto::encode::frame(b"ST=22;QN=20261130120000001;CN=2011;PW=1;MN=A;Flag=5;CP=&&QN=x;Flag=4&&")
                .unwrap();
        assert_eq!(qn_and_ack(&frame), (Some("20261130120000001".into()), true));
        let no_ack = hj212_proto::encode::frame(b"QN=20261130120000002;CN=2011;PW=1;MN=A;Flag=4;CP=&&&&").unwrap();
        assert_eq!(qn_and_ack(&no_ack), (Some("20261130120000002".into()), false));
        let hjt_2005 = hj212_proto::encode::frame(b"ST=32;CN=2011;PW=1;MN=A;CP=&&DataTime=20261130120000&&").unwrap();
        assert_eq!(qn_and_ack(&hjt_2005), (None, false), "no QN, no Flag: nothing to wait for");
    }
}
