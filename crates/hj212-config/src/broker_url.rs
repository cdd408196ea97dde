//! `mqtt.url`: parsed once, here, for the config check and the publisher alike.

use std::fmt;

const DEFAULT_PORT: u16 = 1883;
const DEFAULT_TLS_PORT: u16 = 8883;

/// A parsed broker url. `Display` gives `mqtt://host:port`, fit for logs (no credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub tls: bool,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Why a broker url is refused; `Display` names the url with any credentials masked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MQTT broker url {url:?}: {reason}")]
pub struct BrokerUrlError {
    pub url: String,
    pub reason: String,
}

fn invalid(url: &str, reason: impl Into<String>) -> BrokerUrlError {
    // Never echo credentials: everything between "://" and '@' is masked.
    let shown = match (url.find("://"), url.rfind('@')) {
        (Some(start), Some(at)) if at > start => format!("{}***{}", &url[..start + 3], &url[at..]),
        _ => url.to_owned(),
    };
    BrokerUrlError { url: shown, reason: reason.into() }
}

impl BrokerUrl {
    /// Parses `mqtt://host[:port]` (1883) or `mqtts://host[:port]` (8883); a trailing `/` is allowed.
    ///
    /// # Errors
    /// [`BrokerUrlError`] naming the url and what is wrong with it.
    pub fn parse(url: &str) -> Result<Self, BrokerUrlError> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(invalid(url, "missing scheme (expected mqtt:// or mqtts://)"));
        };
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "mqtt" => false,
            "mqtts" => true,
            _ => return Err(invalid(url, format!("unknown scheme {scheme:?} (expected mqtt:// or mqtts://)"))),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('@') {
            return Err(invalid(url, "credentials in the url are not supported; set username and password_file"));
        }
        if authority.contains(['/', '?', '#']) {
            return Err(invalid(url, "unexpected path, query or fragment after host:port"));
        }
        let (host, port) = split_host_port(url, authority)?;
        if host.is_empty() {
            return Err(invalid(url, "missing host"));
        }
        if host.contains(|c: char| c.is_whitespace() || c.is_control() || c == '[' || c == ']') {
            return Err(invalid(url, format!("bad host {host:?}")));
        }
        let port = match port {
            None if tls => DEFAULT_TLS_PORT,
            None => DEFAULT_PORT,
            Some(port) => match port.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(invalid(url, format!("bad port {port:?} (expected 1-65535)"))),
            },
        };
        Ok(Self { tls, host: host.to_owned(), port })
    }
}

fn split_host_port<'a>(url: &str, authority: &'a str) -> Result<(&'a str, Option<&'a str>), BrokerUrlError> {
    let Some(bracketed) = authority.strip_prefix('[') else {
        return Ok(match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        });
    };
    let Some((host, after)) = bracketed.split_once(']') else {
        return Err(invalid(url, "unclosed '[' in IPv6 host"));
    };
    match after {
        "" => Ok((host, None)),
        _ => match after.strip_prefix(':') {
            Some(port) => Ok((host, Some(port))),
            None => Err(invalid(url, "expected ':port' after the IPv6 host")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(url: &str) -> String {
        BrokerUrl::parse(url).unwrap_err().reason
    }

    #[test]
    fn parses_urls_with_default_ports() {
        let parsed = |url| BrokerUrl::parse(url).unwrap();
        assert_eq!(parsed("mqtt://broker.local"), BrokerUrl { tls: false, host: "broker.local".into(), port: 1883 });
        assert_eq!(parsed("mqtts://broker.local/"), BrokerUrl { tls: true, host: "broker.local".into(), port: 8883 });
        assert_eq!(parsed("MQTT://127.0.0.1:1884"), BrokerUrl { tls: false, host: "127.0.0.1".into(), port: 1884 });
        assert_eq!(parsed("mqtt://[::1]:1885"), BrokerUrl { tls: false, host: "::1".into(), port: 1885 });
        assert_eq!(parsed("mqtt://[::1]:1885").to_string(), "mqtt://[::1]:1885");
    }

    #[test]
    fn rejects_bad_urls_with_a_reason() {
        assert!(reason("http://broker:1883").contains("unknown scheme \"http\""));
        assert!(reason("broker:1883").contains("missing scheme"));
        assert!(reason("mqtt://").contains("missing host"));
        assert!(reason("mqtt://:1883").contains("missing host"));
        assert!(reason("mqtt://broker:abc").contains("bad port \"abc\""));
        assert!(reason("mqtt://broker:0").contains("bad port"));
        assert!(reason("mqtt://broker:65536").contains("bad port"));
        assert!(reason("mqtt://broker:").contains("bad port"));
        assert!(reason("mqtt://broker:1883/topic").contains("unexpected path"));
        assert!(reason("mqtt://[::1").contains("unclosed"));
    }

    #[test]
    fn url_errors_name_the_url_but_not_its_credentials() {
        let error = BrokerUrl::parse("mqtt://user:s3cret@broker:1883").unwrap_err().to_string();
        assert!(error.contains("mqtt://***@broker:1883"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
        let error = BrokerUrl::parse("ftp://broker").unwrap_err().to_string();
        assert!(error.contains("\"ftp://broker\""), "{error}");
    }
}
