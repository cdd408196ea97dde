//! The frame every console page shares: header, navigation, the signed-in user, the language
//! switch; and the style sheet and script, embedded in the binary (no CDN, no build step).

use maud::{DOCTYPE, Markup, html};

use super::session::SignedIn;
use super::text::Lang;

pub(crate) const CSS: &str = include_str!("console.css");
pub(crate) const JS: &str = include_str!("console.js");

/// Which page of the navigation is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Fleet,
    Alerts,
    Other,
}

/// A whole page around `body`. `path` is the page's own path, for the language switch.
pub(crate) fn page(lang: Lang, user: Option<&SignedIn>, nav: Nav, title: &str, path: &str, body: &Markup) -> Markup {
    let text = lang.text();
    let html_lang = if lang == Lang::Zh { "zh-CN" } else { "en" };
    html! {
        (DOCTYPE)
        html lang=(html_lang) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (text.title) }
                link rel="stylesheet" href="/console/console.css";
                script src="/console/console.js" defer {}
            }
            body {
                header {
                    a.brand href="/console/" { (text.title) }
                    @if user.is_some() {
                        nav {
                            a href="/console/" class=[(nav == Nav::Fleet).then_some("here")] { (text.fleet) }
                            a href="/console/alerts" class=[(nav == Nav::Alerts).then_some("here")] { (text.alerts) }
                        }
                    }
                    span.spacer {}
                    a.lang href={ (path) "?lang=" (lang.other().code()) } { (text.switch_to) }
                    @if let Some(user) = user {
                        span.user { (user.name) " (" (user.role.as_str()) ")" }
                        form.inline method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(user.csrf);
                            button type="submit" { (text.sign_out) }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A time as pages show it: Beijing time to the minute.
pub(crate) fn time(ms: i64) -> String {
    let text = hj212_proto::time::BeijingTime::from_unix_millis(ms).to_rfc3339();
    // 2026-11-01T10:00:00.000+08:00 -> 2026-11-01 10:00
    text.get(..16).map_or(text.clone(), |t| t.replacen('T', " ", 1))
}

/// A rate in hundredths of a percent as `99.50%`, or a dash when nothing was due.
pub(crate) fn percent(basis_points: Option<u64>) -> String {
    basis_points.map_or_else(|| "–".to_owned(), |bp| format!("{}.{:02}%", bp / 100, bp % 100))
}
