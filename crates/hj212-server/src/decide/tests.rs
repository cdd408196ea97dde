//! The decision on captured and standard frames, without a daemon: what the caller keeps
//! (the registry snapshot, the claimed resend keys, the site states) are plain values here,
//! and the SM4 keys a key store over a temporary directory.

use std::sync::Arc;

use bytes::BytesMut;
use hj212_config::{CrcSetting, Site};
use hj212_proto::codec::{FrameEvent, Hj212Codec};
use hj212_proto::encryption::Sm4Key;
use hj212_proto::framer::FramerConfig;
use tokio_util::codec::Decoder;

use super::*;
use crate::decrypt::{self, Opened};
use crate::keys::KeyStore;
use crate::sites::Registry;

/// The MN of the standard's examples (HJ 212-2017 App. C, HJ 212-2025 App. A).
const MN: &str = "010000A8900016F000169DC0";
const PEER: &str = "192.0.2.7:40000";

fn fixture(file: &str, line: usize) -> Vec<u8> {
    let path = format!("{}/../../fixtures/frames/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    [text.lines().nth(line - 1).expect("line exists").as_bytes(), b"\r\n"].concat()
}

/// A data segment framed with its length and HJ 212 CRC.
fn frame(segment: &str) -> Vec<u8> {
    encode::frame(segment.as_bytes()).unwrap()
}

fn millis(beijing: &str) -> i64 {
    BeijingTime::parse(beijing).unwrap().unix_millis()
}

fn site(mn: &str, crc: CrcSetting) -> Site {
    Site { crc, ..Site::new(mn, "123456") }
}

/// What the caller keeps between frames, as plain values.
struct Caller {
    sites: Arc<HashMap<String, SiteEntry>>,
    limits: Limits,
    time_sync: TimeSync,
    keys: KeyStore,
    /// Claimed resend keys, and whether their frame is durable.
    claims: HashMap<u64, bool>,
    states: HashMap<String, SiteState>,
    now_ms: i64,
    /// Whether the command channel has a command in flight.
    commands_in_flight: bool,
    /// Where key files and the key store's saved keys go.
    dir: tempfile::TempDir,
}

impl Caller {
    fn new(sites: &[Site]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            sites: Registry::new(sites).snapshot(),
            limits: Limits::default(),
            time_sync: TimeSync::default(),
            keys: KeyStore::load(dir.path().join("keys"), sites),
            claims: HashMap::new(),
            states: HashMap::new(),
            now_ms: 0,
            commands_in_flight: false,
            dir,
        }
    }

    /// A caller whose clock reads `beijing` (14 digits) plus `ms`.
    fn at(mut self, beijing: &str, ms: i64) -> Self {
        self.now_ms = millis(beijing) + ms;
        self
    }

    fn state(&self, mn: &str) -> SiteState {
        self.states.get(mn).cloned().unwrap_or_default()
    }

    /// The frame's record is on disk: later copies may be summarised.
    fn durable(&mut self, decision: &Decision) {
        self.claims.insert(decision.dedup_key.expect("a claimed key"), true);
    }

    /// Frames `wire` and decides on it as the daemon's caller does, with plain state.
    fn decide(&mut self, wire: &[u8]) -> Decision {
        let mut codec = Hj212Codec::new(FramerConfig::default());
        let event = codec.decode_eof(&mut BytesMut::from(wire)).unwrap().expect("an event");
        let inputs = Inputs {
            sites: &self.sites,
            limits: &self.limits,
            time_sync: &self.time_sync,
            peer: PEER,
            now_ms: self.now_ms,
            commands_in_flight: self.commands_in_flight,
        };
        let frame = match &event {
            FrameEvent::Rejected { error, bytes } => return unframed(error, bytes, &inputs),
            FrameEvent::Frame(frame) => frame,
        };
        let decrypted;
        let plain = match decrypt::open_frame(frame, &self.sites, &self.keys) {
            Opened::AsIs(dialect) => Plain { frame, decrypted: false, dialect },
            Opened::Decrypted(plaintext, _, dialect) => {
                decrypted = plaintext;
                Plain { frame: &decrypted, decrypted: true, dialect: Some(dialect) }
            }
            Opened::KeyOrCrcFailed { mn } => return undecryptable(mn, frame, &inputs),
        };
        let text = SegmentText::new(plain.frame.data());
        let authentic = match check(&plain, &text, &inputs) {
            Ok(authentic) => authentic,
            Err(refusal) => return refuse(refusal, &plain, &inputs),
        };
        let seen = authentic.dedup_key.map(|key| match self.claims.get(&key) {
            Some(true) => Seen::Durable,
            Some(false) => Seen::Pending,
            None => {
                self.claims.insert(key, false);
                Seen::New
            }
        });
        let state = self.states.entry(authentic.mn().to_owned()).or_default();
        let clock_off = authentic.observe(seen, state, &inputs);
        let decision = authentic.answer(seen, clock_off, &inputs);
        if decision.sets_time() {
            state.last_time_set_ms = Some(self.now_ms);
        }
        decision
    }
}

