//! Signed checkpoints: the chain's anchors. A hash chain alone shows that records were
//! altered, but anyone can re-hash a rewritten chain or append a record that chains
//! correctly. At an interval the writer signs (seq, head hash, time) with an ed25519 key only
//! the daemon holds and appends the signature as a record; an auditor holding the public key
//! can then tell the daemon's chain from a forged one up to the last checkpoint, and a
//! checkpoint published elsewhere (MQTT, the API) shows what the archive held at that time.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::format::Hash;
use crate::writer::{hex, unhex};

/// The newest checkpoint is also kept in this file of the archive folder, so that a restart
/// can tell records that a checkpoint covered (never cut) from a torn tail.
pub const LATEST_FILE: &str = "checkpoint.latest";
/// What a checkpoint record's data starts with.
const PREFIX: &str = "checkpoint ";

/// A signature over the archive's head at one point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last record covered.
    pub seq: u64,
    /// That record's hash.
    pub head: Hash,
    /// When it was signed (Unix ms).
    pub time_ms: i64,
    /// The public key it was signed with.
    pub key: [u8; 32],
    pub signature: [u8; 64],
    /// Records found after the previous checkpoint when the writer opened the archive (a
    /// crash's tail, or anything appended while the daemon was down): signed by this
    /// checkpoint, not by the run that wrote them. Only a run's first checkpoint has it.
    pub adopted: Option<(u64, u64)>,
    /// Written as the writer stopped cleanly: no record may follow it until the next start
    /// (whose first checkpoint would have to adopt it).
    pub last: bool,
}

/// A checkpoint text or key file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    #[error("not a checkpoint: {0}")]
    Malformed(String),
    #[error("signing key {path}: {message}")]
    Key { path: PathBuf, message: String },
}

impl Checkpoint {
    /// Signs `seq` and `head` at `time_ms`.
    pub fn sign(key: &SigningKey, seq: u64, head: Hash, time_ms: i64, adopted: Option<(u64, u64)>, last: bool) -> Self {
        let mut checkpoint =
            Self { seq, head, time_ms, key: key.verifying_key().to_bytes(), signature: [0; 64], adopted, last };
        checkpoint.signature = key.sign(&checkpoint.message()).to_bytes();
        checkpoint
    }

    /// What is signed: every field but the signature, domain-separated so that the signature
    /// means nothing in another context.
    fn message(&self) -> Vec<u8> {
        let mut text = format!(
            "hj212d archive checkpoint v1\nseq={}\nhead={}\ntime_ms={}\n",
            self.seq,
            hex(&self.head),
            self.time_ms
        );
        if let Some((from, to)) = self.adopted {
            let _ = writeln!(text, "adopted={from}-{to}");
        }
        if self.last {
            text.push_str("last\n");
        }
        text.into_bytes()
    }

    /// True if the signature is valid and made with `trusted`.
    pub fn signed_by(&self, trusted: &VerifyingKey) -> bool {
        let message = self.message();
        trusted.to_bytes() == self.key
            && trusted.verify_strict(&message, &Signature::from_bytes(&self.signature)).is_ok()
    }

    /// True if the signature is valid for the key the checkpoint names (consistent, but
    /// proves nothing about who signed it unless that key is trusted).
    pub fn self_consistent(&self) -> bool {
        VerifyingKey::from_bytes(&self.key).is_ok_and(|key| self.signed_by(&key))
    }

    /// A short name for the signing key (the first 16 hex digits of its SHA-256).
    pub fn key_fingerprint(&self) -> String {
        fingerprint(&self.key)
    }

