//! Token endpoint answers, read leniently but correctly.
//!
//! - `token_type` in any case (`bearer` happens), missing means `Bearer`;
//! - `expires_in` as a number or a numeric string; missing means the
//!   configured default lifetime (never "forever"), or B2C's `expires_on`
//!   when that is given; a short one is taken at its word (a token is never
//!   used past the expiry the server gave), 0 and negative values mean
//!   "expired now", huge values are capped;
//! - Entra's `ext_expires_in`, B2C's `expires_on` / `not_before` and any
//!   unknown field are tolerated;
//! - a success status whose body is an OAuth error is an error; a missing
//!   access token is an error.

use std::time::{Duration, SystemTime};

use http::StatusCode;
use oauth2::Scope;
use secrecy::SecretString;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use super::error::{
    AuthError, ConfigError, EndpointError, InvalidResponse, OAuthError, TransportError,
};
use super::http_client::RecordedResponse;
use super::token::AccessToken;
use crate::redaction::Scrubber;
use crate::time::clock::later;

/// Lifetimes assumed or enforced for tokens.
///
/// There is no lower bound: a token is never considered valid past the
/// expiry the server gave. A short lifetime is used as given (the cache
/// refreshes such a token at once, ahead of that expiry), and an
/// `expires_in` of 0 or less means the token expires as it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenLifetimes {
    /// Used when the answer has no `expires_in` (5 minutes: a short guess
    /// costs a few extra token requests, a long one costs rejected calls).
    pub default: Duration,
    /// Upper bound (24 h): a huge `expires_in` becomes this.
    pub max: Duration,
}

impl Default for TokenLifetimes {
    fn default() -> Self {
        Self {
            default: Duration::from_secs(300),
            max: Duration::from_secs(24 * 60 * 60),
        }
    }
}

impl TokenLifetimes {
    /// With another default lifetime.
    pub fn with_default(mut self, default: Duration) -> Self {
        self.default = default;
        self
    }

    /// With another upper bound.
    pub fn with_max(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// `seconds` from the server as a lifetime: 0 for 0 or less, at most
    /// [`TokenLifetimes::max`], never more than the server said.
    fn clamp_seconds(&self, seconds: i64) -> Duration {
        let seconds = u64::try_from(seconds).unwrap_or(0);
        Duration::from_secs(seconds).min(self.max)
    }
}

/// The success body, as oauth2 deserialises it.
#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct TokenResponseBody {
    access_token: oauth2::AccessToken,
    #[serde(default)]
    token_type: TokenTypeText,
    #[serde(default, deserialize_with = "lenient_seconds")]
    expires_in: Option<i64>,
    #[serde(default, deserialize_with = "lenient_seconds")]
    expires_on: Option<i64>,
    #[serde(
        default,
        deserialize_with = "space_separated",
        serialize_with = "join_spaces"
    )]
    scope: Option<Vec<Scope>>,
}

/// `token_type` as sent; compared case-insensitively when used.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct TokenTypeText(String);

impl<'de> Deserialize<'de> for TokenTypeText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self(
            Option::<String>::deserialize(deserializer)?.unwrap_or_default(),
        ))
    }
}

impl oauth2::TokenType for TokenTypeText {}

impl oauth2::TokenResponse for TokenResponseBody {
    type TokenType = TokenTypeText;

    fn access_token(&self) -> &oauth2::AccessToken {
        &self.access_token
    }

    fn token_type(&self) -> &TokenTypeText {
        &self.token_type
    }

    fn expires_in(&self) -> Option<Duration> {
        self.expires_in
            .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)))
    }

    fn refresh_token(&self) -> Option<&oauth2::RefreshToken> {
        None
    }

    fn scopes(&self) -> Option<&Vec<Scope>> {
        self.scope.as_ref()
    }
}

/// How the lifetime of a token was decided (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LifetimeSource {
    ExpiresIn,
    ExpiresOn,
    Default,
}

