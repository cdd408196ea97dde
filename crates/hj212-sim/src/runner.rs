//! Drives the stations over TCP (tokio): one task and one connection per station, paced by
//! simulated time, waiting for each 9014 and resending (same QN) on timeout as loggers do, and
//! answering the host's commands on the same connection, during the run and for `--linger` after.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hj212_proto::codec::Frame;
use hj212_proto::model::Cn;
use hj212_proto::time::BeijingTime;
use hj212_proto::{Packet, SegmentText};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::link::Link;
use crate::plan::{Planner, Step};
use crate::schedule::Due;
use crate::sim::Simulation;
use crate::station::{AnswerFrame, Incoming, OutFrame, Station};
use crate::summary::{Counters, SiteSummary, Summary};

/// Maps simulated time to real time.
#[derive(Debug, Clone, Copy)]
struct Pacer {
    accel: f64,
    start_ms: i64,
    real_start: Instant,
}

impl Pacer {
    /// When simulated time `at_ms` comes; `None` at `accel` 0 (no waiting).
    fn instant(&self, at_ms: i64) -> Option<Instant> {
        #[expect(clippy::cast_precision_loss, reason = "millisecond offsets are far below 2^52")]
        let offset_ms = (at_ms - self.start_ms).max(0) as f64;
        (self.accel > 0.0).then(|| self.real_start + Duration::from_secs_f64(offset_ms / 1000.0 / self.accel))
    }

    /// The simulated time at `now`; `None` at `accel` 0, where it is wherever the station got to.
    fn simulated_ms(&self, now: Instant) -> Option<i64> {
        let elapsed_ms = now.saturating_duration_since(self.real_start).as_secs_f64() * 1000.0;
        #[expect(clippy::cast_possible_truncation, reason = "a simulated offset in ms fits i64 (saturating cast)")]
        let offset_ms = (elapsed_ms * self.accel) as i64;
        (self.accel > 0.0).then(|| self.start_ms.saturating_add(offset_ms))
    }
}

/// What every station task shares.
#[derive(Debug)]
struct Shared {
    target: SocketAddr,
    ack_timeout: Duration,
    retries: u32,
    window: usize,
    sticky: bool,
    linger: Duration,
    pacer: Pacer,
    limiter: Option<Arc<Semaphore>>,
}

/// A frame awaiting its 9014.
#[derive(Debug)]
struct InFlight {
    qn: String,
    cn: u16,
    bytes: Vec<u8>,
    /// Transmissions so far.
    attempts: u32,
    deadline: Instant,
    factors: u64,
}

/// A frame of an answer to a host command, waiting for its turn.
#[derive(Debug)]
struct Pending {
    frame: AnswerFrame,
    /// Not before this instant (`--slow-history-percent`).
    not_before: Option<Instant>,
}

/// Runs every station of `sim` against `target` and sums up.
pub async fn run(sim: &Simulation, target: SocketAddr) -> Summary {
    let started = Instant::now();
    let options = &sim.options;
    let shared = Arc::new(Shared {
        target,
        ack_timeout: options.ack_timeout,
        retries: options.retries,
        window: options.window,
        sticky: options.faults.sticky,
        linger: options.linger,
        pacer: Pacer { accel: options.accel, start_ms: sim.start_ms, real_start: started },
        limiter: options.connections_limit.map(|n| Arc::new(Semaphore::new(n))),
    });
    let mut tasks = JoinSet::new();
    for index in 0..sim.stations.len() {
        let (station, plan) = sim.station(index);
        tasks.spawn(Session::new(station, shared.clone()).run(plan));
    }
    let mut sites = Vec::with_capacity(sim.stations.len());
    while let Some(joined) = tasks.join_next().await {
        // A station task only ends early by panicking, which aborts the process (panic = "abort").
        sites.extend(joined.ok());
    }
    sites.sort_by_key(|s| s.index);
    let mut totals = Counters::default();
    for site in &sites {
        totals.add(&site.counters);
    }
    let time = |ms| BeijingTime::from_unix_millis(ms).to_seconds_string();
    Summary {
        target: target.to_string(),
        start: time(sim.start_ms),
        end: time(sim.end_ms),
        stations: sim.stations.len(),
        elapsed_secs: started.elapsed().as_secs_f64(),
        totals,
        sites,
    }
}

