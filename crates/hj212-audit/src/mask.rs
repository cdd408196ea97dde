//! Password masking for everything the CLI prints (`export` frames, `decode` segments and
//! rejected chunks): one function, so no output path masks less than another.

use std::borrow::Cow;

/// What a password value is replaced with.
pub const PASSWORD_MASK: &str = "***";

/// Bytes that end a field value: the HJ 212 separators, the CP delimiter and line ends.
fn ends_value(b: u8) -> bool {
    matches!(b, b';' | b',' | b'&' | b'\r' | b'\n')
}

/// Replaces the value of every `PW` field with [`PASSWORD_MASK`], however it is spelled:
/// any case, spaces or tabs around `=`, the value ending at `;`, `,`, `&`, a line end or the
/// end of the text. A `pw` glued to a preceding letter (`XPW=`) is another field's name.
pub fn mask_passwords(text: &str) -> Cow<'_, str> {
    match mask_password_bytes(text.as_bytes()) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        // Only whole runs between ASCII bytes were replaced, so the text is still UTF-8.
        Cow::Owned(bytes) => {
            Cow::Owned(String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
        }
    }
}

/// [`mask_passwords`] on bytes that may not be UTF-8 (a data segment before parsing).
pub fn mask_password_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    // Everything before `copied` is already in `out`.
    let mut copied = 0;
    let mut at = 0;
    while at + 1 < bytes.len() {
        let Some(value_at) = password_value_at(bytes, at) else {
            at += 1;
            continue;
        };
        let end = bytes[value_at..].iter().position(|&b| ends_value(b)).map_or(bytes.len(), |n| value_at + n);
        let masked = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
        masked.extend_from_slice(&bytes[copied..value_at]);
        masked.extend_from_slice(PASSWORD_MASK.as_bytes());
        copied = end;
        at = end.max(at + 1);
    }
    match out {
        None => Cow::Borrowed(bytes),
        Some(mut masked) => {
            masked.extend_from_slice(&bytes[copied..]);
            Cow::Owned(masked)
        }
    }
}

/// When a `PW` key starts at `at`: where its value starts (after `=` and blanks).
fn password_value_at(bytes: &[u8], at: usize) -> Option<usize> {
    if !bytes[at].eq_ignore_ascii_case(&b'p') || !bytes.get(at + 1)?.eq_ignore_ascii_case(&b'w') {
        return None;
    }
    if at > 0 && bytes[at - 1].is_ascii_alphabetic() {
        return None;
    }
    let blank = |b: &u8| matches!(b, b' ' | b'\t');
    let mut i = at + 2;
    while bytes.get(i).is_some_and(blank) {
        i += 1;
    }
    if bytes.get(i) != Some(&b'=') {
        return None;
    }
    i += 1;
    while bytes.get(i).is_some_and(blank) {
        i += 1;
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn every_spelling_is_masked() {
        let cases = [
            ("QN=1;PW=123456;MN=M;CP=&&&&", "QN=1;PW=***;MN=M;CP=&&&&"),
            ("PW=1;PW=2", "PW=***;PW=***"),
            ("ST=32;PW =x;MN=M", "ST=32;PW =***;MN=M"),
            ("ST=32;PW\t= x;MN=M", "ST=32;PW\t= ***;MN=M"),
            ("ST=32;pw=x;MN=M", "ST=32;pw=***;MN=M"),
            ("MN=M;Pw=secret&&CP=&&&&", "MN=M;Pw=***&&CP=&&&&"),
            ("##0101PW=abc,MN=M", "##0101PW=***,MN=M"),
            ("PW=tail-at-the-end", "PW=***"),
            ("PW=line\r\nnext", "PW=***\r\nnext"),
            ("PW=", "PW=***"),
        ];
        for (input, expected) in cases {
            assert_eq!(mask_passwords(input), expected, "{input:?}");
        }
    }

    #[test]
    fn other_fields_are_left_alone() {
        for text in ["no password", "XPW=1;MN=M", "PW;MN=M", "a01-Rtd=1,a01-Flag=N", "P", "", "密码PW"] {
            assert_eq!(mask_passwords(text), text);
        }
    }

    fn spelling() -> impl Strategy<Value = String> {
        (any::<bool>(), any::<bool>(), "[ \t]{0,3}", "[ \t]{0,3}").prop_map(|(p, w, before, after)| {
            format!("{}{}{before}={after}", if p { 'P' } else { 'p' }, if w { 'W' } else { 'w' })
        })
    }

    proptest! {
        /// However the key is spelled and wherever the field sits, the value never survives.
        #[test]
        fn the_password_never_survives(
            key in spelling(),
            secret in "[A-Za-z0-9!@#$%^*()_+. -]{6,16}",
            end in prop::sample::select(vec![";MN=M;CP=&&&&", ",MN=M", "&&CP=&&&&", "\r\n", "\n", ""]),
            prefix in prop::sample::select(vec!["", "##0101", "QN=20260101120000001;ST=32;CN=2011;", "x;"]),
        ) {
            let secret = format!("Zq9{secret}");
            let text = format!("{prefix}{key}{secret}{end}");
            let masked = mask_passwords(&text);
            prop_assert!(!masked.contains(&secret), "{text:?} -> {masked:?}");
            prop_assert!(masked.contains(PASSWORD_MASK));
            prop_assert!(masked.ends_with(end));
        }
    }
}