impl TokenResponseBody {
    /// The token, expiring `lifetime` after `now`.
    pub(crate) fn into_access_token(
        self,
        now: SystemTime,
        lifetimes: &TokenLifetimes,
    ) -> Result<(AccessToken, Duration, LifetimeSource), Unusable> {
        if self.access_token.secret().trim().is_empty() {
            return Err(Unusable::Problem("the access_token is empty".into()));
        }
        let now_seconds = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let (lifetime, source) = match (self.expires_in, self.expires_on) {
            (Some(seconds), _) => (lifetimes.clamp_seconds(seconds), LifetimeSource::ExpiresIn),
            (None, Some(at)) => (
                lifetimes.clamp_seconds(
                    at.saturating_sub(i64::try_from(now_seconds).unwrap_or(i64::MAX)),
                ),
                LifetimeSource::ExpiresOn,
            ),
            (None, None) => (lifetimes.default, LifetimeSource::Default),
        };
        let scopes = self
            .scope
            .map(|scopes| scopes.iter().map(|s| s.to_string()).collect());
        // A type that holds the token itself is not shown.
        let type_holds_token = self
            .token_type
            .0
            .contains(self.access_token.secret().as_str());
        let token = AccessToken::new(
            SecretString::from(self.access_token.into_secret()),
            &self.token_type.0,
            later(now, lifetime),
            scopes,
        )
        .map_err(|error| match error {
            AuthError::UnsupportedTokenType { .. } if type_holds_token => {
                Unusable::TokenType("[redacted]".to_owned())
            }
            AuthError::UnsupportedTokenType { token_type } => Unusable::TokenType(token_type),
            _ => Unusable::Problem("the access_token cannot be sent in an HTTP header".into()),
        })?;
        Ok((token, lifetime, source))
    }
}

/// Why a token that parsed cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unusable {
    /// What is wrong with the answer.
    Problem(String),
    /// The `token_type` m2m does not send (shortened).
    TokenType(String),
}

/// An RFC 6749 §5.2 error body with Entra's extensions, as oauth2
/// deserialises it. `error` is required: a JSON body without it is not an
/// OAuth error.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct ErrorResponseBody {
    error: String,
    #[serde(default, deserialize_with = "lenient_text")]
    error_description: Option<String>,
    #[serde(default, deserialize_with = "lenient_text")]
    error_uri: Option<String>,
    #[serde(default, deserialize_with = "lenient_codes")]
    error_codes: Vec<i64>,
    #[serde(default, deserialize_with = "lenient_text")]
    trace_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_text")]
    correlation_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_text")]
    timestamp: Option<String>,
}

impl std::fmt::Display for ErrorResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.error)
    }
}

impl oauth2::ErrorResponse for ErrorResponseBody {}

impl ErrorResponseBody {
    fn into_oauth_error(self, scrubber: &Scrubber) -> OAuthError {
        let short = |text: Option<String>, max: usize| {
            text.and_then(|t| scrubber.excerpt(t.as_bytes(), max))
        };
        OAuthError {
            error: short(Some(self.error), 100).unwrap_or_default(),
            error_description: short(self.error_description, Scrubber::DESCRIPTION_CHARS),
            error_uri: short(self.error_uri, 300),
            error_codes: self.error_codes,
            trace_id: short(self.trace_id, 100),
            correlation_id: short(self.correlation_id, 100),
            timestamp: short(self.timestamp, 100),
        }
    }
}

/// Everything an error needs to know about where it happened.
pub(crate) struct FailureContext<'a> {
    pub(crate) url: &'a str,
    pub(crate) now: SystemTime,
    pub(crate) max_retry_after: Duration,
    pub(crate) scope_format: &'static str,
    pub(crate) scrubber: &'a Scrubber,
}

