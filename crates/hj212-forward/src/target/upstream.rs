//! What the upstream sends back besides 9014s: history requests answered from the archive,
//! commands for the loggers archived and refused or relayed, and the relayed commands' answers.

use hj212_archive::{Kind, NewRecord, Verdict};
use hj212_follow::FollowError;

use super::Forwarder;
use crate::link::{Heard, HistoryRequest, UpstreamCommand};
use crate::relay::{MAX_RELAYED, Relayed};

impl Forwarder {
    /// What the upstream sent on `lane`, other than a 9014.
    pub(super) fn handle(&mut self, lane: usize, heard: Heard) -> Result<(), FollowError> {
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
    pub(super) fn pass_answers(&mut self) -> Result<(), FollowError> {
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
}
