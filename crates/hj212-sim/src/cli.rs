//! The `hj212-sim` command line: options, sites file, run, JSON summary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use hj212_proto::crc::CrcDialect;

use crate::options::{Faults, Options, Outage, ProfileChoice, parse_beijing, parse_duration, parse_outage};
use crate::sim::Simulation;

/// sysexits: bad command-line arguments.
const EX_USAGE: u8 = 64;
/// sysexits: the daemon could not be reached.
const EX_UNAVAILABLE: u8 = 69;
/// sysexits: no runtime.
const EX_OSERR: u8 = 71;
/// sysexits: the sites file cannot be written.
const EX_CANTCREAT: u8 = 73;

/// hj212d's default HJ 212 listener port, on loopback.
const DEFAULT_TARGET: ([u8; 4], u16) = ([127, 0, 0, 1], 9212);

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProfileArg {
    Gas,
    Water,
    Mixed,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DialectArg {
    Modbus,
    ModbusSwapped,
}

/// Simulates HJ 212 data loggers (数采仪) uploading to hj212d over TCP.
///
/// Each station has its own MN (prefix + zero-padded 0-based index) and password and its own
/// connection. HJ 212-2017 stations send CN=2011 every RtdInterval, 2051 every MinInterval,
/// 2061 after every hour and 2031 after every day, with Flag=5; each frame waits for its 9014
/// (matching QN) and is resent with the same QN after a timeout. At the end a JSON summary
/// goes to stdout.
#[derive(Debug, Parser)]
#[command(name = "hj212-sim", version, max_term_width = 100)]
pub struct Cli {
    /// hj212d's HJ 212 listener [default: 127.0.0.1:9212]. With --sites-config, the simulation
    /// only runs if --target is given too.
    #[arg(long, value_name = "ADDR")]
    target: Option<SocketAddr>,
    /// Write the stations' [[sites]] (mn, password, name, factors, crc) as a TOML sites_file
    /// for hj212d, then exit (or run, with --target).
    #[arg(long, value_name = "FILE")]
    sites_config: Option<PathBuf>,
    /// Number of stations.
    #[arg(long, short = 'n', default_value_t = 1, value_name = "N")]
    stations: usize,
    /// Flue gas (ST=31: SO2, NOx, PM, O2, flow, temperature), wastewater (ST=32: COD, NH3-N, TP,
    /// TN, pH, flow), or mixed (even stations gas, odd water).
    #[arg(long, value_enum, default_value = "mixed")]
    profile: ProfileArg,
    /// MN prefix; the station index fills the MN up to 24 characters.
    #[arg(long, default_value = "SIM", value_name = "PREFIX")]
    mn_prefix: String,
    /// One password (PW) for every station [default: a 6-digit one per station, from the seed].
    #[arg(long, value_name = "PW")]
    password: Option<String>,
    /// Seed of the values, faults and passwords (same seed, same run).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds between real-time (2011) uploads.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    rtd_interval: u32,
    /// Minutes between minute-data (2051) uploads.
    #[arg(long, default_value_t = 10, value_name = "MINS")]
    min_interval: u32,
    /// Simulated start, Beijing time YYYYMMDDhhmmss [default: so that the simulated period ends
    /// when the run ends: now - duration at --accel 0, now at --accel 1].
    #[arg(long, value_parser = parse_beijing, value_name = "TIME")]
    start: Option<i64>,
    /// Simulated length: 30d, 6h, 90m, 1h30m, ...
    #[arg(long, value_parser = parse_duration, default_value = "1h", value_name = "DURATION")]
    duration: i64,
    /// Simulated seconds per real second; 0 = as fast as acknowledgements allow.
    #[arg(long, default_value_t = 1.0, value_name = "X")]
    accel: f64,
    /// How long to wait for a 9014 before resending (real time).
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    ack_timeout_ms: u64,
    /// Resends of an unanswered frame (same QN) before it counts as failed.
    #[arg(long, default_value_t = 3, value_name = "N")]
    retries: u32,
    /// Frames awaiting a 9014 at once per connection (1 like real loggers; more for load).
    #[arg(long, default_value_t = 1, value_name = "N")]
    window: usize,
    /// At most N stations connected at once. A station keeps its slot for its whole run, so
    /// the others run in batches, later (sending what is overdue at once, as backfill).
    #[arg(long, value_name = "N")]
    connections_limit: Option<usize>,
    /// Percent of records never sent, silently (counter: gaps).
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    gap_percent: f64,
    /// Station SITE_INDEX's link is down from FROM to TO (YYYYMMDDhhmmss or a duration after the
    /// start, e.g. 0:6h-9h). Its real-time data then is lost (outage_lost); its 2051/2061/2031
    /// records are sent when the link is back (backfilled). Repeatable.
    #[arg(long = "outage", value_parser = parse_outage, value_name = "SITE_INDEX:FROM-TO")]
    outages: Vec<Outage>,
    /// Percent of frames first sent with a wrong CRC, as line noise does. The daemon drops them
    /// without an answer; a 2017 station resends the frame intact after the ack timeout (as real
    /// loggers do); a 2005 station expects no answer, so that record is lost
    /// (bad_crc_sent, bad_crc_lost).
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    bad_crc_percent: f64,
    /// The first N stations use --crc-dialect instead of the HJ 212 CRC (their site entry then
    /// says crc = "modbus").
    #[arg(long, default_value_t = 0, value_name = "N")]
    crc_dialect_sites: usize,
    /// The vendor CRC of --crc-dialect-sites.
    #[arg(long, value_enum, default_value = "modbus")]
    crc_dialect: DialectArg,
    /// The last N stations speak HJ/T 212-2005: no QN, no Flag (so no 9014 is expected),
    /// 2005 factor codes (02 for SO2, 011 for COD, ...); counted in unacked_frames.
    #[arg(long, default_value_t = 0, value_name = "N")]
    v2005_sites: usize,
    /// Percent of 2011 records of 2017 stations sent as two packets (Flag=7, PNUM=2, PNO=1/2, each
    /// with its own QN and 9014) (split_records).
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    split_percent: f64,
    /// Percent of factor values flagged M, D or C instead of N (flagged_values).
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    flag_percent: f64,
    /// Percent of records with SO2 (gas) or COD (water) far above typical limits (exceedances).
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    exceed_percent: f64,
    /// The loggers' clocks are S seconds off (positive = ahead): 2011 DataTime and QN shift by S.
    /// A 1012 set-time from the daemon corrects the clock (clock_corrections).
    #[arg(long, default_value_t = 0, value_name = "S", allow_hyphen_values = true)]
    clock_drift_secs: i64,
    /// Only the first N stations' clocks drift [default: all].
    #[arg(long, value_name = "N")]
    clock_drift_sites: Option<usize>,
    /// Every station disconnects at each full simulated hour and reconnects at once
    /// (storm_reconnects).
    #[arg(long)]
    reconnect_storm: bool,
    /// Write the frames that are due together (and resends) in one write (sticky_writes);
    /// useful with --window above 1.
    #[arg(long)]
    sticky: bool,
    /// Simulated hours of 2051, 2061 and 2031 records each station keeps to answer history
    /// requests (2031/2051/2061 with BeginTime and EndTime) from the daemon; 0 = none.
    #[arg(long, default_value_t = 168, value_name = "H")]
    history_hours: u32,
    /// After its last upload each station stays connected SECS seconds more, answering host
    /// commands (so that a gap-recovery sweep can fetch what was dropped), then closes.
    #[arg(long, default_value_t = 0, value_name = "SECS")]
    linger: u64,
    /// Percent of the 2061 and 2031 uploads lost on the wire: never written, never resent, but
    /// kept in the station's history (dropped_uploads). Above 0 the 2017 stations upload with
    /// Flag=4 (no 9014 asked for, so none learns of a loss), their history answers too.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    drop_percent: f64,
    /// Percent of the stations that refuse every history request with 9011 QnRtn=2
    /// (history_refused; per site host_answers = "refuses-history").
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    refuse_history_percent: f64,
    /// Percent of the stations that never answer a host command (history_ignored,
    /// commands_ignored; host_answers = "silent").
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    silent_history_percent: f64,
    /// Percent of the stations that wait --slow-history-ms before the 9011 of a history answer
    /// (host_answers = "slow-history").
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    slow_history_percent: f64,
    /// How long the slow stations wait.
    #[arg(long, default_value_t = 3000, value_name = "MS")]
    slow_history_ms: u64,
    /// Print only the totals, not each station.
    #[arg(long, short = 'q')]
    quiet: bool,
}

impl Cli {
    /// The simulation options these arguments ask for.
    pub fn options(&self) -> Options {
        Options {
            stations: self.stations,
            profile: match self.profile {
                ProfileArg::Gas => ProfileChoice::Gas,
                ProfileArg::Water => ProfileChoice::Water,
                ProfileArg::Mixed => ProfileChoice::Mixed,
            },
            mn_prefix: self.mn_prefix.clone(),
            password: self.password.clone(),
            seed: self.seed,
            rtd_interval_secs: self.rtd_interval,
            min_interval_mins: self.min_interval,
            start_ms: self.start,
            duration_ms: self.duration,
            accel: self.accel,
            ack_timeout: Duration::from_millis(self.ack_timeout_ms),
            retries: self.retries,
            window: self.window,
            connections_limit: self.connections_limit,
            history_hours: self.history_hours,
            linger: Duration::from_secs(self.linger),
            faults: Faults {
                gap_percent: self.gap_percent,
                outages: self.outages.clone(),
                bad_crc_percent: self.bad_crc_percent,
                crc_dialect_sites: self.crc_dialect_sites,
                crc_dialect: match self.crc_dialect {
                    DialectArg::Modbus => CrcDialect::Modbus,
                    DialectArg::ModbusSwapped => CrcDialect::ModbusSwapped,
                },
                v2005_sites: self.v2005_sites,
                split_percent: self.split_percent,
                flag_percent: self.flag_percent,
                exceed_percent: self.exceed_percent,
                clock_drift_secs: self.clock_drift_secs,
                clock_drift_sites: self.clock_drift_sites,
                reconnect_storm: self.reconnect_storm,
                sticky: self.sticky,
                drop_percent: self.drop_percent,
                refuse_history_percent: self.refuse_history_percent,
                silent_history_percent: self.silent_history_percent,
                slow_history_percent: self.slow_history_percent,
                slow_history: Duration::from_millis(self.slow_history_ms),
            },
        }
    }
}

/// Why the command failed, and its exit code.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub exit_code: u8,
}