impl FailureContext<'_> {
    /// The error for an answer oauth2 did not accept.
    pub(crate) fn error(
        &self,
        response: &RecordedResponse,
        oauth: Option<ErrorResponseBody>,
    ) -> AuthError {
        let oauth =
            oauth.or_else(|| serde_json::from_slice::<ErrorResponseBody>(&response.body).ok());
        if response.status.is_success() && oauth.is_none() {
            return self.invalid_success(response);
        }
        let excerpt = if oauth.is_none() {
            self.safe_excerpt(&response.body)
        } else {
            None
        };
        AuthError::Rejected(Box::new(EndpointError {
            url: self.url.to_owned(),
            status: response.status,
            retry_after: response
                .retry_after(self.now)
                .map(|after| after.min(self.max_retry_after)),
            oauth: oauth.map(|body| body.into_oauth_error(self.scrubber)),
            excerpt,
            scope_format: Some(self.scope_format),
        }))
    }

    /// A 200 that is neither a token nor an OAuth error: say why, and quote
    /// the body only if it cannot hold a token.
    fn invalid_success(&self, response: &RecordedResponse) -> AuthError {
        let body = &response.body;
        let problem = match response.content_type() {
            Some(content_type) if !is_json(content_type) => {
                // The server's text: scrubbed and shortened like a body.
                let shown = self
                    .scrubber
                    .excerpt(content_type.as_bytes(), CONTENT_TYPE_CHARS)
                    .unwrap_or_default();
                format!("the content type is {shown:?}, not application/json")
            }
            _ if body.iter().all(u8::is_ascii_whitespace) => "the body is empty".to_owned(),
            _ => match serde_json::from_slice::<serde_json::Value>(body) {
                Err(e) if e.is_eof() => {
                    format!("the JSON is truncated (it ends after {} bytes)", body.len())
                }
                Err(e) => format!(
                    "the body is not JSON (syntax error at line {} column {})",
                    e.line(),
                    e.column()
                ),
                Ok(serde_json::Value::Object(fields)) => match fields.get("access_token") {
                    None | Some(serde_json::Value::Null) => "there is no access_token".to_owned(),
                    Some(serde_json::Value::String(_)) => {
                        "a field has an unexpected type".to_owned()
                    }
                    Some(_) => "the access_token is not a string".to_owned(),
                },
                Ok(_) => "the JSON is not an object".to_owned(),
            },
        };
        AuthError::InvalidResponse(Box::new(InvalidResponse {
            url: self.url.to_owned(),
            status: response.status,
            problem,
            excerpt: self.safe_excerpt(body),
        }))
    }

    /// A scrubbed excerpt, or none when the body may hold a token.
    fn safe_excerpt(&self, body: &[u8]) -> Option<String> {
        let may_hold_token = String::from_utf8_lossy(body)
            .to_ascii_lowercase()
            .contains("access_token");
        if may_hold_token {
            None
        } else {
            self.scrubber.excerpt(body, Scrubber::EXCERPT_CHARS)
        }
    }

    /// The error for a token that parsed but cannot be used.
    pub(crate) fn unusable_token(&self, status: StatusCode, unusable: Unusable) -> AuthError {
        match unusable {
            Unusable::Problem(problem) => AuthError::InvalidResponse(Box::new(InvalidResponse {
                url: self.url.to_owned(),
                status,
                problem,
                excerpt: None,
            })),
            Unusable::TokenType(token_type) => AuthError::UnsupportedTokenType {
                token_type: self.scrubber.scrub(&token_type),
            },
        }
    }
}

/// What oauth2 made of a token request.
pub(crate) type ExchangeResult =
    Result<TokenResponseBody, oauth2::RequestTokenError<TransportError, ErrorResponseBody>>;

/// Reads what oauth2 made of the answer (`recorded`, when one came): the
/// token with its lifetime and where the lifetime came from, or the error.
pub(crate) fn read_token_answer(
    result: ExchangeResult,
    recorded: Option<&RecordedResponse>,
    context: &FailureContext<'_>,
    lifetimes: &TokenLifetimes,
) -> Result<(AccessToken, Duration, LifetimeSource), AuthError> {
    match result {
        Ok(body) => body
            .into_access_token(context.now, lifetimes)
            .map_err(|problem| context.unusable_token(StatusCode::OK, problem)),
        Err(oauth2::RequestTokenError::Request(transport)) => Err(transport.into()),
        Err(oauth2::RequestTokenError::ServerResponse(body)) => Err(match recorded {
            Some(response) => context.error(response, Some(body)),
            None => ConfigError::Invalid("oauth2 reported an answer that was not received".into())
                .into(),
        }),
        Err(oauth2::RequestTokenError::Parse(..) | oauth2::RequestTokenError::Other(..)) => {
            Err(match recorded {
                Some(response) => context.error(response, None),
                None => ConfigError::Invalid("the token request could not be built".into()).into(),
            })
        }
    }
}

