//! Test doubles and a request recorder, for tests of code that uses m2m
//! (feature `test-util`): pin the requests your generated clients send the
//! way m2m pins its own; with the `sandbox` feature, check that an output
//! holds no secret (`assert_no_secret`).
//!
//! ```no_run
//! # async fn example() {
//! use m2m::test_util::{RecordingServer, TestTokens};
//!
//! let server = RecordingServer::start().await;
//! server.answer(200, serde_json::json!([])).await;
//! let tokens = TestTokens::new(&["test-token"]);
//! let cenda = m2m::apis::cenda_configuration::Client::new(&server.uri(), tokens.auth());
//! let _ = cenda.list_organisations().send().await;
//! let shapes = server.requests().await;
//! // insta::assert_json_snapshot!(shapes);
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::HeaderValue;
use secrecy::SecretString;
use serde::Serialize;
use serde_json::Value;

pub use crate::auth::clock::{FixedJitter, ManualClock};
use crate::auth::{AccessToken, Auth, AuthError, BoxFuture, TokenSource};

/// A [`TokenSource`] over a fixed list of raw token values.
///
/// `token()` hands out the current value; `renew(rejected)` records the
/// rejected `Authorization` value and moves on to the next one. A value
/// that cannot go into a header (say, one with a newline) fails the way a
/// bad token from a token endpoint does: the call returns that
/// [`AuthError`]. Clones share their state, so a test keeps one clone to read the counts after
/// handing another to [`Auth`].
#[derive(Clone)]
pub struct TestTokens(Arc<TestTokensState>);

struct TestTokensState {
    values: Vec<String>,
    current: AtomicUsize,
    token_calls: AtomicUsize,
    rejected: Mutex<Vec<String>>,
}

impl std::fmt::Debug for TestTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestTokens")
            .field("token_calls", &self.token_calls())
            .field("renew_calls", &self.renew_calls())
            .finish_non_exhaustive()
    }
}

