//! What each HTTP channel sends and what counts as accepted: the generic webhook's JSON, the
//! DingTalk and WeCom group robots' documented markdown messages, DingTalk's signed URL.
//! Pure functions (the clock is an argument), tested beside them.

use base64::Engine as _;
use hj212_config::NotifyKind;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::render::{Rendered, WECOM_MAX_BYTES, truncated};

/// DingTalk's markdown text limit is about 20,000 characters; stay well inside it.
const DINGTALK_MAX_BYTES: usize = 18_000;

/// The robot's JSON for a rendered message (not used for the generic webhook, which posts
/// the alert JSON itself).
pub fn robot_body(kind: NotifyKind, rendered: &Rendered) -> Value {
    match kind {
        NotifyKind::Wecom => json!({
            "msgtype": "markdown",
            "markdown": { "content": truncated(&rendered.text, WECOM_MAX_BYTES) },
        }),
        _ => json!({
            "msgtype": "markdown",
            "markdown": { "title": rendered.title, "text": truncated(&rendered.text, DINGTALK_MAX_BYTES) },
        }),
    }
}

/// DingTalk's signature (加签): `timestamp` (Unix ms) and `sign` = URL-encoded
/// base64(HMAC-SHA256(key = secret, message = "{timestamp}\n{secret}")), appended to the URL.
pub fn dingtalk_signed_url(url: &str, secret: &str, timestamp_ms: i64) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}timestamp={timestamp_ms}&sign={}", dingtalk_sign(secret, timestamp_ms))
}

fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    // HMAC takes keys of any length: new_from_slice cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return String::new() };
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    percent_encoding::utf8_percent_encode(&signature, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A robot's answer: HTTP 200 with `{"errcode": 0}` is accepted; any other errcode (a bad
/// token, a bad signature, the rate limit 130101/45009) is a failure with its errmsg.
///
/// # Errors
/// The reason, for the log and the channel's status.
pub fn robot_accepted(body: &[u8]) -> Result<(), String> {
    let answer: Value = serde_json::from_slice(body).map_err(|e| {
        let start = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        format!("answer is not JSON ({e}): {start:?}")
    })?;
    match answer.get("errcode").and_then(Value::as_i64) {
        Some(0) => Ok(()),
        Some(code) => {
            let message = answer.get("errmsg").and_then(Value::as_str).unwrap_or("");
            Err(format!("errcode {code}: {}", truncated(message, 300)))
        }
        None => Err("answer has no errcode".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dingtalk_signature_matches_the_documented_recipe() {
        // Python: quote_plus(b64encode(hmac.new(secret, f"{ts}\n{secret}", sha256).digest())).
        let url = dingtalk_signed_url(
            "https://oapi.dingtalk.com/robot/send?access_token=abc",
            "SEC0123456789abcdef",
            1_700_000_000_000,
        );
        assert_eq!(
            url,
            "https://oapi.dingtalk.com/robot/send?access_token=abc&timestamp=1700000000000\
             &sign=TSZbRFUuvaSQaRKUpF970OPCb2%2FLcQAP3wOvwZIzBZk%3D"
        );
    }

    #[test]
    fn robot_answers() {
        assert_eq!(robot_accepted(br#"{"errcode":0,"errmsg":"ok"}"#), Ok(()));
        assert_eq!(
            robot_accepted(br#"{"errcode":310000,"errmsg":"sign not match"}"#).unwrap_err(),
            "errcode 310000: sign not match"
        );
        assert!(robot_accepted(b"<html>bad gateway</html>").unwrap_err().starts_with("answer is not JSON"));
        assert_eq!(robot_accepted(b"{}").unwrap_err(), "answer has no errcode");
    }

    #[test]
    fn robot_bodies() {
        let rendered = Rendered { title: "t".into(), text: "x".repeat(5000) };
        let wecom = robot_body(NotifyKind::Wecom, &rendered);
        assert_eq!(wecom["msgtype"], "markdown");
        assert!(wecom["markdown"]["content"].as_str().unwrap().len() <= WECOM_MAX_BYTES);
        let dingtalk = robot_body(NotifyKind::Dingtalk, &rendered);
        assert_eq!(
            (dingtalk["markdown"]["title"].as_str(), dingtalk["markdown"]["text"].as_str().map(str::len)),
            (Some("t"), Some(5000))
        );
    }
}