fn reply_cns(decision: &Decision) -> Vec<&'static str> {
    decision.replies.iter().map(|(cn, _)| *cn).collect()
}

fn parsed(message: &[u8]) -> (String, String, String) {
    let text = std::str::from_utf8(message).unwrap();
    let field = |name: &str| text.split([';', '&']).find_map(|f| f.strip_prefix(name)).unwrap_or_default().to_owned();
    (field("CN="), field("ST="), field("SystemTime="))
}

#[test]
fn bytes_that_are_not_a_frame_are_unframed_and_never_opened() {
    let mut caller = Caller::new(&[]);
    let decision = caller.decide(b"GET / HTTP/1.1\r\n");
    assert_eq!(decision.record.verdict, Verdict::Unframed);
    assert_eq!(decision.record.data, b"GET / HTTP/1.1\r\n");
    assert_eq!(decision.effect(), Effect::BadFrame);
    assert!(!decision.counts.opened, "no CRC dialect counted for bytes that are not a frame");
    assert!(matches!(decision.refusal, Some(Refusal::Unframed(FrameError::Garbage { .. }))));
}

#[test]
fn an_unknown_mn_is_an_auth_failure_answered_with_nothing() {
    // The standard's 2011 example, from a logger that is not configured.
    let mut caller = Caller::new(&[site("SOMEONE-ELSE", CrcSetting::Hj212)]).at("20160801085857", 500);
    let decision = caller.decide(&fixture("standard-derived.txt", 11));
    assert_eq!(decision.refusal, Some(Refusal::UnknownMn { mn: MN.into() }));
    assert_eq!((decision.record.verdict, decision.effect()), (Verdict::UnknownMn, Effect::AuthFailure));
    assert!(decision.replies.is_empty() && decision.command.is_none() && decision.mn.is_none());
    assert_eq!(decision.dedup_key, None, "claims no resend key");
    assert!(caller.states.is_empty(), "no site state is touched");
    assert!(decision.counts.opened && decision.counts.dialect == Some(CrcDialect::Hj212));
}

#[test]
fn a_wrong_password_is_refused_by_the_mn_it_claims_and_never_echoed() {
    // Captured 2005-style frames of one logger: line 2 with the configured password, line 3 with 000000.
    let mut caller = Caller::new(&[site("LD130133000015", CrcSetting::Hj212)]).at("20160824003817", 0);
    assert_eq!(caller.decide(&fixture("real.txt", 2)).record.verdict, Verdict::Accepted);
    let decision = caller.decide(&fixture("real.txt", 3));
    assert_eq!((decision.record.verdict, decision.effect()), (Verdict::BadPassword, Effect::AuthFailure));
    assert_eq!(decision.claimed_mn(), Some("LD130133000015"), "the auth-failure alert names the site");
    assert!(decision.replies.is_empty() && decision.command.is_none());
    let logged = format!("{:?} {:?}", decision.refusal, decision.notices);
    assert!(!logged.contains("PW") && !logged.contains("000000"), "the password is never in a log: {logged}");
}

