//! Carries a frame's [decision](crate::decide) out on the shared state. The decision says
//! what to do; the per-frame locks, metrics and logs are here: the registry snapshot, the key
//! store that opens encrypted frames and keeps the SM4 keys, the resend-key claim, the site's
//! state, the counters.

use hj212_archive::{Verdict, flags};
use hj212_proto::SegmentText;
use hj212_proto::codec::{Frame, FrameEvent};
use hj212_proto::time::BeijingTime;

use crate::Shared;
use crate::decide::{self, Authentic, Decision, Inputs, KeyStep, Notice, Plain, Refusal};
use crate::decrypt::{self, Opened};
use crate::keys::KeyEvent;
use crate::metrics::IngestMetrics;

/// Decides on one framing event and carries out what the decision says about the shared
/// state; returns it for the connection to archive and answer.
pub(crate) fn decide(shared: &Shared, event: &FrameEvent, peer: &str, now_ms: i64) -> Decision {
    let sites = shared.registry.snapshot();
    let inputs = Inputs {
        sites: &sites,
        limits: &shared.limits,
        time_sync: &shared.time_sync,
        peer,
        now_ms,
        commands_in_flight: shared.commands.expects_answers(),
    };
    let decision = match event {
        FrameEvent::Rejected { error, bytes } => logged(decide::unframed(error, bytes, &inputs)),
        FrameEvent::Frame(frame) => decide_frame(shared, frame, &inputs),
    };
    count(&shared.metrics, &decision);
    decision
}

fn decide_frame(shared: &Shared, frame: &Frame, inputs: &Inputs<'_>) -> Decision {
    let decrypted;
    let (plain, key_role) = match decrypt::open_frame(frame, inputs.sites, &shared.keys) {
        Opened::AsIs(dialect) => (Plain { frame, decrypted: false, dialect }, None),
        Opened::Decrypted(plaintext, role, dialect) => {
            decrypted = plaintext;
            (Plain { frame: &decrypted, decrypted: true, dialect: Some(dialect) }, Some(role))
        }
        Opened::KeyOrCrcFailed { mn } => return logged(decide::undecryptable(mn, frame, inputs)),
    };
    let text = SegmentText::new(plain.frame.data());
    let authentic = match decide::check(&plain, &text, inputs) {
        Ok(authentic) => authentic,
        Err(refusal) => return logged(decide::refuse(refusal, &plain, inputs)),
    };
    let mut events = Vec::new();
    if let Some(event) = key_role.and_then(|role| shared.keys.used(authentic.mn(), role)) {
        // The logger already uses the pending key (its 9012 was lost or is late).
        key_event(&mut events, &event);
    }
    // Claimed now, not after the fsync, so copies pipelined in one batch are caught too.
    let seen = authentic.dedup_key.map(|key| shared.dedup.insert(key));
    let clock_off = shared.states.update(authentic.mn(), |state| authentic.observe(seen, state, inputs));
    let mut decision = logged(authentic.answer(seen, clock_off, inputs));
    if decision.sets_time() {
        shared.states.update(authentic.mn(), |state| state.last_time_set_ms = Some(inputs.now_ms));
    }
    decision.events = events;
    keys(shared, &authentic, &mut decision, inputs.now_ms);
    decision
}

/// Tells the key store what the frame asked (a new key, or an answer to our 1014), and sends
/// a pending key when no other command goes out; the store saves every step.
fn keys(shared: &Shared, authentic: &Authentic<'_>, decision: &mut Decision, now_ms: i64) {
    let (keys, mn) = (&shared.keys, authentic.mn());
    match authentic.key_step() {
        Some(KeyStep::Request) => match keys.requested(mn, now_ms) {
            Ok(Some(event)) => key_event(&mut decision.events, &event),
            Ok(None) => {}
            Err(error) => tracing::warn!(mn, %error, "logger asks for a new SM4 key"),
        },
        Some(KeyStep::Reply { qn, cn, success }) => {
            if let Some(event) = keys.reply(mn, qn, cn, success) {
                // It answers the 1014 the key store sent, not a command of the command channel.
                decision.answer = None;
                key_event(&mut decision.events, &event);
            }
        }
        None => {}
    }
    if decision.command.is_some() {
        return;
    }
    let Some(delivery) = keys.delivery(mn, now_ms) else { return };
    match authentic.key_command(delivery, now_ms) {
        Ok(Some(command)) => {
            keys.sent(mn, BeijingTime::from_unix_millis(now_ms).to_qn_string(), now_ms);
            decision.command = Some(("1014", command));
        }
        Ok(None) => {}
        Err(error) => tracing::warn!(mn, %error, "cannot build the 1014 new-key command"),
    }
}