impl TestTokens {
    /// A source that serves `values[0]` first and each later value after
    /// one renewal (the last one again when renewed past the end).
    pub fn new(values: &[&str]) -> Self {
        Self(Arc::new(TestTokensState {
            values: values.iter().map(|value| (*value).to_owned()).collect(),
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
        self.0
            .rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many times `renew()` was called.
    pub fn renew_calls(&self) -> usize {
        self.rejected().len()
    }

    fn current(&self) -> Result<AccessToken, AuthError> {
        let index = self.0.current.load(Ordering::SeqCst);
        let value = self
            .0
            .values
            .get(index)
            .or_else(|| self.0.values.last())
            .cloned()
            .unwrap_or_default();
        // Far from any expiry: this source does no caching of its own.
        let expires_at = SystemTime::UNIX_EPOCH + Duration::from_secs(4_102_444_800);
        AccessToken::new(SecretString::from(value), "Bearer", expires_at, None)
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
        self.0
            .rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(rejected);
        self.0.current.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move { self.current() })
    }
}

/// A real HTTP server on loopback (wiremock) that answers what it is told
/// and gives back the shape of every request it received.
#[derive(Debug)]
pub struct RecordingServer {
    server: wiremock::MockServer,
}

impl RecordingServer {
    /// Starts a server on a free loopback port.
    pub async fn start() -> Self {
        Self {
            server: wiremock::MockServer::start().await,
        }
    }

    /// Its base URL (`http://127.0.0.1:PORT`).
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The wiremock server, to mount answers of your own.
    pub fn server(&self) -> &wiremock::MockServer {
        &self.server
    }

    /// Answers every request with `status` and the JSON `body`.
    pub async fn answer(&self, status: u16, body: Value) {
        wiremock::Mock::given(wiremock::matchers::any())
            .respond_with(wiremock::ResponseTemplate::new(status).set_body_json(body))
            .mount(&self.server)
            .await;
    }

    /// The requests received, in arrival order, in a form stable across
    /// runs (see [`RequestShape`]).
    pub async fn requests(&self) -> Vec<RequestShape> {
        self.received().await.iter().map(RequestShape::of).collect()
    }

    /// The requests received, in arrival order, as they came (token,
    /// `host` and body bytes included).
    pub async fn received(&self) -> Vec<wiremock::Request> {
        self.server.received_requests().await.unwrap_or_default()
    }

    /// The `Authorization` value of each request received, in arrival
    /// order: which token went where.
    pub async fn authorizations(&self) -> Vec<String> {
        self.received()
            .await
            .iter()
            .map(|request| authorization(request).to_owned())
            .collect()
    }
}

/// The `Authorization` value of `request`, or `""` without one (or with one
/// that is not ASCII).
pub fn authorization(request: &wiremock::Request) -> &str {
    request
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
}

/// What a server received, in a form that is stable across runs: what a
/// snapshot of a request should hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestShape {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, as sent.
    pub path: String,
    /// Decoded `name=value` pairs, sorted.
    pub query: Vec<(String, String)>,
    /// Every header but those the transport derives
    /// ([`RequestShape::TRANSPORT_HEADERS`]); repeated headers joined with
    /// `, `; a bearer token shown as `Bearer [token]`.
    pub headers: BTreeMap<String, String>,
    /// The body parsed as JSON (object keys sorted), a string when it is not
    /// JSON, or `null` without a body.
    pub body: Value,
}

impl RequestShape {
    /// Headers set by the HTTP stack, not by the client: `host` carries the
    /// random port of the server, `content-length` follows from the body.
    pub const TRANSPORT_HEADERS: [&'static str; 2] = ["host", "content-length"];

    /// The shape of `request`.
    pub fn of(request: &wiremock::Request) -> Self {
        let mut query: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
        query.sort();
        let mut headers = BTreeMap::<String, String>::new();
        for (name, value) in &request.headers {
            if Self::TRANSPORT_HEADERS.contains(&name.as_str()) {
                continue;
            }
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            let value = if *name == http::header::AUTHORIZATION && value.starts_with("Bearer ") {
                "Bearer [token]".to_owned()
            } else {
                value
            };
            headers
                .entry(name.as_str().to_owned())
                .and_modify(|joined| {
                    joined.push_str(", ");
                    joined.push_str(&value);
                })
                .or_insert(value);
        }
        let body = if request.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&request.body).unwrap_or_else(|_| {
                Value::String(String::from_utf8_lossy(&request.body).into_owned())
            })
        };
        Self {
            method: request.method.to_string(),
            path: request.url.path().to_owned(),
            query,
            headers,
            body,
        }
    }
}

/// Fails (panics, as an assertion does) when `text` holds a secret: a
/// client secret of the sandbox's demo clients, a PEM private key, or
/// anything shaped like a JWT (an access token, a client assertion or a
/// DPoP proof). `what` names the text in the message: a log, an output, a
/// file.
#[cfg(feature = "sandbox")]
pub fn assert_no_secret(what: &str, text: &str) {
    let secrets = [
        crate::sandbox::demo::ENTRA_CLIENT_SECRET,
        crate::sandbox::demo::COGNITO_CLIENT_SECRET,
        crate::sandbox::demo::COGNITO_MOCK_ONLY_CLIENT_SECRET,
        crate::sandbox::demo::IDENTITYSERVER_CLIENT_SECRET,
        crate::sandbox::demo::OIDC_CLIENT_SECRET,
        crate::sandbox::demo::DPOP_CLIENT_SECRET,
        "PRIVATE KEY",
    ];
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{what} contains a secret ({secret:?}):\n{text}"
        );
    }
    // JWTs (access tokens, client assertions, DPoP proofs) start with a
    // base64url `{"`.
    let jwt = text.match_indices("eyJ").find(|(at, _)| {
        text[*at..]
            .split_whitespace()
            .next()
            .is_some_and(|word| word.matches('.').count() >= 2)
    });
    assert!(jwt.is_none(), "{what} contains a JWT:\n{text}");
}
