//! Signing in and out. Passwords are checked against the Argon2id hash of `[[users]]` on a
//! blocking thread; an unknown name costs the same check (against a fixed hash), so answers do
//! not tell which names exist. Failures are limited per name and per address ([`super::limiter`]).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::PasswordVerifier;
use axum::Extension;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{Nav, page};
use super::session::{self, SignedIn};
use super::text::Lang;
use super::{Visitor, csrf_ok, html_page, off};
use crate::AppState;
use crate::metrics::CONSOLE_SIGN_INS;

/// Checked when the name is unknown, so that an unknown name takes as long as a wrong password.
static UNKNOWN_USER_HASH: LazyLock<String> = LazyLock::new(|| {
    use argon2::password_hash::PasswordHasher;
    Argon2::default().hash_password(b"no such user").map(|h| h.to_string()).unwrap_or_default()
});

#[derive(Debug, Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
    lang: Option<String>,
}

pub(crate) async fn form(
    State(state): State<AppState>,
    Query(query): Query<LoginQuery>,
    headers: HeaderMap,
) -> Response {
    if state.console.is_none() {
        return off();
    }
    let lang = Lang::of(query.lang.as_deref(), &headers);
    html_page(login_page(lang, query.next.as_deref(), None), lang, query.lang.is_some())
}

fn login_page(lang: Lang, next: Option<&str>, problem: Option<&str>) -> Markup {
    let text = lang.text();
    let body = html! {
        h1 { (text.sign_in) }
        @if let Some(problem) = problem { p.error role="alert" { (problem) } }
        form.login method="post" action="/console/login" {
            label { (text.user) input type="text" name="user" autocomplete="username" required autofocus; }
            label { (text.password) input type="password" name="password" autocomplete="current-password" required; }
            input type="hidden" name="next" value=(safe_next(next));
            input type="hidden" name="lang" value=(lang.code());
            button type="submit" { (text.sign_in) }
        }
    };
    page(lang, None, Nav::Other, text.sign_in, "/console/login", &body)
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    user: String,
    password: String,
    next: Option<String>,
    lang: Option<String>,
}

pub(crate) async fn sign_in(
    State(state): State<AppState>,
    peer: Option<Extension<crate::serve::Peer>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let Some(console) = state.console.clone() else { return off() };
    let lang = Lang::of(form.lang.as_deref(), &headers);
    let address = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |Extension(p)| p.0.ip());
    let name = form.user.trim().to_owned();
    if console.limiter.locked(&name, address).is_some() {
        metrics::counter!(CONSOLE_SIGN_INS, "outcome" => "locked").increment(1);
        tracing::warn!(user = %name, %address, "console sign-in refused: too many failures");
        let page = login_page(lang, form.next.as_deref(), Some(lang.text().locked_out));
        return (StatusCode::TOO_MANY_REQUESTS, html_page(page, lang, false)).into_response();
    }
    let user = console.users.get(&name).cloned();
    let hash = user.as_ref().map_or_else(|| UNKNOWN_USER_HASH.clone(), |u| u.password_hash.clone());
    let password = form.password;
    let verified = state
        .queries
        .run(move || Ok::<_, String>(Argon2::default().verify_password(password.as_bytes(), hash.as_str()).is_ok()))
        .await;
    let Some(user) = user.filter(|_| matches!(verified, Ok(true))) else {
        if let Err(busy) = verified {
            return busy.into_response();
        }
        console.limiter.failed(&name, address);
        metrics::counter!(CONSOLE_SIGN_INS, "outcome" => "wrong").increment(1);
        tracing::warn!(user = %name, %address, "console sign-in failed: wrong user name or password");
        let page = login_page(lang, form.next.as_deref(), Some(lang.text().wrong_password));
        return (StatusCode::UNAUTHORIZED, html_page(page, lang, false)).into_response();
    };
    console.limiter.succeeded(&name);
    let token = match console.sessions.start(&user.name, user.role) {
        Ok(token) => token,
        Err(error) => {
            tracing::error!(%error, "no random bytes for a console session");
            return (StatusCode::INTERNAL_SERVER_ERROR, "no random source for a session\n").into_response();
        }
    };
    metrics::counter!(CONSOLE_SIGN_INS, "outcome" => "ok").increment(1);
    tracing::info!(user = %user.name, role = user.role.as_str(), %address, "console sign-in");
    let max_age = u64::from(console.settings.session_max_hours) * 3600;
    let secure = if console.settings.secure_cookie { "; Secure" } else { "" };
    let cookie = format!("{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}", session::COOKIE);
    let mut response = Redirect::to(safe_next(form.next.as_deref())).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    csrf: String,
}

pub(crate) async fn sign_out(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !csrf_ok(&visitor.user, &form.csrf) {
        return forbidden(&visitor.user);
    }
    if let (Some(console), Some(token)) = (&state.console, session::token_of(&headers)) {
        console.sessions.end(token);
    }
    tracing::info!(user = %visitor.user.name, "console sign-out");
    let mut response = Redirect::to("/console/login").into_response();
    let expired = format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0", session::COOKIE);
    if let Ok(value) = HeaderValue::from_str(&expired) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// A form without the session's CSRF token.
pub(crate) fn forbidden(user: &SignedIn) -> Response {
    tracing::warn!(user = %user.name, "console form refused: missing or wrong CSRF token");
    (StatusCode::FORBIDDEN, "the form is stale or not from this console: reload the page\n").into_response()
}

/// Where to go after signing in: only a console path of this server.
fn safe_next(next: Option<&str>) -> &str {
    next.filter(|n| n.starts_with("/console/") && !n.contains("//") && !n.contains('\\')).unwrap_or("/console/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/console/sites/A1?lang=en")), "/console/sites/A1?lang=en");
        for elsewhere in
            ["https://evil.example/", "//evil.example/console/", "/console//evil", "/api/v1/sites", "/console\\x"]
        {
            assert_eq!(safe_next(Some(elsewhere)), "/console/", "{elsewhere}");
        }
        assert_eq!(safe_next(None), "/console/");
    }
}
