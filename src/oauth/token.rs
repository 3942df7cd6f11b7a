//! The access token as m2m holds it: a secret, its type and its lifetime.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

use super::error::{AuthError, InvalidTokenValue};

/// An access token obtained from a token endpoint.
///
/// Cloning is cheap (one reference count), so a cache hit costs no allocation.
/// `Debug` never shows the token; the `Authorization` header value is built
/// once and marked sensitive, so HTTP-level logging redacts it too.
#[derive(Clone)]
pub struct AccessToken(Arc<Inner>);

struct Inner {
    /// The token's one copy is in the header, after `{token_type} `: the
    /// secret alone is made from it only when asked for
    /// ([`AccessToken::secret`]: a store that serialises tokens), so that a
    /// cached token does not hold its value twice.
    secret: OnceLock<SecretString>,
    token_type: TokenType,
    header: HeaderValue,
    expires_at: SystemTime,
    scopes: Option<Vec<String>>,
}

/// The token types m2m can send.
///
/// RFC 6749 §7.1: a client must not use a token whose type it does not
/// understand. [`TokenType::parse`] is the one place where the type of
/// every token is decided; a token type that needs more than a header (DPoP
/// proofs) gets its variant here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenType {
    /// RFC 6750: sent as `Authorization: Bearer {access_token}`.
    Bearer,
    /// RFC 9449: bound to the client's DPoP key, sent as
    /// `Authorization: DPoP {access_token}` with a fresh `DPoP` proof on
    /// every request. Only a client with a DPoP key uses one.
    DPoP,
}

impl TokenType {
    /// Most characters of a refused `token_type` shown in the error.
    const SHOWN_CHARS: usize = 40;

    /// Reads a `token_type` as a token endpoint sent it. Case-insensitive
    /// (`bearer` happens); absent or empty means `Bearer`; `DPoP` in any
    /// case is [`TokenType::DPoP`]. Any other type is refused with
    /// [`AuthError::UnsupportedTokenType`], which names it.
    pub fn parse(token_type: &str) -> Result<Self, AuthError> {
        let trimmed = token_type.trim();
        if trimmed.is_empty() || trimmed.eq_ignore_ascii_case("bearer") {
            return Ok(Self::Bearer);
        }
        if trimmed.eq_ignore_ascii_case("dpop") {
            return Ok(Self::DPoP);
        }
        let mut shown: String = trimmed
            .chars()
            .take(Self::SHOWN_CHARS)
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        if shown.len() < trimmed.len() {
            shown.push('…');
        }
        Err(AuthError::UnsupportedTokenType { token_type: shown })
    }

    /// The scheme of the `Authorization` header (`Bearer`, `DPoP`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "Bearer",
            Self::DPoP => "DPoP",
        }
    }
}

impl AccessToken {
    /// Builds a token. `token_type` is read by [`TokenType::parse`]: Bearer
    /// in any case (or none) and DPoP are accepted, any other type is
    /// refused. The header is `{Bearer|DPoP} {access_token}`; a value that cannot go into a
    /// header is refused with [`AuthError::InvalidToken`].
    pub fn new(
        secret: SecretString,
        token_type: &str,
        expires_at: SystemTime,
        scopes: Option<Vec<String>>,
    ) -> Result<Self, AuthError> {
        let token_type = TokenType::parse(token_type)?;
        let mut header = HeaderValue::from_str(&format!(
            "{} {}",
            token_type.as_str(),
            secret.expose_secret()
        ))
        .map_err(|_| InvalidTokenValue)?;
        header.set_sensitive(true);
        // `secret` is dropped here (and zeroised): the header holds the value.
        Ok(Self(Arc::new(Inner {
            secret: OnceLock::new(),
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
        self.0.secret.get_or_init(|| {
            // The header is `{token_type} {secret}`, visible ASCII (it was
            // made from a `str` by `HeaderValue::from_str`).
            let value = &self.0.header.as_bytes()[self.0.token_type.as_str().len() + 1..];
            SecretString::from(String::from_utf8_lossy(value).into_owned())
        })
    }

    /// The token type as it goes into the header (`Bearer`, `DPoP`).
    pub fn token_type(&self) -> &str {
        self.0.token_type.as_str()
    }

    /// The token type.
    pub fn kind(&self) -> TokenType {
        self.0.token_type
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
            .field("token_type", &self.0.token_type.as_str())
            .field("token", &"[redacted]")
            .field("expires_at", &self.0.expires_at)
            .field("scopes", &self.0.scopes)
            .finish()
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
    fn bearer_is_normalised_and_other_types_refused_by_name() {
        assert_eq!(token("abc", "bearer").authorization(), "Bearer abc");
        assert_eq!(token("abc", "BEARER").token_type(), "Bearer");
        assert_eq!(token("abc", " ").authorization(), "Bearer abc");
        let refused = |token_type: &str| match AccessToken::new(
            SecretString::from("abc"),
            token_type,
            SystemTime::UNIX_EPOCH,
            None,
        ) {
            Err(AuthError::UnsupportedTokenType { token_type }) => token_type,
            other => panic!("{token_type:?}: {other:?}"),
        };
        assert_eq!(token("abc", "dpop").authorization(), "DPoP abc");
        assert_eq!(token("abc", "DPoP").kind(), TokenType::DPoP);
        assert_eq!(refused(" mac "), "mac");
        assert_eq!(refused("a\nb"), "a?b");
        let long = refused(&"x".repeat(500));
        assert_eq!(long.chars().count(), TokenType::SHOWN_CHARS + 1);
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
    fn the_secret_is_the_value_given_read_back_from_the_header() {
        for (value, token_type) in [
            ("abc", "Bearer"),
            ("abc", "bearer"),
            ("a b\tc ", "DPoP"),
            (" lead", ""),
            ("eyJ.x-_~+/=", "Bearer"),
        ] {
            let t = token(value, token_type);
            assert_eq!(t.secret().expose_secret(), value, "{token_type}");
            // Asked again: the same one.
            assert!(std::ptr::eq(t.secret(), t.secret()));
        }
    }

    #[test]
    fn recognises_its_own_header() {
        let a = token("one", "Bearer");
        assert!(a.is_sent_as(token("one", "bearer").authorization()));
        assert!(!a.is_sent_as(token("two", "Bearer").authorization()));
    }
}
