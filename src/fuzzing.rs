//! Entry points for the fuzz targets in `fuzz/` and for the test that
//! replays their seed corpus (`tests/fuzz_corpus.rs`). Not part of the API:
//! hidden from the documentation and free to change.
//!
//! Each function feeds arbitrary bytes to one of m2m's parsers of outside
//! input, exactly as the library runs it, and then checks what the library
//! promises about the result. The library itself never panics on input; a
//! panic raised *here* is the point: it means a parser panicked or a promise
//! was broken, and the message says which.
//!
//! `token_response`, `discovery` and `discovery_retry_after` read their
//! input as a small HTTP answer:
//!
//! ```text
//! 400
//! Content-Type: application/json
//! Retry-After: 30
//!
//! {"error":"invalid_client"}
//! ```
//!
//! a status line of three digits, header lines up to an empty line, then the
//! body. Input that does not start with three digits and a line end is all
//! body, answered with `200` and `Content-Type: application/json`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use secrecy::ExposeSecret;
use url::Url;

use crate::auth::challenge::{
    BearerChallenge, bearer_challenges, dpop_challenges, says_invalid_token,
};
use crate::auth::{
    AccessToken, AuthError, BoxFuture, CacheKey, CacheSettings, ClientAuthMethod, ClientCredential,
    FetchToken, MAX_RETRY_AFTER, MemoryStore, TokenCache, TokenLifetimes,
};
use crate::config::{CacheConfig, ClientConfig, Config, ConfigFileError};
use crate::oauth::credentials::RequestAuth;
use crate::oauth::exchange::oauth_client;
use crate::oauth::http_client::RecordedResponse;
use crate::oauth::response::{FailureContext, LifetimeSource, read_token_answer};
use crate::time::clock::later;
use crate::time::{Clock, FixedJitter, ManualClock};

/// The token URL the fuzzed answers come from.
const TOKEN_URL: &str = "https://login.example.test/tenant/oauth2/v2.0/token";
/// The discovery URL the fuzzed documents come from.
const DISCOVERY_URL: &str = "https://login.example.test/.well-known/openid-configuration";
/// The client id of the fuzzed token requests.
const CLIENT_ID: &str = "fuzz-client";
/// The client secret of the fuzzed token requests; seeds echo it back to
/// check that it is scrubbed. It has characters that form-encoding changes.
pub const CLIENT_SECRET: &str = "s3cr3t+fuzz/secret=&value";
/// "Now" for every fuzzed answer (2026-01-01T00:00:00Z).
const NOW_SECONDS: u64 = 1_767_225_600;
/// Tokens shorter than this are not checked for leaks: short strings turn up
/// in error messages by chance.
const MIN_CHECKED_TOKEN_LEN: usize = 8;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_SECONDS)
}

/// Splits fuzz input into an HTTP answer (see the module documentation).
pub fn http_answer(bytes: &[u8]) -> (StatusCode, HeaderMap, Vec<u8>) {
    let whole_body = || {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        (StatusCode::OK, headers, bytes.to_vec())
    };
    let status = match bytes {
        [a, b, c, b'\n', ..] | [a, b, c, b'\r', b'\n', ..]
            if [a, b, c].iter().all(|d| d.is_ascii_digit()) =>
        {
            let code = u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
            match StatusCode::from_u16(code) {
                Ok(status) => status,
                Err(_) => return whole_body(),
            }
        }
        _ => return whole_body(),
    };
    let mut rest = &bytes[bytes.iter().position(|b| *b == b'\n').unwrap_or(0) + 1..];
    let mut headers = HeaderMap::new();
    loop {
        let end = rest.iter().position(|b| *b == b'\n');
        let line = &rest[..end.unwrap_or(rest.len())];
        rest = &rest[end.map_or(rest.len(), |e| e + 1)..];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() || end.is_none() {
            break;
        }
        // `Name: value`; lines that are no header are dropped.
        if let Some(colon) = line.iter().position(|b| *b == b':') {
            let value = line[colon + 1..].trim_ascii();
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(line[..colon].trim_ascii()),
                HeaderValue::from_bytes(value),
            ) {
                headers.append(name, value);
            }
        }
    }
    (status, headers, rest.to_vec())
}

fn recorded(bytes: &[u8]) -> RecordedResponse {
    let (status, headers, body) = http_answer(bytes);
    RecordedResponse {
        status,
        headers,
        body: body.into(),
    }
}

type TokenOutcome = Result<(AccessToken, Duration, LifetimeSource), AuthError>;

