//! Reading `WWW-Authenticate` challenges (RFC 7235 §4.1, RFC 6750 §3).
//!
//! Only one question matters to m2m: did the API reject the token itself
//! (`Bearer error="invalid_token"`), so that a new token may help? A plain
//! 401 without that error, or `insufficient_scope`, must not trigger a renewal
//! loop. The parser is total: any input yields a value, never a panic.

/// One `Bearer` challenge from a `WWW-Authenticate` header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BearerChallenge {
    /// `realm`, when given.
    pub realm: Option<String>,
    /// `error`: `invalid_request`, `invalid_token` or `insufficient_scope`.
    pub error: Option<String>,
    /// `error_description`, when given.
    pub error_description: Option<String>,
    /// `scope`, when given (`insufficient_scope` names the scope needed).
    pub scope: Option<String>,
}

impl BearerChallenge {
    /// Whether the challenge says the token itself was rejected.
    pub fn is_invalid_token(&self) -> bool {
        self.error.as_deref() == Some("invalid_token")
    }
}

/// Parses every `Bearer` challenge in one `WWW-Authenticate` header value.
/// Challenges of other schemes are skipped; malformed parts are ignored.
pub fn bearer_challenges(header: &str) -> Vec<BearerChallenge> {
    challenges_of(header, "bearer")
}

/// Parses every `DPoP` challenge (RFC 9449 §7.1: the same parameters as
/// Bearer's, and `error="use_dpop_nonce"`) in one `WWW-Authenticate` value.
pub fn dpop_challenges(header: &str) -> Vec<BearerChallenge> {
    challenges_of(header, "dpop")
}

/// The challenges of `scheme` (lower case) in one `WWW-Authenticate` value.
fn challenges_of(header: &str, scheme: &str) -> Vec<BearerChallenge> {
    let mut parser = Parser {
        rest: header.as_bytes(),
    };
    let mut found = Vec::new();
    let mut current: Option<BearerChallenge> = None;
    let mut in_bearer = false;
    loop {
        parser.skip_separators();
        let Some(token) = parser.token() else {
            if parser.rest.is_empty() {
                break;
            }
            // Not a token (stray quote, `=`, …): drop one byte and go on.
            parser.rest = &parser.rest[1..];
            continue;
        };
        parser.skip_spaces();
        if parser.peek() == Some(b'=') {
            // `name=value`, or a token68 such as `abc==`.
            parser.rest = &parser.rest[1..];
            parser.skip_spaces();
            let value = if parser.peek() == Some(b'"') {
                parser.quoted()
            } else {
                parser.token().unwrap_or_default()
            };
            if let (true, Some(challenge)) = (in_bearer, current.as_mut()) {
                let slot = match token.to_ascii_lowercase().as_str() {
                    "realm" => &mut challenge.realm,
                    "error" => &mut challenge.error,
                    "error_description" => &mut challenge.error_description,
                    "scope" => &mut challenge.scope,
                    _ => continue,
                };
                slot.get_or_insert(value);
            }
        } else {
            // A new scheme starts.
            found.extend(current.take());
            in_bearer = token.eq_ignore_ascii_case(scheme);
            if in_bearer {
                current = Some(BearerChallenge::default());
            }
        }
    }
    found.extend(current);
    found
}

/// Whether any value of the `WWW-Authenticate` headers asks for a new token
/// (a `Bearer` or `DPoP` challenge with `error="invalid_token"`).
pub fn says_invalid_token<'a>(headers: impl IntoIterator<Item = &'a http::HeaderValue>) -> bool {
    headers.into_iter().any(|value| {
        value.to_str().is_ok_and(|text| {
            bearer_challenges(text)
                .iter()
                .chain(dpop_challenges(text).iter())
                .any(BearerChallenge::is_invalid_token)
        })
    })
}

/// Whether an API's answer asks for a DPoP proof with its nonce: status 401
/// with a `DPoP error="use_dpop_nonce"` challenge (RFC 9449 §9).
pub fn asks_for_dpop_nonce(status: http::StatusCode, headers: &http::HeaderMap) -> bool {
    status == http::StatusCode::UNAUTHORIZED
        && headers
            .get_all(http::header::WWW_AUTHENTICATE)
            .iter()
            .any(|value| {
                value.to_str().is_ok_and(|text| {
                    dpop_challenges(text)
                        .iter()
                        .any(|c| c.error.as_deref() == Some("use_dpop_nonce"))
                })
            })
}

