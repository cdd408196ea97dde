//! What to simulate: stations, schedule, simulated time, link behaviour and faults, with the
//! parsers the command line uses and the checks that reject impossible combinations.

use std::time::Duration;

use hj212_proto::crc::CrcDialect;
use hj212_proto::time::BeijingTime;

/// Which profiles the stations get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileChoice {
    Gas,
    Water,
    /// Even-numbered stations gas, odd-numbered water.
    Mixed,
}

/// A simulated time given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimTime {
    /// An absolute time (Unix milliseconds), from `YYYYMMDDhhmmss` Beijing time.
    At(i64),
    /// Milliseconds after the simulation's start, from a duration such as `6h`.
    AfterStart(i64),
}

impl SimTime {
    pub fn resolve(self, start_ms: i64) -> i64 {
        match self {
            Self::At(ms) => ms,
            Self::AfterStart(ms) => start_ms + ms,
        }
    }
}

/// `--outage SITE_INDEX:FROM-TO`: the station's link is down between the two times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    pub site: usize,
    pub from: SimTime,
    pub to: SimTime,
}

/// Scenario faults; every one is counted in the summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    pub gap_percent: f64,
    pub outages: Vec<Outage>,
    pub bad_crc_percent: f64,
    /// The first N stations use `crc_dialect` instead of the HJ 212 CRC.
    pub crc_dialect_sites: usize,
    pub crc_dialect: CrcDialect,
    /// The last N stations speak HJ/T 212-2005 (no QN, no Flag, 2005 codes, no acknowledgements).
    pub v2005_sites: usize,
    pub split_percent: f64,
    pub flag_percent: f64,
    pub exceed_percent: f64,
    pub clock_drift_secs: i64,
    /// Only the first N stations drift; `None`: all of them.
    pub clock_drift_sites: Option<usize>,
    pub reconnect_storm: bool,
    pub sticky: bool,
    /// Share of the 2061 and 2031 uploads the link loses: never written, never resent, but kept
    /// in the station's history. Above 0 the 2017 stations are Flag=4 loggers (no 9014 asked for,
    /// so none learns of a loss), their answers to history requests too.
    pub drop_percent: f64,
    /// Share of the stations that refuse every history request (QnRtn=2).
    pub refuse_history_percent: f64,
    /// Share of the stations that never answer a host command.
    pub silent_history_percent: f64,
    /// Share of the stations that wait `slow_history` before answering a history request.
    pub slow_history_percent: f64,
    pub slow_history: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            gap_percent: 0.0,
            outages: Vec::new(),
            bad_crc_percent: 0.0,
            crc_dialect_sites: 0,
            crc_dialect: CrcDialect::Modbus,
            v2005_sites: 0,
            split_percent: 0.0,
            flag_percent: 0.0,
            exceed_percent: 0.0,
            clock_drift_secs: 0,
            clock_drift_sites: None,
            reconnect_storm: false,
            sticky: false,
            drop_percent: 0.0,
            refuse_history_percent: 0.0,
            silent_history_percent: 0.0,
            slow_history_percent: 0.0,
            slow_history: Duration::from_secs(3),
        }
    }
}

/// Everything a simulation needs (the command line's defaults are these).
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub stations: usize,
    pub profile: ProfileChoice,
    /// MN = prefix + zero-padded station index, 24 characters in all.
    pub mn_prefix: String,
    /// One password for every station; `None`: a 6-digit one per station, derived from the seed.
    pub password: Option<String>,
    pub seed: u64,
    pub rtd_interval_secs: u32,
    pub min_interval_mins: u32,
    /// Simulated start (Unix ms); `None`: chosen so the simulated period ends when the run does.
    pub start_ms: Option<i64>,
    pub duration_ms: i64,
    /// Simulated seconds per real second; 0 = as fast as acknowledgements allow.
    pub accel: f64,
    pub ack_timeout: Duration,
    /// Resends (same QN) after a timeout before a frame counts as failed.
    pub retries: u32,
    /// Frames awaiting a 9014 at once, per connection.
    pub window: usize,
    /// At most this many stations connected at once; the others wait for a free slot.
    pub connections_limit: Option<usize>,
    /// Simulated hours of 2051/2061/2031 records each station keeps for history requests; 0 = none.
    pub history_hours: u32,
    /// How long each station stays connected, answering host commands, after its last upload.
    pub linger: Duration,
    pub faults: Faults,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            stations: 1,
            profile: ProfileChoice::Mixed,
            mn_prefix: "SIM".into(),
            password: None,
            seed: 1,
            rtd_interval_secs: 60,
            min_interval_mins: 10,
            start_ms: None,
            duration_ms: 3_600_000,
            accel: 1.0,
            ack_timeout: Duration::from_secs(5),
            retries: 3,
            window: 1,
            connections_limit: None,
            history_hours: 168,
            linger: Duration::ZERO,
            faults: Faults::default(),
        }
    }
}