/// One token exchange answered with `response`, through oauth2 and m2m's
/// reading of its outcome, as `TokenEndpoint` does it.
fn exchange(response: &RecordedResponse, auth: &RequestAuth) -> TokenOutcome {
    let token_url = Url::parse(TOKEN_URL).expect("the fuzzing token URL is valid");
    let client = oauth_client(CLIENT_ID, &token_url, auth);
    let answer = |_request: oauth2::HttpRequest| response.to_oauth_response();
    let result = client
        .exchange_client_credentials()
        .add_scope(oauth2::Scope::new("api://fuzz/.default".to_owned()))
        .request(&answer);
    let context = FailureContext {
        url: TOKEN_URL,
        now: now(),
        max_retry_after: MAX_RETRY_AFTER,
        scope_format: "{client_id}/.default",
        scrubber: &auth.scrubber,
    };
    read_token_answer(result, Some(response), &context, &TokenLifetimes::default())
}

/// The token endpoint answers with `bytes` (see the module documentation).
///
/// Checks: a token is never empty, is the body's `access_token`, has a
/// lifetime no longer than the `expires_in` given nor than
/// [`TokenLifetimes`]' bound (the default one when the answer gives none),
/// and goes into a sensitive header of exactly `{token_type} {access_token}`; only a 200 gives a token. An error is one
/// printable line, never shows the client secret in any form, keeps a
/// `Retry-After` within the cap, and does not depend on the value of an
/// `access_token` in the body (so it cannot show it).
pub fn token_response(bytes: &[u8]) {
    let response = recorded(bytes);
    let auth = RequestAuth::prepare(
        CLIENT_ID,
        &ClientCredential::secret(CLIENT_SECRET),
        ClientAuthMethod::ClientSecretPost,
        TOKEN_URL,
        now(),
    )
    .expect("a client secret needs no preparation that can fail");
    let outcome = exchange(&response, &auth);
    match &outcome {
        Ok((token, lifetime, source)) => check_token(&response, token, *lifetime, *source),
        Err(error) => {
            check_error_text(&format!("{error}"), &format!("{error:?}"));
            if let AuthError::Rejected(rejected) = error
                && let Some(after) = rejected.retry_after
            {
                assert!(
                    after <= MAX_RETRY_AFTER,
                    "Retry-After over the cap: {after:?}"
                );
            }
            check_token_independence(bytes, &response, error, &auth);
        }
    }
}

fn check_token(
    response: &RecordedResponse,
    token: &AccessToken,
    lifetime: Duration,
    source: LifetimeSource,
) {
    let secret = token.secret().expose_secret();
    assert!(!secret.trim().is_empty(), "an empty token was accepted");
    assert_eq!(
        response.status,
        StatusCode::OK,
        "a token from a non-200 answer"
    );
    // oauth2 reads the first JSON value of the body and ignores what follows
    // (and does not check UTF-8 in fields it skips, which `Value` does).
    let body = serde_json::Deserializer::from_slice(&response.body)
        .into_iter::<serde_json::Value>()
        .next()
        .and_then(Result::ok);
    if let Some(body) = body {
        // serde reads a struct from an array too, field by field in order;
        // the first field is `access_token`.
        let given = match &body {
            serde_json::Value::Array(items) => items.first(),
            _ => body.get("access_token"),
        };
        assert_eq!(
            given.and_then(serde_json::Value::as_str),
            Some(secret),
            "the token is not the body's access_token"
        );
    }
    let lifetimes = TokenLifetimes::default();
    assert!(
        lifetime <= lifetimes.max,
        "lifetime {lifetime:?} over the bound"
    );
    if source == LifetimeSource::ExpiresIn
        && let Some(given) = expires_in_seconds(&response.body)
    {
        assert!(
            lifetime.as_secs() <= given.max(0).unsigned_abs(),
            "lifetime {lifetime:?} longer than the expires_in given ({given})"
        );
    }
    if source == LifetimeSource::Default {
        assert_eq!(
            lifetime, lifetimes.default,
            "no expiry, but not the default lifetime"
        );
    }
    assert_eq!(
        token.expires_at(),
        now() + lifetime,
        "expiry is not now + lifetime"
    );
    assert!(
        token.authorization().is_sensitive(),
        "the header is not sensitive"
    );
    assert_eq!(
        token.authorization().as_bytes(),
        format!("{} {secret}", token.token_type()).as_bytes(),
        "the header is not `{{token_type}} {{access_token}}`"
    );
    let type_and_scopes = format!("{} {:?}", token.token_type(), token.scopes());
    if secret.len() >= MIN_CHECKED_TOKEN_LEN && !type_and_scopes.contains(secret) {
        assert!(
            !format!("{token:?}").contains(secret),
            "Debug of the token shows it"
        );
    }
}

