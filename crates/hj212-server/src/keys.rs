//! HJ 212-2025 SM4 keys per site, and their rotation (CN 1014, App. C C7/C8).
//!
//! A site starts with the keys of its config (`key_file`, `previous_key_file`). A rotation,
//! scheduled by an operator or requested by the logger, makes a new key (pending), sends it
//! in a 1014 encrypted with the current key, and promotes it once the logger reports success
//! (9012 ExeRtn=1): the old current key becomes the previous one. From then on the site's
//! keys live in `data_dir/keys/{MN}.json` (mode 0600), which takes precedence over the config.
//! Frames are tried with the current, previous and pending keys, so none is lost while a
//! logger switches. Keys never reach logs, metrics or the API; events name a fingerprint.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hj212_config::{Encryption, Site};
use hj212_proto::encryption::Sm4Key;
use hj212_proto::time::BeijingTime;
use serde::{Deserialize, Serialize};

/// A pending key is re-sent if the logger has not confirmed it within this time.
const RESEND_AFTER_MS: i64 = 60_000;
const KEY_CHARS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A key as kept on disk: its text (16 characters or 32 hex digits) and SKCreateTime.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredKey {
    key: String,
    /// SKCreateTime, 17 digits (Beijing time); empty for a key from the config.
    created: String,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoredKey({}, created {})", fingerprint(&self.key), self.created)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct SiteKeys {
    current: Option<StoredKey>,
    previous: Option<StoredKey>,
    pending: Option<StoredKey>,
    /// The QN of the last 1014 carrying `pending`, and when it was sent.
    #[serde(skip)]
    sent: Option<(String, i64)>,
}

/// A short, non-reversible name of a key for logs and the archive.
pub fn fingerprint(key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(key.as_bytes());
    format!("sha256:{:02x}{:02x}{:02x}{:02x}", digest[0], digest[1], digest[2], digest[3])
}

/// What a rotation step did, for the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyEvent {
    Scheduled { mn: String, created: String, fingerprint: String },
    Rotated { mn: String, created: String, fingerprint: String },
    Refused { mn: String, created: String, reply: String },
}

impl std::fmt::Display for KeyEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Scheduled { mn, created, fingerprint } => {
                write!(f, "SM4 key rotation scheduled for {mn}: SKCreateTime={created}, new key {fingerprint}")
            }
            Self::Rotated { mn, created, fingerprint } => {
                write!(f, "SM4 key of {mn} rotated: SKCreateTime={created}, now {fingerprint}")
            }
            Self::Refused { mn, created, reply } => {
                write!(f, "SM4 key rotation of {mn} (SKCreateTime={created}) not applied by the logger: {reply}")
            }
        }
    }
}

/// A new key to send: its SKCreateTime, its text, and the current key to encrypt the 1014 with.
#[derive(Debug)]
pub struct Delivery {
    pub created: BeijingTime,
    pub key: String,
    pub encrypt_with: Option<Sm4Key>,
}

/// Rotation cannot be scheduled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("site {0} does not use encryption (set encryption and key_file first)")]
    NotEncrypted(String),
    #[error("cannot make or save a key for {mn}: {message}")]
    Io { mn: String, message: String },
}

/// Every encrypting site's keys.
#[derive(Debug)]
pub struct KeyStore {
    dir: PathBuf,
    sites: Mutex<HashMap<String, SiteKeys>>,
}

fn read_config_key(site: &Site, path: &Path) -> Option<StoredKey> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|t| Sm4Key::parse(&t).map(|_| t.trim().to_owned()).map_err(|e| e.to_string()));
    match text {
        Ok(key) => Some(StoredKey { key, created: String::new() }),
        Err(error) => {
            // Never the content: the path and the reason.
            tracing::error!(mn = site.mn, path = %path.display(), error, "SM4 key not loaded");
            None
        }
    }
}

impl KeyStore {
    /// Keys of the sites that encrypt: `dir/{MN}.json` if a rotation happened, else the config's files.
    pub fn load(dir: PathBuf, sites: &[Site]) -> Self {
        let store = Self { dir, sites: Mutex::new(HashMap::new()) };
        store.reload(sites);
        store
    }