#[test]
fn crc_dialects_are_judged_per_site() {
    // Captured traffic whose CRC is CRC-16/MODBUS with its bytes swapped.
    let wire = fixture("real.txt", 15);
    let mut strict = Caller::new(&[site("4201003", CrcSetting::Hj212)]).at("20200923111707", 0);
    let decision = strict.decide(&wire);
    assert!(matches!(decision.refusal, Some(Refusal::CrcNotAllowed { ref mn, .. }) if mn == "4201003"));
    assert_eq!((decision.record.verdict, decision.effect()), (Verdict::BadCrc, Effect::BadFrame));
    assert_eq!(decision.counts.dialect, Some(CrcDialect::ModbusSwapped));
    for setting in [CrcSetting::ModbusSwapped, CrcSetting::Any] {
        let mut lenient = Caller::new(&[site("4201003", setting)]).at("20200923111707", 0);
        assert_eq!(lenient.decide(&wire).record.verdict, Verdict::Accepted, "{setting:?}");
    }
    // A deliberately corrupted CRC matches no dialect.
    let mut caller = Caller::new(&[site("LD130133000015", CrcSetting::Any)]).at("20160824003817", 0);
    let decision = caller.decide(&fixture("real.txt", 4));
    assert_eq!(decision.refusal, Some(Refusal::BadCrc { declared: 0x4981 }));
    assert_eq!((decision.counts.opened, decision.counts.dialect), (true, None));
}

#[test]
fn a_resend_is_a_duplicate_answered_again_and_another_frame_with_its_qn_is_not() {
    let mut caller = Caller::new(&[site(MN, CrcSetting::Hj212)]).at("20160801085857", 500);
    let original = fixture("standard-derived.txt", 11);
    let first = caller.decide(&original);
    assert_eq!(first.record.verdict, Verdict::Accepted);
    assert!(first.dedup_key.is_some(), "claims its resend key");
    let copy = caller.decide(&original);
    assert_eq!(copy.record.verdict, Verdict::Duplicate);
    assert_eq!(reply_cns(&copy), ["9014"], "a copy is answered: the logger missed our 9014");
    assert_eq!((copy.dedup_key, copy.copy_of_durable), (None, false), "its original is still on its way to disk");
    caller.durable(&first);
    assert!(caller.decide(&original).copy_of_durable, "a copy of a durable frame may be summarised");
    // Same QN, other content: a different frame, kept.
    let text = std::str::from_utf8(&original).unwrap();
    let segment = &text[6..text.len() - 6];
    let other = caller.decide(&frame(&segment.replace("LA-Rtd=50.1", "LA-Rtd=50.2")));
    assert_eq!(other.record.verdict, Verdict::Accepted);
    assert_ne!(other.dedup_key, first.dedup_key);
}

#[test]
fn without_qn_the_data_time_and_content_tell_a_resend() {
    // A 2005-style frame (no QN, no Flag): keyed by DataTime.
    let mut caller = Caller::new(&[site("NJGDKYYC202101q0001w0001", CrcSetting::Hj212)]).at("20210305003817", 0);
    let wire = fixture("real.txt", 10);
    assert_eq!(caller.decide(&wire).record.verdict, Verdict::Accepted);
    assert_eq!(caller.decide(&wire).record.verdict, Verdict::Duplicate);
    let text = std::str::from_utf8(&wire).unwrap();
    let other = frame(&text[6..text.len() - 6].replace("ele02-Rtd=0", "ele02-Rtd=1"));
    assert_eq!(caller.decide(&other).record.verdict, Verdict::Accepted, "other factors at the same DataTime");
}

/// The standard's 2011 example with another QN, DataTime, CP and header fields.
fn realtime(data_time: &str, extra: &str) -> Vec<u8> {
    frame(&format!(
        "QN={data_time}223;ST=23;CN=2011;PW=123456;MN={MN};Flag=5;{extra}CP=&&DataTime={data_time}; LA-Rtd=50.1&&"
    ))
}

#[test]
fn timestamps_that_are_not_real_times_are_refused() {
    let mut caller = Caller::new(&[site(MN, CrcSetting::Hj212)]).at("20160801085857", 0);
    let bad_qn = caller.decide(&frame(&format!(
        "QN=20161301085857223;ST=23;CN=2011;PW=123456;MN={MN};Flag=5;CP=&&DataTime=20160801085857; LA-Rtd=50.1&&"
    )));
    assert!(matches!(bad_qn.refusal, Some(Refusal::BadTimestamp { ref error, .. }) if error.starts_with("QN")));
    assert_eq!((bad_qn.record.verdict, bad_qn.effect()), (Verdict::BadTimestamp, Effect::BadFrame));
    let bad_data_time = caller.decide(&frame(&format!(
        "QN=20160801085857223;ST=23;CN=2011;PW=123456;MN={MN};Flag=5;CP=&&DataTime=20160801256000; LA-Rtd=50.1&&"
    )));
    assert!(
        matches!(bad_data_time.refusal, Some(Refusal::BadTimestamp { ref error, .. }) if error.starts_with("DataTime"))
    );
    assert!(bad_qn.replies.is_empty() && bad_data_time.replies.is_empty());
}

