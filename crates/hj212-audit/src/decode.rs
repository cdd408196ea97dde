//! `hj212-audit decode`: frames a capture and prints what each frame says, or why bytes were rejected.

use std::io::{self, Read, Write};

use hj212_proto::framer::{self, FrameLayout, FramerConfig, Scan, Tail};
use hj212_proto::model::{SystemType, factor_for_code};
use hj212_proto::{Notes, Packet, SegmentText, crc};
use serde_json::{Map, Value, json};

use crate::mask::{mask_password_bytes, mask_passwords};

const READ_CHUNK: usize = 64 * 1024;

pub struct Options {
    pub show_passwords: bool,
    pub max_data_len: usize,
    /// An HJ 212-2025 SM4 key: frames whose CRC fails are tried decrypted with it.
    pub key: Option<hj212_proto::encryption::Sm4Key>,
}

/// The data segment decrypted with `key`, when that makes the CRC hold (the raw ciphertext
/// or its printed `{0x..}` / hex text forms).
fn decrypted(data: &[u8], declared: u16, key: &hj212_proto::encryption::Sm4Key) -> Option<Vec<u8>> {
    use hj212_proto::encryption::{ciphertext, decrypt_segment};
    let plain = decrypt_segment(data, &ciphertext(data, true)?, key)?;
    crc::identify(&plain, declared).map(|_| plain)
}

/// Reads `input` to its end, writing one JSON line per frame or rejected chunk.
pub fn decode_stream(mut input: impl Read, out: &mut impl Write, options: &Options) -> io::Result<()> {
    // The CRC gate is off: an auditor wants to see frames with bad CRCs, not lose them.
    let config = FramerConfig { max_data_len: options.max_data_len, crc_gate: false };
    let mut buf = Vec::new();
    let mut offset = 0usize;
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut eof = false;
    loop {
        let consumed = match framer::scan(&buf, &config, eof) {
            Scan::Incomplete if eof => return Ok(()),
            Scan::Incomplete => {
                let n = input.read(&mut chunk)?;
                eof = n == 0;
                buf.extend_from_slice(&chunk[..n]);
                continue;
            }
            Scan::Skip(n) => n,
            Scan::Frame(layout) => {
                writeln!(out, "{}", frame_json(offset, &buf[..layout.len], &layout, options))?;
                layout.len
            }
            Scan::Rejected { error, consumed } => {
                let bytes = String::from_utf8_lossy(&buf[..consumed]);
                let line = json!({
                    "offset": offset,
                    "length": consumed,
                    "rejected": error.kind(),
                    "error": error.to_string(),
                    "bytes": if options.show_passwords { bytes } else { mask_passwords(&bytes).into_owned().into() },
                });
                writeln!(out, "{line}")?;
                consumed
            }
        };
        buf.drain(..consumed);
        offset += consumed;
    }
}

fn frame_json(offset: usize, frame: &[u8], layout: &FrameLayout, options: &Options) -> Value {
    let wire = layout.data(frame);
    let mut dialect = crc::identify(wire, layout.declared_crc);
    let plain = match (&options.key, dialect) {
        (Some(key), None) => decrypted(wire, layout.declared_crc, key),
        _ => None,
    };
    let encrypted = plain.is_some();
    let data = plain.as_deref().unwrap_or(wire);
    if encrypted {
        dialect = crc::identify(data, layout.declared_crc);
    }
    let mut obj = Map::new();
    obj.insert("offset".into(), json!(offset));
    obj.insert("length".into(), json!(layout.len));
    obj.insert("data_len".into(), json!(layout.data_len));
    obj.insert("tail".into(), json!(tail_name(layout.tail)));
    obj.insert(
        "crc".into(),
        json!({
            "declared": format!("{:04X}", layout.declared_crc),
            "hj212": format!("{:04X}", crc::hj212(data)),
            "ok": dialect.is_some(),
            "dialect": dialect.map(crc::CrcDialect::as_str),
        }),
    );
    // Whether the CP was SM4-encrypted (known only when a key was given and it decrypted).
    obj.insert("encrypted".into(), json!(encrypted));
    let mut notes = Notes::of_layout(layout);
    // Masked before parsing, so no field (PW, an unknown `pw`, a CP item) can show it.
    let data = if options.show_passwords { data.into() } else { mask_password_bytes(data) };
    let text = SegmentText::new(&data);
    match Packet::parse_text(&text) {
        Ok(packet) => {
            notes.extend(packet.notes);
            packet_fields(&mut obj, &packet);
        }
        Err(error) => {
            obj.insert("parse_error".into(), json!({ "kind": error.kind(), "message": error.to_string() }));
        }
    }
    obj.insert("notes".into(), json!(notes.iter().map(hj212_proto::Note::as_str).collect::<Vec<_>>()));
    Value::Object(obj)
}

fn packet_fields(obj: &mut Map<String, Value>, packet: &Packet<'_>) {
    let header = json!({
        "QN": packet.qn, "ST": packet.st, "CN": packet.cn.code(), "PW": packet.pw, "MN": packet.mn,
        "Flag": packet.flag.map(|f| f.0), "PNUM": packet.pnum, "PNO": packet.pno, "RF": packet.rf,
    });
    obj.insert("header".into(), header);
    if !packet.extra_header.is_empty() {
        let extra: Map<String, Value> = packet.extra_header.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
        obj.insert("extra_header".into(), Value::Object(extra));
    }
    obj.insert("cn_name".into(), json!(packet.cn.description()));
    obj.insert("st_name".into(), json!(packet.system_type().description()));
    obj.insert("version".into(), json!(packet.version().as_str()));
    obj.insert("ack".into(), json!(packet.wants_ack()));
    obj.insert("split".into(), json!(packet.is_split()));
    obj.insert("qn_time".into(), time_json(packet.qn_time()));
    obj.insert("data_time".into(), time_json(packet.data_time_parsed()));
    let plain: Vec<Value> =
        packet.items.iter().filter(|i| i.code.is_none()).map(|i| json!({ "key": i.key, "value": i.value })).collect();
    obj.insert("items".into(), json!(plain));
    obj.insert("factors".into(), factors_json(packet));
    if packet.system_type() == SystemType::Other && packet.st.is_some() {
        obj.insert("st_unknown".into(), json!(true));
    }
}

fn factors_json(packet: &Packet<'_>) -> Value {
    let medium = packet.medium();
    packet
        .factors()
        .iter()
        .map(|factor| {
            let known = factor_for_code(factor.code, medium);
            let fields: Vec<Value> = factor.items().map(|i| json!({ "kind": i.suffix(), "value": i.value })).collect();
            json!({
                "code": factor.code,
                "code_2017": known.map(|f| f.code),
                "name": known.map(|f| f.name),
                "unit": known.map(|f| f.unit),
                "fields": fields,
            })
        })
        .collect()
}

fn time_json(time: Option<Result<hj212_proto::time::BeijingTime, hj212_proto::time::TimeError>>) -> Value {
    match time {
        None => Value::Null,
        Some(Ok(t)) => json!(t.to_rfc3339()),
        Some(Err(e)) => json!({ "error": e.to_string() }),
    }
}

fn tail_name(tail: Tail) -> &'static str {
    match tail {
        Tail::CrLf => "crlf",
        Tail::Lf => "lf",
        Tail::CrCrLf => "crcrlf",
    }
}
