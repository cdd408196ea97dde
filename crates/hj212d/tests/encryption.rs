//! HJ 212-2025 SM4 end to end: the standard's own encrypted frames (App. A.2 examples 2 and 4,
//! and a derived 2011 frame) sent as raw bytes in arbitrary chunkings, wrong keys, plaintext
//! from sites that require or merely allow encryption, key rollover, the printed text form,
//! and the 9015 heartbeat.

mod common;

use std::time::Duration;

use common::{MN, TestDaemon};
use hj212_config::Encryption;
use hj212_proto::crc;

const EXAMPLE_2: &str = "QN=20240520210700000;ST=31;CN=2051;PW=123456;MN=010000A8900016F000169DC0;Flag=9;CP=&&DataTime=20240520210600;a01011-Min=1.35,a01011-Avg=1.35,a01011-Max=1.35,a01011-Flag=N;a01012-Min=9.3,a01012-Avg=9.3,a01012-Max=9.3,a01012-Flag=N;a01014-Min=3.20,a01014-Avg=3.211,a01014-Max=3.212,a01014-Flag=N&&";
const EXAMPLE_2_CIPHER: &str = "E43E159ACFAB242CB53155FB8B9281A1A242577ABFAED881BE88B72D69FC55ED1A80119FAAC8B3CD33D285CC76F57F2CA7F88B9573C6647E0F07E24609BD6B63EB20C5B9784F28E71D2F4994FF61D9E1C2B3075592B4D1E09C4D8BB27BE97B559E3DA6643781A6F477769DEEB009B10DFFF3426922725D607DC4480F0CAC5F70DB2587B124BCB281592721D6E4BC180A97E5E111499CBE822E31C8D7761553543AA24207C290997BBDE64F9266BC5F529A172E381C1D898CA1A0D771A914A7B2D7467C70B94F1D4A7B0350A48DBF8B41";
const EXAMPLE_4: &str = "QN=20240520210700000;ST=31;CN=2051;PW=123456;MN=010000A8900016F000169DC0;Flag=9;CP=&&DataTime=20240520210600;a01011-Min=1.35,a01011-Avg=1.35,a01011-Max=1.35,a01011-Flag=N;a01014-Min=3.20,a01014-Avg=3.20,a01014-Max=3.20,a01014-Flag=N&&";
const EXAMPLE_4_CIPHER: &str = "E43E159ACFAB242CB53155FB8B9281A1A242577ABFAED881BE88B72D69FC55ED1A80119FAAC8B3CD33D285CC76F57F2CA7F88B9573C6647E0F07E24609BD6B63EB20C5B9784F28E71D2F4994FF61D9E13B391A1D2A454B65388D5D9435DBF021528C7BF9755EF16518710C0CAC0ADEF9C5156CD0A5A17674AC0ED2ABC40023E9EF70128554B82438E91ADCE98A0D03A4";
/// docs/hj212-2025.md §4, derived with the same rules: 5 blocks and the clear tail `g=N`.
const REALTIME: &str = "QN=20260101120000000;ST=31;CN=2011;PW=123456;MN=010000A8900016F000169DC0;Flag=9;CP=&&DataTime=20260101120000;a21026-Rtd=35.2,a21026-Flag=N;a21002-Rtd=48.1,a21002-Flag=N&&";
const REALTIME_CIPHER: &str = "7D95DE3BB545773F93C0FCC77F77259A820F7D95125E7C6553C1D4E3A1EC40E4F651F86040B157B6241FCDFF4D1A4CCAF446ADCA4BA24B770257C52D2403C4FE0C21B932DDFD399191B436F04C217560";

fn hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

/// A frame as a 2025 logger sends it: the clear header, the ciphertext bytes, the clear
/// tail, the CRC of the plaintext, and the length of what is sent.
fn wire(plain: &str, ciphertext: &[u8], tail: &str) -> Vec<u8> {
    let header = &plain[..plain.find("CP=&&").unwrap() + 5];
    let data = [header.as_bytes(), ciphertext, tail.as_bytes(), b"&&"].concat();
    let crc = crc::format_field(crc::hj212(plain.as_bytes()));
    [format!("##{:04}", data.len()).as_bytes(), &data[..], &crc[..], b"\r\n"].concat()
}

