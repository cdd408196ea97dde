//! One simulated data logger (sans-IO): its identity, its site entry for the daemon, the frames
//! it builds for each due record and the history it keeps. Its answers to host commands are in
//! [`commands`].

mod commands;

use hj212_config::{CrcSetting, RateRules, Site};
use hj212_proto::crc::CrcDialect;
use hj212_proto::model::{Flag, Version};
use hj212_proto::time::BeijingTime;

pub use self::commands::{Answer, AnswerFrame, Incoming, Outcome};
use crate::frame::{self, Header};
use crate::history::{HeldRecord, History};
use crate::profile::{self, Profile, Reading, ValueFaults};
use crate::rng::Rng;
use crate::schedule::{Due, RecordKind};

/// How a station answers host commands (`--refuse-history-percent` and the like).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostAnswers {
    /// As the standard says: 9011, data, 9012 (or 9013 for notifications).
    Normal,
    /// Every history request gets 9011 QnRtn=2 and nothing more; other commands as usual.
    RefusesHistory,
    /// No host command is ever answered.
    Silent,
    /// History requests are answered after `delay_ms`; other commands at once.
    SlowHistory { delay_ms: u64 },
}

impl HostAnswers {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::RefusesHistory => "refuses-history",
            Self::Silent => "silent",
            Self::SlowHistory { .. } => "slow-history",
        }
    }
}

/// Who a station is and how it speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StationSpec {
    /// 0-based position (`--outage SITE_INDEX:..` refers to it).
    pub index: usize,
    pub mn: String,
    pub password: String,
    pub profile: Profile,
    /// `Hj212_2017` (QN, Flag with the 2017 version bits) or `Hj212_2005` (no QN, no Flag, 2005 codes).
    pub version: Version,
    /// A 2017 station's data uploads set Flag bit A (Flag=5): it waits for each 9014 and
    /// resends. Without it (Flag=4) the host sends no 9014 and the logger never learns of a loss.
    pub asks_acks: bool,
    pub dialect: CrcDialect,
    /// How far the logger's clock is off (seconds, positive = ahead).
    pub drift_secs: i64,
    pub answers: HostAnswers,
}

impl StationSpec {
    pub fn is_2005(&self) -> bool {
        self.version == Version::Hj212_2005
    }

    /// The factor codes it sends, as sent (2005 codes for 2005 stations).
    pub fn factor_codes(&self) -> Vec<String> {
        let codes = self.profile.factors().iter();
        codes.map(|f| if self.is_2005() { f.code_2005 } else { f.code }.to_owned()).collect()
    }

    /// The `[[sites]]` entry the daemon needs for this station.
    ///
    /// Built through serde from the keys the simulator decides, so every other key of a site
    /// (encryption, alerts, limits, ...) takes its documented default, as in a hand-written file.
    ///
    /// # Panics
    /// Never: these keys always make a valid site.
    pub fn site(&self, minute_interval: u32) -> Site {
        #[derive(serde::Serialize)]
        struct Entry<'a> {
            mn: &'a str,
            password: &'a str,
            name: String,
            factors: Vec<String>,
            crc: CrcSetting,
            rate: RateRules,
        }
        let crc = match self.dialect {
            CrcDialect::Hj212 => CrcSetting::Hj212,
            CrcDialect::Modbus => CrcSetting::Modbus,
            CrcDialect::ModbusSwapped => CrcSetting::ModbusSwapped,
        };
        let style = if self.is_2005() { ", HJ/T 212-2005" } else { "" };
        let entry = Entry {
            mn: &self.mn,
            password: &self.password,
            name: format!("simulated station {} ({}{style})", self.index, self.profile.as_str()),
            factors: self.factor_codes(),
            crc,
            rate: RateRules { minute_interval, ..RateRules::default() },
        };
        let value = toml::Value::try_from(entry).expect("a site entry serializes");
        value.try_into().expect("a valid site entry")
    }
}

/// Per-frame faults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameFaults {
    pub bad_crc_percent: f64,
    /// Chance that a 2011 record of a 2017 station goes out as two packets (PNUM=2).
    pub split_percent: f64,
    pub values: ValueFaults,
}

/// One frame to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFrame {
    pub cn: u16,
    pub qn: Option<String>,
    /// The frame with its correct CRC.
    pub bytes: Vec<u8>,
    /// Sent first instead, when the link corrupts this frame (`--bad-crc-percent`).
    pub corrupted: Option<Vec<u8>>,
    /// Flag A bit: the logger waits for a 9014.
    pub wants_ack: bool,
    /// Factors it carries: rows it adds to the daemon's store.
    pub factors: u64,
}

/// The frames of one record and what was simulated in them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub frames: Vec<OutFrame>,
    pub exceeded: bool,
    pub flagged: u32,
}

/// How a station is set up beyond its identity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StationSetup {
    pub faults: FrameFaults,
    /// What it reports to 1061 and 1063 queries (its schedule is fixed by the simulation).
    pub rtd_interval_secs: u32,
    pub min_interval_mins: u32,
    /// Simulated hours of 2051/2061/2031 records it keeps for history requests.
    pub history_hours: u32,
}

