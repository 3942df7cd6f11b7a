//! End-to-end wiring for `tests/faults.rs` and `tests/stress.rs`: the whole
//! chain a user builds — generated client → [`Auth`] → [`TokenCache`] →
//! [`TokenEndpoint`] → a token server on loopback — with one injected
//! [`ManualClock`] shared by every layer (and by the sandbox, so that API-side
//! expiry agrees with the cache's).
//!
//! The client is the sandbox's NXTsoft demo client (Cognito dialect, secret
//! in the form body, as `Provider::nxtsoft()` sends it); the call is NXTsoft's
//! `POST /transactions/mock` (`post_validation_message`).
//!
//! Included with `#[path = "support/e2e.rs"] mod e2e;`; each test crate uses
//! a subset.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use m2m::apis::nxtsoft_transactions::{self as nxtsoft, ClientInfo, Error, ResponseValue, types};
use m2m::auth::clock::{FixedJitter, ManualClock};
use m2m::auth::{
    Auth, AuthError, CacheSettings, CachedTokenSource, ClientCredential, MemoryStore, TokenCache,
    TokenEndpoint, TokenEndpointBuilder,
};
use m2m::provider::Provider;
use m2m::sandbox::demo::{COGNITO_CLIENT_ID, COGNITO_CLIENT_SECRET, accepted_transaction};
use m2m::sandbox::{ProviderStyle, Sandbox};
use url::Url;
use wiremock::MockServer;

/// Where the generated NXTsoft client sends `post_validation_message`.
pub const VALIDATION_PATH: &str = "/transactions/mock";
/// The Cognito token path (sandbox and wiremock token servers alike).
pub const TOKEN_PATH: &str = "/oauth2/token";

/// A clock that only moves when told to (or when a retry "sleeps" on it).
pub fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::at_fixed_date())
}

/// A sandbox that reads "now" from `clock` and issues tokens valid for
/// `lifetime`.
pub async fn sandbox(clock: &Arc<ManualClock>, lifetime: Duration) -> Sandbox {
    Sandbox::builder()
        .clock(clock.clone())
        .token_lifetime(lifetime)
        .seed(5)
        .start()
        .await
        .expect("the sandbox starts on loopback")
}

/// The NXTsoft demo client's token endpoint at `token_url`, on `clock`,
/// with no backoff jitter (waits are exactly 250 ms, 500 ms, …).
pub fn nxtsoft_endpoint(token_url: &str, clock: &Arc<ManualClock>) -> TokenEndpointBuilder {
    let url = Url::parse(token_url).expect("a token URL");
    TokenEndpoint::builder(
        Provider::nxtsoft().with_token_url(url),
        COGNITO_CLIENT_ID,
        ClientCredential::secret(COGNITO_CLIENT_SECRET),
    )
    .clock(clock.clone())
    .jitter(Arc::new(FixedJitter(0.0)))
}

/// The sandbox's own Cognito token endpoint for the NXTsoft demo client.
pub fn sandbox_endpoint(sandbox: &Sandbox, clock: &Arc<ManualClock>) -> TokenEndpointBuilder {
    nxtsoft_endpoint(&sandbox.token_url(ProviderStyle::Cognito), clock)
}

/// A token endpoint on a wiremock server (at [`TOKEN_PATH`]).
pub fn wiremock_endpoint(server: &MockServer, clock: &Arc<ManualClock>) -> TokenEndpointBuilder {
    nxtsoft_endpoint(&format!("{}{TOKEN_PATH}", server.uri()), clock)
}

/// The chain behind one generated client: the cache (default settings, no
/// refresh jitter, on `clock`), the cached source bound to the endpoint, and
/// the [`Auth`] handle over that source.
pub struct Chain {
    pub cache: TokenCache,
    pub source: CachedTokenSource,
    pub auth: Auth,
}

/// An in-memory cache with default settings and no refresh jitter, on
/// `clock`.
pub fn cache(clock: &Arc<ManualClock>) -> TokenCache {
    TokenCache::new(
        Arc::new(MemoryStore::default()),
        clock.clone(),
        Arc::new(FixedJitter(0.0)),
        CacheSettings::default(),
    )
}

impl Chain {
    /// Wires `endpoint` into a fresh cache (see [`cache`]).
    pub fn new(endpoint: TokenEndpoint, clock: &Arc<ManualClock>) -> Self {
        Self::with_cache(endpoint, cache(clock))
    }

    /// Wires `endpoint` into `cache`, shared with other chains, under the
    /// endpoint's key (as `Auth::new` and `Config::auth` do).
    pub fn with_cache(endpoint: TokenEndpoint, cache: TokenCache) -> Self {
        let key = m2m::auth::CacheKey::for_endpoint(endpoint.identity());
        let source = cache.source(key, Arc::new(endpoint));
        let auth = Auth::from_source(source.clone());
        Self {
            cache,
            source,
            auth,
        }
    }

    /// A generated NXTsoft client at `api_base_url` over this chain.
    pub fn client(&self, api_base_url: &str) -> nxtsoft::Client {
        nxtsoft::Client::new_with_client(api_base_url, reqwest::Client::new(), self.auth.clone())
    }
}

/// What one generated call returns.
pub type CallResult = Result<ResponseValue<types::ValidationResult>, Error<types::Error>>;

/// One generated call: `POST /transactions/mock`.
pub async fn validate(client: &nxtsoft::Client) -> CallResult {
    client
        .post_validation_message()
        .body(accepted_transaction())
        .send()
        .await
}

/// The typed token error behind a failed generated call. Panics (with the
/// error) when the call failed for another reason or succeeded.
pub fn auth_error(client: &nxtsoft::Client, result: CallResult) -> AuthError {
    let error = result
        .map(|value| value.into_inner())
        .expect_err("the call fails for want of a token");
    client
        .inner()
        .error_of(&error)
        .unwrap_or_else(|| panic!("not a token failure: {error:?}"))
}

/// A loopback URL nothing listens on: connecting is refused.
pub fn refused_token_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("bound").port();
    drop(listener);
    format!("http://127.0.0.1:{port}{TOKEN_PATH}")
}

/// How many requests `server` received at `path`.
pub async fn requests_to(server: &MockServer, path: &str) -> usize {
    server
        .received_requests()
        .await
        .expect("wiremock records requests by default")
        .iter()
        .filter(|request| request.url.path() == path)
        .count()
}

/// Whole milliseconds, for comparing `ManualClock::sleeps`.
pub fn millis(values: &[u64]) -> Vec<Duration> {
    values.iter().copied().map(Duration::from_millis).collect()
}
