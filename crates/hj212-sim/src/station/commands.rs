//! A station's answers to host commands (sans-IO), as protocol notes §5 and §5a describe them:
//! a request gets 9011 (QnRtn), then the data it asks for, then 9012 (ExeRtn); a notification
//! gets 9013; a CN the logger does not know gets 9011 QnRtn=8.

use std::time::Duration;

use hj212_proto::Packet;
use hj212_proto::encode::{self, EncodeError, ReplyTo};
use hj212_proto::model::{Cn, Flag};
use hj212_proto::time::BeijingTime;

use super::{HostAnswers, OutFrame, Station};
use crate::frame::{self, Header};
use crate::history::{is_history_cn, requested_range};

/// QnRtn codes (HJ 212-2017 Table 7).
const READY: u16 = 1;
const REFUSED: u16 = 2;
const CN_WRONG: u16 = 8;
/// ExeRtn codes (Table 6).
const SUCCESS: u16 = 1;
const CONDITION_ERROR: u16 = 3;
const NO_DATA: u16 = 100;

/// What a station does with a frame from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A 9014 for this QN.
    Ack(String),
    /// A command, and the station's answer to it.
    Command(Answer),
    /// Answers to the station's own frames (9011, 9012, 9013) and heartbeats: nothing to do.
    Other,
}

/// What came of a command, for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A history request answered with QnRtn=1, then this many records (none: ExeRtn=100, or
    /// ExeRtn=3 when BeginTime or EndTime is missing).
    HistoryAnswered { records: u64 },
    /// A history request answered with QnRtn=2 only.
    HistoryRefused,
    /// A history request a silent station did not answer.
    HistoryIgnored,
    /// A 1012 answered: the clock now agrees with the host's.
    ClockSet,
    /// Another command answered (9011 QnRtn=1 ... 9012, or 9013 for a notification).
    Answered,
    /// A CN the station does not know: 9011 QnRtn=8.
    Unknown,
    /// Another command a silent station did not answer.
    Ignored,
}

/// One frame of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerFrame {
    /// 9011, 9012 or 9013: nothing answers it.
    Reply(Vec<u8>),
    /// Data (a held record, SystemTime, ...), sent as the station's uploads are.
    Upload(OutFrame),
}

/// A station's answer to one command, frames in sending order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub outcome: Outcome,
    /// Wait this long before the first frame (`--slow-history-percent`).
    pub delay: Option<Duration>,
    pub frames: Vec<AnswerFrame>,
}

impl Station {
    /// Handles a frame from the host at simulated time `now_ms`.
    pub fn receive(&mut self, packet: &Packet<'_>, now_ms: i64) -> Incoming {
        match packet.cn {
            Cn::DataResponse => packet.qn.map_or(Incoming::Other, |qn| Incoming::Ack(qn.to_owned())),
            Cn::RequestResponse | Cn::ExecutionResult | Cn::NotificationResponse | Cn::Heartbeat => Incoming::Other,
            _ => Incoming::Command(self.answer(packet, now_ms)),
        }
    }

    fn answer(&mut self, packet: &Packet<'_>, now_ms: i64) -> Answer {
        let history = is_history_cn(packet.cn.code());
        match self.spec.answers {
            HostAnswers::Silent => {
                let outcome = if history { Outcome::HistoryIgnored } else { Outcome::Ignored };
                Answer { outcome, delay: None, frames: Vec::new() }
            }
            HostAnswers::RefusesHistory if history => {
                let frames = self.reply(packet, |to| encode::request_response(to, REFUSED)).into_iter().collect();
                Answer { outcome: Outcome::HistoryRefused, delay: None, frames }
            }
            HostAnswers::SlowHistory { delay_ms } if history => {
                Answer { delay: Some(Duration::from_millis(delay_ms)), ..self.history_answer(packet, now_ms) }
            }
            _ if history => self.history_answer(packet, now_ms),
            _ => self.command_answer(packet, now_ms),
        }
    }

    /// 9011, every held record of the CN with DataTime in [BeginTime, EndTime], 9012.
    fn history_answer(&mut self, packet: &Packet<'_>, now_ms: i64) -> Answer {
        let cn = packet.cn.code();
        let mut frames: Vec<AnswerFrame> = self.ready(packet).into_iter().collect();
        let Some((begin, end)) = requested_range(packet) else {
            frames.extend(self.done(packet, CONDITION_ERROR));
            return Answer { outcome: Outcome::HistoryAnswered { records: 0 }, delay: None, frames };
        };
        let held: Vec<(Box<str>, u64)> = self
            .history
            .select(cn, begin, end)
            .map(|record| {
                // Only a record whose first upload was lost adds store rows when sent again.
                let new_rows = if std::mem::take(&mut record.dropped) { record.factors } else { 0 };
                (record.cp.clone(), new_rows)
            })
            .collect();
        let records = held.len() as u64;
        for (cp, new_rows) in held {
            frames.extend(self.upload(packet, cn, &cp, now_ms, new_rows));
        }
        frames.extend(self.done(packet, if records == 0 { NO_DATA } else { SUCCESS }));
        Answer { outcome: Outcome::HistoryAnswered { records }, delay: None, frames }
    }

