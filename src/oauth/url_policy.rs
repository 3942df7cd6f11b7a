//! Which URLs may receive credentials: https, or plain http to loopback or
//! with an explicit opt-in; never a URL that carries user info.

use std::net::IpAddr;

use url::Url;

use super::error::ConfigError;

/// Whether credentials may be sent to `url`: https always; plain http only
/// to a loopback host (`localhost`, `127.0.0.0/8`, `::1`) or with
/// `allow_http`. URLs with user info are refused (they would end up in logs).
pub fn check_credentials_url(url: &Url, allow_http: bool) -> Result<(), ConfigError> {
    if !url.username().is_empty() || url.password().is_some() {
        let mut shown = url.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        return Err(ConfigError::InvalidUrl {
            url: shown.to_string(),
            reason: "a URL must not carry credentials".into(),
        });
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_http || is_loopback(url) => Ok(()),
        "http" => Err(ConfigError::InsecureUrl {
            url: url.to_string(),
        }),
        other => Err(ConfigError::InvalidUrl {
            url: url.to_string(),
            reason: format!("the scheme must be https, not {other}"),
        }),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_over_https_or_loopback_only() {
        let ok = |u: &str, allow| check_credentials_url(&Url::parse(u).unwrap(), allow).is_ok();
        assert!(ok("https://login.example/token", false));
        assert!(ok("http://127.0.0.1:8080/token", false));
        assert!(ok("http://127.9.9.9/token", false));
        assert!(ok("http://[::1]:9/token", false));
        assert!(ok("http://localhost/token", false));
        assert!(!ok("http://login.example/token", false));
        assert!(!ok("http://10.0.0.1/token", false));
        assert!(!ok("http://localhost.evil.example/token", false));
        assert!(ok("http://login.example/token", true));
        assert!(!ok("ftp://login.example/token", true));
        let err = check_credentials_url(&Url::parse("https://u:p@login.example/").unwrap(), false)
            .unwrap_err();
        assert!(!err.to_string().contains("u:p"), "{err}");
    }
}