fn fail(exit_code: u8) -> impl FnOnce(String) -> Failure {
    move |message| Failure { message, exit_code }
}

/// Runs the command: writes the sites file and/or simulates, printing the JSON summary.
///
/// # Errors
/// [`Failure`] with a sysexits code: 64 for impossible options, 73 when the sites file cannot
/// be written, 69 when a station could not reach the daemon (after printing the summary).
pub fn run(cli: &Cli) -> Result<(), Failure> {
    let sim = Simulation::new(cli.options()).map_err(|e| fail(EX_USAGE)(e.to_string()))?;
    if let Some(path) = &cli.sites_config {
        let text = sim.sites_toml().map_err(|e| fail(EX_CANTCREAT)(e.to_string()))?;
        std::fs::write(path, text).map_err(|e| fail(EX_CANTCREAT)(format!("{}: {e}", path.display())))?;
        eprintln!("wrote {} sites to {}", sim.stations.len(), path.display());
        if cli.target.is_none() {
            return Ok(());
        }
    }
    let target = cli.target.unwrap_or_else(|| SocketAddr::from(DEFAULT_TARGET));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(EX_OSERR)(format!("cannot start the runtime: {e}")))?;
    let mut summary = runtime.block_on(crate::runner::run(&sim, target));
    if cli.quiet {
        summary.sites.clear();
    }
    let json = serde_json::to_string_pretty(&summary).map_err(|e| fail(EX_OSERR)(e.to_string()))?;
    println!("{json}");
    if summary.totals.failed > 0 && summary.totals.acked == 0 {
        return Err(fail(EX_UNAVAILABLE)(format!(
            "{} frames failed and none was acknowledged: is {target} an hj212d with these sites configured (--sites-config)?",
            summary.totals.failed
        )));
    }
    if summary.totals.unsent > 0 {
        return Err(fail(EX_UNAVAILABLE)(format!(
            "{} frames unsent: {target} could not be reached",
            summary.totals.unsent
        )));
    }
    Ok(())
}
