//! The connection's side of the command channel: builds the frame of a host command for the
//! site it is addressed to (its password, the ST and protocol version it speaks, its SM4 key
//! for encrypted CNs), and hands the answers the connection receives to the hub.

use hj212_commands::Outgoing;
use hj212_config::Encryption;
use hj212_proto::encode::{self, CommandHeader};
use hj212_proto::encryption::{encrypt_frame, is_encrypted_cn};
use hj212_proto::model::Version;
use hj212_proto::time::BeijingTime;

use crate::Shared;
use crate::decide::Answer;
use crate::keys::KeyRole;

/// The frame for `outgoing`, or why it cannot be built.
pub(crate) fn frame_of(shared: &Shared, outgoing: &Outgoing) -> Result<Vec<u8>, String> {
    let sites = shared.registry.snapshot();
    let site = sites.get(&outgoing.mn).ok_or("the site is no longer configured")?;
    // A site is carried only after an accepted frame, so its ST and version are known.
    let (st, version) =
        shared.states.get(&outgoing.mn).and_then(|s| s.speaks).unwrap_or_else(|| ("32".into(), Version::Hj212_2017));
    let header = CommandHeader {
        qn: BeijingTime::from_unix_millis(outgoing.qn_ms),
        st: &st,
        pw: site.password(),
        mn: &outgoing.mn,
        version,
    };
    let plain = encode::command(&header, outgoing.cn, &outgoing.cp).map_err(|e| e.to_string())?;
    if site.encryption == Encryption::Off || !is_encrypted_cn(outgoing.cn) {
        return Ok(plain);
    }
    // HJ 212-2025 §6.4: data commands to an encrypting site carry their CP under its current key.
    let key = shared
        .keys
        .candidates(&outgoing.mn)
        .into_iter()
        .find_map(|(key, role)| (role == KeyRole::Current).then_some(key))
        .ok_or("the site encrypts but has no current SM4 key")?;
    encrypt_frame(&plain, &key).ok_or_else(|| "the frame could not be encrypted".to_owned())
}

/// Hands an answer from `mn` (now durable) to the command channel.
pub(crate) fn tell(shared: &Shared, mn: &str, answer: Answer) {
    let hub = &shared.commands;
    match answer {
        Answer::Reply { qn, cn, code } => {
            if hub.reply(mn, &qn, cn, code, hj212_archive::now_ms()) == hj212_commands::Matched::UnknownQn {
                tracing::debug!(mn, cn, qn, "answer to no command in flight (late, or not ours)");
            }
        }
        Answer::Upload { cn, qn, data_time_ms } => hub.upload(mn, cn, qn.as_deref(), data_time_ms),
    }
}
