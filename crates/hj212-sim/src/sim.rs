//! A simulation resolved from its options: the simulated period, the stations and their
//! site entries for the daemon, and each station's plan.

use hj212_config::{Site, SitesFile};
use hj212_proto::crc::CrcDialect;
use hj212_proto::model::Version;

use crate::options::{Options, OptionsError, ProfileChoice};
use crate::plan::{PlanFaults, Planner};
use crate::profile::{Profile, ValueFaults};
use crate::rng::Rng;
use crate::schedule::Schedule;
use crate::station::{FrameFaults, HostAnswers, Station, StationSetup, StationSpec};

/// Seeds a generator per purpose, so that e.g. the gaps do not change when values do.
const PURPOSE_PLAN: u64 = 1;
const PURPOSE_FRAMES: u64 = 2;
const PURPOSE_PASSWORD: u64 = 3;
const PURPOSE_ANSWERS: u64 = 4;

/// A simulation ready to run.
#[derive(Debug, Clone)]
pub struct Simulation {
    pub options: Options,
    /// Simulated period `[start, end)`, Unix milliseconds.
    pub start_ms: i64,
    pub end_ms: i64,
    pub stations: Vec<StationSpec>,
}

fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// The default start: the simulated period ends when the run does, so no DataTime lies in
/// the daemon's future. At `accel` 0 that is `now - duration`; at 1 it is `now` (live data).
fn default_start(now_ms: i64, duration_ms: i64, accel: f64) -> i64 {
    if accel <= 0.0 {
        return now_ms - duration_ms;
    }
    #[expect(clippy::cast_possible_truncation, reason = "a run time in ms fits i64 (saturating cast)")]
    let run_ms = (duration_ms as f64 / accel) as i64;
    (now_ms - duration_ms).saturating_add(run_ms).min(now_ms)
}

impl Simulation {
    /// Resolves `options` against the current time.
    ///
    /// # Errors
    /// [`OptionsError`] when the options cannot be simulated.
    pub fn new(options: Options) -> Result<Self, OptionsError> {
        Self::at(options, now_ms())
    }

    /// Resolves `options` as if the time were `now_ms`.
    ///
    /// # Errors
    /// [`OptionsError`] when the options cannot be simulated.
    pub fn at(options: Options, now_ms: i64) -> Result<Self, OptionsError> {
        options.check()?;
        let start_ms = options.start_ms.unwrap_or_else(|| default_start(now_ms, options.duration_ms, options.accel));
        let end_ms = start_ms + options.duration_ms;
        let answers = host_answers(&options);
        let stations = answers.into_iter().enumerate().map(|(i, answers)| spec(&options, i, answers)).collect();
        Ok(Self { options, start_ms, end_ms, stations })
    }

    /// The daemon's `[[sites]]` entries for these stations.
    pub fn sites(&self) -> Vec<Site> {
        self.stations.iter().map(|s| s.site(self.options.min_interval_mins)).collect()
    }

    /// The sites as a `sites_file` (top-level `[[sites]]` only).
    ///
    /// # Errors
    /// Only if TOML serialization fails.
    pub fn sites_toml(&self) -> Result<String, toml::ser::Error> {
        let header = "# Sites of the hj212-sim stations (load with `sites_file` in the hj212d config).\n";
        Ok(format!("{header}{}", toml::to_string(&SitesFile { sites: self.sites() })?))
    }

    /// Station `index` in its starting state, with its plan.
    pub fn station(&self, index: usize) -> (Station, Planner) {
        let options = &self.options;
        let faults = &options.faults;
        let spec = self.stations[index].clone();
        let setup = StationSetup {
            faults: FrameFaults {
                bad_crc_percent: faults.bad_crc_percent,
                split_percent: faults.split_percent,
                values: ValueFaults { flag_percent: faults.flag_percent, exceed_percent: faults.exceed_percent },
            },
            rtd_interval_secs: options.rtd_interval_secs,
            min_interval_mins: options.min_interval_mins,
            history_hours: options.history_hours,
        };
        let station = Station::new(spec, setup, Rng::derive(options.seed, index, PURPOSE_FRAMES));
        let outages = faults.outages.iter().filter(|o| o.site == index);
        let plan_faults = PlanFaults {
            gap_percent: faults.gap_percent,
            drop_percent: faults.drop_percent,
            outages: outages.map(|o| (o.from.resolve(self.start_ms), o.to.resolve(self.start_ms))).collect(),
            reconnect_storm: faults.reconnect_storm,
        };
        let schedule = Schedule::new(self.start_ms, self.end_ms, options.rtd_interval_secs, options.min_interval_mins);
        let rng = Rng::derive(options.seed, index, PURPOSE_PLAN);
        (station, Planner::new(schedule, self.start_ms, self.end_ms, plan_faults, rng))
    }
}

