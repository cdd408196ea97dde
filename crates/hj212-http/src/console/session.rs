//! Console sessions, held in memory (a restart signs everyone out): a random token in an
//! HttpOnly, SameSite=Strict cookie, a CSRF token per session for every form that changes
//! something, an idle and an absolute lifetime, and at most `max_sessions` at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hj212_config::Role;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "hj212d_session";

/// Who a request comes from, once signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignedIn {
    pub name: String,
    pub role: Role,
    /// Sent back with every form that changes something.
    pub csrf: String,
}

#[derive(Debug)]
struct Session {
    user: SignedIn,
    started: Instant,
    used: Instant,
}

/// The sessions of the console.
#[derive(Debug)]
pub(crate) struct Sessions {
    by_token: Mutex<HashMap<String, Session>>,
    idle: Duration,
    max_age: Duration,
    cap: usize,
}

impl Sessions {
    pub(crate) fn new(settings: &hj212_config::Console) -> Self {
        Self {
            by_token: Mutex::new(HashMap::new()),
            idle: Duration::from_secs(u64::from(settings.session_idle_minutes) * 60),
            max_age: Duration::from_secs(u64::from(settings.session_max_hours) * 3600),
            cap: settings.max_sessions,
        }
    }

    /// A new session for `name`; returns its token (the cookie's value).
    ///
    /// # Errors
    /// The system's random source failed.
    pub(crate) fn start(&self, name: &str, role: Role) -> Result<String, getrandom::Error> {
        let token = random_token()?;
        let user = SignedIn { name: name.to_owned(), role, csrf: random_token()? };
        let now = Instant::now();
        let mut sessions = self.lock();
        sessions.retain(|_, s| self.alive(s, now));
        if sessions.len() >= self.cap {
            // The least recently used one makes room.
            if let Some(oldest) = sessions.iter().min_by_key(|(_, s)| s.used).map(|(t, _)| t.clone()) {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(token.clone(), Session { user, started: now, used: now });
        Ok(token)
    }

    /// The user of a live session, which counts as used now.
    pub(crate) fn user(&self, token: &str) -> Option<SignedIn> {
        let now = Instant::now();
        let mut sessions = self.lock();
        let session = sessions.get_mut(token)?;
        if !self.alive(session, now) {
            sessions.remove(token);
            return None;
        }
        session.used = now;
        Some(session.user.clone())
    }

    pub(crate) fn end(&self, token: &str) {
        self.lock().remove(token);
    }

    fn alive(&self, session: &Session, now: Instant) -> bool {
        now.duration_since(session.used) < self.idle && now.duration_since(session.started) < self.max_age
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.by_token.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// 256 random bits, as hex.
fn random_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hj212_archive::hex(&bytes))
}

/// The session token a request's `Cookie` header carries, if any.
pub(crate) fn token_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max_sessions: usize) -> hj212_config::Console {
        hj212_config::Console { max_sessions, ..hj212_config::Console::default() }
    }

    #[test]
    fn a_session_knows_its_user_until_it_ends() {
        let sessions = Sessions::new(&settings(10));
        let token = sessions.start("li", Role::Operator).unwrap();
        let user = sessions.user(&token).unwrap();
        assert_eq!((user.name.as_str(), user.role), ("li", Role::Operator));
        assert_eq!(user.csrf.len(), 64);
        assert_ne!(user.csrf, token);
        sessions.end(&token);
        assert_eq!(sessions.user(&token), None);
    }

    #[test]
    fn beyond_the_cap_the_least_recently_used_session_ends() {
        let sessions = Sessions::new(&settings(2));
        let first = sessions.start("a", Role::Viewer).unwrap();
        let second = sessions.start("b", Role::Viewer).unwrap();
        sessions.user(&first);
        let third = sessions.start("c", Role::Viewer).unwrap();
        assert!(sessions.user(&first).is_some());
        assert_eq!(sessions.user(&second), None);
        assert!(sessions.user(&third).is_some());
    }

    #[test]
    fn the_token_is_found_among_other_cookies() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("cookie", "lang=en; hj212d_session=abc; x=y".parse().unwrap());
        assert_eq!(token_of(&headers), Some("abc"));
        headers.insert("cookie", "hj212d_sessionx=abc".parse().unwrap());
        assert_eq!(token_of(&headers), None);
    }
}