/// What one round of waiting brought.
enum Event {
    Frame(Frame),
    Lost,
    Timer,
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

struct Session {
    station: Station,
    shared: Arc<Shared>,
    link: Option<Link>,
    /// Gave up connecting: nothing more is sent.
    dead: bool,
    in_flight: Vec<InFlight>,
    outbox: Vec<u8>,
    outbox_frames: u32,
    /// (CN, factors) of queued frames that expect no answer: counted once written.
    outbox_unacked: Vec<(u16, u64)>,
    /// Answers to host commands, in sending order.
    answers: VecDeque<Pending>,
    /// Simulated time of the latest step.
    clock_ms: i64,
    summary: SiteSummary,
}

impl Session {
    fn new(station: Station, shared: Arc<Shared>) -> Self {
        let summary = SiteSummary::new(&station.spec);
        let clock_ms = shared.pacer.start_ms;
        Self {
            station,
            shared,
            link: None,
            dead: false,
            in_flight: Vec::new(),
            outbox: Vec::new(),
            outbox_frames: 0,
            outbox_unacked: Vec::new(),
            answers: VecDeque::new(),
            clock_ms,
            summary,
        }
    }

    fn stats(&mut self) -> &mut Counters {
        &mut self.summary.counters
    }

    async fn run(mut self, plan: Planner) -> SiteSummary {
        for step in plan {
            match step {
                Step::Skip { due, reason } => {
                    Counters::bump(&mut self.stats().records, due.kind.cn(), 1);
                    self.stats().skipped(reason);
                }
                Step::Disconnect { at_ms, storm } => {
                    self.wait_until(at_ms).await;
                    self.clock_ms = at_ms;
                    self.drain().await;
                    self.close().await;
                    self.stats().storm_reconnects += u64::from(storm);
                }
                Step::Send { at_ms, due, backfill, dropped } => {
                    Counters::bump(&mut self.stats().records, due.kind.cn(), 1);
                    self.stats().backfilled += u64::from(backfill);
                    self.wait_until(at_ms).await;
                    self.clock_ms = at_ms;
                    self.send_record(&due, at_ms, dropped).await;
                }
            }
        }
        self.drain().await;
        self.linger().await;
        self.close().await;
        self.summary
    }

    /// Stays connected for `--linger`, answering host commands, so that the host can fetch what
    /// it missed. A station whose link is down at the end (an outage past the end) stays down.
    async fn linger(&mut self) {
        if self.shared.linger.is_zero() || self.link.is_none() {
            return;
        }
        let until = Instant::now() + self.shared.linger;
        // A logger reconnects when the host closes an idle connection.
        while Instant::now() < until && self.ensure_link().await {
            self.service(Some(until)).await;
        }
        self.drain().await;
    }

    /// The station's simulated time now.
    fn simulated_now(&self) -> i64 {
        let paced = self.shared.pacer.simulated_ms(Instant::now());
        paced.map_or(self.clock_ms, |ms| ms.max(self.clock_ms))
    }

    /// Waits (answering the host meanwhile) until simulated time `at_ms` has come.
    async fn wait_until(&mut self, at_ms: i64) {
        if let Some(at) = self.shared.pacer.instant(at_ms) {
            while Instant::now() < at {
                self.service(Some(at)).await;
            }
        }
    }

    async fn send_record(&mut self, due: &Due, at_ms: i64, dropped: bool) {
        let built = self.station.build(due, at_ms);
        let stats = self.stats();
        stats.exceedances += u64::from(built.exceeded);
        stats.flagged_values += u64::from(built.flagged);
        stats.split_records += u64::from(built.frames.len() > 1);
        if dropped {
            // Lost on the wire: nothing is written, and the station, which never learns of it,
            // expects no 9014 and never resends it. Only a history request brings it back.
            stats.dropped_uploads += 1;
            self.station.mark_dropped(due);
            return;
        }
        for frame in built.frames {
            self.send_frame(frame).await;
        }
    }

