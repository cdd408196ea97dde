//! Compliance arithmetic, with no I/O: fed records, marks and rules, it returns counts and
//! rates. Every rule states its source; numbers regulators disagree on are parameters.
//!
//! Rates (docs/compliance.md §1.2, after the national 数据传输有效率 scheme):
//! 传输率 = received / due, 有效率 = valid / received, 有效传输率 = valid / due.

pub mod abnormal;
pub mod alert;
pub mod exceedance;
mod period;
mod rate;

pub use period::{BEIJING_OFFSET_MS, Basis, Range};
pub use rate::{Mark, Rate, Reading, Report, Rules, compute, evaluated};