/// Whether an API's answer rejects the token itself: status 401 with a
/// `Bearer` (or `DPoP`) `error="invalid_token"` challenge. Only then can a
/// new token help; a plain 401, or a 403 `insufficient_scope`, is the
/// caller's to handle.
pub fn rejects_token(status: http::StatusCode, headers: &http::HeaderMap) -> bool {
    status == http::StatusCode::UNAUTHORIZED
        && says_invalid_token(headers.get_all(http::header::WWW_AUTHENTICATE))
}

struct Parser<'a> {
    rest: &'a [u8],
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.rest = &self.rest[1..];
        }
    }

    fn skip_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.rest = &self.rest[1..];
        }
    }

    /// An RFC 7230 token (plus `/` and `=` padding so token68 survives).
    fn token(&mut self) -> Option<String> {
        let len = self.rest.iter().take_while(|b| is_token_byte(**b)).count();
        if len == 0 {
            return None;
        }
        let (token, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(String::from_utf8_lossy(token).into_owned())
    }

    /// A quoted string with backslash escapes; an unterminated one runs to
    /// the end of the input.
    fn quoted(&mut self) -> String {
        debug_assert_eq!(self.peek(), Some(b'"'));
        let mut bytes = Vec::new();
        let mut i = 1;
        while i < self.rest.len() {
            match self.rest[i] {
                b'\\' if i + 1 < self.rest.len() => {
                    bytes.push(self.rest[i + 1]);
                    i += 2;
                }
                b'"' => {
                    i += 1;
                    break;
                }
                b => {
                    bytes.push(b);
                    i += 1;
                }
            }
        }
        self.rest = &self.rest[i.min(self.rest.len())..];
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_rfc_6750_example() {
        let found = bearer_challenges(
            r#"Bearer realm="example", error="invalid_token", error_description="The access token expired""#,
        );
        assert_eq!(
            found,
            vec![BearerChallenge {
                realm: Some("example".into()),
                error: Some("invalid_token".into()),
                error_description: Some("The access token expired".into()),
                scope: None,
            }]
        );
        assert!(found[0].is_invalid_token());
    }

    #[test]
    fn cenda_style_and_case_insensitive_scheme() {
        assert!(bearer_challenges(r#"bearer error="invalid_token""#)[0].is_invalid_token());
        assert!(bearer_challenges("Bearer error=invalid_token")[0].is_invalid_token());
    }

    #[test]
    fn plain_bearer_and_insufficient_scope_are_not_invalid_token() {
        assert!(!bearer_challenges(r#"Bearer realm="api""#)[0].is_invalid_token());
        let scope = bearer_challenges(r#"Bearer error="insufficient_scope", scope="a b""#);
        assert!(!scope[0].is_invalid_token());
        assert_eq!(scope[0].scope.as_deref(), Some("a b"));
    }

    #[test]
    fn dpop_challenges_are_read_apart_from_bearer() {
        let header = r#"DPoP algs="ES256", error="use_dpop_nonce", Bearer realm="r""#;
        assert_eq!(
            dpop_challenges(header)[0].error.as_deref(),
            Some("use_dpop_nonce")
        );
        assert!(bearer_challenges(header)[0].error.is_none());
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static(r#"dpop error="invalid_token""#),
        );
        assert!(rejects_token(http::StatusCode::UNAUTHORIZED, &headers));
        assert!(!asks_for_dpop_nonce(
            http::StatusCode::UNAUTHORIZED,
            &headers
        ));
        headers.insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static(r#"DPoP error="use_dpop_nonce""#),
        );
        assert!(asks_for_dpop_nonce(
            http::StatusCode::UNAUTHORIZED,
            &headers
        ));
        assert!(!rejects_token(http::StatusCode::UNAUTHORIZED, &headers));
    }

    #[test]
    fn several_schemes_in_one_header() {
        let found = bearer_challenges(
            r#"Basic realm="x", Newauth realm="apps", type=1, Bearer error="invalid_token", DPoP algs="ES256""#,
        );
        assert_eq!(found.len(), 1);
        assert!(found[0].is_invalid_token());
        // An `error` of another scheme does not count.
        assert!(bearer_challenges(r#"Basic error="invalid_token""#).is_empty());
    }

    #[test]
    fn escapes_and_garbage_do_not_panic() {
        let found =
            bearer_challenges(r#"Bearer error_description="say \"hi\"", error="invalid_token"#);
        assert_eq!(found[0].error_description.as_deref(), Some(r#"say "hi""#));
        assert_eq!(found[0].error.as_deref(), Some("invalid_token"));
        for input in [
            "",
            "=",
            "\"",
            "Bearer =",
            "Bearer error=\"",
            ",,,",
            "Bearer \\",
            "é Bearer",
        ] {
            let _ = bearer_challenges(input);
        }
    }
}