#[test]
fn future_and_old_data_times_are_marked_and_rf_is_a_resend() {
    let mut caller = Caller::new(&[site(MN, CrcSetting::Hj212)]).at("20160801090000", 0);
    let on_time = caller.decide(&realtime("20160801085957", ""));
    assert_eq!(on_time.record.flags, 0);
    let future = caller.decide(&realtime("20160801090300", ""));
    assert_eq!(future.record.flags, flags::FUTURE_TIME, "3 min ahead, beyond the 60 s skew");
    assert_eq!(
        caller.state(MN).last_data_time.as_deref(),
        Some("20160801085957"),
        "a future time does not hide a silent logger"
    );
    assert_eq!(caller.decide(&realtime("20160801084000", "")).record.flags, flags::BACKFILL, "20 min late");
    // An hourly record is late only after its hour plus the grace: the standard's 2061 at 09:00.
    assert_eq!(caller.decide(&fixture("standard-derived.txt", 13)).record.flags, 0);
    let resent = caller.decide(&realtime("20160801085958", "RF=1;"));
    assert_eq!(resent.record.flags, flags::BACKFILL | flags::RESENT);
    assert_eq!(resent.record.verdict, Verdict::Accepted);
}

#[test]
fn a_9014_answers_only_what_asks_for_one_byte_for_byte() {
    let mut caller = Caller::new(&[site(MN, CrcSetting::Hj212), site("Y80110010000010", CrcSetting::Hj212)])
        .at("20160801085857", 300);
    // HJ 212-2017 App. C: the 2011 example (Flag=5, A=1) is answered with the printed 9014.
    let decision = caller.decide(&fixture("standard-derived.txt", 11));
    let expected = fixture("standard-derived.txt", 8);
    assert_eq!(decision.replies, [("9014", expected)]);
    // Flag=4 (A=0) asks for nothing; nor do the host's own answers coming back.
    caller.now_ms = millis("20191012133710");
    assert!(caller.decide(&fixture("real.txt", 5)).replies.is_empty());
    caller.now_ms = millis("20160801085857");
    for line in [1, 2, 7, 8] {
        let decision = caller.decide(&fixture("standard-derived.txt", line));
        assert_eq!((decision.record.verdict, decision.replies.len()), (Verdict::Accepted, 0), "line {line}");
    }
}

#[test]
fn a_9013_answers_1013_1001_and_9015_and_a_1012_follows_a_1013() {
    let mut caller = Caller::new(&[site(MN, CrcSetting::Hj212)]).at("20160801085857", 250);
    let request =
        caller.decide(&frame(&format!("QN=20160801085857223;ST=32;CN=1013;PW=123456;MN={MN};Flag=5;CP=&&&&")));
    // The 9013 is the one printed in HJ 212-2017 App. C; then a 1012 with our time.
    assert_eq!(request.replies, [("9013", fixture("standard-derived.txt", 7))]);
    let (cn, text) = request.command.as_ref().expect("a 1012");
    assert_eq!((*cn, parsed(text)), ("1012", ("1012".into(), "32".into(), "20160801085857".into())));
    assert_eq!(caller.state(MN).last_time_set_ms, Some(caller.now_ms));
    // A 2025 heartbeat is answered whatever its Flag says.
    let heartbeat =
        caller.decide(&frame(&format!("QN=20160801085858000;ST=32;CN=9015;PW=123456;MN={MN};Flag=8;CP=&&&&")));
    assert_eq!((reply_cns(&heartbeat), heartbeat.command.is_none()), (vec!["9013"], true));
    let identity = "DataLoggerId=DL-0001;CPUID=0A1B2C3D;MAC1=00-11-22-33-44-55";
    let serial = caller
        .decide(&frame(&format!("QN=20160801085859000;ST=91;CN=1001;PW=123456;MN={MN};Flag=9;CP=&&{identity}&&")));
    assert_eq!(reply_cns(&serial), ["9013"]);
    assert_eq!(caller.state(MN).hardware.as_deref(), Some(identity), "kept per MN");
}