    /// The record text: `checkpoint seq=N head=HEX time_ms=T [adopted=A-B] [last=1] key=HEX sig=HEX`.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(320);
        let _ = write!(out, "{PREFIX}seq={} head={} time_ms={}", self.seq, hex(&self.head), self.time_ms);
        if let Some((from, to)) = self.adopted {
            let _ = write!(out, " adopted={from}-{to}");
        }
        if self.last {
            out.push_str(" last=1");
        }
        let _ = write!(out, " key={} sig={}", hex(&self.key), hex(&self.signature));
        out
    }

    /// Parses [`Checkpoint::encode`]'s text (the signature is not checked here).
    ///
    /// # Errors
    /// [`CheckpointError::Malformed`] naming the missing or bad field.
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let rest = text.trim().strip_prefix(PREFIX).ok_or_else(|| CheckpointError::Malformed("no prefix".into()))?;
        let field = |name: &str| {
            rest.split(' ')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .ok_or_else(|| CheckpointError::Malformed(format!("no {name}")))
        };
        let bad = |name: &str| CheckpointError::Malformed(format!("bad {name}"));
        let adopted = match field("adopted") {
            Err(_) => None,
            Ok(range) => {
                let (from, to) = range.split_once('-').ok_or_else(|| bad("adopted"))?;
                Some((from.parse().map_err(|_| bad("adopted"))?, to.parse().map_err(|_| bad("adopted"))?))
            }
        };
        Ok(Self {
            adopted,
            last: field("last").is_ok_and(|v| v == "1"),
            seq: field("seq")?.parse().map_err(|_| bad("seq"))?,
            head: unhex(field("head")?).ok_or_else(|| bad("head"))?,
            time_ms: field("time_ms")?.parse().map_err(|_| bad("time_ms"))?,
            key: unhex(field("key")?).ok_or_else(|| bad("key"))?,
            signature: unhex(field("sig")?).ok_or_else(|| bad("sig"))?,
        })
    }
}

/// Parses `SEQ:HASH` (as `hj212-audit verify --expect-head` takes it and the published
/// checkpoints print it).
///
/// # Errors
/// What is wrong with the text.
pub fn parse_head(text: &str) -> Result<(u64, Hash), String> {
    let (seq, hash) = text.trim().split_once(':').ok_or_else(|| format!("{text:?} is not SEQ:HASH"))?;
    let seq = seq.parse().map_err(|_| format!("{seq:?} is not a sequence number"))?;
    let hash = unhex(hash).ok_or_else(|| format!("{hash:?} is not 64 hex digits"))?;
    Ok((seq, hash))
}

/// The first 16 hex digits of the SHA-256 of a public key.
pub fn fingerprint(public_key: &[u8; 32]) -> String {
    let digest: [u8; 32] = Sha256::digest(public_key).into();
    hex(&digest)[..16].to_owned()
}

/// Loads the signing key (64 hex digits), or creates one (mode 0600) with its public key
/// beside it (`.pub`) when the file does not exist.
///
/// # Errors
/// [`CheckpointError::Key`] when the file cannot be read, written or parsed.
pub fn load_or_create_key(path: &Path) -> Result<SigningKey, CheckpointError> {
    let key_error = |message: String| CheckpointError::Key { path: path.to_path_buf(), message };
    match std::fs::read_to_string(path) {
        Ok(text) => unhex::<32>(text.trim())
            .map(|seed| SigningKey::from_bytes(&seed))
            .ok_or_else(|| key_error("is not 64 hex digits".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(folder).map_err(|e| key_error(format!("cannot create its folder: {e}")))?;
            }
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| key_error(format!("no randomness for a new key: {e}")))?;
            let key = SigningKey::from_bytes(&seed);
            write_new(path, &hex(&seed), 0o600).map_err(|e| key_error(format!("cannot create: {e}")))?;
            let public = path.with_extension("pub");
            let _ = std::fs::remove_file(&public);
            write_new(&public, &hex(&key.verifying_key().to_bytes()), 0o644)
                .map_err(|e| key_error(format!("cannot write {}: {e}", public.display())))?;
            Ok(key)
        }
        Err(e) => Err(key_error(format!("cannot read: {e}"))),
    }
}

/// Reads a public key file (64 hex digits, as written beside a new signing key).
///
/// # Errors
/// [`CheckpointError::Key`] when it cannot be read or is not a valid ed25519 public key.
pub fn load_public_key(path: &Path) -> Result<VerifyingKey, CheckpointError> {
    let key_error = |message: String| CheckpointError::Key { path: path.to_path_buf(), message };
    let text = std::fs::read_to_string(path).map_err(|e| key_error(format!("cannot read: {e}")))?;
    let bytes = unhex::<32>(text.trim()).ok_or_else(|| key_error("is not 64 hex digits".into()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| key_error(format!("is not an ed25519 public key: {e}")))
}

fn write_new(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path)?;
    writeln!(file, "{text}")?;
    file.sync_all()
}

