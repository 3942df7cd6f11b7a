//! Helpers shared by the integration tests: a token source that hands out
//! tokens from a list and counts how it was used, and the wiremock glue to
//! point generated clients at a real loopback server and read back what it
//! received.
//!
//! Each test crate uses a subset of these helpers.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::HeaderValue;
use m2m::apis::{cenda_configuration, nxtsoft_transactions};
use m2m::auth::{AccessToken, Auth, AuthError, BoxFuture, TokenSource};
use secrecy::SecretString;
use wiremock::{MockServer, Request};

/// A [`TokenSource`] over a fixed list of raw token values.
///
/// `token()` hands out the current value; `renew(rejected)` records the
/// rejected `Authorization` value and moves on to the next one. A value that
/// cannot go into a header (say, one with a newline) fails the way a bad
/// token from a token endpoint does: `AccessToken::new` refuses it, and the
/// call returns that [`AuthError`]. Clones share their state, so a test keeps
/// one clone to read the counts after handing another to [`Auth`].
#[derive(Clone)]
pub struct TestTokens(Arc<State>);

struct State {
    values: Vec<&'static str>,
    current: AtomicUsize,
    token_calls: AtomicUsize,
    rejected: Mutex<Vec<String>>,
}

impl TestTokens {
    /// A source that serves `values[0]` first and each later value after
    /// one renewal.
    pub fn new(values: &[&'static str]) -> Self {
        assert!(!values.is_empty(), "TestTokens needs at least one value");
        Self(Arc::new(State {
            values: values.to_vec(),
            current: AtomicUsize::new(0),
            token_calls: AtomicUsize::new(0),
            rejected: Mutex::new(Vec::new()),
        }))
    }

    /// An [`Auth`] handle over (a clone of) this source.
    pub fn auth(&self) -> Auth {
        Auth::from_source(self.clone())
    }

    /// How many times `token()` was called.
    pub fn token_calls(&self) -> usize {
        self.0.token_calls.load(Ordering::SeqCst)
    }

    /// The `Authorization` values passed to `renew()`, in call order.
    pub fn rejected(&self) -> Vec<String> {
        self.0.rejected.lock().unwrap().clone()
    }

    /// How many times `renew()` was called.
    pub fn renew_calls(&self) -> usize {
        self.0.rejected.lock().unwrap().len()
    }

    fn current(&self) -> Result<AccessToken, AuthError> {
        let index = self.0.current.load(Ordering::SeqCst);
        let value = self.0.values.get(index).unwrap_or_else(|| {
            panic!(
                "TestTokens: renewed more often than the test planned ({} values)",
                self.0.values.len()
            )
        });
        // Far from any expiry: this source does no caching of its own.
        let expires_at = SystemTime::UNIX_EPOCH + Duration::from_secs(4_102_444_800);
        AccessToken::new(SecretString::from(*value), "Bearer", expires_at, None)
    }
}

impl TokenSource for TestTokens {
    fn token(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>> {
        self.0.token_calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move { self.current() })
    }

    fn renew<'a>(
        &'a self,
        rejected: &'a HeaderValue,
    ) -> BoxFuture<'a, Result<AccessToken, AuthError>> {
        let rejected = String::from_utf8_lossy(rejected.as_bytes()).into_owned();
        self.0.rejected.lock().unwrap().push(rejected);
        self.0.current.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move { self.current() })
    }
}

/// A Cenda Configuration client that sends to `server` with `tokens`.
pub fn cenda_client(server: &MockServer, tokens: &TestTokens) -> cenda_configuration::Client {
    cenda_configuration::Client::new_with_client(
        &server.uri(),
        reqwest::Client::new(),
        tokens.auth(),
    )
}

/// A NXTsoft transactions client that sends to `server` with `tokens`.
pub fn nxtsoft_client(server: &MockServer, tokens: &TestTokens) -> nxtsoft_transactions::Client {
    nxtsoft_transactions::Client::new_with_client(
        &server.uri(),
        reqwest::Client::new(),
        tokens.auth(),
    )
}

/// Every request the server received, in arrival order.
pub async fn received(server: &MockServer) -> Vec<Request> {
    server
        .received_requests()
        .await
        .expect("wiremock records requests by default")
}

/// The `Authorization` header of a received request, or `""` without one.
pub fn authorization(request: &Request) -> &str {
    request
        .headers
        .get(http::header::AUTHORIZATION)
        .map(|value| value.to_str().expect("Authorization is ASCII"))
        .unwrap_or_default()
}

/// The `Authorization` values of the requests `server` received, in order.
pub async fn authorizations(server: &MockServer) -> Vec<String> {
    received(server)
        .await
        .iter()
        .map(|request| authorization(request).to_owned())
        .collect()
}

/// Fails when `text` holds a secret: any secret the sandbox knows, the
/// wrong secret the tests send, a PEM private key, or anything shaped like
/// a JWT (an access token or a client assertion).
#[cfg(feature = "sandbox")]
pub fn assert_no_secret(what: &str, text: &str) {
    let secrets = [
        m2m::sandbox::demo::ENTRA_CLIENT_SECRET,
        m2m::sandbox::demo::COGNITO_CLIENT_SECRET,
        m2m::sandbox::demo::COGNITO_MOCK_ONLY_CLIENT_SECRET,
        m2m::sandbox::demo::IDENTITYSERVER_CLIENT_SECRET,
        m2m::sandbox::demo::OIDC_CLIENT_SECRET,
        "wrong-secret-0f9e8d",
        "PRIVATE KEY",
    ];
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{what} contains a secret ({secret:?}):\n{text}"
        );
    }
    // JWTs (access tokens, client assertions) start with a base64url `{"`.
    let jwt = text.match_indices("eyJ").find(|(at, _)| {
        text[*at..]
            .split_whitespace()
            .next()
            .is_some_and(|w| w.matches('.').count() >= 2)
    });
    assert!(jwt.is_none(), "{what} contains a JWT:\n{text}");
}
