//! `relay_commands`: a command from the upstream for a logger goes through the daemon's command
//! channel, and the logger's answers (9011, 9012, 9013) go back to the upstream with the
//! upstream's QN. Data the logger sends in answer is forwarded as any other upload.

use hj212_proto::encode::{self, ReplyTo};
use hj212_proto::{Packet, SegmentText};

use crate::link::UpstreamCommand;

/// The daemon's command channel, as the forwarder uses it.
pub trait Relay: Send {
    /// Queues `cn` with the upstream's CP (`Key=Value;...`) for `mn`'s logger: the command's id,
    /// or why it is refused (checked like an operator's command).
    ///
    /// # Errors
    /// The reason, logged and archived; the upstream gets 9011 QnRtn=2.
    fn submit(&self, mn: &str, cn: u16, cp: &str) -> Result<u64, String>;

    /// Where the command stands.
    fn progress(&self, id: u64) -> Option<Progress>;
}

/// What the logger has answered to a relayed command so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Its 9011.
    pub qn_rtn: Option<u16>,
    /// Its 9012, or the code that stands for a timeout or an undelivered command.
    pub exe_rtn: Option<u16>,
    /// A notification the logger confirmed (9013).
    pub notified: bool,
    /// Nothing more comes.
    pub finished: bool,
}

/// A command relayed to a logger and what has been passed back of its answers.
#[derive(Debug)]
pub(crate) struct Relayed {
    pub id: u64,
    pub lane: usize,
    /// The upstream's request (its QN, ST, MN, PW for the answers).
    request: Vec<u8>,
    sent: Progress,
}

/// Commands relayed and not finished, at most; more are refused (9011 QnRtn=2) until one finishes.
pub(crate) const MAX_RELAYED: usize = 256;

impl Relayed {
    pub(crate) fn new(id: u64, lane: usize, command: &UpstreamCommand) -> Self {
        Self { id, lane, request: command.data.clone(), sent: Progress::default() }
    }

    /// The answers not yet passed back for `now` (in the standard's order: 9011, 9012 or 9013).
    pub(crate) fn answers(&mut self, now: Progress) -> Vec<Vec<u8>> {
        let text = SegmentText::new(&self.request);
        let Ok(packet) = Packet::parse_text(&text) else { return Vec::new() };
        let to = ReplyTo::from(&packet);
        let mut out = Vec::new();
        if let Some(code) = now.qn_rtn.filter(|_| self.sent.qn_rtn.is_none()) {
            out.extend(encode::request_response(&to, code).ok());
        }
        if let Some(code) = now.exe_rtn.filter(|_| self.sent.exe_rtn.is_none()) {
            out.extend(encode::execution_result(&to, code).ok());
        }
        if now.notified && !self.sent.notified {
            out.extend(encode::notification_response(&to).ok());
        }
        self.sent = now;
        out
    }
}
