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
use std::sync::atomic::{AtomicBool, Ordering};

use hj212_config::{Encryption, Site};
use hj212_proto::encryption::Sm4Key;
use hj212_proto::time::BeijingTime;
use serde::{Deserialize, Serialize};

/// A pending key is sent again if the logger has not confirmed it within this time, doubling
/// after each try (1, 2, 4 ... 64 minutes).
const RESEND_AFTER_MS: i64 = 60_000;
/// After this many unconfirmed or refused sendings the rotation is given up (and archived).
const MAX_ATTEMPTS: u32 = 8;
/// The QNs of the 1014s sent for the pending key that are remembered (a late 9012 for any counts).
const REMEMBERED_QNS: usize = 8;
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
    /// The QNs of the 1014s that carried `pending` (newest last).
    #[serde(default)]
    sent_qns: Vec<String>,
    /// 1014s sent for `pending` so far, and when the next may go.
    #[serde(default)]
    attempts: u32,
    #[serde(default)]
    retry_at_ms: i64,
}

/// Which of a site's keys decrypted a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    Current,
    Previous,
    /// Sent to the logger, not confirmed yet: the logger has switched.
    Pending,
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
    GaveUp { mn: String, created: String, attempts: u32 },
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
            Self::GaveUp { mn, created, attempts } => write!(
                f,
                "SM4 key rotation of {mn} (SKCreateTime={created}) given up after {attempts} sendings; the current key stays"
            ),
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
    #[error("a rotation of {mn} is in progress (SKCreateTime={created}); it completes or is given up first")]
    InProgress { mn: String, created: String },
    #[error("cannot make or save a key for {mn}: {message}")]
    Io { mn: String, message: String },
}