/// A caller for the standard's MN, its clock 120 s ahead of the logger's, at `step` minutes.
fn drifted(caller: &mut Caller, step: i64, extra: &str) -> Decision {
    let logger = BeijingTime::from_unix_millis(millis("20160801090000") + step * 60_000);
    caller.now_ms = logger.unix_millis() + 120_000;
    caller.decide(&realtime(&logger.to_seconds_string(), extra))
}

#[test]
fn a_clock_off_in_three_fresh_real_time_frames_gets_one_1012_per_interval() {
    let mut caller = Caller::new(&[site(MN, CrcSetting::Hj212)]);
    assert!(drifted(&mut caller, 0, "").command.is_none());
    assert!(drifted(&mut caller, 1, "").command.is_none());
    // A resent frame (RF) with a newer DataTime and the same offset says nothing of the clock now.
    assert!(drifted(&mut caller, 2, "RF=1;").command.is_none());
    assert_eq!(caller.state(MN).drift_streak, 2);
    let third = drifted(&mut caller, 3, "");
    assert_eq!(third.notices, [Notice::ClockOff { offset_ms: -120_000 }]);
    let (cn, text) = third.command.as_ref().expect("corrected after three consistent frames");
    assert_eq!((*cn, reply_cns(&third)), ("1012", vec!["9014"]), "the 9014 first, then the 1012");
    let now = BeijingTime::from_unix_millis(caller.now_ms).to_seconds_string();
    assert_eq!(parsed(text).2, now, "set to our time");
    // Still off (the logger has not applied it yet): not again within min_interval_secs.
    for step in 4..60 {
        assert!(drifted(&mut caller, step, "").command.is_none(), "minute {step}");
    }
    assert_eq!(caller.state(MN).clock_offset_ms, Some(-120_000));
    assert!(drifted(&mut caller, 63, "").command.is_some(), "an hour after the last");
}

#[test]
fn copies_and_changing_offsets_are_not_a_wrong_clock() {
    let mut caller = Caller::new(&[site(MN, CrcSetting::Hj212)]);
    drifted(&mut caller, 0, "");
    let second = drifted(&mut caller, 1, "");
    let copy = caller.decide(&realtime("20160801090100", ""));
    assert_eq!((copy.record.verdict, copy.command.is_none()), (Verdict::Duplicate, true));
    assert_eq!(caller.state(MN).drift_streak, 2, "the copy changed nothing");
    assert!(second.command.is_none());
    // Backfilled real-time data: offsets that step by the interval reset the streak.
    caller.now_ms += 60_000;
    assert!(caller.decide(&realtime("20160801085000", "")).command.is_none());
    assert_eq!(caller.state(MN).drift_streak, 2, "an older DataTime is not counted");
    caller.now_ms = millis("20160801090500");
    assert!(caller.decide(&realtime("20160801090200", "")).command.is_none());
    assert_eq!(caller.state(MN).drift_streak, 1, "a different offset starts again");
}

#[test]
fn with_time_sync_off_the_offset_is_only_recorded() {
    let mut caller = Caller::new(&[site(MN, CrcSetting::Hj212)]);
    caller.time_sync.enabled = false;
    for step in 0..5 {
        assert!(drifted(&mut caller, step, "").command.is_none());
    }
    assert_eq!(caller.state(MN).clock_offset_ms, Some(-120_000));
}

/// HJ 212-2025 App. A.2 example 2 and its printed ciphertext under the key 0000000000000000.
const EXAMPLE_2: &str = "QN=20240520210700000;ST=31;CN=2051;PW=123456;MN=010000A8900016F000169DC0;Flag=9;CP=&&DataTime=20240520210600;a01011-Min=1.35,a01011-Avg=1.35,a01011-Max=1.35,a01011-Flag=N;a01012-Min=9.3,a01012-Avg=9.3,a01012-Max=9.3,a01012-Flag=N;a01014-Min=3.20,a01014-Avg=3.211,a01014-Max=3.212,a01014-Flag=N&&";
const EXAMPLE_2_CIPHER: &str = "E43E159ACFAB242CB53155FB8B9281A1A242577ABFAED881BE88B72D69FC55ED1A80119FAAC8B3CD33D285CC76F57F2CA7F88B9573C6647E0F07E24609BD6B63EB20C5B9784F28E71D2F4994FF61D9E1C2B3075592B4D1E09C4D8BB27BE97B559E3DA6643781A6F477769DEEB009B10DFFF3426922725D607DC4480F0CAC5F70DB2587B124BCB281592721D6E4BC180A97E5E111499CBE822E31C8D7761553543AA24207C290997BBDE64F9266BC5F529A172E381C1D898CA1A0D771A914A7B2D7467C70B94F1D4A7B0350A48DBF8B41";

