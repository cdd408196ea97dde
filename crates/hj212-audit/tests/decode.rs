//! `hj212-audit decode` on the fixture frames, as a user runs it.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

fn decode(input: &[u8], args: &[&str]) -> Vec<Value> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hj212-audit"))
        .arg("decode")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run hj212-audit");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "exit {:?}", out.status);
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn fixtures() -> Vec<u8> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/frames/");
    let mut stream = Vec::new();
    for file in ["real.txt", "standard-derived.txt"] {
        for line in std::fs::read_to_string(format!("{dir}{file}")).unwrap().lines() {
            stream.extend_from_slice(line.as_bytes());
            stream.extend_from_slice(b"\r\n");
        }
    }
    stream
}

#[test]
fn decodes_every_fixture_frame_as_one_stream() {
    let lines = decode(&fixtures(), &[]);
    // 36 lines in: 34 frames and the 2 broken ones (real.txt lines 17 and 18) rejected.
    assert_eq!(lines.len(), 36);
    let rejected: Vec<&str> = lines.iter().filter_map(|l| l["rejected"].as_str()).collect();
    assert_eq!(rejected, ["no_crc_at_length", "length_not_numeric"]);
    let bad_crc = lines.iter().filter(|l| l["crc"]["ok"] == false).count();
    assert_eq!(bad_crc, 3, "real.txt lines 4, 6 and 9");
    let first = &lines[0];
    assert_eq!(first["offset"], 0);
    assert_eq!(first["crc"]["declared"], "1C80");
    assert_eq!(first["header"]["CN"], 1062);
    assert_eq!(first["header"]["PW"], "***");
    assert_eq!(first["version"], "2017");
    assert_eq!(first["items"][0]["key"], "RtdInterval");
    let swapped = lines.iter().find(|l| l["crc"]["dialect"] == "modbus_swapped").unwrap();
    assert_eq!(swapped["header"]["MN"], "4201003");
    // Offsets are byte positions in the stream: each object starts where the previous ended.
    for pair in lines.windows(2) {
        let end = pair[0]["offset"].as_u64().unwrap() + pair[0]["length"].as_u64().unwrap();
        assert_eq!(pair[1]["offset"].as_u64().unwrap(), end);
    }
}

#[test]
fn factors_are_named_and_2005_codes_mapped() {
    let line = b"##0139ST=32;CN=2011;PW=123456;MN=LD130133000015;CP=&&DataTime=20160824003817000;B01-Rtd=36.91;011-Rtd=231.0,011-Flag=N;060-Rtd=1.803,060-Flag=N&&4980\r\n";
    let lines = decode(line, &["--show-passwords"]);
    let frame = &lines[0];
    assert_eq!(frame["header"]["PW"], "123456");
    assert_eq!(frame["version"], "2005");
    assert_eq!(frame["data_time"], "2016-08-24T00:38:17.000+08:00");
    let cod = &frame["factors"][1];
    assert_eq!(
        (cod["code"].as_str(), cod["code_2017"].as_str(), cod["name"].as_str()),
        (Some("011"), Some("w01018"), Some("COD"))
    );
    assert_eq!(cod["fields"][1], serde_json::json!({"kind": "Flag", "value": "N"}));
    let notes: Vec<&str> = frame["notes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert_eq!(notes, ["no_qn", "no_flag", "non_standard_mn", "datatime_with_millis"]);
}

#[test]
fn missing_file_exits_66() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_hj212-audit")).args(["decode", "/nonexistent/capture"]).output().unwrap();
    assert_eq!(out.status.code(), Some(66));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("Error: cannot open /nonexistent/capture"));
}