/// Options that cannot be simulated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum OptionsError {
    #[error("at least one station is needed")]
    NoStations,
    #[error("MN prefix {prefix:?} leaves no room for {stations} station numbers in a 24-character MN")]
    MnPrefix { prefix: String, stations: usize },
    #[error("{field} {value:?} must be non-empty and contain no ; , = & - CR LF")]
    Unencodable { field: &'static str, value: String },
    #[error("RtdInterval {0} s is outside 1..=3600")]
    RtdInterval(u32),
    #[error("MinInterval {0} min is not one of 1,2,3,4,5,6,10,12,15,20,30")]
    MinInterval(u32),
    #[error("{name} {value} is not a percentage (0-100)")]
    Percent { name: &'static str, value: f64 },
    #[error("acceleration {0} must be 0 (as fast as possible) or positive")]
    Accel(f64),
    #[error("duration must be positive")]
    Duration,
    #[error("window must be at least 1")]
    Window,
    #[error("connections limit must be at least 1")]
    ConnectionsLimit,
    #[error("the stations refusing, ignoring and slowly answering history requests add up to {0} %, over 100")]
    HistoryShares(f64),
    #[error("outage for station {site}, but there are only {stations} stations (indexes start at 0)")]
    OutageSite { site: usize, stations: usize },
}

impl Options {
    /// Every problem that makes the simulation impossible, first one reported.
    ///
    /// # Errors
    /// The first [`OptionsError`] found.
    pub fn check(&self) -> Result<(), OptionsError> {
        if self.stations == 0 {
            return Err(OptionsError::NoStations);
        }
        let digits = (self.stations - 1).to_string().len();
        if self.mn_prefix.len() + digits > 24 {
            return Err(OptionsError::MnPrefix { prefix: self.mn_prefix.clone(), stations: self.stations });
        }
        let bad = |v: &str| v.is_empty() || v.contains([';', ',', '=', '&', '-', '\r', '\n']);
        if bad(&self.mn_prefix) {
            return Err(OptionsError::Unencodable { field: "MN prefix", value: self.mn_prefix.clone() });
        }
        if let Some(pw) = self.password.as_ref().filter(|pw| bad(pw)) {
            return Err(OptionsError::Unencodable { field: "password", value: pw.clone() });
        }
        if !(1..=3600).contains(&self.rtd_interval_secs) {
            return Err(OptionsError::RtdInterval(self.rtd_interval_secs));
        }
        if ![1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30].contains(&self.min_interval_mins) {
            return Err(OptionsError::MinInterval(self.min_interval_mins));
        }
        self.check_percentages()?;
        if !(self.accel >= 0.0 && self.accel.is_finite()) {
            return Err(OptionsError::Accel(self.accel));
        }
        if self.duration_ms <= 0 {
            return Err(OptionsError::Duration);
        }
        if self.window == 0 {
            return Err(OptionsError::Window);
        }
        if self.connections_limit == Some(0) {
            return Err(OptionsError::ConnectionsLimit);
        }
        if let Some(outage) = self.faults.outages.iter().find(|o| o.site >= self.stations) {
            return Err(OptionsError::OutageSite { site: outage.site, stations: self.stations });
        }
        Ok(())
    }

    fn check_percentages(&self) -> Result<(), OptionsError> {
        let f = &self.faults;
        let all = [
            ("gap percent", f.gap_percent),
            ("bad CRC percent", f.bad_crc_percent),
            ("split percent", f.split_percent),
            ("flag percent", f.flag_percent),
            ("exceed percent", f.exceed_percent),
            ("drop percent", f.drop_percent),
            ("refuse-history percent", f.refuse_history_percent),
            ("silent-history percent", f.silent_history_percent),
            ("slow-history percent", f.slow_history_percent),
        ];
        if let Some((name, value)) = all.into_iter().find(|(_, v)| !(0.0..=100.0).contains(v)) {
            return Err(OptionsError::Percent { name, value });
        }
        // Each station has one way of answering, so the shares cannot overlap.
        let shares = f.refuse_history_percent + f.silent_history_percent + f.slow_history_percent;
        if shares > 100.0 {
            return Err(OptionsError::HistoryShares(shares));
        }
        Ok(())
    }
}

/// `30d`, `6h`, `90m`, `45s`, `1h30m` (units d, h, m, s, ms) → milliseconds.
///
/// # Errors
/// A message naming what is wrong.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?} is not a duration like 30d, 6h, 90m, 45s or 1h30m");
    let mut total: i64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let number: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let scale = match &rest[..unit] {
            "d" => 86_400_000,
            "h" => 3_600_000,
            "m" => 60_000,
            "s" => 1000,
            "ms" => 1,
            _ => return Err(bad()),
        };
        rest = &rest[unit..];
        total = number.checked_mul(scale).and_then(|ms| total.checked_add(ms)).ok_or_else(bad)?;
    }
    Ok(total)
}