/// Example 2 as a 2025 logger sends it: clear header, ciphertext, the plaintext's CRC.
fn example_2_wire() -> Vec<u8> {
    let cipher: Vec<u8> = (0..EXAMPLE_2_CIPHER.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&EXAMPLE_2_CIPHER[i..i + 2], 16).unwrap())
        .collect();
    let header = &EXAMPLE_2[..EXAMPLE_2.find("CP=&&").unwrap() + 5];
    let data = [header.as_bytes(), &cipher, b"&&"].concat();
    let crc = crc::format_field(crc::hj212(EXAMPLE_2.as_bytes()));
    [format!("##{:04}", data.len()).as_bytes(), &data, &crc, b"\r\n"].concat()
}

fn encrypting(encryption: Encryption, key: &str) -> Caller {
    let mut caller = Caller::new(&[]).at("20240520210700", 400);
    let key_file = caller.dir.path().join("site.key");
    std::fs::write(&key_file, key).unwrap();
    let site = Site { encryption, key_file: Some(key_file), ..Site::new(MN, "123456") };
    caller.sites = Registry::new(std::slice::from_ref(&site)).snapshot();
    caller.keys = KeyStore::load(caller.dir.path().join("keys"), &[site]);
    caller
}

#[test]
fn the_standards_encrypted_frame_is_accepted_and_archived_in_plaintext() {
    let mut caller = encrypting(Encryption::Required, "0000000000000000");
    let decision = caller.decide(&example_2_wire());
    assert_eq!((decision.record.verdict, decision.record.flags), (Verdict::Accepted, flags::DECRYPTED));
    assert_eq!(decision.record.data, frame(EXAMPLE_2), "the record holds the decrypted frame");
    assert_eq!(decision.counts.encryption, Some(true));
    assert_eq!(reply_cns(&decision), ["9014"], "Flag=9 asks for an answer");
    // The same frame in plaintext: refused where SM4 is required, counted where it is optional.
    let plaintext = frame(EXAMPLE_2);
    let refused = caller.decide(&plaintext);
    assert_eq!(refused.refusal, Some(Refusal::NotEncrypted { mn: MN.into(), cn: 2051 }));
    let mut optional = encrypting(Encryption::Optional, "0000000000000000");
    let decision = optional.decide(&plaintext);
    assert_eq!((decision.record.verdict, decision.counts.encryption), (Verdict::Accepted, Some(false)));
}

#[test]
fn a_frame_no_key_of_its_site_opens_is_decrypt_or_crc() {
    let mut caller = encrypting(Encryption::Required, "1111111111111111");
    let decision = caller.decide(&example_2_wire());
    assert_eq!(decision.refusal, Some(Refusal::Undecryptable { mn: MN.into() }));
    assert_eq!((decision.record.verdict, decision.effect()), (Verdict::DecryptOrCrc, Effect::BadFrame));
    assert_eq!(decision.record.data, example_2_wire(), "the wire bytes are kept as evidence");
}

