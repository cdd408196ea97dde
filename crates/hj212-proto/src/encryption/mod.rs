//! HJ 212-2025 CP encryption (§6.4.2, App. A.2): SM4 (GB/T 32907) in ECB mode over the
//! bytes strictly between `CP=&&` and the closing `&&`, whole 16-byte blocks only ("Nopadding":
//! the last 0-15 bytes stay in clear), so the length field is unchanged; the CRC is computed
//! over the plaintext. Which frames are encrypted follows from the CN and the site's setting,
//! never from sniffing the bytes.

use std::ops::Range;

use sm4::Sm4;
use sm4::cipher::generic_array::GenericArray;
use sm4::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};

const BLOCK: usize = 16;
const CP_OPEN: &[u8] = b"CP=&&";

/// A 16-byte SM4 key. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Sm4Key([u8; BLOCK]);

impl std::fmt::Debug for Sm4Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sm4Key(***)")
    }
}

/// A key file's content is not a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "an SM4 key is 16 characters (the standard's test key is 0000000000000000) or 32 hex digits; found {len} characters"
)]
pub struct KeyError {
    pub len: usize,
}

impl Sm4Key {
    pub fn new(bytes: [u8; BLOCK]) -> Self {
        Self(bytes)
    }

    /// Parses a key file's text: 16 characters used as bytes (App. A.2's key is "16个0x30",
    /// the ASCII string `0000000000000000`), or 32 hex digits. Surrounding whitespace is ignored.
    ///
    /// # Errors
    /// [`KeyError`] with the length found (never the content).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let error = KeyError { len: text.chars().count() };
        match text.len() {
            BLOCK if text.is_ascii() => Ok(Self(text.as_bytes().try_into().map_err(|_| error)?)),
            32 => {
                let mut key = [0u8; BLOCK];
                for (i, byte) in key.iter_mut().enumerate() {
                    *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2).ok_or(error.clone())?, 16)
                        .map_err(|_| error.clone())?;
                }
                Ok(Self(key))
            }
            _ => Err(error),
        }
    }

    fn cipher(&self) -> Sm4 {
        Sm4::new(GenericArray::from_slice(&self.0))
    }
}

/// Commands whose CP the logger encrypts (§6.4.4: data commands 2000-2999; 1014 and 3020
/// per the secondary sources, docs/hj212-2025.md §1e).
pub fn is_encrypted_cn(cn: u16) -> bool {
    matches!(cn, 2000..=2999 | 1014 | 3020)
}

/// Where the CP content lies in a data segment: after the first `CP=&&` (the header before it
/// is clear text) and before the final `&&`.
pub fn cp_region(data: &[u8]) -> Option<Range<usize>> {
    let start = data.windows(CP_OPEN.len()).position(|w| w == CP_OPEN)? + CP_OPEN.len();
    let end = data.len().checked_sub(2).filter(|end| *end >= start && data.ends_with(b"&&"))?;
    Some(start..end)
}

/// Decrypts the CP content of `data` in place (whole blocks; the tail is clear text).
/// Returns false when the segment has no CP region.
pub fn decrypt_cp(data: &mut [u8], key: &Sm4Key) -> bool {
    let Some(region) = cp_region(data) else { return false };
    let cipher = key.cipher();
    for block in data[region].chunks_exact_mut(BLOCK) {
        cipher.decrypt_block(GenericArray::from_mut_slice(block));
    }
    true
}

/// Encrypts the CP content of `data` in place, as a 2025 logger does after computing the CRC.
/// Returns false when the segment has no CP region.
pub fn encrypt_cp(data: &mut [u8], key: &Sm4Key) -> bool {
    let Some(region) = cp_region(data) else { return false };
    let cipher = key.cipher();
    for block in data[region].chunks_exact_mut(BLOCK) {
        cipher.encrypt_block(GenericArray::from_mut_slice(block));
    }
    true
}

/// The ciphertext of a data segment's CP region: the raw bytes, or, with `text_forms`, the
/// bytes its printed `{0x..}` or hex form stands for. `None` without a CP region.
pub fn ciphertext(data: &[u8], text_forms: bool) -> Option<std::borrow::Cow<'_, [u8]>> {
    let raw = &data[cp_region(data)?];
    Some(match text_forms.then(|| textual_ciphertext(raw)).flatten() {
        Some(bytes) => std::borrow::Cow::Owned(bytes),
        None => std::borrow::Cow::Borrowed(raw),
    })
}

/// The plaintext data segment: `data` with its CP region replaced by `ciphertext` decrypted
/// (what the CRC covers). `None` without a CP region.
pub fn decrypt_segment(data: &[u8], ciphertext: &[u8], key: &Sm4Key) -> Option<Vec<u8>> {
    let region = cp_region(data)?;
    let mut plain = [&data[..region.start], ciphertext, &data[region.end..]].concat();
    decrypt_cp(&mut plain, key);
    Some(plain)
}

/// A whole frame (`##` to the tail) with its CP encrypted, as a 2025 sender puts it on the
/// wire: the length and the CRC (of the plaintext) are unchanged. `None` if `frame` is not one frame.
pub fn encrypt_frame(frame: &[u8], key: &Sm4Key) -> Option<Vec<u8>> {
    let crate::framer::Scan::Frame(layout) = crate::framer::scan(frame, &crate::framer::FramerConfig::default(), true)
    else {
        return None;
    };
    let mut out = frame[..layout.len].to_vec();
    // The data segment follows "##" and the 4-digit length.
    encrypt_cp(&mut out[6..6 + layout.data_len], key).then_some(out)
}

/// The ciphertext as raw bytes when the logger wrote it as text: the standard's printed
/// `{0xE4,0x3E,...}` form (then the clear tail), or upper-case hex (then the clear tail is
/// impossible to tell apart, so hex is taken only when the whole region is hex). `None`
/// when the region is in neither form (raw bytes, the primary form).
pub fn textual_ciphertext(region: &[u8]) -> Option<Vec<u8>> {
    if let Some(rest) = region.strip_prefix(b"{") {
        let close = rest.iter().position(|b| *b == b'}')?;
        let text = std::str::from_utf8(&rest[..close]).ok()?;
        let mut bytes = text
            .split(',')
            .map(|item| {
                let item = item.trim();
                let hex = item.strip_prefix("0x").or_else(|| item.strip_prefix("0X"))?;
                u8::from_str_radix(hex, 16).ok()
            })
            .collect::<Option<Vec<u8>>>()?;
        bytes.extend_from_slice(&rest[close + 1..]);
        return Some(bytes);
    }
    let is_hex = region.len().is_multiple_of(2)
        && region.len() >= 2 * BLOCK
        && region.iter().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b));
    if !is_hex {
        return None;
    }
    region
        .chunks_exact(2)
        .map(|pair| std::str::from_utf8(pair).ok().and_then(|p| u8::from_str_radix(p, 16).ok()))
        .collect()
}

#[cfg(test)]
mod tests;