/// Characters of a `Content-Type` quoted in an error.
const CONTENT_TYPE_CHARS: usize = 100;

fn is_json(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media == "application/json" || media.ends_with("+json")
}

/// Seconds as a JSON number (integer or not) or a numeric string; anything
/// else counts as absent.
fn lenient_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(match value {
        serde_json::Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_u64().map(|u| i64::try_from(u).unwrap_or(i64::MAX)))
            .or_else(|| n.as_f64().map(|f| f as i64)),
        serde_json::Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>().ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| f as i64)
            })
        }
        _ => None,
    })
}

/// A string, or any other scalar as text; objects and arrays count as absent.
fn lenient_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
}

/// Entra's `error_codes`: the integers of an array; anything else is empty.
fn lenient_codes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<i64>, D::Error> {
    Ok(match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Array(items) => {
            items.iter().filter_map(serde_json::Value::as_i64).collect()
        }
        serde_json::Value::Number(n) => n.as_i64().into_iter().collect(),
        _ => Vec::new(),
    })
}

fn space_separated<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<Scope>>, D::Error> {
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(s) => Ok(Some(
            s.split_whitespace()
                .map(|s| Scope::new(s.to_owned()))
                .collect(),
        )),
        serde_json::Value::Array(items) => Ok(Some(
            items
                .iter()
                .filter_map(serde_json::Value::as_str)
                .map(|s| Scope::new(s.to_owned()))
                .collect(),
        )),
        serde_json::Value::Null => Ok(None),
        _ => Err(de::Error::custom("scope is neither a string nor a list")),
    }
}