/// HJ 212-2025: the derived 2011 vector of docs/hj212-2025.md §4 (key "0" x 16), as raw bytes.
#[test]
fn encrypted_frames_are_shown_decrypted_with_the_sites_key() {
    const PLAIN: &str = "QN=20260101120000000;ST=31;CN=2011;PW=123456;MN=010000A8900016F000169DC0;Flag=9;CP=&&DataTime=20260101120000;a21026-Rtd=35.2,a21026-Flag=N;a21002-Rtd=48.1,a21002-Flag=N&&";
    const CIPHER: &str = "7D95DE3BB545773F93C0FCC77F77259A820F7D95125E7C6553C1D4E3A1EC40E4F651F86040B157B6241FCDFF4D1A4CCAF446ADCA4BA24B770257C52D2403C4FE0C21B932DDFD399191B436F04C217560";
    let cipher: Vec<u8> =
        (0..CIPHER.len()).step_by(2).map(|i| u8::from_str_radix(&CIPHER[i..i + 2], 16).unwrap()).collect();
    let header = &PLAIN[..PLAIN.find("CP=&&").unwrap() + 5];
    let data = [header.as_bytes(), &cipher, b"g=N&&"].concat();
    let frame = [format!("##{:04}", data.len()).as_bytes(), &data[..], b"6AC0\r\n"].concat();
    assert_eq!(frame.len(), 182, "the wire frame of the notes");
    let without = decode(&frame, &[]);
    assert_eq!((without[0]["crc"]["ok"].as_bool(), without[0]["encrypted"].as_bool()), (Some(false), Some(false)));
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("site.key");
    std::fs::write(&key_file, "0000000000000000\n").unwrap();
    let with = decode(&frame, &["--key-file", key_file.to_str().unwrap()]);
    let frame = &with[0];
    assert_eq!((frame["crc"]["ok"].as_bool(), frame["encrypted"].as_bool()), (Some(true), Some(true)));
    assert_eq!((frame["version"].as_str(), frame["header"]["CN"].as_u64()), (Some("2025"), Some(2011)));
    assert_eq!(frame["factors"][0]["fields"][0]["value"], "35.2");
    assert_eq!(frame["data_time"], "2026-01-01T12:00:00.000+08:00");
}

/// Every spelling of the PW field is masked, in parsed headers, unknown header fields and
/// rejected chunks alike; `--show-passwords` shows them.
#[test]
fn passwords_are_masked_however_spelled() {
    let secrets = ["s3cretSpace", "s3cretTab", "s3cretLower", "s3cretAmp", "s3cretMixed", "s3cretRejected"];
    let segments = [
        format!("QN=20260101120000001;ST=32;CN=2011;PW ={};MN=M1;CP=&&DataTime=20260101120000;a01-Rtd=1&&", secrets[0]),
        format!(
            "QN=20260101120000002;ST=32;CN=2011;PW\t= {};MN=M1;CP=&&DataTime=20260101120000;a01-Rtd=1&&",
            secrets[1]
        ),
        format!("QN=20260101120000003;ST=32;CN=2011;pw={};MN=M1;CP=&&DataTime=20260101120000;a01-Rtd=1&&", secrets[2]),
        format!("QN=20260101120000004;ST=32;CN=2011;MN=M1;PW={}&&CP=&&DataTime=20260101120000&&", secrets[3]),
        format!(
            "QN=20260101120000005;ST=32;CN=2011;MN=M1;Pw = {};CP=&&DataTime=20260101120000;PW={}x&&",
            secrets[4], secrets[4]
        ),
    ];
    let mut stream = Vec::new();
    for segment in &segments {
        stream.extend(hj212_proto::encode::frame(segment.as_bytes()).unwrap());
    }
    // A chunk the framer rejects (the length field is not a number) still holds a password.
    stream.extend_from_slice(format!("##00x1QN=1;PW={};MN=M1;CP=&&&&0000\r\n", secrets[5]).as_bytes());
    let masked: String = decode(&stream, &[]).iter().map(Value::to_string).collect::<Vec<_>>().join("\n");
    for secret in secrets {
        assert!(!masked.contains(secret), "{secret} leaked: {masked}");
    }
    assert!(masked.contains("***"), "{masked}");
    let shown: String =
        decode(&stream, &["--show-passwords"]).iter().map(Value::to_string).collect::<Vec<_>>().join("\n");
    for secret in &secrets[..3] {
        assert!(shown.contains(secret), "--show-passwords shows {secret}: {shown}");
    }
}
