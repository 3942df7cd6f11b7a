//! The access token as m2m holds it: a secret, its type and its lifetime.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

/// An access token obtained from a token endpoint.
///
/// Cloning is cheap (one reference count), so a cache hit costs no allocation.
/// `Debug` never shows the token; the `Authorization` header value is built
/// once and marked sensitive, so HTTP-level logging redacts it too.
#[derive(Clone)]
pub struct AccessToken(Arc<Inner>);

struct Inner {
    secret: SecretString,
    token_type: String,
    header: HeaderValue,
    expires_at: SystemTime,
    scopes: Option<Vec<String>>,
}

/// A token value that cannot be sent in an HTTP header (control characters).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the token endpoint returned a token that cannot be sent in an HTTP header")]
pub struct InvalidTokenValue;

impl AccessToken {
    /// Builds a token. `token_type` is compared case-insensitively; `bearer`
    /// in any case becomes `Bearer`, any other type is kept as given (the
    /// header is `{token_type} {access_token}`).
    pub fn new(
        secret: SecretString,
        token_type: &str,
        expires_at: SystemTime,
        scopes: Option<Vec<String>>,
    ) -> Result<Self, InvalidTokenValue> {
        let token_type = normalise_token_type(token_type);
        let mut header =
            HeaderValue::from_str(&format!("{token_type} {}", secret.expose_secret()))
                .map_err(|_| InvalidTokenValue)?;
        header.set_sensitive(true);
        Ok(Self(Arc::new(Inner {
            secret,
            token_type,
            header,
            expires_at,
            scopes,
        })))
    }

    /// The `Authorization` header value, `{token_type} {access_token}`,
    /// marked sensitive.
    pub fn authorization(&self) -> &HeaderValue {
        &self.0.header
    }

    /// The token itself. Expose it only to send it.
    pub fn secret(&self) -> &SecretString {
        &self.0.secret
    }

    /// The token type as it goes into the header (`Bearer`, `DPoP`, …).
    pub fn token_type(&self) -> &str {
        &self.0.token_type
    }

    /// When the token stops being valid.
    pub fn expires_at(&self) -> SystemTime {
        self.0.expires_at
    }

    /// The scopes the server granted, when it said.
    pub fn scopes(&self) -> Option<&[String]> {
        self.0.scopes.as_deref()
    }

    /// Whether `authorization` is the header value this token produces.
    /// Used to evict a rejected token only if it is still the cached one.
    pub fn is_sent_as(&self, authorization: &HeaderValue) -> bool {
        self.0.header.as_bytes() == authorization.as_bytes()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token_type", &self.0.token_type)
            .field("token", &"[redacted]")
            .field("expires_at", &self.0.expires_at)
            .field("scopes", &self.0.scopes)
            .finish()
    }
}

fn normalise_token_type(token_type: &str) -> String {
    let trimmed = token_type.trim();
    if trimmed.is_empty() || trimmed.eq_ignore_ascii_case("bearer") {
        "Bearer".to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn token(value: &str, token_type: &str) -> AccessToken {
        AccessToken::new(
            SecretString::from(value),
            token_type,
            SystemTime::UNIX_EPOCH + Duration::from_secs(60),
            None,
        )
        .unwrap()
    }

    #[test]
    fn bearer_is_normalised_and_other_types_kept() {
        assert_eq!(token("abc", "bearer").authorization(), "Bearer abc");
        assert_eq!(token("abc", "BEARER").token_type(), "Bearer");
        assert_eq!(token("abc", "DPoP").authorization(), "DPoP abc");
    }

    #[test]
    fn header_is_sensitive_and_debug_is_redacted() {
        let t = token("very-secret-token", "Bearer");
        assert!(t.authorization().is_sensitive());
        let debug = format!("{t:?}");
        assert!(!debug.contains("very-secret-token"), "{debug}");
        assert!(!format!("{:?}", t.authorization()).contains("very-secret-token"));
    }

    #[test]
    fn control_characters_are_refused() {
        let err = AccessToken::new(
            SecretString::from("a\nb"),
            "Bearer",
            SystemTime::UNIX_EPOCH,
            None,
        );
        assert!(err.is_err());
    }

    #[test]
    fn recognises_its_own_header() {
        let a = token("one", "Bearer");
        assert!(a.is_sent_as(token("one", "bearer").authorization()));
        assert!(!a.is_sent_as(token("two", "Bearer").authorization()));
    }
}