/// A plain integer `expires_in` of a JSON object body, as the server gave it.
fn expires_in_seconds(body: &[u8]) -> Option<i64> {
    let body = serde_json::Deserializer::from_slice(body)
        .into_iter::<serde_json::Value>()
        .next()?
        .ok()?;
    body.get("expires_in")?.as_i64()
}

/// What every error printed from outside input must be: one printable
/// line, without the client secret in any form.
fn check_error_text(shown: &str, debug: &str) {
    assert!(
        !shown.chars().any(char::is_control),
        "an error is not one printable line: {shown:?}"
    );
    use base64::Engine as _;
    let basic = |id: &str, secret: &str| {
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    };
    let secrets = [
        CLIENT_SECRET.to_owned(),
        form_urlencode(CLIENT_SECRET),
        basic(CLIENT_ID, CLIENT_SECRET),
        basic(&form_urlencode(CLIENT_ID), &form_urlencode(CLIENT_SECRET)),
    ];
    for text in [shown, debug] {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "an error shows the client secret: {text}"
            );
        }
    }
}

fn form_urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// An error for a body with an `access_token` must read the same whatever
/// the token's value: then it cannot show the token, not even in part.
fn check_token_independence(
    bytes: &[u8],
    response: &RecordedResponse,
    error: &AuthError,
    auth: &RequestAuth,
) {
    let Ok(serde_json::Value::Object(fields)) =
        serde_json::from_slice::<serde_json::Value>(&response.body)
    else {
        return;
    };
    let Some(serde_json::Value::String(token)) = fields.get("access_token") else {
        return;
    };
    if token.len() < MIN_CHECKED_TOKEN_LEN
        || !token
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'\\' && b != b'"')
    {
        return;
    }
    // Replace the one raw occurrence of the token by another of the same
    // length; skip input where that is not the `access_token` value.
    let quoted = format!("\"{token}\"");
    let mut at = bytes
        .windows(quoted.len())
        .enumerate()
        .filter(|(_, w)| *w == quoted.as_bytes())
        .map(|(i, _)| i);
    let (Some(start), None) = (at.next(), at.next()) else {
        return;
    };
    let other: String = token
        .bytes()
        .map(|b| if b == b'Q' { 'R' } else { 'Q' })
        .collect();
    let mut changed = bytes.to_vec();
    changed[start + 1..start + 1 + token.len()].copy_from_slice(other.as_bytes());
    let changed_response = recorded(&changed);
    let mut expected = fields.clone();
    expected.insert("access_token".into(), other.clone().into());
    if serde_json::from_slice::<serde_json::Value>(&changed_response.body).ok()
        != Some(serde_json::Value::Object(expected))
    {
        return;
    }
    if let Err(changed_error) = exchange(&changed_response, auth) {
        assert_eq!(
            format!("{error}"),
            format!("{changed_error}"),
            "the error depends on the access_token's value"
        );
        assert_eq!(
            format!("{error:?}"),
            format!("{changed_error:?}"),
            "the error's Debug depends on the access_token's value"
        );
    }
}

/// One `WWW-Authenticate` header value.
///
/// Checks: `says_invalid_token` agrees with the challenges read from the
/// same text; challenges written back as a header read the same; another
/// scheme's challenge in front changes nothing.
pub fn www_authenticate(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        // Not text: header values like this are never read as a challenge.
        if let Ok(value) = HeaderValue::from_bytes(bytes) {
            assert!(
                !says_invalid_token([&value]),
                "binary header read as invalid_token"
            );
        }
        return;
    };
    let found = bearer_challenges(text);
    for challenge in &found {
        assert_eq!(
            challenge.is_invalid_token(),
            challenge.error.as_deref() == Some("invalid_token")
        );
    }
    if let Ok(value) = HeaderValue::from_str(text) {
        assert_eq!(
            says_invalid_token([&value]),
            value.to_str().is_ok()
                && found
                    .iter()
                    .chain(dpop_challenges(text).iter())
                    .any(BearerChallenge::is_invalid_token),
            "says_invalid_token disagrees with bearer_challenges and dpop_challenges"
        );
    }
    let written = write_challenges(&found);
    assert_eq!(
        bearer_challenges(&written),
        found,
        "challenges written back as {written:?} read differently"
    );
    assert_eq!(
        bearer_challenges(&format!("Basic realm=\"other\", {text}")),
        found,
        "another scheme's challenge in front changed the Bearer challenges"
    );
}