/// A checkpoint as it stands in the archive: what was signed, and the record that holds it
/// (whose hash covers the signature, so naming that record pins the checkpoint itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHead {
    pub checkpoint: Checkpoint,
    pub record_seq: u64,
    pub record_hash: Hash,
}

impl SignedHead {
    /// `SEQ:HASH` of the checkpoint's own record, for `hj212-audit verify --expect-head`: the
    /// archive must still hold that record, so neither the records it signs nor the signature
    /// can have been cut or replaced.
    pub fn expect_head(&self) -> String {
        format!("{}:{}", self.record_seq, hex(&self.record_hash))
    }
}

/// Replaces `dir/checkpoint.latest` atomically (write, fsync, rename, fsync the folder): the
/// checkpoint's text, then `record SEQ:HASH` of the record holding it.
pub(crate) fn write_latest(dir: &Path, head: &SignedHead) -> std::io::Result<()> {
    let path = dir.join(LATEST_FILE);
    let temp = dir.join(format!("{LATEST_FILE}.tmp"));
    let mut file = std::fs::File::create(&temp)?;
    writeln!(file, "{}\nrecord {}", head.checkpoint.encode(), head.expect_head())?;
    file.sync_all()?;
    std::fs::rename(&temp, &path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// The newest checkpoint as `dir/checkpoint.latest` names it, if there is a readable one.
pub fn read_latest(dir: &Path) -> Option<SignedHead> {
    let text = std::fs::read_to_string(dir.join(LATEST_FILE)).ok()?;
    let (checkpoint, record) = text.split_once('\n')?;
    let (record_seq, record_hash) = parse_head(record.trim().strip_prefix("record ")?).ok()?;
    Some(SignedHead { checkpoint: Checkpoint::parse(checkpoint).ok()?, record_seq, record_hash })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_checkpoints_round_trip_and_detect_any_change() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let checkpoint = Checkpoint::sign(&key, 117, [3; 32], 1_700_000_000_000, None, false);
        let parsed = Checkpoint::parse(&checkpoint.encode()).unwrap();
        assert_eq!(parsed, checkpoint);
        assert!(parsed.signed_by(&key.verifying_key()));
        assert!(parsed.self_consistent());
        let other = SigningKey::from_bytes(&[8; 32]);
        assert!(!parsed.signed_by(&other.verifying_key()), "another key is not the signer");
        for changed in [
            Checkpoint { seq: 118, ..checkpoint.clone() },
            Checkpoint { head: [4; 32], ..checkpoint.clone() },
            Checkpoint { time_ms: 1, ..checkpoint.clone() },
            Checkpoint { adopted: Some((1, 2)), ..checkpoint.clone() },
            Checkpoint { last: true, ..checkpoint.clone() },
        ] {
            assert!(!changed.signed_by(&key.verifying_key()));
        }
        // A forger signing with their own key is self-consistent but not trusted.
        let forged = Checkpoint::sign(&other, 117, [3; 32], 1_700_000_000_000, None, false);
        let adopting = Checkpoint::sign(&key, 9, [1; 32], 5, Some((3, 8)), true);
        assert_eq!(Checkpoint::parse(&adopting.encode()).unwrap(), adopting);
        assert!(adopting.signed_by(&key.verifying_key()));
        assert!(forged.self_consistent() && !forged.signed_by(&key.verifying_key()));
        assert!(Checkpoint::parse("checkpoint seq=1").is_err());
        assert_eq!(parse_head(&format!("117:{}", hex(&[3; 32]))), Ok((117, [3; 32])));
        assert!(parse_head("117").is_err() && parse_head("x:00").is_err());
    }

    #[test]
    fn the_latest_file_names_the_checkpoint_and_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = Checkpoint::sign(&SigningKey::from_bytes(&[9; 32]), 7, [1; 32], 5, None, true);
        let head = SignedHead { checkpoint, record_seq: 8, record_hash: [2; 32] };
        write_latest(dir.path(), &head).unwrap();
        assert_eq!(read_latest(dir.path()), Some(head));
    }

    #[test]
    fn a_new_key_is_private_and_its_public_half_is_written_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("archive-signing.key");
        let key = load_or_create_key(&path).unwrap();
        assert_eq!(load_or_create_key(&path).unwrap().to_bytes(), key.to_bytes(), "loaded again, not replaced");
        assert_eq!(load_public_key(&path.with_extension("pub")).unwrap(), key.verifying_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