fn official_frames() -> Vec<Vec<u8>> {
    vec![
        wire(EXAMPLE_2, &hex(EXAMPLE_2_CIPHER), ""),
        wire(EXAMPLE_4, &hex(EXAMPLE_4_CIPHER), "g=N"),
        wire(REALTIME, &hex(REALTIME_CIPHER), "g=N"),
    ]
}

/// A daemon whose site (MN of the examples) has `encryption` and the given key files.
async fn start_daemon(encryption: Encryption, key: &str, previous: Option<&str>, as_text: bool) -> TestDaemon {
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("current.key");
    std::fs::write(&key_file, key).unwrap();
    let previous_file = previous.map(|p| {
        let path = keys.path().join("previous.key");
        std::fs::write(&path, p).unwrap();
        path
    });
    let daemon = TestDaemon::start_with(move |config| {
        let site = &mut config.sites[0];
        site.encryption = encryption;
        site.key_file = Some(key_file);
        site.previous_key_file = previous_file;
        site.ciphertext_as_text = as_text;
        config.time_sync.enabled = false;
    })
    .await;
    drop(keys); // read at start
    daemon
}

/// Sends `bytes` in pieces of 1 to 13 bytes, as a slow or fragmenting link would.
async fn send_chunked(client: &mut common::Client, bytes: &[u8]) {
    use tokio::io::AsyncWriteExt;
    let mut at = 0;
    for size in (1..=13).cycle() {
        if at >= bytes.len() {
            break;
        }
        let end = (at + size).min(bytes.len());
        client.stream.write_all(&bytes[at..end]).await.unwrap();
        client.stream.flush().await.unwrap();
        at = end;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standards_encrypted_frames_are_decrypted_acknowledged_and_stored() {
    let daemon = start_daemon(Encryption::Required, "0000000000000000", None, false).await;
    let mut client = daemon.client().await;
    for frame in official_frames() {
        send_chunked(&mut client, &frame).await;
        let reply = client.reply().await;
        assert_eq!((reply.cn, reply.flag, reply.st.as_deref()), (9014, Some(8), Some("91")), "2025 reply");
    }
    let metrics = daemon.http("/metrics").1;
    assert_eq!(common::metric(&metrics, r#"hj212_ingest_encryption_total{cp="encrypted"}"#), 3);
    let dir = daemon.stop().await;
    let archived = common::archived(dir.path());
    let accepted: Vec<_> = archived.iter().filter(|(verdict, _, _)| verdict == "accepted").collect();
    assert_eq!(accepted.len(), 3);
    for (_, marks, text) in &accepted {
        assert_ne!(marks & hj212_archive::flags::DECRYPTED, 0, "marked decrypted");
        assert!(text.contains(";CP=&&DataTime="), "the archive holds the plaintext frame: {text}");
    }
    let stored = common::stored(dir.path(), MN);
    let factors: Vec<(u16, &str, Option<&str>)> =
        stored.iter().map(|r| (r.cn, r.factor.as_str(), r.avg.as_deref().or(r.rtd.as_deref()))).collect();
    assert!(factors.contains(&(2051, "a01014", Some("3.211"))), "{factors:?}");
    assert!(factors.contains(&(2011, "a21026", Some("35.2"))), "{factors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_decrypt_or_crc_and_the_previous_key_still_works() {
    let daemon = start_daemon(Encryption::Required, "1111111111111111", None, false).await;
    let mut client = daemon.client().await;
    client.send(&official_frames()[0]).await;
    assert!(client.reply_within(Duration::from_millis(500)).await.is_none(), "nothing is acknowledged");
    let metrics = daemon.http("/metrics").1;
    assert_eq!(common::metric(&metrics, r#"hj212_ingest_frames_total{outcome="decrypt_or_crc"}"#), 1);
    assert_eq!(common::metric(&metrics, &format!(r#"hj212_site_decrypt_failures_total{{mn="{MN}"}}"#)), 1);
    assert!(!metrics.contains("0000000000000000") && !metrics.contains("1111111111111111"), "keys never shown");
    let dir = daemon.stop().await;
    let verdicts: Vec<String> = common::archived(dir.path()).into_iter().map(|(v, _, _)| v).collect();
    assert_eq!(verdicts, ["decrypt_or_crc"], "kept as evidence, never as data");
    assert!(common::stored(dir.path(), MN).is_empty());

    // During a rollover the logger may still use the previous key.
    let daemon = start_daemon(Encryption::Required, "1111111111111111", Some("0000000000000000"), false).await;
    let mut client = daemon.client().await;
    client.send(&official_frames()[1]).await;
    assert_eq!(client.reply().await.cn, 9014);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_is_refused_where_encryption_is_required_and_counted_where_optional() {
    let plain = common::frame(EXAMPLE_2);
    let heartbeat = common::frame(&format!("QN=20260101120000000;ST=31;CN=9015;PW=123456;MN={MN};Flag=9;CP=&&&&"));
    let required = start_daemon(Encryption::Required, "0000000000000000", None, false).await;
    let mut client = required.client().await;
    client.send(&plain).await;
    assert!(client.reply_within(Duration::from_millis(500)).await.is_none());
    // Heartbeats are not encrypted (not a data command) and answer 9013 with the same QN.
    client.send(&heartbeat).await;
    let reply = client.reply().await;
    assert_eq!((reply.cn, reply.qn.as_deref(), reply.cp.as_str()), (9013, Some("20260101120000000"), ""), "empty CP");
    // CN 1001: the logger's hardware identity, kept per MN (not a data command: plaintext).
    let identity = "DataLoggerId=DL-0001;CPUID=0A1B2C3D;MAC1=00-11-22-33-44-55";
    client
        .send(&common::frame(&format!("QN=20260101120000001;ST=91;CN=1001;PW=123456;MN={MN};Flag=9;CP=&&{identity}&&")))
        .await;
    assert_eq!(client.reply().await.cn, 9013);
    let metrics = required.http("/metrics").1;
    assert_eq!(common::metric(&metrics, r#"hj212_ingest_frames_total{outcome="not_encrypted"}"#), 1);
    assert!(required.http("/api/v1/sites").1.contains(identity), "identity shown per site");
    let sites = required.http("/api/v1/sites").1;
    assert!(sites.contains(r#""online":true"#), "a heartbeat keeps the site online: {sites}");
    required.stop().await;

    let optional = start_daemon(Encryption::Optional, "0000000000000000", None, false).await;
    let mut client = optional.client().await;
    client.send(&plain).await;
    assert_eq!(client.reply().await.cn, 9014);
    client.send(&official_frames()[2]).await;
    assert_eq!(client.reply().await.cn, 9014);
    let metrics = optional.http("/metrics").1;
    assert_eq!(common::metric(&metrics, r#"hj212_ingest_encryption_total{cp="plaintext"}"#), 1);
    assert_eq!(common::metric(&metrics, r#"hj212_ingest_encryption_total{cp="encrypted"}"#), 1);
    optional.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printed_text_form_is_accepted_when_the_site_allows_it() {
    let printed: Vec<String> = hex(EXAMPLE_4_CIPHER).iter().map(|b| format!("0x{b:02X}")).collect();
    let text = format!("{{{}}}", printed.join(","));
    let frame = wire(EXAMPLE_4, text.as_bytes(), "g=N");
    let strict = start_daemon(Encryption::Required, "0000000000000000", None, false).await;
    let mut client = strict.client().await;
    client.send(&frame).await;
    assert!(client.reply_within(Duration::from_millis(500)).await.is_none(), "text form off by default");
    strict.stop().await;
    let lenient = start_daemon(Encryption::Required, "0000000000000000", None, true).await;
    let mut client = lenient.client().await;
    client.send(&frame).await;
    assert_eq!(client.reply().await.cn, 9014);
    let dir = lenient.stop().await;
    assert!(common::stored(dir.path(), MN).iter().any(|r| r.factor == "a01011"));
}

/// Reads whole frames from the daemon (raw bytes: a 1014's CP is encrypted, not text).
async fn read_frames(client: &mut common::Client, n: usize) -> Vec<Vec<u8>> {
    use hj212_proto::framer::{FramerConfig, Scan, scan};
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    while frames.len() < n {
        match scan(&buf, &FramerConfig::default(), false) {
            Scan::Frame(layout) => frames.push(buf.drain(..layout.len).collect()),
            Scan::Skip(k) | Scan::Rejected { consumed: k, .. } => drop(buf.drain(..k)),
            Scan::Incomplete => {
                let mut chunk = [0u8; 4096];
                let read = tokio::time::timeout(Duration::from_secs(5), client.stream.read(&mut chunk)).await;
                let n = read.expect("the daemon answers within 5 s").unwrap();
                assert!(n > 0, "connection closed");
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
    frames
}

fn cn_of(frame: &[u8]) -> String {
    let text = String::from_utf8_lossy(frame);
    text.split(';').find_map(|f| f.strip_prefix("CN=")).unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_in_the_middle_loses_no_frame() {
    use hj212_proto::encryption::{Sm4Key, decrypt_cp, encrypt_frame};
    let dir = tempfile::tempdir().unwrap();
    let (key_file, token_file) = (dir.path().join("site.key"), dir.path().join("admin.token"));
    std::fs::write(&key_file, "0000000000000000").unwrap();
    std::fs::write(&token_file, "rotation-test-token-0123456789").unwrap();
    let daemon = TestDaemon::start_with(move |config| {
        config.sites[0].encryption = Encryption::Required;
        config.sites[0].key_file = Some(key_file);
        config.server.admin_token_file = Some(token_file);
        config.time_sync.enabled = false;
    })
    .await;
    let old = Sm4Key::parse("0000000000000000").unwrap();
    let realtime = |i: u32, key: &Sm4Key| {
        let plain = common::frame(&format!(
            "QN=20260101120000{i:03};ST=31;CN=2011;PW=123456;MN={MN};Flag=9;CP=&&DataTime={};a21026-Rtd={i}.5,a21026-Flag=N&&",
            common::beijing_in(-i64::from(i))
        ));
        encrypt_frame(&plain, key).unwrap()
    };
    let mut client = daemon.client().await;
    client.send(&realtime(1, &old)).await;
    assert_eq!(cn_of(&read_frames(&mut client, 1).await[0]), "9014");

    // An operator schedules a rotation; the next frame brings the new key back (9014, then 1014).
    let (status, body) = post_rotation(daemon.running.http_addr, "rotation-test-token-0123456789");
    assert_eq!(status, 202, "{body}");
    let scheduled: serde_json::Value = serde_json::from_str(&body).unwrap();
    client.send(&realtime(2, &old)).await;
    let frames = read_frames(&mut client, 2).await;
    assert_eq!((cn_of(&frames[0]), cn_of(&frames[1])), ("9014".to_owned(), "1014".to_owned()));
    // The 1014's CP is encrypted with the current key; its CRC covers the plaintext.
    let command = &frames[1];
    let mut data = command[6..command.len() - 6].to_vec();
    assert!(decrypt_cp(&mut data, &old));
    assert_eq!(crc::format_field(crc::hj212(&data)), command[command.len() - 6..command.len() - 2]);
    let text = String::from_utf8(data).unwrap();
    let field = |name: &str| text.split([';', '&']).find_map(|f| f.strip_prefix(name)).unwrap().to_owned();
    let (qn, created, new_key) = (field("QN="), field("SKCreateTime="), field("NewSK="));
    assert_eq!(created, scheduled["sk_create_time"].as_str().unwrap());
    let new = Sm4Key::parse(&new_key).unwrap();

    // The logger is still on the old key for a moment, then confirms (9011, 9012) and switches.
    client.send(&realtime(3, &old)).await;
    assert_eq!(cn_of(&read_frames(&mut client, 1).await[0]), "9014");
    for (cn, cp) in [("9011", "QnRtn=1"), ("9012", "ExeRtn=1")] {
        client.send(&common::frame(&format!("QN={qn};ST=91;CN={cn};PW=123456;MN={MN};Flag=8;CP=&&{cp}&&"))).await;
    }
    client.send(&realtime(4, &new)).await;
    client.send(&realtime(5, &old)).await; // a straggler under the previous key
    let acks = read_frames(&mut client, 2).await;
    assert!(acks.iter().all(|f| cn_of(f) == "9014"), "no frame lost across the rotation");
    let metrics = daemon.http("/metrics").1;
    assert_eq!(common::metric(&metrics, r#"hj212_ingest_frames_total{outcome="decrypt_or_crc"}"#), 0);
    let dir = daemon.stop().await;
    let events = String::from_utf8_lossy(&std::fs::read(dir.path().join("keys").join(format!("{MN}.json"))).unwrap())
        .into_owned();
    assert!(events.contains(&new_key), "the daemon keeps the new key for its next start");
    let archived = common::archived(dir.path());
    assert_eq!(archived.iter().filter(|(v, _, _)| v == "accepted").count(), 7, "5 data frames, 9011, 9012");
    let mut follower = hj212_archive::Follower::new(&dir.path().join("archive"), 1);
    let texts: Vec<String> = follower
        .read(u64::MAX, 10_000)
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == hj212_archive::Kind::Event)
        .map(|r| String::from_utf8_lossy(&r.data).into_owned())
        .collect();
    assert!(texts.iter().any(|t| t.contains("rotation scheduled")), "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("rotated")), "{texts:?}");
    assert!(texts.iter().all(|t| !t.contains(&new_key)), "events name a fingerprint, never the key");
}

fn post_rotation(addr: std::net::SocketAddr, token: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /api/v1/sites/{MN}/key HTTP/1.0\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (response[9..12].parse().unwrap(), body)
}

/// HJ 212-2025 §6.4: a history request to an encrypting site goes out with its CP under the
/// site's key (the CRC of the plaintext).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_to_an_encrypting_site_are_encrypted_with_its_key() {
    use hj212_proto::codec::{FrameEvent, Hj212Codec};
    use tokio::io::AsyncReadExt;
    use tokio_util::codec::Decoder;

    const KEY: &str = "0000000000000000";
    let daemon = start_daemon(Encryption::Required, KEY, None, false).await;
    let mut client = daemon.client().await;
    send_chunked(&mut client, &wire(REALTIME, &hex(REALTIME_CIPHER), "g=N")).await;
    assert_eq!(client.reply().await.cn, 9014);
    let hub = &daemon.running.shared.commands;
    let cp = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let range: std::collections::BTreeMap<String, String> =
        cp(&[("BeginTime", "20260101110000"), ("EndTime", "20260101110000")]);
    let spec = hj212_commands::check("2061", &range, false).unwrap();
    hub.submit(MN, spec, hj212_commands::Origin::Api, None, hj212_commands::now_ms()).unwrap();

    let mut codec = Hj212Codec::default();
    let mut buf = bytes::BytesMut::new();
    let request = loop {
        match codec.decode(&mut buf).unwrap() {
            Some(FrameEvent::Frame(frame)) => break frame,
            Some(FrameEvent::Rejected { .. }) => panic!("the command is one frame"),
            None => {
                let read = tokio::time::timeout(Duration::from_secs(5), client.stream.read_buf(&mut buf)).await;
                assert!(matches!(read, Ok(Ok(n)) if n > 0), "the command within 5 s");
            }
        }
    };
    assert!(!request.data().windows(9).any(|w| w == b"BeginTime"), "the CP is not in clear text");
    let key = hj212_proto::encryption::Sm4Key::parse(KEY).unwrap();
    let mut plain = request.data().to_vec();
    assert!(hj212_proto::encryption::decrypt_cp(&mut plain, &key));
    let plain = String::from_utf8_lossy(&plain);
    assert!(
        plain.contains("CN=2061;") && plain.contains("CP=&&BeginTime=20260101110000;EndTime=20260101110000"),
        "{plain}"
    );
    assert_eq!(crc::hj212(plain.as_bytes()), request.layout.declared_crc, "the CRC is the plaintext's");
    daemon.stop().await;
}
