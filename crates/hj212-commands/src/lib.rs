//! Downlink (反控): host commands to connected data loggers, followed through the standard's
//! request flow (HJ 212-2017 §6.1, §6.2: request, 9011 QnRtn, data, 9012 ExeRtn, with request
//! and execution timeouts), kept in `commands.sqlite` so the queue survives a restart, and
//! the gap-recovery sweep that asks loggers for the records the rate ledger misses.

mod book;
mod command;
mod hub;
pub mod metrics;
pub mod recovery;
mod spec;

pub use book::{Book, BookError, SCHEMA, recovery_requests};
pub use command::{Command, Origin, State, exe_rtn_meaning, parse_id, qn_rtn_meaning};
pub use hub::{CancelError, Carrier, Hub, MAILBOX_SIZE, Mailbox, Matched, Outgoing, SubmitError, now_ms};
pub use spec::{CommandSpec, Exchange, SpecError, check};
