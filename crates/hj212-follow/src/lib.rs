//! Every reader of the archive (the store, the alert engine, the time-series sink, the
//! auditor's CLI) sees an archived record through [`meaning`]: one place decides which
//! records carry data, which only show a site was there, and what a mark or a checkpoint is.
//! Every follower (a reader that keeps up with the archive: store, alert engine, sinks) runs
//! on the one runtime of [`spawn`]: one retry rule, one status, one lag gauge.

mod ahead;
mod cursor;
mod feed;
mod frame_key;
pub mod meaning;
mod report;
mod runner;
mod shared;
mod source;

pub use cursor::Cursor;
pub use feed::{Feed, OpenFeed};
pub use frame_key::frame_key;
pub use meaning::{
    AlertAck, ConfigRecord, Factor, Field, Interpreted, MarkRequest, Meaning, Upload, VisitRequest, identity,
};
pub use report::{FOLLOWER_FAILING, FOLLOWER_LAG, FOLLOWER_LAG_SECONDS, Reported, describe, report};
pub use runner::{FollowError, Follower, Rewind, RunnerSettings, STOP_CATCH_UP, spawn};
pub use shared::{Batch, SharedTail};
