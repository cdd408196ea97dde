//! `[console]` and `[[users]]`: who may sign in to the web console, with what rights, and how
//! long a session lasts. Scripts keep using the bearer tokens of `[server]`.

use serde::{Deserialize, Serialize};

use crate::Config;

/// What a signed-in user may do; each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads every page and report.
    Viewer,
    /// Also acknowledges alerts, records marks and visits, sends commands to loggers.
    Operator,
    /// Also rotates keys.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }
}

/// One console account.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The sign-in name, recorded on every mark, acknowledgement, visit and command.
    pub name: String,
    /// An Argon2id hash in PHC form as `hj212d hash-password` prints it (never the password).
    pub password_hash: String,
    pub role: Role,
}

impl std::fmt::Debug for User {
    // The hash stays out of logs: it can be attacked offline.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User").field("name", &self.name).field("role", &self.role).finish_non_exhaustive()
    }
}

/// Sessions and sign-in limits of the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Console {
    /// A session unused this long ends.
    pub session_idle_minutes: u32,
    /// A session ends this long after sign-in, however it is used.
    pub session_max_hours: u32,
    /// Sessions held at once; the least recently used one ends beyond it.
    pub max_sessions: usize,
    /// Mark the session cookie `Secure` (only sent over HTTPS): set it when a TLS proxy fronts
    /// `http_listen`.
    pub secure_cookie: bool,
    /// Failed sign-ins for one name, or from one address, before it is refused for a while.
    pub login_max_failures: u32,
    /// How long a name or address is refused after too many failures.
    pub login_lockout_minutes: u32,
}

impl Default for Console {
    fn default() -> Self {
        Self {
            session_idle_minutes: 480,
            session_max_hours: 24,
            max_sessions: 1000,
            secure_cookie: false,
            login_max_failures: 5,
            login_lockout_minutes: 15,
        }
    }
}

/// Longest sign-in name: it is shown on pages and written into archive records.
const MAX_NAME_CHARS: usize = 64;

pub(crate) fn check_console(config: &Config, problem: &mut impl FnMut(&str, String)) {
    let console = &config.console;
    for (key, value) in [
        ("console.session_idle_minutes", u64::from(console.session_idle_minutes)),
        ("console.session_max_hours", u64::from(console.session_max_hours)),
        ("console.max_sessions", console.max_sessions as u64),
        ("console.login_max_failures", u64::from(console.login_max_failures)),
        ("console.login_lockout_minutes", u64::from(console.login_lockout_minutes)),
    ] {
        if value == 0 {
            problem(key, "must be at least 1".to_owned());
        }
    }
    let mut names = std::collections::HashSet::new();
    for (i, user) in config.users.iter().enumerate() {
        let key = format!("users[{i}]");
        let name = user.name.trim();
        if name.is_empty() || name != user.name || name.chars().count() > MAX_NAME_CHARS {
            problem(
                &format!("{key}.name"),
                format!("{:?}: 1-{MAX_NAME_CHARS} characters, no blanks around", user.name),
            );
        } else if name.chars().any(char::is_control) {
            problem(&format!("{key}.name"), format!("{name:?} holds a control character"));
        } else if !names.insert(name) {
            problem(&format!("{key}.name"), format!("{name:?} is listed twice"));
        }
        if !user.password_hash.starts_with("$argon2id$") {
            problem(
                &format!("{key}.password_hash"),
                "is not an Argon2id hash: make one with `hj212d hash-password`".to_owned(),
            );
        }
    }
}