/// A key-rotation step, for the log and (with the frame, durably, in order) the archive;
/// events name keys by fingerprint, never the key.
fn key_event(events: &mut Vec<String>, event: &KeyEvent) {
    let text = event.to_string();
    tracing::info!(event = %text, "SM4 key rotation");
    events.push(text);
}

/// Logs what the decision says to log: never a password. Refusals a hostile peer can repeat
/// at will are at debug (they would fill the journal); counters and the archive's refused
/// summaries keep the evidence, and the auth_failure alert names the site.
fn logged(decision: Decision) -> Decision {
    match &decision.refusal {
        Some(Refusal::Unframed(error)) => tracing::debug!(%error, "bytes rejected"),
        Some(Refusal::Undecryptable { mn }) => {
            tracing::warn!(mn, "encrypted frame: no key of the site gives a valid CRC; refused");
        }
        Some(Refusal::BadCrc { declared }) => {
            tracing::debug!(declared = format_args!("{declared:04X}"), "bad CRC: frame dropped");
        }
        Some(Refusal::Unparseable(error)) => tracing::debug!(%error, "unparseable frame"),
        Some(Refusal::UnknownMn { mn }) => tracing::debug!(mn, "unknown MN: frame refused"),
        Some(Refusal::WrongPassword { mn }) => tracing::debug!(mn, "wrong password: frame refused"),
        Some(Refusal::CrcNotAllowed { mn, error }) => {
            tracing::warn!(mn, %error, "CRC dialect not allowed for this site");
        }
        Some(Refusal::BadTimestamp { mn, error }) => {
            tracing::warn!(mn, error, "unreadable timestamp: frame refused");
        }
        Some(Refusal::NotEncrypted { mn, cn }) => {
            tracing::warn!(mn, cn, "plaintext data command from a site that requires SM4");
        }
        None => {}
    }
    let mn = decision.mn.as_deref().unwrap_or_default();
    for notice in &decision.notices {
        match notice {
            Notice::ClockOff { offset_ms } => {
                tracing::info!(mn, offset_ms, "logger clock is off: sending 1012");
            }
            Notice::SetTimeNotBuilt(error) => tracing::warn!(mn, %error, "cannot build the 1012 set-time command"),
        }
    }
    decision
}

/// Counts what the decision says to count.
fn count(metrics: &IngestMetrics, decision: &Decision) {
    match &decision.refusal {
        Some(Refusal::Unframed(error)) => IngestMetrics::unframed(error.kind()),
        Some(Refusal::Undecryptable { mn }) => IngestMetrics::decrypt_failure(mn),
        _ => {}
    }
    let counts = decision.counts;
    if counts.opened {
        metrics.dialect(counts.dialect);
    }
    metrics.verdict(decision.record.verdict);
    if decision.record.verdict == Verdict::Duplicate {
        metrics.duplicates.increment(1);
    }
    if let Some(encrypted) = counts.encryption {
        IngestMetrics::encryption(encrypted);
    }
    counts.notes.iter().for_each(IngestMetrics::note);
    for (flag, mark) in [(flags::RESENT, "resent"), (flags::FUTURE_TIME, "future_time"), (flags::BACKFILL, "backfill")]
    {
        if decision.record.flags & flag != 0 {
            IngestMetrics::mark(mark);
        }
    }
    if decision.sets_time() {
        metrics.time_sets.increment(1);
    }
}
