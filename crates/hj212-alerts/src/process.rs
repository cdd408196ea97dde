//! One step of the alert engine: archive records (and, when due, the clock) in; alerts,
//! outbox messages, site states and the archive position out, in one transaction.

use std::collections::{BTreeSet, HashMap};

use hj212_compliance::alert::{AlertKind, AlertState, Engine, FleetRules, Transition};
use hj212_follow::{Interpreted, Meaning};
use rusqlite::{Connection, Transaction};

use crate::fingerprints::{self, Fingerprints};
use crate::observe::{self, Judges};
use crate::rules::RulesMap;
use crate::{AlertsError, db, metrics, payload};

/// What a step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stepped {
    /// Archive records looked at.
    pub records: usize,
    /// The last archive record consumed.
    pub applied_seq: u64,
    /// Alert messages recorded.
    pub messages: usize,
    /// The newest outbox sequence number written (0 when none this step).
    pub newest_outbox: u64,
}

/// The engine with its database and archive position.
#[derive(Debug)]
pub(crate) struct Processor {
    conn: Connection,
    engine: Engine,
    /// The last archive record whose effects are committed.
    applied_seq: u64,
    /// Write the MQTT outbox (only when a broker is configured).
    mqtt: bool,
    /// Publish the archive's checkpoints (not when fed from a cluster's stream: those are every node's).
    checkpoints: bool,
    /// Active alerts by kind, for the gauge.
    active: HashMap<AlertKind, i64>,
    /// The online state last published per site (status is re-sent when it changes).
    published_online: HashMap<String, bool>,
    fingerprints: Fingerprints,
    /// Data older than this when received is judged without a fingerprint.
    fingerprint_window_ms: i64,
    fleet: FleetRules,
    /// `[http] public_url`, for the messages' console links.
    public_url: Option<String>,
}

impl Processor {
    /// Opens the engine. A new database starts at `head`, the last durable archive record:
    /// history from before the alert engine existed (an upgrade) is not alerted again.
    pub(crate) fn open(settings: &crate::AlertSettings, head: u64) -> Result<Self, AlertsError> {
        let mut conn = db::open(&settings.db_path)?;
        if !db::has_progress(&conn)? {
            let tx = conn.transaction()?;
            db::set_applied_seq(&tx, head)?;
            tx.commit()?;
            tracing::info!(head, "alert engine starts at the archive's last record; earlier records are not alerted");
        }
        let mut processor = Self {
            engine: Engine::default(),
            applied_seq: 0,
            conn,
            mqtt: settings.mqtt,
            checkpoints: settings.checkpoints,
            active: HashMap::new(),
            published_online: HashMap::new(),
            fingerprints: Fingerprints::default(),
            fingerprint_window_ms: i64::from(settings.fingerprint_days) * 86_400_000,
            fleet: settings.fleet,
            public_url: settings.public_url.clone(),
        };
        processor.reload()?;
        Ok(processor)
    }

    /// (Re)loads the engine's state and position from what is committed: after a start, or
    /// after a failed step whose in-memory changes must be forgotten.
    pub(crate) fn reload(&mut self) -> Result<(), AlertsError> {
        self.engine = Engine::default();
        for (mn, state) in db::site_states(&self.conn)? {
            self.engine.restore(mn, state);
        }
        if let Some(fleet) = db::fleet_state(&self.conn)? {
            self.engine.restore_fleet(fleet);
        }
        self.applied_seq = db::applied_seq(&self.conn)?;
        self.active = db::active_counts(&self.conn)?
            .into_iter()
            .filter_map(|(kind, n)| Some((AlertKind::parse(&kind)?, i64::try_from(n).unwrap_or(i64::MAX))))
            .collect();
        self.published_online.clear();
        self.fingerprints.forget_ids();
        for kind in AlertKind::ALL {
            metrics::active(kind.as_str(), self.active.get(&kind).copied().unwrap_or(0) as f64);
        }
        Ok(())
    }

    pub(crate) fn applied_seq(&self) -> u64 {
        self.applied_seq
    }