/// A station's state while it runs.
#[derive(Debug)]
pub struct Station {
    pub spec: StationSpec,
    setup: StationSetup,
    rng: Rng,
    drift_ms: i64,
    last_qn_ms: i64,
    history: History,
}

impl Station {
    pub fn new(spec: StationSpec, setup: StationSetup, rng: Rng) -> Self {
        let drift_ms = spec.drift_secs * 1000;
        Self { spec, setup, rng, drift_ms, last_qn_ms: i64::MIN, history: History::new(setup.history_hours) }
    }

    /// Notes that the upload of `due` was lost on the wire (it stays in the history).
    pub fn mark_dropped(&mut self, due: &Due) {
        self.history.mark_dropped(due.kind.cn(), due.data_time_ms);
    }

    /// The logger's clock reading at simulated time `at_ms`, unique per frame (QN).
    fn next_qn(&mut self, at_ms: i64) -> String {
        let ms = (at_ms + self.drift_ms).max(self.last_qn_ms.saturating_add(1));
        self.last_qn_ms = ms;
        BeijingTime::from_unix_millis(ms).to_qn_string()
    }

    /// The frames for `due`, sent at simulated time `at_ms`; an aggregate is also kept in the history.
    ///
    /// Real-time DataTime is the logger's clock (so a drifting clock shows in it); the
    /// aggregates keep their period starts, which the logger computes on its own clock.
    pub fn build(&mut self, due: &Due, at_ms: i64) -> Built {
        let faults = self.setup.faults;
        let values = profile::sample(self.spec.profile, due.period_secs(), &faults.values, &mut self.rng);
        let drift = if due.kind == RecordKind::RealTime { self.drift_ms } else { 0 };
        let data_time = BeijingTime::from_unix_millis(due.data_time_ms + drift).to_seconds_string();
        let v2017 = !self.spec.is_2005();
        let wants_ack = v2017 && self.spec.asks_acks;
        let split = v2017 && due.kind == RecordKind::RealTime && self.rng.chance(faults.split_percent);
        let readings = &values.readings;
        let parts: Vec<&[Reading]> =
            if split { vec![&readings[..readings.len() / 2], &readings[readings.len() / 2..]] } else { vec![readings] };
        let pnum = u16::try_from(parts.len()).unwrap_or(u16::MAX);
        let mut frames = Vec::with_capacity(parts.len());
        for (pno, part) in (1..).zip(parts) {
            let qn = v2017.then(|| self.next_qn(at_ms));
            let header = Header {
                qn: qn.as_deref(),
                st: self.spec.profile.st(),
                cn: due.kind.cn(),
                pw: &self.spec.password,
                mn: &self.spec.mn,
                flag: v2017.then(|| Flag::for_version(self.spec.version).with_split(split).with_ack(wants_ack).0),
                packet: split.then_some((pnum, pno)),
            };
            let cp = frame::data_cp(&data_time, part, !v2017);
            let segment = frame::upload_segment(&header, &cp);
            // A data segment of six factors is far below the 9999-byte limit.
            let bytes = frame::framed(segment.as_bytes(), self.spec.dialect).unwrap_or_default();
            let corrupted = self.rng.chance(faults.bad_crc_percent).then(|| frame::corrupted(&bytes));
            if due.kind != RecordKind::RealTime {
                let factors = part.len() as u64;
                let held = HeldRecord {
                    data_time_ms: due.data_time_ms,
                    made_ms: due.send_ms,
                    cp: cp.into(),
                    factors,
                    dropped: false,
                };
                self.history.keep(due.kind.cn(), held);
            }
            frames.push(OutFrame { cn: due.kind.cn(), qn, bytes, corrupted, wants_ack, factors: part.len() as u64 });
        }
        Built { frames, exceeded: values.exceeded, flagged: values.flagged }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Schedule;
    use hj212_proto::model::FieldKind;
    use hj212_proto::{Packet, crc};

    pub(super) const START: i64 = 1_772_294_400_000; // 2026-03-01 00:00 Beijing

    pub(super) fn spec(profile: Profile, version: Version, dialect: CrcDialect) -> StationSpec {
        let mn = "SIM000000000000000000007".to_owned();
        let password = "654321".into();
        let answers = HostAnswers::Normal;
        StationSpec { index: 7, mn, password, profile, version, asks_acks: true, dialect, drift_secs: 0, answers }
    }

    pub(super) fn setup(bad_crc_percent: f64, split_percent: f64) -> StationSetup {
        let values = ValueFaults { flag_percent: 0.0, exceed_percent: 0.0 };
        let faults = FrameFaults { bad_crc_percent, split_percent, values };
        StationSetup { faults, rtd_interval_secs: 60, min_interval_mins: 10, history_hours: 168 }
    }

    pub(super) fn parse(frame: &[u8]) -> (Packet<'_>, u16) {
        let segment = frame::segment_of(frame);
        let at = frame.len() - 6;
        let declared = crc::parse_field(frame[at..at + 4].try_into().unwrap()).unwrap();
        (Packet::parse(std::str::from_utf8(segment).unwrap()).unwrap(), declared)
    }

    fn dues() -> Vec<Due> {
        Schedule::new(START, START + 86_400_000, 3600, 30).collect()
    }

    #[test]
    fn frames_parse_back() {
        let mut station =
            Station::new(spec(Profile::Gas, Version::Hj212_2017, CrcDialect::Hj212), setup(0.0, 0.0), Rng::new(1));
        let mut qns = std::collections::HashSet::new();
        for due in dues() {
            let built = station.build(&due, due.send_ms);
            let [frame] = &built.frames[..] else { panic!("one frame") };
            let (packet, declared) = parse(&frame.bytes);
            assert_eq!(
                crc::verify(frame::segment_of(&frame.bytes), declared, crc::CrcPolicy::Hj212),
                Ok(CrcDialect::Hj212)
            );
            assert_eq!(
                (packet.cn.code(), packet.mn, packet.pw, packet.st),
                (due.kind.cn(), station.spec.mn.as_str(), Some("654321"), Some("31"))
            );
            assert_eq!(packet.version(), Version::Hj212_2017);
            assert!(packet.wants_ack() && frame.wants_ack);
            assert!(qns.insert(packet.qn.unwrap().to_owned()), "QN unique");
            let data_time = packet.data_time_parsed().unwrap().unwrap();
            assert_eq!(data_time.unix_millis(), due.data_time_ms);
            let factors = packet.factors();
            let codes: Vec<&str> = factors.iter().map(|f| f.code).collect();
            assert_eq!(codes, ["a00000", "a21026", "a21002", "a34013", "a19001", "a01012"]);
            let kind = if due.kind == RecordKind::RealTime { FieldKind::Rtd } else { FieldKind::Avg };
            assert!(factors.iter().all(|f| f.get(kind).is_some() && f.get(FieldKind::Flag) == Some("N")));
            if due.kind == RecordKind::Minute {
                assert!(factors[1].get(FieldKind::Cou).is_some() && factors[4].get(FieldKind::Cou).is_none());
            }
        }
    }

    #[test]
    fn modbus_2005_station() {
        let mut station =
            Station::new(spec(Profile::Water, Version::Hj212_2005, CrcDialect::Modbus), setup(0.0, 100.0), Rng::new(1));
        let due = dues()[0];
        let built = station.build(&due, due.send_ms);
        assert_eq!(built.frames.len(), 1, "2005 stations do not split");
        let (packet, declared) = parse(&built.frames[0].bytes);
        assert_eq!(crc::identify(frame::segment_of(&built.frames[0].bytes), declared), Some(CrcDialect::Modbus));
        assert_eq!(packet.version(), Version::Hj212_2005);
        assert!(packet.qn.is_none() && packet.flag.is_none() && !packet.wants_ack() && !built.frames[0].wants_ack);
        let codes: Vec<&str> = packet.factors().iter().map(|f| f.code).collect();
        assert_eq!(codes, ["B01", "011", "060", "101", "065", "001"]);
        assert_eq!(station.spec.site(10).factors, codes);
        assert_eq!(station.spec.site(10).crc, CrcSetting::Modbus);
    }

    #[test]
    fn a_station_that_asks_for_no_9014_sends_flag_4_and_6() {
        let mut spec = spec(Profile::Gas, Version::Hj212_2017, CrcDialect::Hj212);
        spec.asks_acks = false;
        for (split_percent, flag) in [(0.0, 4), (100.0, 6)] {
            let mut station = Station::new(spec.clone(), setup(0.0, split_percent), Rng::new(1));
            let due = dues()[0];
            for frame in station.build(&due, due.send_ms).frames {
                let (packet, _) = parse(&frame.bytes);
                assert_eq!(packet.flag.map(|f| f.0), Some(flag));
                assert!(!packet.wants_ack() && !frame.wants_ack);
            }
        }
    }

    #[test]
    fn split_bad_crc_and_drift() {
        let mut spec = spec(Profile::Gas, Version::Hj212_2017, CrcDialect::Hj212);
        spec.drift_secs = 45;
        let mut station = Station::new(spec, setup(100.0, 100.0), Rng::new(1));
        let due = dues()[0];
        let built = station.build(&due, due.send_ms);
        assert_eq!(built.frames.len(), 2);
        for (pno, frame) in (1..).zip(&built.frames) {
            let (packet, _) = parse(&frame.bytes);
            assert_eq!((packet.flag.map(|f| f.0), packet.pnum, packet.pno), (Some(7), Some(2), Some(pno)));
            assert_eq!(packet.factors().len(), 3);
            assert_eq!(packet.data_time(), Some("20260301000045"));
            let bad = frame.corrupted.as_ref().unwrap();
            let at = bad.len() - 6;
            let declared = crc::parse_field(bad[at..at + 4].try_into().unwrap()).unwrap();
            assert_eq!(crc::identify(frame::segment_of(bad), declared), None);
        }
        assert_ne!(built.frames[0].qn, built.frames[1].qn);
    }
}
