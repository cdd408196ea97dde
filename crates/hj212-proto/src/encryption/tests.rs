use proptest::prelude::*;

use super::*;
use crate::crc;

const KEY: &str = "0000000000000000";

/// App. A.2 example 2: a 208-byte region, 13 whole blocks.
const EXAMPLE_2: &str = "QN=20240520210700000;ST=31;CN=2051;PW=123456;MN=010000A8900016F000169DC0;Flag=9;CP=&&DataTime=20240520210600;a01011-Min=1.35,a01011-Avg=1.35,a01011-Max=1.35,a01011-Flag=N;a01012-Min=9.3,a01012-Avg=9.3,a01012-Max=9.3,a01012-Flag=N;a01014-Min=3.20,a01014-Avg=3.211,a01014-Max=3.212,a01014-Flag=N&&";
const EXAMPLE_2_CIPHER: &str = "E43E159ACFAB242CB53155FB8B9281A1A242577ABFAED881BE88B72D69FC55ED1A80119FAAC8B3CD33D285CC76F57F2CA7F88B9573C6647E0F07E24609BD6B63EB20C5B9784F28E71D2F4994FF61D9E1C2B3075592B4D1E09C4D8BB27BE97B559E3DA6643781A6F477769DEEB009B10DFFF3426922725D607DC4480F0CAC5F70DB2587B124BCB281592721D6E4BC180A97E5E111499CBE822E31C8D7761553543AA24207C290997BBDE64F9266BC5F529A172E381C1D898CA1A0D771A914A7B2D7467C70B94F1D4A7B0350A48DBF8B41";
/// App. A.2 example 4: a 147-byte region, 9 blocks and the clear tail `g=N`.
const EXAMPLE_4: &str = "QN=20240520210700000;ST=31;CN=2051;PW=123456;MN=010000A8900016F000169DC0;Flag=9;CP=&&DataTime=20240520210600;a01011-Min=1.35,a01011-Avg=1.35,a01011-Max=1.35,a01011-Flag=N;a01014-Min=3.20,a01014-Avg=3.20,a01014-Max=3.20,a01014-Flag=N&&";
const EXAMPLE_4_CIPHER: &str = "E43E159ACFAB242CB53155FB8B9281A1A242577ABFAED881BE88B72D69FC55ED1A80119FAAC8B3CD33D285CC76F57F2CA7F88B9573C6647E0F07E24609BD6B63EB20C5B9784F28E71D2F4994FF61D9E13B391A1D2A454B65388D5D9435DBF021528C7BF9755EF16518710C0CAC0ADEF9C5156CD0A5A17674AC0ED2ABC40023E9EF70128554B82438E91ADCE98A0D03A4";

fn hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

fn key() -> Sm4Key {
    Sm4Key::parse(KEY).unwrap()
}

#[test]
fn gb_t_32907_block_vector() {
    let key = Sm4Key::parse("0123456789abcdeffedcba9876543210").unwrap();
    let mut block = *b"\x01\x23\x45\x67\x89\xab\xcd\xef\xfe\xdc\xba\x98\x76\x54\x32\x10";
    key.cipher().encrypt_block(GenericArray::from_mut_slice(&mut block));
    assert_eq!(block.to_vec(), hex("681EDF34D206965E86B3E94F536E4246"));
}

#[test]
fn official_examples_encrypt_to_the_printed_ciphertext_with_an_unchanged_crc() {
    for (plain, cipher, tail, crc) in
        [(EXAMPLE_2, EXAMPLE_2_CIPHER, "", 0x2200), (EXAMPLE_4, EXAMPLE_4_CIPHER, "g=N", 0xB541)]
    {
        assert_eq!(crc::hj212(plain.as_bytes()), crc, "the CRC is over the plaintext");
        let mut data = plain.as_bytes().to_vec();
        assert!(encrypt_cp(&mut data, &key()));
        let region = cp_region(&data).unwrap();
        let mut expected = hex(cipher);
        expected.extend_from_slice(tail.as_bytes());
        assert_eq!(data[region].to_vec(), expected);
        assert_eq!(data.len(), plain.len(), "the length field does not change");
        assert!(decrypt_cp(&mut data, &key()));
        assert_eq!(data, plain.as_bytes());
    }
}

#[test]
fn the_standards_printed_text_form_and_hex_are_read_as_bytes() {
    let bytes = hex(EXAMPLE_4_CIPHER);
    let printed: Vec<String> = bytes.iter().map(|b| format!("0x{b:02X}")).collect();
    let text = format!("{{{}}}g=N", printed.join(","));
    let mut expected = bytes.clone();
    expected.extend_from_slice(b"g=N");
    assert_eq!(textual_ciphertext(text.as_bytes()), Some(expected));
    assert_eq!(textual_ciphertext(EXAMPLE_2_CIPHER.as_bytes()), Some(hex(EXAMPLE_2_CIPHER)));
    assert_eq!(textual_ciphertext(b"DataTime=20240520210600"), None, "plain text is not ciphertext");
    assert_eq!(textual_ciphertext(b"{0xZZ}"), None);
}

#[test]
fn keys_parse_from_16_characters_or_32_hex_digits_and_never_show() {
    assert_eq!(Sm4Key::parse("0000000000000000\n").unwrap(), Sm4Key::new([0x30; 16]));
    assert_eq!(Sm4Key::parse(&"30".repeat(16)).unwrap(), Sm4Key::new([0x30; 16]));
    assert_eq!(Sm4Key::parse("short").unwrap_err(), KeyError { len: 5 });
    assert!(Sm4Key::parse(&"zz".repeat(16)).is_err());
    assert_eq!(format!("{:?}", key()), "Sm4Key(***)");
    assert!(KeyError { len: 3 }.to_string().contains("found 3 characters"));
}

#[test]
fn which_commands_are_encrypted() {
    assert!(is_encrypted_cn(2011) && is_encrypted_cn(2051) && is_encrypted_cn(1014) && is_encrypted_cn(3020));
    assert!(!is_encrypted_cn(9015) && !is_encrypted_cn(1013) && !is_encrypted_cn(9014));
    assert_eq!(cp_region(b"QN=1;CN=9015;CP=&&&&"), Some(18..18));
    assert_eq!(cp_region(b"QN=1;CN=2011;CP=&&x"), None);
}

proptest! {
    #[test]
    fn encrypt_then_decrypt_returns_the_text(cp in "[ -~]{0,300}", key in proptest::array::uniform16(any::<u8>())) {
        let key = Sm4Key::new(key);
        let plain = format!("QN=20260101120000000;ST=31;CN=2011;PW=123456;MN=M;Flag=9;CP=&&{cp}&&").into_bytes();
        let mut wire = plain.clone();
        prop_assert!(encrypt_cp(&mut wire, &key));
        // Framed as a logger sends it: the CRC of the plaintext, the length of the bytes.
        let frame = [format!("##{:04}", wire.len()).into_bytes(), wire, crc::format_field(crc::hj212(&plain)).to_vec(), b"\r\n".to_vec()].concat();
        let crate::framer::Scan::Frame(layout) = crate::framer::scan(&frame, &crate::framer::FramerConfig::default(), true) else {
            return Err(TestCaseError::fail("not framed"));
        };
        let mut data = layout.data(&frame).to_vec();
        prop_assert!(decrypt_cp(&mut data, &key));
        prop_assert_eq!(crc::hj212(&data), layout.declared_crc);
        prop_assert_eq!(data, plain);
    }
}