    async fn send_frame(&mut self, frame: OutFrame) {
        Counters::bump(&mut self.stats().frames, frame.cn, 1);
        while frame.wants_ack && self.in_flight.len() >= self.shared.window {
            self.service(None).await;
        }
        if !self.ensure_link().await {
            self.stats().unsent += 1;
            return;
        }
        self.track(frame);
        if !self.shared.sticky {
            self.flush().await;
        }
    }

    /// Queues `frame` and remembers what it expects: a 9014 (in flight) or nothing (counted once written).
    fn track(&mut self, frame: OutFrame) {
        let bad = frame.corrupted.is_some();
        self.queue(frame.corrupted.as_deref().unwrap_or(&frame.bytes));
        let stats = self.stats();
        stats.bad_crc_sent += u64::from(bad);
        match frame.qn {
            Some(qn) if frame.wants_ack => {
                let deadline = Instant::now() + self.shared.ack_timeout;
                let (cn, bytes, factors) = (frame.cn, frame.bytes, frame.factors);
                self.in_flight.push(InFlight { qn, cn, bytes, attempts: 1, deadline, factors });
            }
            _ if bad => stats.bad_crc_lost += 1,
            _ => self.outbox_unacked.push((frame.cn, frame.factors)),
        }
    }

    /// Queues the answer frames whose time has come, in order, as far as the window allows: a
    /// history answer's records wait for room like the station's own uploads.
    fn pump_answers(&mut self) {
        let now = Instant::now();
        while let Some(next) = self.answers.front() {
            let early = next.not_before.is_some_and(|at| at > now);
            let window_full = matches!(&next.frame, AnswerFrame::Upload(f) if f.wants_ack)
                && self.in_flight.len() >= self.shared.window;
            if early || window_full {
                return;
            }
            match self.answers.pop_front().map(|p| p.frame) {
                Some(AnswerFrame::Reply(bytes)) => self.queue(&bytes),
                Some(AnswerFrame::Upload(upload)) => self.track(upload),
                None => return,
            }
        }
    }

    fn queue(&mut self, bytes: &[u8]) {
        self.outbox.extend_from_slice(bytes);
        self.outbox_frames += 1;
    }

    /// Writes what is queued, answers whose turn has come included: one write, however many
    /// frames (`--sticky` lets them gather).
    async fn flush(&mut self) {
        self.pump_answers();
        if self.outbox.is_empty() {
            return;
        }
        let frames = std::mem::take(&mut self.outbox_frames);
        let bytes = std::mem::take(&mut self.outbox);
        let unacked = std::mem::take(&mut self.outbox_unacked);
        let written = match self.link.as_mut() {
            Some(link) => link.write(&bytes).await.is_ok(),
            None => false,
        };
        let stats = self.stats();
        if written {
            // Frames without an answer count as delivered once written (the daemon archives them).
            for (cn, factors) in unacked {
                Counters::bump(&mut stats.unacked_frames, cn, 1);
                stats.readings += factors;
            }
            stats.sticky_writes += u64::from(frames > 1);
        } else {
            // Frames awaiting an answer are sent again after reconnecting; these are lost.
            stats.unsent += unacked.len() as u64;
            if self.link.is_some() {
                self.lost();
            }
        }
    }

    async fn ensure_link(&mut self) -> bool {
        if self.link.is_some() {
            return true;
        }
        if self.dead {
            return false;
        }
        let connected = Link::connect(self.shared.target, self.shared.limiter.as_ref()).await;
        self.stats().connect_failures += connected.failures;
        self.link = connected.link;
        if self.link.is_some() {
            self.stats().connects += 1;
        } else {
            self.dead = true;
        }
        !self.dead
    }

    fn lost(&mut self) {
        self.link = None;
        // The host asked on that connection; it asks again on the next one if it still wants to know.
        self.answers.clear();
        self.stats().connections_lost += 1;
    }