    /// Every command but history requests.
    fn command_answer(&mut self, packet: &Packet<'_>, now_ms: i64) -> Answer {
        let query = |cp: String| (Outcome::Answered, Some(cp), SUCCESS);
        let (outcome, upload, exe_rtn) = match packet.cn {
            Cn::StopRealTimeData | Cn::StopRunState => {
                let frames = self.reply(packet, encode::notification_response).into_iter().collect();
                return Answer { outcome: Outcome::Answered, delay: None, frames };
            }
            Cn::SetFieldTime => {
                // The logger takes the host's time: its drift is gone.
                self.drift_ms = 0;
                (Outcome::ClockSet, None, SUCCESS)
            }
            Cn::FieldTime => query(format!(
                "SystemTime={}",
                BeijingTime::from_unix_millis(now_ms + self.drift_ms).to_seconds_string()
            )),
            Cn::RtdInterval => query(format!("RtdInterval={}", self.setup.rtd_interval_secs)),
            Cn::MinInterval => query(format!("MinInterval={}", self.setup.min_interval_mins)),
            Cn::SetPassword => match packet.get("NewPW").filter(|pw| !pw.is_empty()) {
                Some(new) => {
                    new.clone_into(&mut self.spec.password);
                    (Outcome::Answered, None, SUCCESS)
                }
                None => (Outcome::Answered, None, CONDITION_ERROR),
            },
            // Accepted; the simulated schedule keeps its intervals, and the runner its timeouts.
            Cn::SetTimeoutRetry
            | Cn::SetRtdInterval
            | Cn::SetMinInterval
            | Cn::RealTimeData
            | Cn::RunState
            | Cn::Calibrate
            | Cn::SampleNow
            | Cn::Cleaning
            | Cn::ComparisonSampling
            | Cn::SampleRetention
            | Cn::SetSamplingPeriod => (Outcome::Answered, None, SUCCESS),
            // The simulated instruments have no ids and the site no information to report.
            Cn::InstrumentId | Cn::SiteInfo => (Outcome::Answered, None, NO_DATA),
            _ => {
                let frames = self.reply(packet, |to| encode::request_response(to, CN_WRONG)).into_iter().collect();
                return Answer { outcome: Outcome::Unknown, delay: None, frames };
            }
        };
        let mut frames: Vec<AnswerFrame> = self.ready(packet).into_iter().collect();
        if let Some(cp) = upload {
            frames.extend(self.upload(packet, packet.cn.code(), &cp, now_ms, 0));
        }
        frames.extend(self.done(packet, exe_rtn));
        Answer { outcome, delay: None, frames }
    }

    fn ready(&self, packet: &Packet<'_>) -> Option<AnswerFrame> {
        self.reply(packet, |to| encode::request_response(to, READY))
    }

    fn done(&self, packet: &Packet<'_>, exe_rtn: u16) -> Option<AnswerFrame> {
        self.reply(packet, |to| encode::execution_result(to, exe_rtn))
    }