fn write_challenges(challenges: &[BearerChallenge]) -> String {
    let quote = |value: &str| format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""));
    challenges
        .iter()
        .map(|c| {
            let params: Vec<String> = [
                ("realm", &c.realm),
                ("error", &c.error),
                ("error_description", &c.error_description),
                ("scope", &c.scope),
            ]
            .into_iter()
            .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name}={}", quote(v))))
            .collect();
            format!("Bearer {}", params.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// An `m2m.toml` (input that is not UTF-8 is no configuration text).
///
/// Checks: an error is one line that starts with the file name and a line
/// and column inside the text; a configuration written back as TOML reads
/// the same; overlays with an empty record change nothing; every client's
/// provider can be built or refused without a panic.
pub fn config(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let config = match Config::parse(text, "fuzz.toml") {
        Ok(config) => config,
        Err(error) => {
            let shown = error.to_string();
            assert!(shown.starts_with("fuzz.toml:"), "{shown}");
            assert!(!shown.contains('\n'), "an error of two lines: {shown:?}");
            if let ConfigFileError::Invalid { line, column, .. } = error {
                assert!(line >= 1 && column >= 1, "{shown}");
                assert!(
                    line <= text.split('\n').count(),
                    "line past the end: {shown}"
                );
            }
            return;
        }
    };
    let written = toml::to_string(&config).expect("a parsed configuration can be written");
    assert_eq!(
        Config::parse(&written, "written.toml").ok().as_ref(),
        Some(&config),
        "written back as {written:?}, the configuration reads differently"
    );
    assert_eq!(
        config.cache.overlaid_with(&CacheConfig::default()),
        config.cache
    );
    assert_eq!(
        CacheConfig::default().overlaid_with(&config.cache),
        config.cache
    );
    for (name, client) in &config.clients {
        assert_eq!(&client.overlaid_with(&ClientConfig::default()), client);
        assert_eq!(&ClientConfig::default().overlaid_with(client), client);
        let variable = ClientConfig::secret_override_env(name);
        assert!(
            variable
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
            "{variable:?} is not an environment variable name"
        );
        if let Ok(provider) = client.provider() {
            let _ = provider.token_authority();
            let _ = provider.default_scopes(client.client_id.as_deref().unwrap_or_default());
            let _ = provider.default_client_auth();
            let _ = provider.scope_format();
            let _ = provider.api_base_url();
        }
        let _ = config.api_base_url(name);
    }
}

/// An answer to a discovery request (see the module documentation).
///
/// Checks: metadata come only from a success status, with a non-blank
/// issuer and a token endpoint that may receive credentials (https, or
/// http on loopback, no user or password in it); allowing http never turns
/// a usable document into an error; `strict_issuer` refuses exactly the
/// documents of another issuer; an error is one printable line that
/// does not show a password from the document's token endpoint.
pub fn discovery(bytes: &[u8]) {
    let response = recorded(bytes);
    let url = Url::parse(DISCOVERY_URL).expect("the fuzzing discovery URL is valid");
    let strict = crate::endpoint::discovery::read_document(&url, &response, now(), false, None);
    let lenient = crate::endpoint::discovery::read_document(&url, &response, now(), true, None);
    match &strict {
        Ok(metadata) => {
            assert!(
                response.status.is_success(),
                "metadata from an error status"
            );
            assert!(!metadata.issuer.trim().is_empty(), "a blank issuer");
            let endpoint = &metadata.token_endpoint;
            assert!(
                endpoint.username().is_empty() && endpoint.password().is_none(),
                "a token endpoint with credentials: {endpoint}"
            );
            assert!(
                endpoint.scheme() == "https"
                    || (endpoint.scheme() == "http"
                        && crate::auth::check_credentials_url(endpoint, false).is_ok()),
                "an insecure token endpoint: {endpoint}"
            );
            assert_eq!(
                lenient.as_ref().ok(),
                Some(metadata),
                "allowing http changed a usable document"
            );
        }
        Err(error) => {
            let shown = format!("{error}");
            assert!(
                !shown.chars().any(char::is_control),
                "an error is not one printable line: {shown:?}"
            );
            assert!(matches!(error, AuthError::Discovery(_)), "{error:?}");
            if let AuthError::Discovery(failure) = error
                && failure.excerpt.is_none()
            {
                check_password_hidden(&response, &shown);
            }
        }
    }
    let issuer = DISCOVERY_URL
        .strip_suffix("/.well-known/openid-configuration")
        .expect("the fuzzing discovery URL is a well-known one");
    let checked =
        crate::endpoint::discovery::read_document(&url, &response, now(), false, Some(issuer));
    match (&checked, &strict) {
        (Ok(metadata), _) => assert_eq!(metadata.issuer, issuer, "another issuer passed"),
        (Err(_), Ok(metadata)) => assert_ne!(metadata.issuer, issuer, "the issuer was refused"),
        (Err(_), Err(_)) => {}
    }
    if let Ok(metadata) = &lenient {
        let endpoint = &metadata.token_endpoint;
        assert!(matches!(endpoint.scheme(), "https" | "http"), "{endpoint}");
        assert!(endpoint.username().is_empty() && endpoint.password().is_none());
    }
}

fn check_password_hidden(response: &RecordedResponse, shown: &str) {
    #[derive(serde::Deserialize)]
    struct Endpoint {
        token_endpoint: String,
    }
    let Ok(document) = serde_json::from_slice::<Endpoint>(&response.body) else {
        return;
    };
    let Ok(mut endpoint) = Url::parse(&document.token_endpoint) else {
        return;
    };
    let Some(password) = endpoint.password().map(str::to_owned) else {
        return;
    };
    let _ = endpoint.set_password(None);
    let _ = endpoint.set_username("");
    if password.len() >= MIN_CHECKED_TOKEN_LEN
        && !endpoint.as_str().contains(&password)
        && !DISCOVERY_URL.contains(&password)
    {
        assert!(
            !shown.contains(&password),
            "an error shows the token endpoint's password: {shown}"
        );
    }
}

/// An answer to a discovery request whose `Retry-After` may be anything
/// (see the module documentation for the input), followed through every
/// wait it can cause: the error's `Retry-After`, and the token cache that
/// backs the key off after the failed fetch, at an ordinary date and at the
/// last instant `SystemTime` can hold.
///
/// Checks: the error's `Retry-After` is at most [`MAX_RETRY_AFTER`]; no
/// wait or deadline computed from it panics (no `SystemTime + Duration`
/// overflow); the cache answers the failure itself, and while it holds the
/// key off, an error whose wait is at most the longer of the cap and the
/// cache's longest backoff.
pub fn discovery_retry_after(bytes: &[u8]) {
    let response = recorded(bytes);
    let url = Url::parse(DISCOVERY_URL).expect("the fuzzing discovery URL is valid");
    let latest = later(now(), Duration::MAX);
    for at in [now(), latest] {
        let Err(error) =
            crate::endpoint::discovery::read_document(&url, &response, at, false, None)
        else {
            continue;
        };
        if let Some(after) = error.retry_after() {
            assert!(
                after <= MAX_RETRY_AFTER,
                "Retry-After over the cap: {after:?}"
            );
        }
        through_the_cache(error, at);
    }
}

/// A fetcher that fails with one error, for [`discovery_retry_after`].
struct FailsWith(AuthError);

impl FetchToken for FailsWith {
    fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>> {
        Box::pin(std::future::ready(Err(self.0.clone())))
    }
}

/// Two calls of a cold key whose fetch fails with `error` at `at`, on a
/// manual clock: the first runs the fetch in the calling thread (no Tokio
/// runtime here), the second meets the backoff it left.
fn through_the_cache(error: AuthError, at: SystemTime) {
    let clock = Arc::new(ManualClock::new(at));
    let settings = CacheSettings::default();
    let longest = settings.retry_max.max(MAX_RETRY_AFTER);
    let cache = TokenCache::new(
        Arc::new(MemoryStore::default()),
        clock.clone(),
        Arc::new(FixedJitter(0.0)),
        settings,
    );
    let key = CacheKey::new("custom", DISCOVERY_URL, CLIENT_ID, ["openid"], None);
    let source = cache.source(key, Arc::new(FailsWith(error.clone())));
    let first = poll_once(source.token()).expect("a flight run in the caller ends at once");
    let first = first.expect_err("the fetcher only fails");
    assert_eq!(
        first.to_string(),
        error.to_string(),
        "the failure was changed"
    );
    clock.advance(Duration::from_millis(500));
    let second = poll_once(source.token()).expect("a held-off call is answered at once");
    let second = second.expect_err("no token can come of it");
    if let Some(after) = second.retry_after() {
        assert!(after <= longest, "held off for {after:?}");
    }
    assert!(clock.now() >= at, "the clock went back");
}

/// Polls `future` once, as an executor would (no Tokio runtime).
fn poll_once<T>(future: impl std::future::Future<Output = T>) -> Option<T> {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(value) => Some(value),
        std::task::Poll::Pending => None,
    }
}
