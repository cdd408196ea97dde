use hj212_archive::{Checkpoint, Kind, Record, SigningKey, Verdict, flags};
use hj212_proto::encode;
use hj212_proto::model::{DataFlag, FieldKind};

use super::*;

fn framed(segment: &str) -> Vec<u8> {
    encode::frame(segment.as_bytes()).unwrap()
}

fn record(kind: Kind, verdict: Verdict, data: Vec<u8>) -> Record {
    Record { seq: 9, kind, verdict, flags: 0, time_ms: 1_700_000_000_000, peer: "p".into(), data, hash: [7; 32] }
}

const REALTIME: &str = "QN=20260101120000000;ST=22;CN=2011;PW=123456;MN=M1;Flag=5;CP=&&DataTime=20260101120000;\
    a21026-Rtd=35.2,a21026-Flag=N,a21026-Rtd=99;a21002-Rtd=48.1,a21002-ZsRtd=50,a21002-Xyz=1&&";

#[test]
fn an_accepted_upload_is_data_with_its_fields_in_order_and_the_first_value_of_a_kind_wins() {
    let mut archived = record(Kind::Received, Verdict::Accepted, framed(REALTIME));
    archived.flags = flags::BACKFILL;
    let Meaning::Data(upload) = Meaning::of(&archived) else { panic!("{:?}", Meaning::of(&archived)) };
    assert_eq!((upload.mn.as_str(), upload.cn, upload.data_time.as_str()), ("M1", 2011, "20260101120000"));
    assert_eq!(upload.st.as_deref(), Some("22"));
    assert!(upload.resent, "backfill counts as resent");
    let factors: Vec<_> = upload.factors().collect();
    let codes: Vec<&str> = factors.iter().map(|f| f.code).collect();
    assert_eq!(codes, ["a21026", "a21002"]);
    let so2 = &factors[0];
    assert_eq!(so2.get(FieldKind::Rtd), Some("35.2"), "the first Rtd wins");
    assert_eq!(so2.number(FieldKind::Rtd), Some(35.2));
    assert_eq!(so2.flag(), Some(DataFlag::from_wire("N")));
    let keys: Vec<(&str, &str)> = so2.fields().map(|f| (f.key, f.value)).collect();
    assert_eq!(keys, [("a21026-Rtd", "35.2"), ("a21026-Flag", "N"), ("a21026-Rtd", "99")], "every field, in order");
    let nox = &factors[1];
    assert_eq!(nox.get(FieldKind::ZsRtd), Some("50"));
    assert_eq!(nox.fields().last().map(|f| (f.suffix(), f.kind)), Some(("Xyz", Some(FieldKind::Other))));
}

#[test]
fn a_factor_whose_fields_are_spread_over_groups_has_them_all_in_the_order_they_came() {
    let spread = "QN=20260101120000000;ST=22;CN=2011;PW=123456;MN=M1;Flag=5;CP=&&DataTime=20260101120000;\
        a21026-Rtd=35.2;a21002-Rtd=48.1;a21026-Flag=N;a21002-Flag=D&&";
    let Meaning::Data(upload) = Meaning::of(&record(Kind::Received, Verdict::Accepted, framed(spread))) else {
        panic!("an upload")
    };
    let factors: Vec<(&str, Vec<(&str, &str)>)> =
        upload.factors().map(|f| (f.code, f.fields().map(|field| (field.key, field.value)).collect())).collect();
    assert_eq!(
        factors,
        [
            ("a21026", vec![("a21026-Rtd", "35.2"), ("a21026-Flag", "N")]),
            ("a21002", vec![("a21002-Rtd", "48.1"), ("a21002-Flag", "D")]),
        ]
    );
}

