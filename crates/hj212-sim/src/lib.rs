//! hj212-sim: simulated HJ 212 data loggers (数采仪) for load and scenario tests of hj212d.
//!
//! The sans-IO part decides what a station sends and when: [`schedule`] (which records are due
//! in simulated time), [`plan`] (gaps, outages with backfill, reconnect storms), [`profile`]
//! (plausible flue-gas and wastewater values), [`frame`] and [`station`] (frames with QN, Flag,
//! split packets, CRC dialects, HJ/T 212-2005 style, wrong CRCs, clock drift, answers to host
//! commands) and [`history`] (the records a logger keeps for history requests). The async
//! [`runner`] drives one TCP connection per station, waits for each 9014, resends on timeout and
//! answers the host's commands on the same connection.
//!
//! ```no_run
//! # async fn demo() -> Result<(), hj212_sim::OptionsError> {
//! let options = hj212_sim::Options { stations: 3, accel: 0.0, ..hj212_sim::Options::default() };
//! let sim = hj212_sim::Simulation::new(options)?;
//! let sites = sim.sites(); // the daemon's [[sites]] for these stations
//! let summary = hj212_sim::run(&sim, "127.0.0.1:9212".parse().unwrap()).await;
//! println!("{} frames acknowledged", summary.totals.acked);
//! # Ok(()) }
//! ```

mod cli;
pub mod frame;
pub mod history;
mod link;
pub mod options;
pub mod plan;
pub mod profile;
pub mod rng;
mod runner;
pub mod schedule;
mod sim;
pub mod station;
pub mod summary;

pub use cli::{Cli, Failure, run as run_cli};
pub use options::{Faults, Options, OptionsError, Outage, ProfileChoice, SimTime};
pub use runner::run;
pub use sim::Simulation;
pub use summary::{ByCn, Counters, SiteSummary, Summary};