fn join_spaces<S: Serializer>(
    scopes: &Option<Vec<Scope>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match scopes {
        Some(scopes) => serializer.serialize_some(
            &scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_767_225_600;

    fn token(json: serde_json::Value) -> Result<(AccessToken, Duration, LifetimeSource), Unusable> {
        let body: TokenResponseBody =
            serde_json::from_value(json).map_err(|e| Unusable::Problem(e.to_string()))?;
        body.into_access_token(
            SystemTime::UNIX_EPOCH + Duration::from_secs(NOW),
            &TokenLifetimes::default(),
        )
    }

    fn lifetime(json: serde_json::Value) -> Duration {
        token(json).unwrap().1
    }

    #[test]
    fn entra_sample_and_token_type_case() {
        let (t, life, source) = token(serde_json::json!({
            "token_type": "bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": "eyJ0"
        }))
        .unwrap();
        assert_eq!(t.authorization(), "Bearer eyJ0");
        assert_eq!(life, Duration::from_secs(3599));
        assert_eq!(source, LifetimeSource::ExpiresIn);
        assert_eq!(
            t.expires_at(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(NOW + 3599)
        );
        // Read here; the token endpoint refuses it unless it has a DPoP key.
        let (dpop, _, _) =
            token(serde_json::json!({"access_token": "x", "token_type": "dpop", "expires_in": 60}))
                .unwrap();
        assert_eq!(dpop.authorization(), "DPoP x");
        let holding_the_token = token(serde_json::json!({
            "access_token": "tok-123456", "token_type": "MAC tok-123456"
        }));
        assert_eq!(
            holding_the_token.unwrap_err(),
            Unusable::TokenType("[redacted]".into())
        );
    }

    #[test]
    fn expires_in_forms_and_clamps() {
        let base = |v: serde_json::Value| serde_json::json!({"access_token": "x", "token_type": "Bearer", "expires_in": v});
        assert_eq!(lifetime(base("3600".into())), Duration::from_secs(3600));
        assert_eq!(lifetime(base(" 120 ".into())), Duration::from_secs(120));
        assert_eq!(lifetime(base(599.9.into())), Duration::from_secs(599));
        // Never longer than the server said: short, zero and negative
        // lifetimes are kept (0 for "expired already").
        assert_eq!(lifetime(base(20.into())), Duration::from_secs(20));
        assert_eq!(lifetime(base(1.into())), Duration::from_secs(1));
        assert_eq!(lifetime(base(0.into())), Duration::ZERO);
        assert_eq!(lifetime(base((-5).into())), Duration::ZERO);
        assert_eq!(lifetime(base(u64::MAX.into())), Duration::from_secs(86_400));
        assert_eq!(lifetime(base("soon".into())), Duration::from_secs(300));
        assert_eq!(
            lifetime(base(serde_json::Value::Null)),
            Duration::from_secs(300)
        );
        assert_eq!(
            lifetime(serde_json::json!({"access_token": "x"})),
            Duration::from_secs(300)
        );
    }

    #[test]
    fn b2c_expires_on_and_scopes() {
        let (t, life, source) = token(serde_json::json!({
            "access_token": "x", "token_type": "Bearer",
            "expires_on": (NOW + 1800).to_string(), "not_before": NOW.to_string(),
            "resource": "r", "scope": "a b"
        }))
        .unwrap();
        assert_eq!(life, Duration::from_secs(1800));
        assert_eq!(source, LifetimeSource::ExpiresOn);
        assert_eq!(t.scopes(), Some(&["a".to_owned(), "b".to_owned()][..]));
    }

    #[test]
    fn missing_or_empty_access_token_is_refused() {
        assert!(token(serde_json::json!({"token_type": "Bearer"})).is_err());
        assert!(token(serde_json::json!({"access_token": " "})).is_err());
        assert!(token(serde_json::json!({"access_token": "a\nb"})).is_err());
    }

    #[test]
    fn error_bodies_are_lenient() {
        let body: ErrorResponseBody = serde_json::from_value(serde_json::json!({
            "error": "invalid_client", "error_codes": [7000215, "x"], "trace_id": 42, "extra": {}
        }))
        .unwrap();
        let oauth = body.into_oauth_error(&Scrubber::default());
        assert_eq!(oauth.error_codes, vec![7_000_215]);
        assert_eq!(oauth.trace_id.as_deref(), Some("42"));
        assert!(
            serde_json::from_value::<ErrorResponseBody>(serde_json::json!({"message": "x"}))
                .is_err()
        );
    }

    fn answer(status: u16, content_type: &str, body: &str) -> RecordedResponse {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_str(content_type).unwrap(),
        );
        RecordedResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: bytes::Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    fn failure(response: &RecordedResponse, scrubber: &Scrubber) -> String {
        let context = FailureContext {
            url: "https://idp.example/token",
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(NOW),
            max_retry_after: Duration::from_secs(120),
            scope_format: "{client_id}/.default",
            scrubber,
        };
        context.error(response, None).to_string()
    }

    /// Found by the token_response fuzzer: the `Content-Type` of a 200 that
    /// is not JSON was quoted as the server sent it, secret and all.
    #[test]
    fn a_content_type_is_scrubbed_and_shortened() {
        let mut scrubber = Scrubber::default();
        scrubber.add("the-client-secret");
        let shown = failure(
            &answer(200, "text/the-client-secret", "<html></html>"),
            &scrubber,
        );
        assert!(!shown.contains("the-client-secret"), "{shown}");
        assert!(shown.contains(r#""text/[redacted]""#), "{shown}");
        let long = format!("text/{}", "x".repeat(5000));
        let shown = failure(&answer(200, &long, "<html></html>"), &scrubber);
        assert!(shown.len() < 400, "{}", shown.len());
    }

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("Application/JSON"));
        assert!(is_json("application/problem+json"));
        assert!(!is_json("text/html"));
    }
}