/// `YYYYMMDDhhmmss` Beijing time → Unix milliseconds.
///
/// # Errors
/// The time's parse error as text.
pub fn parse_beijing(text: &str) -> Result<i64, String> {
    BeijingTime::parse(text).map(|t| t.unix_millis()).map_err(|e| e.to_string())
}

fn parse_sim_time(text: &str) -> Result<SimTime, String> {
    if text.len() == 14 && text.bytes().all(|b| b.is_ascii_digit()) {
        parse_beijing(text).map(SimTime::At)
    } else {
        parse_duration(text).map(SimTime::AfterStart)
    }
}

/// `SITE_INDEX:FROM-TO`, each time `YYYYMMDDhhmmss` or a duration after the start (`2:6h-9h`).
///
/// # Errors
/// A message naming what is wrong.
pub fn parse_outage(text: &str) -> Result<Outage, String> {
    let bad = |why: String| format!("outage {text:?}: {why} (expected SITE_INDEX:FROM-TO, e.g. 0:6h-9h)");
    let (site, range) = text.split_once(':').ok_or_else(|| bad("no ':'".into()))?;
    let site = site.trim().parse().map_err(|_| bad(format!("{site:?} is not a station index")))?;
    let (from, to) = range.split_once('-').ok_or_else(|| bad("no '-'".into()))?;
    let from = parse_sim_time(from.trim()).map_err(bad)?;
    let to = parse_sim_time(to.trim()).map_err(bad)?;
    Ok(Outage { site, from, to })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d"), Ok(30 * 86_400_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("90m"), Ok(5_400_000));
        assert_eq!(parse_duration("250ms"), Ok(250));
        for bad in ["", "6", "h", "6x", "1.5h", "-1h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn outages() {
        assert_eq!(
            parse_outage("2:6h-9h"),
            Ok(Outage { site: 2, from: SimTime::AfterStart(6 * 3_600_000), to: SimTime::AfterStart(9 * 3_600_000) })
        );
        let outage = parse_outage("0:20260301060000-20260301090000").unwrap();
        assert_eq!(outage.from, SimTime::At(BeijingTime::parse("20260301060000").unwrap().unix_millis()));
        assert!(parse_outage("x:1h-2h").unwrap_err().contains("not a station index"));
        assert!(parse_outage("1:1h").is_err());
    }

    #[test]
    fn checks() {
        assert_eq!(Options::default().check(), Ok(()));
        let too_long = Options { mn_prefix: "X".repeat(22), stations: 101, ..Options::default() };
        assert!(matches!(too_long.check(), Err(OptionsError::MnPrefix { .. })));
        let faults = Faults { gap_percent: 101.0, ..Faults::default() };
        let error = Options { faults, ..Options::default() }.check().unwrap_err();
        assert_eq!(error.to_string(), "gap percent 101 is not a percentage (0-100)");
        let outage = Outage { site: 1, from: SimTime::AfterStart(0), to: SimTime::AfterStart(1) };
        let faults = Faults { outages: vec![outage], ..Faults::default() };
        assert!(matches!(Options { faults, ..Options::default() }.check(), Err(OptionsError::OutageSite { .. })));
        assert_eq!(Options { min_interval_mins: 7, ..Options::default() }.check(), Err(OptionsError::MinInterval(7)));
        let faults = Faults { refuse_history_percent: 60.0, silent_history_percent: 50.0, ..Faults::default() };
        assert_eq!(Options { faults, ..Options::default() }.check(), Err(OptionsError::HistoryShares(110.0)));
    }
}
