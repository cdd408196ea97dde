//! HJ 212-2025 encrypted frames (docs/hj212-2025.md §1): the CP of data commands arrives SM4
//! encrypted and the CRC covers the plaintext, so a frame whose CRC fails may be one to
//! decrypt with its site's keys. The header before `CP=&&` is clear text, so the MN (and thus
//! the site and its keys) can be read without touching the ciphertext.

use std::collections::HashMap;

use bytes::Bytes;
use hj212_config::Encryption;
use hj212_proto::codec::Frame;
use hj212_proto::crc::{self, CrcDialect};
use hj212_proto::encryption::{ciphertext, cp_region, decrypt_segment, is_encrypted_cn};
use hj212_proto::framer::{self, FramerConfig, Scan};

use crate::keys::{KeyRole, KeyStore};
use crate::sites::SiteEntry;

/// What to do with a frame before parsing it.
pub(crate) enum Opened {
    /// Its CRC holds as it came (plaintext), or no site key can apply: go on as usual, with
    /// the CRC dialect it matched (if any).
    AsIs(Option<CrcDialect>),
    /// The CRC holds after decrypting with one of the site's keys: the plaintext frame, which
    /// key it was, and the dialect.
    Decrypted(Frame, KeyRole, CrcDialect),
    /// Encrypted for a site with keys, and no key gives a valid CRC.
    KeyOrCrcFailed { mn: String },
}

/// A field of the clear-text header (the part before `CP=&&`).
fn header_field<'a>(data: &'a [u8], name: &str) -> Option<&'a str> {
    let header = &data[..cp_region(data)?.start];
    let header = std::str::from_utf8(header).ok()?;
    header.split([';', ',']).find_map(|field| field.strip_prefix(name)?.strip_prefix('='))
}

pub(crate) fn open_frame(frame: &Frame, sites: &HashMap<String, SiteEntry>, keys: &KeyStore) -> Opened {
    let data = frame.data();
    let declared = frame.layout.declared_crc;
    let plaintext_crc = crc::identify(data, declared);
    // The common case, per frame: no site encrypts, nothing more to look at.
    if !keys.any() {
        return Opened::AsIs(plaintext_crc);
    }
    let site = header_field(data, "MN").and_then(|mn| sites.get(mn));
    let encrypted_cn = header_field(data, "CN").and_then(|cn| cn.parse().ok()).is_some_and(is_encrypted_cn);
    // A data command of an encrypting site is tried with its keys first: a ciphertext's CRC
    // can match the declared one by chance (3 in 65,536), which must not decide.
    let Some(site) = site.filter(|s| s.encryption != Encryption::Off && (encrypted_cn || plaintext_crc.is_none()))
    else {
        return Opened::AsIs(plaintext_crc);
    };
    let candidates = keys.candidates(&site.mn);
    let Some(ciphertext) = ciphertext(data, site.config.ciphertext_as_text).filter(|_| !candidates.is_empty()) else {
        return Opened::AsIs(plaintext_crc);
    };
    for (key, role) in &candidates {
        let Some(plain) = decrypt_segment(data, &ciphertext, key) else { continue };
        let Ok(dialect) = crc::verify(&plain, declared, site.crc) else { continue };
        // The frame as it would have been sent in clear: same CRC; the length changes only
        // when the ciphertext came as text.
        let mut bytes = Vec::with_capacity(plain.len() + 12);
        bytes.extend_from_slice(format!("##{:04}", plain.len()).as_bytes());
        bytes.extend_from_slice(&plain);
        // The CRC field and tail, as received ("##" and 4 digits come before the data).
        bytes.extend_from_slice(&frame.bytes[6 + frame.layout.data_len..frame.layout.len]);
        if let Scan::Frame(layout) = framer::scan(&bytes, &FramerConfig::default(), true) {
            return Opened::Decrypted(Frame { bytes: Bytes::from(bytes), layout }, *role, dialect);
        }
    }
    if plaintext_crc.is_some() {
        // Sent in clear (an `optional` site, or a `required` one that decide refuses).
        return Opened::AsIs(plaintext_crc);
    }
    Opened::KeyOrCrcFailed { mn: site.mn.clone() }
}

#[cfg(test)]
mod tests {
    use hj212_proto::encryption::{Sm4Key, encrypt_frame};

    use super::*;
    use crate::sites::Registry;

    const MN: &str = "010000A8900016F000169DC0";

    fn frame(bytes: Vec<u8>) -> Frame {
        let Scan::Frame(layout) = framer::scan(&bytes, &FramerConfig::default(), true) else { panic!("a frame") };
        Frame { bytes: Bytes::from(bytes), layout }
    }

    fn setup(encryption: &str, key: &str) -> (tempfile::TempDir, Registry, KeyStore) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("site.key"), key).unwrap();
        let text = format!("mn = \"{MN}\"\npassword = \"123456\"\nencryption = \"{encryption}\"");
        let mut site: hj212_config::Site = toml::from_str(&text).unwrap();
        site.key_file = Some(dir.path().join("site.key"));
        let keys = KeyStore::load(dir.path().join("keys"), std::slice::from_ref(&site));
        (dir, Registry::new(&[site]), keys)
    }

    fn plain(i: u32) -> Vec<u8> {
        let segment = format!(
            "QN=20260101120000{:03};ST=31;CN=2011;PW=123456;MN={MN};Flag=9;CP=&&DataTime=20260101120000;a21026-Rtd={i}.5,a21026-Flag=N&&",
            i % 1000
        );
        hj212_proto::encode::frame(segment.as_bytes()).unwrap()
    }

    #[test]
    fn a_ciphertext_whose_crc_matches_by_chance_is_still_decrypted() {
        let (_dir, registry, keys) = setup("required", "0000000000000000");
        let key = Sm4Key::parse("0000000000000000").unwrap();
        let sites = registry.snapshot();
        // About 3 in 65,536 ciphertexts pass the CRC as they are; find one.
        let collision = (0..1_000_000)
            .map(|i| encrypt_frame(&plain(i), &key).unwrap())
            .find(|wire| {
                let f = frame(wire.clone());
                crc::identify(f.data(), f.layout.declared_crc).is_some()
            })
            .expect("a chance CRC match within a million frames");
        assert!(matches!(open_frame(&frame(collision), &sites, &keys), Opened::Decrypted(_, KeyRole::Current, _)));
    }

    #[test]
    fn plaintext_passes_as_is_and_a_wrong_key_fails() {
        let (_dir, registry, keys) = setup("optional", "0000000000000000");
        let sites = registry.snapshot();
        assert!(matches!(open_frame(&frame(plain(1)), &sites, &keys), Opened::AsIs(Some(_))));
        let other = Sm4Key::parse("1111111111111111").unwrap();
        let wrong = encrypt_frame(&plain(2), &other).unwrap();
        assert!(matches!(open_frame(&frame(wrong), &sites, &keys), Opened::KeyOrCrcFailed { .. }));
    }
}