    /// One round of waiting: for the host's next frame, the next acknowledgement deadline, or `until`.
    async fn service(&mut self, until: Option<Instant>) {
        self.flush().await;
        if self.link.is_none() && !self.in_flight.is_empty() {
            // The connection went away with frames unanswered: reconnect and send them again.
            if self.ensure_link().await {
                self.retransmit(|_| true);
                self.flush().await;
            } else {
                self.give_up_all();
            }
            return;
        }
        let deadline = self.in_flight.iter().map(|f| f.deadline).min();
        let answer_due = self.answers.front().and_then(|p| p.not_before);
        let wake = [deadline, until, answer_due].into_iter().flatten().min();
        let event = if let Some(link) = self.link.as_mut() {
            tokio::select! {
                read = link.read_frame() => match read {
                    Ok(Some(frame)) => Event::Frame(frame),
                    _ => Event::Lost,
                },
                () = sleep_until(wake) => Event::Timer,
            }
        } else {
            sleep_until(wake).await;
            Event::Timer
        };
        match event {
            Event::Frame(frame) => self.on_frame(&frame, false),
            Event::Lost => self.lost(),
            Event::Timer => {
                let now = Instant::now();
                self.retransmit(|f| f.deadline <= now);
            }
        }
    }

    /// Resends the in-flight frames `due` selects, or gives them up after the last retry.
    fn retransmit(&mut self, due: impl Fn(&InFlight) -> bool) {
        let (retries, timeout) = (self.shared.retries, self.shared.ack_timeout);
        let mut failed = 0;
        let mut resend = Vec::new();
        self.in_flight.retain_mut(|f| {
            if !due(f) {
                return true;
            }
            if f.attempts > retries {
                failed += 1;
                return false;
            }
            f.attempts += 1;
            f.deadline = Instant::now() + timeout;
            resend.push(f.bytes.clone());
            true
        });
        let stats = self.stats();
        stats.failed += failed;
        stats.resent += resend.len() as u64;
        for bytes in &resend {
            self.queue(bytes);
        }
    }

    fn give_up_all(&mut self) {
        let n = self.in_flight.len() as u64;
        self.in_flight.clear();
        self.stats().failed += n;
    }

    /// Handles a frame from the host; while `closing`, only acknowledgements (no answer can go out).
    fn on_frame(&mut self, frame: &Frame, closing: bool) {
        let text = SegmentText::new(frame.data());
        let Ok(packet) = Packet::parse_text(&text) else {
            self.stats().other_host_frames += 1;
            return;
        };
        if closing && packet.cn != Cn::DataResponse {
            self.stats().other_host_frames += 1;
            return;
        }
        match self.station.receive(&packet, self.simulated_now()) {
            // The records of a history answer share the request's QN: the oldest is answered first.
            Incoming::Ack(qn) => match self.in_flight.iter().position(|f| f.qn == qn) {
                Some(at) => {
                    let done = self.in_flight.remove(at);
                    let stats = self.stats();
                    stats.acked += 1;
                    stats.readings += done.factors;
                    Counters::bump(&mut stats.acked_frames, done.cn, 1);
                }
                None => self.stats().late_acks += 1,
            },
            Incoming::Command(answer) => {
                self.stats().command(answer.outcome);
                let mut not_before = answer.delay.map(|delay| Instant::now() + delay);
                for frame in answer.frames {
                    // The first frame waits; the others queue behind it.
                    self.answers.push_back(Pending { frame, not_before: not_before.take() });
                }
            }
            Incoming::Other => self.stats().other_host_frames += 1,
        }
    }

    /// Waits until every answer is sent and every frame in flight is answered or given up.
    async fn drain(&mut self) {
        // Answers only exist while connected (losing the link drops them); the guard keeps that
        // from ever becoming a wait for nothing.
        while !self.in_flight.is_empty() || (!self.answers.is_empty() && self.link.is_some()) {
            self.service(None).await;
        }
        self.flush().await;
    }

    /// Closes the connection cleanly, so the daemon handles every frame sent before it closes.
    async fn close(&mut self) {
        self.flush().await;
        if let Some(link) = self.link.take() {
            for frame in link.close().await {
                self.on_frame(&frame, true);
            }
        }
        // Answers not yet written cannot be sent any more.
        self.answers.clear();
        self.outbox.clear();
        self.outbox_frames = 0;
        self.stats().unsent += self.outbox_unacked.len() as u64;
        self.outbox_unacked.clear();
    }
}