/// `f` of the authenticated frame `segment` of the standard's MN, as of `now_ms`.
fn authenticated<R>(segment: &str, now_ms: i64, f: impl FnOnce(&Authentic<'_>) -> R) -> R {
    let sites = Registry::new(&[site(MN, CrcSetting::Hj212)]).snapshot();
    let (limits, time_sync) = (Limits::default(), TimeSync::default());
    let inputs =
        Inputs { sites: &sites, limits: &limits, time_sync: &time_sync, peer: PEER, now_ms, commands_in_flight: false };
    let mut codec = Hj212Codec::new(FramerConfig::default());
    let Some(FrameEvent::Frame(frame)) = codec.decode_eof(&mut BytesMut::from(&frame(segment)[..])).unwrap() else {
        panic!("a frame: {segment}")
    };
    let plain = Plain { frame: &frame, decrypted: false, dialect: Some(CrcDialect::Hj212) };
    let text = SegmentText::new(frame.data());
    f(&check(&plain, &text, &inputs).expect("authenticated"))
}

fn key_step_of(segment: &str) -> Option<String> {
    authenticated(segment, 0, |authentic| authentic.key_step().map(|step| format!("{step:?}")))
}

#[test]
fn key_requests_and_answers_to_a_1014_are_steps_for_the_key_store() {
    let request = format!("QN=20260101120000000;ST=32;CN=1014;PW=123456;MN={MN};Flag=9;CP=&&&&");
    assert_eq!(key_step_of(&request).as_deref(), Some("Request"));
    let confirmed = key_step_of(&fixture_segment("standard-derived.txt", 2));
    assert_eq!(confirmed.as_deref(), Some(r#"Reply { qn: "20160801085857223", cn: 9012, success: true }"#));
    let refused = key_step_of(&fixture_segment("standard-derived.txt", 1).replace("QnRtn=1", "QnRtn=2"));
    assert_eq!(refused.as_deref(), Some(r#"Reply { qn: "20160801085857223", cn: 9011, success: false }"#));
    assert_eq!(key_step_of(&fixture_segment("standard-derived.txt", 11)), None);
    // The decision answers the request with a 9013; the key store sends the key.
    let mut caller = Caller::new(&[site(MN, CrcSetting::Hj212)]).at("20260101120000", 0);
    let decision = caller.decide(&frame(&request));
    assert_eq!((reply_cns(&decision), decision.command.is_none()), (vec!["9013"], true));
}

#[test]
fn a_1014_carries_the_new_key_encrypted_under_the_current_one() {
    let current = Sm4Key::parse("0000000000000000").unwrap();
    let created = BeijingTime::parse("20260101115959000").unwrap();
    let delivery = Delivery { created, key: "NEWKEY0123456789".into(), encrypt_with: Some(current.clone()) };
    let segment = format!("QN=20260101120000000;ST=32;CN=2011;PW=123456;MN={MN};Flag=9;CP=&&DataTime=20260101120000&&");
    let now_ms = millis("20260101120001");
    let command = authenticated(&segment, now_ms, |authentic| authentic.key_command(delivery, now_ms));
    let command = command.unwrap().expect("encrypted");
    assert!(!command.windows(6).any(|w| w == b"NEWKEY"), "the key never travels in clear");
    // As a 2025 logger reads it: the CP decrypts with the current key, and the CRC holds.
    let mut data = command[6..command.len() - 6].to_vec();
    assert!(hj212_proto::encryption::decrypt_cp(&mut data, &current));
    assert_eq!(crc::format_field(crc::hj212(&data)), command[command.len() - 6..command.len() - 2]);
    let text = String::from_utf8(data).unwrap();
    assert_eq!(
        text,
        format!(
            "QN=20260101120001000;ST=32;CN=1014;PW=123456;MN={MN};Flag=9;CP=&&SKCreateTime=20260101115959000;NewSK=NEWKEY0123456789&&"
        )
    );
}

fn fixture_segment(file: &str, line: usize) -> String {
    let wire = fixture(file, line);
    String::from_utf8(wire[6..wire.len() - 6].to_vec()).unwrap()
}

#[test]
fn answers_to_commands_and_uploads_that_may_answer_one() {
    let mut caller = Caller::new(&[site(MN, CrcSetting::Hj212)]).at("20261130101500", 0);
    let reply = frame(&format!("QN=20261130101500123;ST=91;CN=9011;PW=123456;MN={MN};Flag=4;CP=&&QnRtn=2&&"));
    let decision = caller.decide(&reply);
    assert_eq!(decision.answer, Some(Answer::Reply { qn: "20261130101500123".into(), cn: 9011, code: Some(2) }));
    assert!(decision.replies.is_empty(), "an answer to us is not answered");
    let upload = |qn: &str| {
        frame(&format!(
            "QN={qn};ST=31;CN=2061;PW=123456;MN={MN};Flag=5;CP=&&DataTime=20261130090000;a21026-Avg=1,a21026-Flag=N&&"
        ))
    };
    assert_eq!(caller.decide(&upload("20261130101500200")).answer, None, "nothing in flight: no work per upload");
    caller.commands_in_flight = true;
    let expected =
        Answer::Upload { cn: 2061, qn: Some("20261130101500201".into()), data_time_ms: Some(millis("20261130090000")) };
    assert_eq!(caller.decide(&upload("20261130101500201")).answer, Some(expected));
}