/// Every encrypting site's keys.
#[derive(Debug)]
pub struct KeyStore {
    dir: PathBuf,
    sites: Mutex<HashMap<String, SiteKeys>>,
    /// Whether any site encrypts: read per frame without the lock.
    any: AtomicBool,
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
        let store = Self { dir, sites: Mutex::new(HashMap::new()), any: AtomicBool::new(false) };
        store.reload(sites);
        store
    }

    /// Re-reads the keys (SIGHUP), keeping rotations in progress.
    pub fn reload(&self, sites: &[Site]) {
        // Under the lock throughout, so a promotion cannot be lost between read and replace.
        let mut current = self.lock();
        let mut map = HashMap::new();
        for site in sites.iter().filter(|s| s.encryption != Encryption::Off) {
            // Once a rotation has begun, the daemon owns the keys (memory, saved as they change);
            // before, the config's key files are read again so an operator's fix applies.
            let owned = self.path(&site.mn).exists().then(|| current.remove(&site.mn).or_else(|| self.saved(site)));
            let keys = owned.flatten().unwrap_or_else(|| SiteKeys {
                current: site.key_file.as_deref().and_then(|p| read_config_key(site, p)),
                previous: site.previous_key_file.as_deref().and_then(|p| read_config_key(site, p)),
                ..SiteKeys::default()
            });
            map.insert(site.mn.clone(), keys);
        }
        self.any.store(!map.is_empty(), Ordering::Relaxed);
        *current = map;
    }

    /// Whether any configured site encrypts (a cheap check for every frame).
    pub fn any(&self) -> bool {
        self.any.load(Ordering::Relaxed)
    }

    /// The keys saved by a rotation; an unreadable file is reported (the config's keys are
    /// then used, which after a rotation are outdated: frames will fail as decrypt_or_crc).
    fn saved(&self, site: &Site) -> Option<SiteKeys> {
        let path = self.path(&site.mn);
        let bytes = std::fs::read(&path).ok()?;
        serde_json::from_slice(&bytes)
            .inspect_err(|error| {
                tracing::error!(mn = site.mn, path = %path.display(), %error, "saved SM4 keys unreadable; using the config's key files");
            })
            .ok()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SiteKeys>> {
        self.sites.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn path(&self, mn: &str) -> PathBuf {
        self.dir.join(format!("{mn}.json"))
    }

    /// The keys to try on a frame of `mn`: current, previous, then the pending one (a logger
    /// may switch before its 9012 arrives).
    pub fn candidates(&self, mn: &str) -> Vec<(Sm4Key, KeyRole)> {
        let sites = self.lock();
        let Some(keys) = sites.get(mn) else { return Vec::new() };
        [(&keys.current, KeyRole::Current), (&keys.previous, KeyRole::Previous), (&keys.pending, KeyRole::Pending)]
            .into_iter()
            .filter_map(|(key, role)| Some((Sm4Key::parse(&key.as_ref()?.key).ok()?, role)))
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
        if let Some(pending) = &keys.pending {
            // The logger may already use it: replacing it could strand every later frame.
            return Err(ScheduleError::InProgress { mn: mn.to_owned(), created: pending.created.clone() });
        }
        let event = KeyEvent::Scheduled { mn: mn.to_owned(), created: created.clone(), fingerprint: fingerprint(&key) };
        keys.pending = Some(StoredKey { key, created });
        (keys.sent_qns, keys.attempts, keys.retry_at_ms) = (Vec::new(), 0, 0);
        self.save(mn, keys).map_err(|e| io(e.to_string()))?;
        Ok(event)
    }

    /// Forgets a pending key that was never sent (its scheduling could not be archived).
    pub fn cancel(&self, mn: &str) {
        let mut sites = self.lock();
        if let Some(keys) = sites.get_mut(mn).filter(|k| k.attempts == 0) {
            keys.pending = None;
            if let Err(error) = self.save(mn, keys) {
                tracing::error!(mn, %error, "cancelled SM4 key rotation could not be saved");
            }
        }
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
                keys.retry_at_ms = 0;
                return Ok(None);
            }
        }
        self.schedule(mn, now_ms).map(Some)
    }

    /// Whether `mn` has a key to send now (pending, and not sent in the last minute).
    pub fn delivery(&self, mn: &str, now_ms: i64) -> Option<Delivery> {
        // Asked for every accepted frame: no lock when no site encrypts.
        if !self.any() {
            return None;
        }
        let sites = self.lock();
        let keys = sites.get(mn)?;
        let pending = keys.pending.as_ref()?;
        if now_ms < keys.retry_at_ms || keys.attempts >= MAX_ATTEMPTS {
            return None;
        }
        let created = BeijingTime::parse(&pending.created).ok()?;
        let encrypt_with = keys.current.as_ref().and_then(|k| Sm4Key::parse(&k.key).ok());
        Some(Delivery { created, key: pending.key.clone(), encrypt_with })
    }

    /// The 1014 with QN `qn` carrying the pending key went out.
    pub fn sent(&self, mn: &str, qn: String, now_ms: i64) {
        let mut sites = self.lock();
        let Some(keys) = sites.get_mut(mn) else { return };
        keys.attempts += 1;
        keys.retry_at_ms = now_ms + (RESEND_AFTER_MS << (keys.attempts - 1).min(6));
        keys.sent_qns.push(qn);
        if keys.sent_qns.len() > REMEMBERED_QNS {
            keys.sent_qns.remove(0);
        }
        if let Err(error) = self.save(mn, keys) {
            tracing::error!(mn, %error, "SM4 key rotation progress could not be saved");
        }
    }

    /// A frame of `mn` decrypted only with the pending key: the logger has switched (its 9012
    /// may have been lost), so the pending key becomes the current one.
    pub fn used(&self, mn: &str, role: KeyRole) -> Option<KeyEvent> {
        if role != KeyRole::Pending {
            return None;
        }
        let mut sites = self.lock();
        let keys = sites.get_mut(mn)?;
        self.promote(mn, keys)
    }

    fn promote(&self, mn: &str, keys: &mut SiteKeys) -> Option<KeyEvent> {
        let pending = keys.pending.take()?;
        keys.previous = keys.current.take();
        keys.current = Some(pending.clone());
        (keys.sent_qns, keys.attempts, keys.retry_at_ms) = (Vec::new(), 0, 0);
        if let Err(error) = self.save(mn, keys) {
            tracing::error!(mn, %error, "rotated SM4 key could not be saved; it is kept in memory until a restart");
        }
        Some(KeyEvent::Rotated { mn: mn.to_owned(), created: pending.created, fingerprint: fingerprint(&pending.key) })
    }

    /// A 9011 or 9012 from `mn`: if it answers one of our 1014s, a success (9012 ExeRtn=1)
    /// promotes the pending key; a refusal waits for the next try (backing off), and after
    /// [`MAX_ATTEMPTS`] sendings the rotation is given up.
    pub fn reply(&self, mn: &str, qn: &str, cn: u16, success: bool) -> Option<KeyEvent> {
        let mut sites = self.lock();
        let keys = sites.get_mut(mn)?;
        if !keys.sent_qns.iter().any(|sent| sent == qn) {
            return None;
        }
        let pending = keys.pending.clone()?;
        if success {
            // 9011 QnRtn=1: accepted, the result follows in 9012.
            return if cn == 9012 { self.promote(mn, keys) } else { None };
        }
        if keys.attempts >= MAX_ATTEMPTS {
            let attempts = keys.attempts;
            keys.pending = None;
            (keys.sent_qns, keys.attempts, keys.retry_at_ms) = (Vec::new(), 0, 0);
            if let Err(error) = self.save(mn, keys) {
                tracing::error!(mn, %error, "given-up SM4 key rotation could not be saved");
            }
            return Some(KeyEvent::GaveUp { mn: mn.to_owned(), created: pending.created, attempts });
        }
        let reply = if cn == 9011 { "9011 QnRtn other than 1" } else { "9012 ExeRtn other than 1" };
        Some(KeyEvent::Refused { mn: mn.to_owned(), created: pending.created, reply: reply.to_owned() })
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
        assert_eq!(store.candidates("M1"), [(Sm4Key::new([0x30; 16]), KeyRole::Current)]);
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
        assert_eq!(
            candidates[1],
            (Sm4Key::new([0x30; 16]), KeyRole::Previous),
            "the old key stays as the previous one"
        );
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
    fn refusals_back_off_then_give_up_and_a_rotation_in_progress_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::load(dir.path().join("keys"), &[site(dir.path())]);
        assert_eq!(store.schedule("OTHER", 0), Err(ScheduleError::NotEncrypted("OTHER".into())));
        store.schedule("M1", 0).unwrap();
        assert!(matches!(store.schedule("M1", 1), Err(ScheduleError::InProgress { .. })));
        let mut now = 0;
        for attempt in 1..=MAX_ATTEMPTS {
            let delivery = store.delivery("M1", now).expect("due");
            drop(delivery);
            store.sent("M1", format!("Q{attempt}"), now);
            assert!(store.delivery("M1", now + 1).is_none(), "not again at once after a send");
            let event = store.reply("M1", &format!("Q{attempt}"), 9011, false);
            if attempt < MAX_ATTEMPTS {
                assert!(matches!(event, Some(KeyEvent::Refused { .. })));
                assert!(store.delivery("M1", now + 1).is_none(), "a refusal waits for the back-off");
                now += RESEND_AFTER_MS << (attempt - 1).min(6);
            } else {
                assert!(matches!(event, Some(KeyEvent::GaveUp { attempts: 8, .. })), "{event:?}");
            }
        }
        assert!(store.delivery("M1", now + 10_000_000).is_none(), "given up");
        assert_eq!(store.candidates("M1").len(), 1, "the current key stays");
        // A logger's own request re-sends a pending key at once.
        store.schedule("M1", now).unwrap();
        store.sent("M1", "R1".into(), now);
        assert_eq!(store.requested("M1", now + 1), Ok(None));
        assert!(store.delivery("M1", now + 2).is_some());
    }

    #[test]
    fn a_frame_under_the_pending_key_promotes_it_when_the_9012_was_lost() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::load(dir.path().join("keys"), &[site(dir.path())]);
        store.schedule("M1", 0).unwrap();
        store.sent("M1", "Q1".into(), 0);
        assert!(store.used("M1", KeyRole::Current).is_none());
        assert!(matches!(store.used("M1", KeyRole::Pending), Some(KeyEvent::Rotated { .. })));
        assert_eq!(store.candidates("M1")[1], (Sm4Key::new([0x30; 16]), KeyRole::Previous));
    }
}