    /// A 9011 / 9012 / 9013 to `packet` (its QN, PW, MN and version; ST=91) in the station's CRC.
    fn reply(
        &self,
        packet: &Packet<'_>,
        encode: impl FnOnce(&ReplyTo<'_>) -> Result<Vec<u8>, EncodeError>,
    ) -> Option<AnswerFrame> {
        let to = ReplyTo { pw: packet.pw.or(Some(&self.spec.password)), ..ReplyTo::from(packet) };
        let reply = encode(&to).ok()?;
        frame::framed(frame::segment_of(&reply), self.spec.dialect).ok().map(AnswerFrame::Reply)
    }

    /// An upload of `cn` carrying `cp` in answer to `packet`: the station's ST, PW, MN and Flag,
    /// and the request's QN, which every answer echoes (§5a).
    fn upload(&mut self, packet: &Packet<'_>, cn: u16, cp: &str, now_ms: i64, new_rows: u64) -> Option<AnswerFrame> {
        let v2017 = !self.spec.is_2005();
        // The host answers data uploads only (protocol notes §5), so only they ask for a 9014.
        let wants_ack = v2017 && self.spec.asks_acks && Cn::from_code(cn).is_data_upload();
        let qn = v2017.then(|| packet.qn.map_or_else(|| self.next_qn(now_ms), str::to_owned));
        let header = Header {
            qn: qn.as_deref(),
            st: self.spec.profile.st(),
            cn,
            pw: &self.spec.password,
            mn: &self.spec.mn,
            flag: v2017.then(|| Flag::for_version(self.spec.version).with_ack(wants_ack).0),
            packet: None,
        };
        let segment = frame::upload_segment(&header, cp);
        let bytes = frame::framed(segment.as_bytes(), self.spec.dialect).ok()?;
        Some(AnswerFrame::Upload(OutFrame { cn, qn, bytes, corrupted: None, wants_ack, factors: new_rows }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{START, parse, setup, spec};
    use super::*;
    use crate::profile::Profile;
    use crate::rng::Rng;
    use crate::schedule::{HOUR_MS, Schedule};
    use hj212_proto::crc::CrcDialect;
    use hj212_proto::model::Version;

    const MN: &str = "SIM000000000000000000007";

    fn station(answers: HostAnswers) -> Station {
        let mut spec = spec(Profile::Gas, Version::Hj212_2017, CrcDialect::Hj212);
        spec.answers = answers;
        Station::new(spec, setup(0.0, 0.0), Rng::new(1))
    }

    /// The station after a simulated day, with the CP of each hourly upload it sent.
    fn after_a_day(answers: HostAnswers) -> (Station, Vec<String>) {
        let mut station = station(answers);
        let mut hourly = Vec::new();
        for due in Schedule::new(START, START + 24 * HOUR_MS, 60, 10) {
            for frame in station.build(&due, due.send_ms).frames {
                let (packet, _) = parse(&frame.bytes);
                if packet.cn == Cn::HourlyData {
                    hourly.push(packet.cp.to_owned());
                }
            }
        }
        (station, hourly)
    }

    fn command(cn: u16, cp: &str) -> String {
        format!("QN=20260302101500123;ST=31;CN={cn:04};PW=654321;MN={MN};Flag=5;CP=&&{cp}&&")
    }

    fn answer(station: &mut Station, text: &str) -> Answer {
        match station.receive(&Packet::parse(text).unwrap(), START + 34 * HOUR_MS) {
            Incoming::Command(answer) => answer,
            other => panic!("{other:?}"),
        }
    }

    /// (CN, CP) of each frame of an answer.
    fn shown(answer: &Answer) -> Vec<(u16, String)> {
        let bytes = |f: &AnswerFrame| match f {
            AnswerFrame::Reply(bytes) => bytes.clone(),
            AnswerFrame::Upload(upload) => upload.bytes.clone(),
        };
        let parsed = |b: Vec<u8>| {
            let (packet, _) = parse(&b);
            (packet.cn.code(), packet.cp.to_owned())
        };
        answer.frames.iter().map(|f| parsed(bytes(f))).collect()
    }

    #[test]
    fn history_request_gets_the_held_records() {
        let (mut station, hourly) = after_a_day(HostAnswers::Normal);
        let request = command(2061, "BeginTime=20260301030000;EndTime=20260301040000");
        let answer = answer(&mut station, &request);
        assert_eq!((answer.outcome, answer.delay), (Outcome::HistoryAnswered { records: 2 }, None));
        let expected = [
            (9011, "QnRtn=1".to_owned()),
            (2061, hourly[3].clone()),
            (2061, hourly[4].clone()),
            (9012, "ExeRtn=1".to_owned()),
        ];
        assert_eq!(shown(&answer), expected);
        let AnswerFrame::Upload(upload) = &answer.frames[1] else { panic!("an upload") };
        let (packet, _) = parse(&upload.bytes);
        assert_eq!((packet.qn, packet.st, packet.flag.map(|f| f.0)), (Some("20260302101500123"), Some("31"), Some(5)));
        assert!(upload.wants_ack && upload.factors == 0, "a record delivered before adds no rows");
        let AnswerFrame::Reply(reply) = &answer.frames[0] else { panic!("a reply") };
        let (packet, _) = parse(reply);
        let echoed = (Some("20260302101500123"), Some("91"), Some("654321"), Some(4));
        assert_eq!((packet.qn, packet.st, packet.pw, packet.flag.map(|f| f.0)), echoed);
    }

    #[test]
    fn history_without_data_or_range() {
        let (mut station, _) = after_a_day(HostAnswers::Normal);
        let answer = answer(&mut station, &command(2031, "BeginTime=20250101000000,EndTime=20250102000000"));
        assert_eq!(shown(&answer), [(9011, "QnRtn=1".into()), (9012, "ExeRtn=100".into())]);
        let answer = self::answer(&mut station, &command(2051, "BeginTime=20260301000000"));
        assert_eq!(shown(&answer), [(9011, "QnRtn=1".into()), (9012, "ExeRtn=3".into())]);
    }

    #[test]
    fn a_dropped_record_adds_rows_once() {
        let (mut station, _) = after_a_day(HostAnswers::Normal);
        station.history.mark_dropped(2061, START + 3 * HOUR_MS);
        let request = command(2061, "BeginTime=20260301030000;EndTime=20260301030000");
        let rows = |answer: &Answer| match &answer.frames[1] {
            AnswerFrame::Upload(upload) => upload.factors,
            AnswerFrame::Reply(_) => panic!("an upload"),
        };
        assert_eq!(rows(&answer(&mut station, &request)), 6);
        assert_eq!(rows(&answer(&mut station, &request)), 0);
    }

    #[test]
    fn faulty_stations() {
        let request = command(2061, "BeginTime=20260301030000;EndTime=20260301040000");
        let (mut refusing, _) = after_a_day(HostAnswers::RefusesHistory);
        let answer = answer(&mut refusing, &request);
        assert_eq!((answer.outcome, shown(&answer)), (Outcome::HistoryRefused, vec![(9011, "QnRtn=2".into())]));
        assert_eq!(self::answer(&mut refusing, &command(1061, "")).outcome, Outcome::Answered);
        let mut silent = station(HostAnswers::Silent);
        let answer = self::answer(&mut silent, &request);
        assert_eq!((answer.outcome, answer.frames.len()), (Outcome::HistoryIgnored, 0));
        assert_eq!(self::answer(&mut silent, &command(1012, "SystemTime=20260302101500")).outcome, Outcome::Ignored);
        let (mut slow, _) = after_a_day(HostAnswers::SlowHistory { delay_ms: 3000 });
        let answer = self::answer(&mut slow, &request);
        assert_eq!((answer.delay, answer.frames.len()), (Some(Duration::from_secs(3)), 4));
    }

    #[test]
    fn queries_and_settings() {
        let mut spec = spec(Profile::Gas, Version::Hj212_2017, CrcDialect::Hj212);
        spec.drift_secs = 90;
        let mut station = Station::new(spec, setup(0.0, 0.0), Rng::new(1));
        let time = answer(&mut station, &command(1011, ""));
        assert_eq!(shown(&time)[1], (1011, "SystemTime=20260302100130".into()), "10:00 + 90 s drift");
        let set = answer(&mut station, &command(1012, "SystemTime=20260302101500"));
        assert_eq!((set.outcome, shown(&set).len(), station.drift_ms), (Outcome::ClockSet, 2, 0));
        let AnswerFrame::Upload(upload) = &time.frames[1] else { panic!("an upload") };
        assert!(!upload.wants_ack, "the host answers no 1011 upload");
        assert_eq!(shown(&answer(&mut station, &command(1061, "")))[1], (1061, "RtdInterval=60".into()));
        assert_eq!(shown(&answer(&mut station, &command(1063, "")))[1], (1063, "MinInterval=10".into()));
        let changed = answer(&mut station, &command(1072, "NewPW=112233"));
        assert_eq!(shown(&changed), [(9011, "QnRtn=1".into()), (9012, "ExeRtn=1".into())]);
        let due = Schedule::new(START, START + HOUR_MS, 60, 10).next().unwrap();
        let built = station.build(&due, due.send_ms);
        assert_eq!(parse(&built.frames[0].bytes).0.pw, Some("112233"));
        assert_eq!(shown(&answer(&mut station, &command(2012, ""))), [(9013, String::new())]);
        let unknown = answer(&mut station, &command(4242, ""));
        assert_eq!((unknown.outcome, shown(&unknown)), (Outcome::Unknown, vec![(9011, "QnRtn=8".into())]));
        let ack = format!("QN=1;ST=91;CN=9014;PW=654321;MN={MN};Flag=4;CP=&&&&");
        assert_eq!(station.receive(&Packet::parse(&ack).unwrap(), START), Incoming::Ack("1".into()));
        let result = format!("QN=1;ST=91;CN=9012;PW=654321;MN={MN};Flag=4;CP=&&ExeRtn=1&&");
        assert_eq!(station.receive(&Packet::parse(&result).unwrap(), START), Incoming::Other);
    }
}
