//! How sites appear to one upstream (`[[forward.rewrite]]`): another MN, another access
//! password, HJ 212-2025 data commands encrypted under the key that upstream gave the site.
//! Frames of sites without a rewrite go as archived, byte for byte.

use std::borrow::Cow;
use std::collections::HashMap;

use hj212_config::Forward;
use hj212_proto::encode;
use hj212_proto::encryption::{Sm4Key, encrypt_frame, is_encrypted_cn};

#[derive(Debug)]
struct SiteRewrite {
    mn: Option<String>,
    password: Option<String>,
    key: Option<Sm4Key>,
}

/// One target's rewrites, by site MN.
#[derive(Debug, Default)]
pub(crate) struct Rewrites {
    by_site: HashMap<String, SiteRewrite>,
    /// The upstream's MN back to the site's (history requests name the upstream's).
    site_of: HashMap<String, String>,
}

impl Rewrites {
    /// Reads the target's key files.
    ///
    /// # Errors
    /// A key file that cannot be read or holds no key (named; the key never is).
    pub(crate) fn load(target: &Forward) -> Result<Self, String> {
        let mut rewrites = Self::default();
        for rewrite in &target.rewrite {
            let key = match &rewrite.key_file {
                Some(path) => {
                    let text =
                        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                    Some(Sm4Key::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?)
                }
                None => None,
            };
            if let Some(upstream_mn) = &rewrite.upstream_mn {
                rewrites.site_of.insert(upstream_mn.clone(), rewrite.mn.clone());
            }
            let site =
                SiteRewrite { mn: rewrite.upstream_mn.clone(), password: rewrite.upstream_password.clone(), key };
            rewrites.by_site.insert(rewrite.mn.clone(), site);
        }
        Ok(rewrites)
    }

    /// The MN the upstream knows `mn` by.
    pub(crate) fn upstream_mn<'a>(&'a self, mn: &'a str) -> &'a str {
        self.by_site.get(mn).and_then(|s| s.mn.as_deref()).unwrap_or(mn)
    }

    /// The site an MN from the upstream names.
    pub(crate) fn site_mn<'a>(&'a self, upstream_mn: &'a str) -> &'a str {
        self.site_of.get(upstream_mn).map_or(upstream_mn, String::as_str)
    }

    /// `frame` (an archived frame of `mn`, plaintext) as this upstream takes it. `None` when
    /// it cannot be rewritten (no CP region to encrypt, a frame over the length limit).
    pub(crate) fn apply<'a>(&self, mn: &str, cn: u16, frame: &'a [u8]) -> Option<Cow<'a, [u8]>> {
        let Some(site) = self.by_site.get(mn) else { return Some(Cow::Borrowed(frame)) };
        let mut out = Cow::Borrowed(frame);
        if site.mn.is_some() || site.password.is_some() {
            // "##" + 4-digit length, the data segment, 4 CRC digits and CR LF.
            let data = frame.get(6..frame.len().checked_sub(6)?)?;
            let rewritten = rewrite_header(data, site.mn.as_deref(), site.password.as_deref());
            out = Cow::Owned(encode::frame(&rewritten).ok()?);
        }
        if let Some(key) = site.key.as_ref().filter(|_| is_encrypted_cn(cn)) {
            out = Cow::Owned(encrypt_frame(&out, key)?);
        }
        Some(out)
    }
}

/// `data` with the values of its header's MN and PW fields (before `CP=&&`) replaced.
fn rewrite_header(data: &[u8], mn: Option<&str>, password: Option<&str>) -> Vec<u8> {
    let cp_at = data.windows(5).position(|w| w == b"CP=&&").unwrap_or(data.len());
    let (header, rest) = data.split_at(cp_at);
    let mut out = Vec::with_capacity(data.len() + 16);
    for (i, field) in header.split(|b| *b == b';').enumerate() {
        if i > 0 {
            out.push(b';');
        }
        let replaced = match field.get(..3) {
            Some(b"MN=") => mn,
            Some(b"PW=") => password,
            _ => None,
        };
        match replaced {
            Some(value) => {
                out.extend_from_slice(&field[..3]);
                out.extend_from_slice(value.as_bytes());
            }
            None => out.extend_from_slice(field),
        }
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hj212_config::Rewrite;
    use hj212_proto::encryption::decrypt_cp;

    const DATA: &str = "QN=20261130120000001;ST=22;CN=2011;PW=123456;MN=88888880000001;Flag=5;CP=&&DataTime=20261130120000;a01001-Rtd=1.0,a01001-Flag=N&&";

    fn target(rewrite: Rewrite) -> Forward {
        Forward { rewrite: vec![rewrite], ..Forward::new("t", "127.0.0.1:1") }
    }

    fn rewrite(mn: Option<&str>, password: Option<&str>) -> Rewrite {
        Rewrite {
            mn: "88888880000001".into(),
            upstream_mn: mn.map(str::to_owned),
            upstream_password: password.map(str::to_owned),
            key_file: None,
        }
    }

    #[test]
    fn mn_and_password_are_replaced_and_the_frame_checks_again() {
        let rewrites = Rewrites::load(&target(rewrite(Some("UP0001"), Some("secret")))).unwrap();
        let frame = encode::frame(DATA.as_bytes()).unwrap();
        let out = rewrites.apply("88888880000001", 2011, &frame).unwrap();
        let expected =
            encode::frame(DATA.replace("PW=123456", "PW=secret").replace("MN=88888880000001", "MN=UP0001").as_bytes());
        assert_eq!(out.into_owned(), expected.unwrap(), "new length and CRC, CP untouched");
        assert_eq!(rewrites.site_mn("UP0001"), "88888880000001");
        assert_eq!(rewrites.upstream_mn("88888880000001"), "UP0001");
    }

    #[test]
    fn a_site_without_a_rewrite_goes_byte_for_byte() {
        let rewrites = Rewrites::load(&target(rewrite(Some("UP0001"), None))).unwrap();
        let frame = encode::frame(DATA.replace("88888880000001", "88888880000002").as_bytes()).unwrap();
        assert!(matches!(rewrites.apply("88888880000002", 2011, &frame), Some(Cow::Borrowed(_))));
    }

    #[test]
    fn data_commands_are_encrypted_under_the_upstreams_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("up.key");
        std::fs::write(&path, "0123456789ABCDEF0123456789ABCDEF").unwrap();
        let rewrites = Rewrites::load(&target(Rewrite { key_file: Some(path), ..rewrite(None, None) })).unwrap();
        let frame = encode::frame(DATA.as_bytes()).unwrap();
        let out = rewrites.apply("88888880000001", 2011, &frame).unwrap().into_owned();
        assert_ne!(out, frame);
        let mut data = out[6..out.len() - 6].to_vec();
        assert!(decrypt_cp(&mut data, &Sm4Key::parse("0123456789ABCDEF0123456789ABCDEF").unwrap()));
        assert_eq!(data, DATA.as_bytes(), "the upstream's key opens it");
        assert!(matches!(rewrites.apply("88888880000001", 9014, &frame), Some(Cow::Borrowed(_))));
    }

    #[test]
    fn an_unreadable_key_file_is_named() {
        let missing = Rewrite { key_file: Some("/nonexistent/up.key".into()), ..rewrite(None, None) };
        let error = Rewrites::load(&target(missing)).unwrap_err();
        assert!(error.contains("/nonexistent/up.key"), "{error}");
    }
}
