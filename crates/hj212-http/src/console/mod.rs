//! The web console on `http_listen` (`/console/`): pages rendered on the server in Chinese or
//! English for duty staff and auditors, behind per-user sign-in (`[[users]]`, `[console]`).
//! Without users it is off. Forms that change something carry the session's CSRF token, the
//! session cookie is HttpOnly and SameSite=Strict, and every page forbids framing and
//! scripts from elsewhere.

mod alerts_page;
mod fleet;
mod fleet_rates;
mod layout;
mod limiter;
mod login;
mod records;
pub(crate) mod session;
mod site;
mod site_lists;
mod site_views;
mod text;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use self::limiter::LoginLimiter;
use self::session::{Sessions, SignedIn};
use self::text::Lang;
use crate::AppState;

/// What the console holds besides the API's state.
#[derive(Debug)]
pub(crate) struct Console {
    users: HashMap<String, hj212_config::User>,
    sessions: Sessions,
    limiter: LoginLimiter,
    settings: hj212_config::Console,
    rates: fleet_rates::FleetRates,
}

impl Console {
    /// The console for `users`; `None` without users (the console is off).
    pub(crate) fn new(users: &[hj212_config::User], settings: &hj212_config::Console) -> Option<Arc<Self>> {
        if users.is_empty() {
            return None;
        }
        Some(Arc::new(Self {
            users: users.iter().map(|u| (u.name.clone(), u.clone())).collect(),
            sessions: Sessions::new(settings),
            limiter: LoginLimiter::new(settings),
            settings: settings.clone(),
            rates: fleet_rates::FleetRates::default(),
        }))
    }
}

impl Console {
    /// Whether `token` is a live session's.
    pub(crate) fn signed_in(&self, token: &str) -> bool {
        self.sessions.user(token).is_some()
    }
}

/// The console's routes (none of them behind the API's bearer tokens).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(fleet::page))
        .route("/console/login", get(login::form).post(login::sign_in))
        .route("/console/logout", post(login::sign_out))
        .route("/console/sites/{mn}", get(site::page))
        .route("/console/sites/{mn}/marks", post(records::add_mark))
        .route("/console/sites/{mn}/visits", post(records::add_visit))
        .route("/console/sites/{mn}/commands", post(records::add_command))
        .route("/console/alerts", get(alerts_page::page))
        .route("/console/alerts/{id}/ack", post(alerts_page::ack))
        .route("/console/console.css", get(|| async { asset("text/css; charset=utf-8", layout::CSS) }))
        .route("/console/console.js", get(|| async { asset("text/javascript; charset=utf-8", layout::JS) }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "max-age=3600")], body).into_response()
}

/// `?lang=` on any page.
#[derive(Debug, Deserialize)]
struct LangQuery {
    lang: Option<String>,
}

/// A page request from a signed-in user, in the language asked for.
#[derive(Debug)]
pub(crate) struct Visitor {
    pub user: SignedIn,
    pub lang: Lang,
    /// `?lang=` was given: the answer remembers it in a cookie.
    pub lang_asked: bool,
}

impl Visitor {
    /// Whether this user may change things (acknowledge, mark, record visits, send commands).
    pub(crate) fn operates(&self) -> bool {
        self.user.role >= hj212_config::Role::Operator
    }
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(console) = &state.console else { return Err(off()) };
        let asked = Query::<LangQuery>::try_from_uri(&parts.uri).ok().and_then(|q| q.0.lang);
        let lang = Lang::of(asked.as_deref(), &parts.headers);
        let user = session::token_of(&parts.headers).and_then(|token| console.sessions.user(token));
        if let Some(user) = user {
            return Ok(Self { user, lang, lang_asked: asked.is_some() });
        }
        let next = parts.uri.path_and_query().map_or("/console/", |p| p.as_str());
        Err(Redirect::to(&format!("/console/login?next={}", percent_encode(next))).into_response())
    }
}

/// The answer while no `[[users]]` are configured.
fn off() -> Response {
    (StatusCode::NOT_FOUND, "the console is off: add [[users]] to the config (hj212d hash-password makes the hash)\n")
        .into_response()
}

/// A page's HTML with the headers every console page carries.
pub(crate) fn html_page(markup: maud::Markup, lang: Lang, remember_lang: bool) -> Response {
    let mut response = markup.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if remember_lang {
        let cookie = format!("{}={}; Path=/; SameSite=Strict; Max-Age=31536000", text::LANG_COOKIE, lang.code());
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

/// Whether a form's CSRF token is the session's (compared without an early exit).
pub(crate) fn csrf_ok(user: &SignedIn, given: &str) -> bool {
    crate::guard::same(given, &user.csrf)
}

/// Only the characters a path and query need kept as they are.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"/-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}