#[test]
fn resends_other_commands_and_uploads_without_a_datatime_only_show_the_site_was_there() {
    let duplicate = record(Kind::Received, Verdict::Duplicate, framed(REALTIME));
    assert_eq!(Meaning::of(&duplicate), Meaning::Seen { mn: "M1".into(), cn: 2011, duplicate: true });
    let heartbeat = framed("QN=20260101120000000;ST=22;CN=1013;PW=123456;MN=M1;Flag=5;CP=&&&&");
    let heartbeat = record(Kind::Received, Verdict::Accepted, heartbeat);
    assert_eq!(Meaning::of(&heartbeat), Meaning::Seen { mn: "M1".into(), cn: 1013, duplicate: false });
    let undated = framed("QN=20260101120000000;ST=22;CN=2011;PW=123456;MN=M1;Flag=5;CP=&&a21026-Rtd=1&&");
    let undated = record(Kind::Received, Verdict::Accepted, undated);
    assert_eq!(Meaning::of(&undated), Meaning::Seen { mn: "M1".into(), cn: 2011, duplicate: false });
}

#[test]
fn refused_frames_are_nothing_but_a_wrong_password_and_every_frame_has_an_identity() {
    let wrong = record(Kind::Received, Verdict::BadPassword, framed(REALTIME));
    assert_eq!(Meaning::of(&wrong), Meaning::BadPassword { mn: "M1".into() });
    for verdict in [Verdict::UnknownMn, Verdict::BadCrc, Verdict::Unframed, Verdict::BadTimestamp] {
        let refused = record(Kind::Received, verdict, framed(REALTIME));
        assert_eq!(Meaning::of(&refused), Meaning::Other, "{verdict:?}");
        assert_eq!(identity(&refused), Some(("M1".into(), 2011)));
    }
    let garbage = record(Kind::Received, Verdict::Accepted, b"not a frame".to_vec());
    assert_eq!((Meaning::of(&garbage), identity(&garbage)), (Meaning::Other, None));
}

#[test]
fn what_operators_and_the_daemon_append() {
    let mark = MarkRequest {
        mn: "M1".into(),
        from_ms: 1,
        to_ms: 2,
        reason: "停运".into(),
        evidence: "e".into(),
        author: "a".into(),
        supersedes: None,
    };
    let archived = record(Kind::Event, Verdict::Mark, serde_json::to_vec(&mark).unwrap());
    assert_eq!(Meaning::of(&archived), Meaning::Mark(mark));
    let checkpoint = Checkpoint::sign(&SigningKey::from_bytes(&[1; 32]), 8, [2; 32], 5, None, false);
    let archived = record(Kind::Event, Verdict::Checkpoint, checkpoint.encode().into_bytes());
    let Meaning::Checkpoint(head) = Meaning::of(&archived) else { panic!() };
    assert_eq!((head.checkpoint, head.record_seq, head.record_hash), (checkpoint, 9, [7; 32]));
    let sent = framed("QN=20260101120000000;ST=22;CN=1012;PW=123456;MN=M1;Flag=5;CP=&&SystemTime=20260101120000&&");
    assert_eq!(Meaning::of(&record(Kind::Sent, Verdict::Command, sent)), Meaning::Sent { mn: "M1".into(), cn: 1012 });
    let started = record(Kind::Event, Verdict::Info, b"started hj212d 0.1.0".to_vec());
    assert_eq!(Meaning::of(&started), Meaning::Event("started hj212d 0.1.0".into()));
    assert_eq!(Meaning::of(&started).mn(), None);
    let ack = br#"{"event":"alert_acknowledged","via":"api","by":"wang","alert_id":"a1","mn":"M1","kind":"offline","note":"on site"}"#;
    let expected = AlertAck {
        alert_id: "a1".into(),
        mn: "M1".into(),
        kind: "offline".into(),
        by: "wang".into(),
        note: "on site".into(),
        via: "api".into(),
    };
    assert_eq!(Meaning::of(&record(Kind::Event, Verdict::Info, ack.to_vec())), Meaning::Acknowledged(expected.clone()));
    let written = serde_json::to_vec(&expected.event()).unwrap();
    assert_eq!(Meaning::of(&record(Kind::Event, Verdict::Info, written)), Meaning::Acknowledged(expected));
    // Another event that names an acknowledgement is still an event.
    let other = br#"{"event":"command_queued","note":"alert_acknowledged"}"#;
    assert!(matches!(Meaning::of(&record(Kind::Event, Verdict::Info, other.to_vec())), Meaning::Event(_)));
}