    /// Re-reads the keys (SIGHUP), keeping rotations in progress.
    pub fn reload(&self, sites: &[Site]) {
        let mut map = HashMap::new();
        let old = self.lock().clone();
        for site in sites.iter().filter(|s| s.encryption != Encryption::Off) {
            let saved =
                std::fs::read(self.path(&site.mn)).ok().and_then(|b| serde_json::from_slice::<SiteKeys>(&b).ok());
            let mut keys = saved.unwrap_or_else(|| SiteKeys {
                current: site.key_file.as_deref().and_then(|p| read_config_key(site, p)),
                previous: site.previous_key_file.as_deref().and_then(|p| read_config_key(site, p)),
                pending: None,
                sent: None,
            });
            keys.sent = old.get(&site.mn).and_then(|k| k.sent.clone());
            map.insert(site.mn.clone(), keys);
        }
        *self.lock() = map;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SiteKeys>> {
        self.sites.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn path(&self, mn: &str) -> PathBuf {
        self.dir.join(format!("{mn}.json"))
    }

    /// The keys to try on a frame of `mn`: current, previous, then the pending one (a logger
    /// may switch before its 9012 arrives).
    pub fn candidates(&self, mn: &str) -> Vec<Sm4Key> {
        let sites = self.lock();
        let Some(keys) = sites.get(mn) else { return Vec::new() };
        [&keys.current, &keys.previous, &keys.pending]
            .into_iter()
            .flatten()
            .filter_map(|k| Sm4Key::parse(&k.key).ok())
            .collect()
    }

    /// Makes a new key for `mn` (pending until the logger confirms it) and saves it.
    ///
    /// # Errors
    /// [`ScheduleError`] when the site does not encrypt or the key cannot be made or saved.
    pub fn schedule(&self, mn: &str, now_ms: i64) -> Result<KeyEvent, ScheduleError> {
        let io = |message: String| ScheduleError::Io { mn: mn.to_owned(), message };
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| io(e.to_string()))?;
        let key: String = bytes.iter().map(|b| char::from(KEY_CHARS[usize::from(*b) % KEY_CHARS.len()])).collect();
        let created = BeijingTime::from_unix_millis(now_ms).to_qn_string();
        let mut sites = self.lock();
        let keys = sites.get_mut(mn).ok_or_else(|| ScheduleError::NotEncrypted(mn.to_owned()))?;
        let event = KeyEvent::Scheduled { mn: mn.to_owned(), created: created.clone(), fingerprint: fingerprint(&key) };
        keys.pending = Some(StoredKey { key, created });
        keys.sent = None;
        self.save(mn, keys).map_err(|e| io(e.to_string()))?;
        Ok(event)
    }

    /// The logger asked for a new key (1014): the pending one is sent again at once, or a new
    /// one is made. Returns the scheduling event when a key was made.
    ///
    /// # Errors
    /// As [`KeyStore::schedule`].
    pub fn requested(&self, mn: &str, now_ms: i64) -> Result<Option<KeyEvent>, ScheduleError> {
        {
            let mut sites = self.lock();
            if let Some(keys) = sites.get_mut(mn).filter(|k| k.pending.is_some()) {
                keys.sent = None;
                return Ok(None);
            }
        }
        self.schedule(mn, now_ms).map(Some)
    }

    /// Whether `mn` has a key to send now (pending, and not sent in the last minute).
    pub fn delivery(&self, mn: &str, now_ms: i64) -> Option<Delivery> {
        let sites = self.lock();
        let keys = sites.get(mn)?;
        let pending = keys.pending.as_ref()?;
        if keys.sent.as_ref().is_some_and(|(_, at)| now_ms - at < RESEND_AFTER_MS) {
            return None;
        }
        let created = BeijingTime::parse(&pending.created).ok()?;
        let encrypt_with = keys.current.as_ref().and_then(|k| Sm4Key::parse(&k.key).ok());
        Some(Delivery { created, key: pending.key.clone(), encrypt_with })
    }

    /// The 1014 with QN `qn` carrying the pending key went out.
    pub fn sent(&self, mn: &str, qn: String, now_ms: i64) {
        if let Some(keys) = self.lock().get_mut(mn) {
            keys.sent = Some((qn, now_ms));
        }
    }

    /// A 9011 or 9012 from `mn`: if it answers our 1014, a refusal forgets the sending (it is
    /// sent again later) and a success promotes the pending key.
    pub fn reply(&self, mn: &str, qn: &str, cn: u16, success: bool) -> Option<KeyEvent> {
        let mut sites = self.lock();
        let keys = sites.get_mut(mn)?;
        if keys.sent.as_ref().is_none_or(|(sent_qn, _)| sent_qn != qn) {
            return None;
        }
        let pending = keys.pending.clone()?;
        if !success {
            keys.sent = None;
            let reply = if cn == 9011 { "9011 QnRtn other than 1" } else { "9012 ExeRtn other than 1" };
            return Some(KeyEvent::Refused { mn: mn.to_owned(), created: pending.created, reply: reply.to_owned() });
        }
        if cn != 9012 {
            return None; // 9011 QnRtn=1: accepted, the result follows in 9012
        }
        keys.previous = keys.current.take();
        keys.current = Some(pending.clone());
        keys.pending = None;
        keys.sent = None;
        if let Err(error) = self.save(mn, keys) {
            tracing::error!(mn, %error, "rotated SM4 key could not be saved; it is kept in memory until a restart");
        }
        Some(KeyEvent::Rotated { mn: mn.to_owned(), created: pending.created, fingerprint: fingerprint(&pending.key) })
    }

    /// Writes `dir/{MN}.json` (0600) through a temp file, fsynced, then renamed.
    fn save(&self, mn: &str, keys: &SiteKeys) -> std::io::Result<()> {
        use std::io::Write;
        std::fs::create_dir_all(&self.dir)?;
        let path = self.path(mn);
        let temp = path.with_extension("json.tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temp)?;
        file.write_all(&serde_json::to_vec_pretty(keys).map_err(std::io::Error::other)?)?;
        file.sync_all()?;
        std::fs::rename(&temp, &path)?;
        std::fs::File::open(&self.dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(dir: &Path) -> Site {
        let key_file = dir.join("site.key");
        std::fs::write(&key_file, "0000000000000000").unwrap();
        let mut site: Site = toml::from_str("mn = \"M1\"\npassword = \"123456\"\nencryption = \"required\"").unwrap();
        site.key_file = Some(key_file);
        site
    }

    #[test]
    fn a_rotation_is_sent_confirmed_promoted_and_saved() {
        let dir = tempfile::tempdir().unwrap();
        let sites = [site(dir.path())];
        let store = KeyStore::load(dir.path().join("keys"), &sites);
        assert_eq!(store.candidates("M1"), [Sm4Key::new([0x30; 16])]);
        assert!(store.delivery("M1", 0).is_none(), "nothing pending");
        let KeyEvent::Scheduled { fingerprint: new, .. } = store.schedule("M1", 1_000).unwrap() else { panic!() };
        let delivery = store.delivery("M1", 2_000).unwrap();
        assert_eq!(fingerprint(&delivery.key), new);
        assert_eq!(delivery.encrypt_with, Some(Sm4Key::new([0x30; 16])), "sent under the current key");
        assert_eq!(store.candidates("M1").len(), 2, "the pending key is already tried");
        store.sent("M1", "Q1".into(), 2_000);
        assert!(store.delivery("M1", 30_000).is_none(), "not re-sent within a minute");
        assert!(store.reply("M1", "OTHER", 9012, true).is_none(), "another QN is not ours");
        assert!(store.reply("M1", "Q1", 9011, true).is_none(), "accepted; the result follows");
        let rotated = store.reply("M1", "Q1", 9012, true).unwrap();
        assert!(matches!(rotated, KeyEvent::Rotated { ref fingerprint, .. } if *fingerprint == new));
        assert!(!rotated.to_string().contains(&delivery.key), "events never show the key");
        let candidates = store.candidates("M1");
        assert_eq!(candidates.len(), 2);
        assert_eq!(candidates[1], Sm4Key::new([0x30; 16]), "the old key stays as the previous one");
        // The saved keys take precedence over the config after a restart.
        let restarted = KeyStore::load(dir.path().join("keys"), &sites);
        assert_eq!(restarted.candidates("M1"), candidates);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("keys/M1.json")).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "only the daemon's user reads it");
        }
    }

    #[test]
    fn a_refusal_is_sent_again_later_and_unencrypted_sites_cannot_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::load(dir.path().join("keys"), &[site(dir.path())]);
        store.schedule("M1", 0).unwrap();
        store.sent("M1", "Q1".into(), 0);
        assert!(matches!(store.reply("M1", "Q1", 9012, false), Some(KeyEvent::Refused { .. })));
        assert!(store.delivery("M1", 1).is_some(), "sent again");
        assert_eq!(store.schedule("OTHER", 0), Err(ScheduleError::NotEncrypted("OTHER".into())));
        store.sent("M1", "Q2".into(), 2);
        assert_eq!(store.requested("M1", 3), Ok(None), "a request re-sends the pending key");
        assert!(store.delivery("M1", 4).is_some());
    }
}