/// How each station answers host commands: the shares of `--silent-history-percent`,
/// `--refuse-history-percent` and `--slow-history-percent`, exact to rounding and never
/// overlapping, taken from the stations in an order the seed decides (not always the first ones,
/// which already have the CRC dialect).
fn host_answers(options: &Options) -> Vec<HostAnswers> {
    let f = &options.faults;
    let n = options.stations;
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "0 <= n × percent / 100 <= n")]
    let count = |percent: f64| ((n as f64 * percent / 100.0).round() as usize).min(n);
    // Cumulative shares, so that rounding never makes the three groups more than their sum.
    let silent = count(f.silent_history_percent);
    let refusing = count(f.silent_history_percent + f.refuse_history_percent);
    let slow = count(f.silent_history_percent + f.refuse_history_percent + f.slow_history_percent);
    let delay_ms = u64::try_from(f.slow_history.as_millis()).unwrap_or(u64::MAX);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| Rng::derive(options.seed, i, PURPOSE_ANSWERS).next_u64());
    let mut answers = vec![HostAnswers::Normal; n];
    for (rank, index) in order.into_iter().enumerate() {
        answers[index] = match rank {
            r if r < silent => HostAnswers::Silent,
            r if r < refusing => HostAnswers::RefusesHistory,
            r if r < slow => HostAnswers::SlowHistory { delay_ms },
            _ => HostAnswers::Normal,
        };
    }
    answers
}

fn spec(options: &Options, index: usize, answers: HostAnswers) -> StationSpec {
    let faults = &options.faults;
    let width = 24 - options.mn_prefix.len();
    let password = options.password.clone().unwrap_or_else(|| {
        let pw = Rng::derive(options.seed, index, PURPOSE_PASSWORD).next_u64() % 1_000_000;
        format!("{pw:06}")
    });
    let profile = match options.profile {
        ProfileChoice::Water => Profile::Water,
        ProfileChoice::Mixed if !index.is_multiple_of(2) => Profile::Water,
        ProfileChoice::Gas | ProfileChoice::Mixed => Profile::Gas,
    };
    let v2005 = index + faults.v2005_sites >= options.stations;
    let drifts = faults.clock_drift_sites.is_none_or(|n| index < n);
    StationSpec {
        index,
        mn: format!("{}{index:0width$}", options.mn_prefix),
        password,
        profile,
        version: if v2005 { Version::Hj212_2005 } else { Version::Hj212_2017 },
        // Links that lose uploads silently are those of Flag=4 loggers: no 9014 tells them of a loss.
        asks_acks: faults.drop_percent == 0.0,
        dialect: if index < faults.crc_dialect_sites { faults.crc_dialect } else { CrcDialect::Hj212 },
        drift_secs: if drifts { faults.clock_drift_secs } else { 0 },
        answers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Faults;
    use hj212_config::CrcSetting;

    #[test]
    fn stations_and_sites() {
        let faults = Faults { crc_dialect_sites: 1, v2005_sites: 1, ..Faults::default() };
        let options = Options { stations: 3, faults, ..Options::default() };
        let sim = Simulation::at(options, 1_772_294_400_000).unwrap();
        let mns: Vec<&str> = sim.stations.iter().map(|s| s.mn.as_str()).collect();
        assert_eq!(mns, ["SIM000000000000000000000", "SIM000000000000000000001", "SIM000000000000000000002"]);
        assert!(sim.stations.iter().all(|s| s.password.len() == 6));
        assert_ne!(sim.stations[0].password, sim.stations[1].password);
        let sites = sim.sites();
        assert_eq!(
            sites.iter().map(|s| s.crc).collect::<Vec<_>>(),
            [CrcSetting::Modbus, CrcSetting::Hj212, CrcSetting::Hj212]
        );
        assert_eq!(sites[1].factors[1], "w01018");
        assert_eq!(sites[2].factors[1], "02", "the 2005 station is gas: SO2 has 2005 code 02");
        let text = sim.sites_toml().unwrap();
        let parsed: SitesFile = toml::from_str(&text).unwrap();
        assert_eq!(parsed.sites, sites);
        assert!(text.contains("crc = \"modbus\""), "{text}");
    }

    #[test]
    fn host_answer_shares_are_exact_and_disjoint() {
        let faults = Faults {
            silent_history_percent: 10.0,
            refuse_history_percent: 20.0,
            slow_history_percent: 25.0,
            ..Faults::default()
        };
        let options = Options { stations: 20, faults, ..Options::default() };
        let sim = Simulation::at(options.clone(), 1_772_294_400_000).unwrap();
        let count = |kind: &str| sim.stations.iter().filter(|s| s.answers.as_str() == kind).count();
        assert_eq!([count("silent"), count("refuses-history"), count("slow-history"), count("normal")], [2, 4, 5, 9]);
        let again = Simulation::at(options.clone(), 1_772_294_400_000).unwrap();
        assert_eq!(sim.stations, again.stations, "the same seed picks the same stations");
        let other = Simulation::at(Options { seed: 2, ..options }, 1_772_294_400_000).unwrap();
        let picked = |sim: &Simulation| sim.stations.iter().map(|s| s.answers).collect::<Vec<_>>();
        assert_ne!(picked(&sim), picked(&other), "another seed picks other stations");
        let all = Faults { refuse_history_percent: 100.0, ..Faults::default() };
        let sim = Simulation::at(Options { stations: 3, faults: all, ..Options::default() }, 0).unwrap();
        assert!(sim.stations.iter().all(|s| s.answers == HostAnswers::RefusesHistory));
        assert!(Simulation::at(Options::default(), 0).unwrap().stations[0].answers == HostAnswers::Normal);
    }

    #[test]
    fn default_start_ends_the_period_with_the_run() {
        let now = 1_772_294_400_000;
        assert_eq!(default_start(now, 86_400_000, 0.0), now - 86_400_000);
        assert_eq!(default_start(now, 86_400_000, 1.0), now);
        assert_eq!(default_start(now, 86_400_000, 0.5), now);
        assert_eq!(default_start(now, 86_400_000, 60.0), now - 86_400_000 + 1_440_000);
    }
}