    /// Consumes `records` (which follow the ones consumed before) and, with `now_ms`, runs the
    /// clock rules; commits everything with the new position in one transaction.
    pub(crate) fn step(
        &mut self,
        records: &[Interpreted],
        now_ms: Option<i64>,
        rules: &RulesMap,
        fingerprint_before_ms: Option<i64>,
    ) -> Result<Stepped, AlertsError> {
        let tx = self.conn.transaction()?;
        let mut transitions = Vec::new();
        let mut judges = Judges {
            engine: &mut self.engine,
            fingerprints: &mut self.fingerprints,
            fingerprint_window_ms: self.fingerprint_window_ms,
        };
        for archived in records {
            transitions.extend(observe::observe(archived, &mut judges, rules, &tx)?);
        }
        if let Some(now) = now_ms {
            for (mn, site_rules) in rules {
                transitions.extend(self.engine.tick(mn, now, site_rules));
            }
        }
        self.engine.group(&mut transitions, now_ms, &self.fleet);
        if let Some(before) = fingerprint_before_ms {
            fingerprints::prune(&tx, before)?;
        }
        let now = hj212_archive::now_ms();
        // The engine's position once this step commits: the origin of what the clock raised.
        let step_origin = records.last().map_or(self.applied_seq, |last| last.record.seq);
        let mut stepped = Stepped { records: records.len(), ..Stepped::default() };
        let mut touched = BTreeSet::new();
        let mut recorded = Vec::new();
        let site_name = |mn: &str| rules.get(mn).map(|r| r.name.as_str());
        let names = payload::Names { site_name: &site_name, public_url: self.public_url.as_deref() };
        for t in &transitions {
            let body = payload::alert(t, &names).to_string();
            if !db::record(&tx, t, &body)? {
                continue; // already recorded: a replay after a crash
            }
            if self.mqtt {
                let origin = if t.cause_seq > 0 { t.cause_seq } else { step_origin };
                let message = db::Message {
                    topic: &payload::alert_topic(t),
                    payload: body.as_bytes(),
                    status_of: None,
                    origin: Some(origin),
                };
                stepped.newest_outbox = db::enqueue(&tx, &message)?;
            }
            touched.insert(t.mn.clone());
            recorded.push(t);
        }
        let dirty = self.engine.take_dirty();
        for mn in &dirty {
            if let Some(state) = self.engine.site(mn) {
                db::save_site(&tx, mn, state)?;
            }
        }
        if let Some(fleet) = self.engine.take_fleet_dirty() {
            db::save_fleet(&tx, fleet)?;
        }
        if self.mqtt {
            let sites = dirty.iter().chain(&touched).chain(rules.keys().filter(|_| now_ms.is_some()));
            let published = &mut self.published_online;
            let status = Status { origin: step_origin, now };
            if let Some(seq) = publish_status(&tx, &self.engine, published, sites, &touched, rules, status)? {
                stepped.newest_outbox = seq;
            }
        }
        let newest_checkpoint = records.iter().rev().find_map(|archived| match &archived.meaning {
            Meaning::Checkpoint(head) => Some(head),
            _ => None,
        });
        if self.mqtt
            && self.checkpoints
            && let Some(newest) = newest_checkpoint
        {
            // Published where the operator cannot silently take it back (a retained topic of
            // the broker, which the regulator's or the owner's side can mirror).
            let body = payload::checkpoint(newest).to_string();
            // This node's own archive: every node of a cluster publishes its checkpoints.
            let message = db::Message {
                topic: payload::ARCHIVE_HEAD_TOPIC,
                payload: body.as_bytes(),
                status_of: Some(ARCHIVE_HEAD_KEY),
                origin: None,
            };
            stepped.newest_outbox = db::enqueue(&tx, &message)?;
        }
        if let Some(last) = records.last() {
            db::set_applied_seq(&tx, last.record.seq)?;
        }
        tx.commit()?;
        if let Some(last) = records.last() {
            self.applied_seq = last.record.seq;
        }
        stepped.applied_seq = self.applied_seq;
        stepped.messages = recorded.len();
        self.count(&recorded, now);
        Ok(stepped)
    }

    fn count(&mut self, recorded: &[&Transition], now: i64) {
        for t in recorded {
            metrics::message(t.kind.as_str(), t.state.as_str());
            let delta = match t.state {
                AlertState::Raised => 1,
                AlertState::Cleared => -1,
                AlertState::Updated => 0,
            };
            if delta != 0 {
                let active = self.active.entry(t.kind).or_default();
                *active = (*active + delta).max(0);
                metrics::active(t.kind.as_str(), *active as f64);
            }
            // Raised by an archive record (offline, record-missing and fleet outages come from the clock):
            // detected_ms is the frame's arrival.
            let clock = matches!(t.kind, AlertKind::Offline | AlertKind::RecordMissing | AlertKind::FleetOutage);
            if t.state == AlertState::Raised && !clock {
                metrics::detection((now - t.detected_ms).max(0) as f64 / 1000.0);
            }
        }
    }

    pub(crate) fn outbox_depth(&self) -> Result<u64, AlertsError> {
        db::outbox_depth(&self.conn)
    }
}

/// The retained checkpoint's key among the retained messages (a space: no MN has one).
const ARCHIVE_HEAD_KEY: &str = "archive head";

/// When a step queues sites' statuses: its position (their origin) and the time they show.
#[derive(Clone, Copy)]
struct Status {
    origin: u64,
    now: i64,
}

/// Queues the retained status of each site whose alerts changed or whose online state
/// differs from the one last published.
fn publish_status<'a>(
    tx: &Transaction<'_>,
    engine: &Engine,
    published_online: &mut HashMap<String, bool>,
    candidates: impl Iterator<Item = &'a String>,
    touched: &BTreeSet<String>,
    rules: &RulesMap,
    status: Status,
) -> Result<Option<u64>, AlertsError> {
    let mut newest = None;
    let mut done = BTreeSet::new();
    for mn in candidates {
        let Some(site_rules) = rules.get(mn) else { continue };
        if !done.insert(mn) {
            continue;
        }
        let state = engine.site(mn);
        let online = state.is_some_and(hj212_compliance::alert::SiteState::online);
        if !touched.contains(mn) && published_online.get(mn) == Some(&online) {
            continue;
        }
        let active = db::active_of(tx, mn)?;
        let last_seen = state.and_then(hj212_compliance::alert::SiteState::last_seen_ms);
        let body = payload::status(mn, &site_rules.name, online, last_seen, &active, status.now).to_string();
        let message = db::Message {
            topic: &payload::status_topic(mn),
            payload: body.as_bytes(),
            status_of: Some(mn),
            origin: Some(status.origin),
        };
        newest = Some(db::enqueue(tx, &message)?);
        published_online.insert(mn.clone(), online);
    }
    Ok(newest)
}
