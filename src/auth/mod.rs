//! The hand-written token layer.
//!
//! [`Auth`] is the handle every generated client carries: it hands out a
//! fresh-enough [`AccessToken`] for each call and renews a token the API
//! rejected. What sits behind it is a [`TokenSource`].

pub(crate) mod api;
mod assertion;
mod cache;
pub mod challenge;
pub mod clock;
pub(crate) mod credentials;
pub(crate) mod discovery;
mod encryption;
pub(crate) mod endpoint;
mod envelope;
pub(crate) mod error;
mod file_store;
pub(crate) mod http;
#[cfg(feature = "middleware")]
mod middleware;
#[cfg(feature = "redis")]
mod redis_store;
pub(crate) mod renewal;
pub(crate) mod response;
mod store;
mod token;

use std::fmt;
use std::sync::Arc;

use ::http::HeaderValue;

pub use api::ApiSettings;
pub use assertion::{KeyIdentifier, PrivateKeyJwt, SigningAlgorithm};
pub use cache::{CacheKey, CacheSettings, CacheStats, CachedTokenSource, TokenCache};
pub use credentials::{ClientAuthMethod, ClientCredential, JWT_BEARER_ASSERTION_TYPE};
pub use discovery::{Discovery, ProviderMetadata};
pub use encryption::{CacheEncryptionKey, EncryptionKeyError};
pub use endpoint::{EndpointIdentity, RetryPolicy, TokenEndpoint, TokenEndpointBuilder};
pub use error::{
    ApiCallError, ApiCallErrorKind, AuthError, ConfigError, DiscoveryError, EndpointError,
    InvalidResponse, OAuthError, SharedFailure, TransportError, TransportErrorKind,
    UnfinishedFetch,
};
pub use file_store::FileStore;
pub(crate) use http::redact_password;
pub use http::{
    HttpSettings, MAX_RETRY_AFTER, TokenHttpClient, check_credentials_url, retry_after,
};
#[cfg(feature = "middleware")]
pub use middleware::AuthMiddleware;
#[cfg(feature = "redis")]
pub use redis_store::{RedisStore, RedisStoreConfig};
pub use response::TokenLifetimes;
pub use store::{MemoryStore, StoreError, StoreLock, TokenStore};
pub use token::{AccessToken, InvalidTokenValue, TokenType};

/// Where an [`Auth`] handle gets its tokens from.
///
/// m2m's own implementation is the caching token manager; implement this
/// trait to plug in something else (a token from a sidecar, a test double).
pub trait TokenSource: Send + Sync + 'static {
    /// A token that is valid now.
    fn token(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>>;

    /// The API rejected the token sent as `rejected` (the `Authorization`
    /// value, answered by 401 `invalid_token`): forget that token if it is
    /// still the current one, and return a valid token.
    fn renew<'a>(
        &'a self,
        rejected: &'a HeaderValue,
    ) -> BoxFuture<'a, Result<AccessToken, AuthError>>;
}

/// One way to obtain a new token: a request to a token endpoint, with its
/// retries. The cache calls it; it knows nothing about caching.
pub trait FetchToken: Send + Sync + 'static {
    /// Requests a new token.
    fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>>;
}

/// A boxed, sendable future, as [`TokenSource`] returns.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The auth handle: cheap to clone, shared by every generated client.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use m2m::auth::{Auth, ClientCredential, TokenEndpoint};
/// use m2m::provider::Provider;
///
/// let endpoint = TokenEndpoint::builder(
///     Provider::cenda("permissions-tenant-id", "gateway-client-id"),
///     "client-id",
///     ClientCredential::secret(std::env::var("CENDA_CLIENT_SECRET")?),
/// )
/// .build()?;
/// let auth = Auth::new(endpoint);
/// let cenda = m2m::apis::cenda_configuration::Client::new("https://api.cenda.app", auth);
/// let page = cenda.list_organisations().send().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Auth {
    source: Arc<dyn TokenSource>,
    api: ApiSettings,
    renewals: Arc<renewal::Renewals>,
    clock: Arc<dyn clock::Clock>,
}

impl Auth {
    /// Tokens from `endpoint`, kept in a cache of this handle's own (clones
    /// of the handle share it). Use [`Auth::with_cache`] to share one cache
    /// between clients, or to plug in another store.
    pub fn new(endpoint: TokenEndpoint) -> Self {
        Self::with_cache(endpoint, &TokenCache::in_memory())
    }

    /// Tokens from `endpoint`, kept in `cache` under the endpoint's key
    /// (provider, token endpoint, client id, scopes, resource).
    pub fn with_cache(endpoint: TokenEndpoint, cache: &TokenCache) -> Self {
        let key = endpoint.identity().cache_key();
        Self::from_source(cache.source(key, Arc::new(endpoint)))
    }

    /// A handle over any token source.
    pub fn from_source(source: impl TokenSource) -> Self {
        Self {
            source: Arc::new(source),
            api: ApiSettings::default(),
            renewals: Arc::default(),
            clock: Arc::new(clock::SystemClock),
        }
    }

    /// With other settings for the API calls this handle guards (the
    /// generated clients and [`AuthMiddleware`]): by default the token goes
    /// only over https or to loopback.
    pub fn with_api_settings(mut self, api: ApiSettings) -> Self {
        self.api = api;
        self
    }

    /// The settings of the API calls this handle guards.
    pub fn api_settings(&self) -> &ApiSettings {
        &self.api
    }

    /// With another clock: the one that times how long renewals stay
    /// stopped for an API that keeps rejecting fresh tokens.
    pub fn with_clock(mut self, clock: Arc<dyn clock::Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// A token valid now, from the cache when it has one.
    pub async fn token(&self) -> Result<AccessToken, AuthError> {
        self.source.token().await
    }

    /// The `Authorization` header value for a request of your own
    /// (`{token_type} {access_token}`, marked sensitive).
    pub async fn authorization(&self) -> Result<HeaderValue, AuthError> {
        Ok(self.token().await?.authorization().clone())
    }

    /// Renews after the API rejected the `Authorization` value `rejected`:
    /// the cached token is evicted only if it is still that one (another
    /// caller may have renewed it already), then a valid token is returned.
    pub async fn renew(&self, rejected: &HeaderValue) -> Result<AccessToken, AuthError> {
        self.source.renew(rejected).await
    }

    /// The typed error behind a generated-client call that failed because
    /// no token could be had or sent, or that m2m stopped (a limit of the
    /// [`ApiSettings`]). The same as [`crate::auth_error`], which needs no
    /// handle: prefer that one.
    ///
    /// Such calls fail with `progenitor_client::Error::Custom(message)`,
    /// whose message starts with [`crate::apis::AUTH_ERROR_PREFIX`] or
    /// [`crate::apis::CALL_ERROR_PREFIX`] and
    /// carries a reference to the process-wide [`RecentFailures`] (the last
    /// [`RecentFailures::CAPACITY`] distinct failures are kept; calls that
    /// failed with the same error, such as every caller waiting for one
    /// failed fetch, share one entry). `None` for any other error.
    ///
    /// ```no_run
    /// # async fn example(cenda: m2m::apis::cenda_configuration::Client) {
    /// use progenitor_client::ClientInfo;
    /// if let Err(error) = cenda.list_organisations().send().await {
    ///     if let Some(auth_error) = cenda.inner().error_of(&error) {
    ///         eprintln!("HTTP status from the token endpoint: {:?}", auth_error.status());
    ///     }
    /// }
    /// # }
    /// ```
    pub fn error_of<E>(&self, error: &progenitor_client::Error<E>) -> Option<AuthError> {
        match error {
            progenitor_client::Error::Custom(message) => RecentFailures::global().find(message),
            _ => None,
        }
    }

    /// Records `error` and returns the reference to put in a message.
    pub(crate) fn record_failure(&self, error: &AuthError) -> String {
        RecentFailures::global().record(error)
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}

/// The last few token failures of the generated clients' calls (one
/// process-wide list), so that a call's string error can be turned back
/// into the typed [`AuthError`] without the client: [`crate::auth_error`].
///
/// A failure equal to one already kept (the same error handed to every
/// caller of one failed fetch) reuses that entry and makes it the most
/// recent, so a burst of calls failing together takes one entry, not one
/// per call: none of those callers loses its error to the others.
#[derive(Debug, Default)]
pub struct RecentFailures {
    next: std::sync::atomic::AtomicU64,
    kept: std::sync::Mutex<std::collections::VecDeque<KeptFailure>>,
}

/// One entry of [`RecentFailures`].
#[derive(Debug)]
struct KeptFailure {
    id: u64,
    /// See [`RecentFailures::fingerprint`]. (Errors never hold a secret;
    /// this text is only compared, never shown.)
    fingerprint: String,
    error: AuthError,
}

impl RecentFailures {
    /// How many distinct failures are kept.
    pub const CAPACITY: usize = 256;
    const TAG: &'static str = "[m2m-auth-failure ";

    /// The process-wide list the generated clients' hooks record into.
    pub(crate) fn global() -> &'static RecentFailures {
        static GLOBAL: std::sync::LazyLock<RecentFailures> =
            std::sync::LazyLock::new(RecentFailures::default);
        &GLOBAL
    }

    fn record(&self, error: &AuthError) -> String {
        let fingerprint = Self::fingerprint(error);
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let seen = kept.iter().rposition(|k| k.fingerprint == fingerprint);
        let entry = match seen.and_then(|index| kept.remove(index)) {
            // The same failure seen again: its newest form (a hold-off's
            // time left shrinks from call to call) answers every caller.
            Some(entry) => KeptFailure {
                error: error.clone(),
                ..entry
            },
            None => KeptFailure {
                id: self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                fingerprint,
                error: error.clone(),
            },
        };
        let id = entry.id;
        if kept.len() == Self::CAPACITY {
            kept.pop_front();
        }
        kept.push_back(entry);
        format!("{}{id}]", Self::TAG)
    }

    /// What makes two failures the same one: their `Debug` text, except
    /// that every hold-off is one failure whatever time it has left (each
    /// caller held off after a 429 is told a slightly shorter wait).
    fn fingerprint(error: &AuthError) -> String {
        match error {
            AuthError::HeldOff { .. } => "HeldOff".to_owned(),
            other => format!("{other:?}"),
        }
    }

    pub(crate) fn find(&self, message: &str) -> Option<AuthError> {
        let start = message.find(Self::TAG)? + Self::TAG.len();
        let id: u64 = message[start..].split(']').next()?.parse().ok()?;
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter().find(|k| k.id == id).map(|k| k.error.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distinct(number: u64) -> AuthError {
        AuthError::Config(ConfigError::Invalid(format!("failure {number}")))
    }

    fn message_of(error: Option<AuthError>) -> Option<String> {
        error.map(|error| error.to_string())
    }

    #[test]
    fn equal_failures_share_one_entry_and_stay_findable() {
        let failures = RecentFailures::default();
        let first = failures.record(&distinct(1));
        // Many calls failing with the same error take one entry.
        for _ in 0..10 * RecentFailures::CAPACITY {
            assert_eq!(failures.record(&distinct(1)), first);
        }
        // Distinct failures fill the rest: every one is still there.
        let others: Vec<String> = (2..=RecentFailures::CAPACITY as u64)
            .map(|number| failures.record(&distinct(number)))
            .collect();
        assert_eq!(
            message_of(failures.find(&first)),
            Some(distinct(1).to_string())
        );
        assert!(others.iter().all(|other| failures.find(other).is_some()));
        // Seen again, the first failure becomes the most recent; the next
        // new one pushes out the least recent (number 2), not the first.
        assert_eq!(failures.record(&distinct(1)), first);
        failures.record(&distinct(1000));
        assert!(failures.find(&first).is_some());
        assert!(failures.find(&others[0]).is_none());
        assert!(failures.find(&others[1]).is_some());
        assert!(failures.find("no reference").is_none());
    }

    #[test]
    fn every_caller_held_off_finds_its_error_however_many_there_are() {
        let failures = RecentFailures::default();
        // Callers held off after a 429 each get the time left, to the
        // nanosecond: many more of them than the capacity.
        let references: Vec<String> = (0..10 * RecentFailures::CAPACITY as u64)
            .map(|n| {
                failures.record(&AuthError::HeldOff {
                    retry_after: std::time::Duration::from_nanos(60_000_000_000 - n),
                })
            })
            .collect();
        let other = failures.record(&AuthError::Config(ConfigError::Invalid(
            "a distinct failure".into(),
        )));

        for reference in &references {
            let found = failures
                .find(reference)
                .expect("every held-off caller's error");
            // The newest form: the shortest wait.
            assert_eq!(
                found.retry_after(),
                Some(std::time::Duration::from_nanos(
                    60_000_000_000 - (10 * RecentFailures::CAPACITY as u64 - 1)
                ))
            );
        }
        assert!(failures.find(&other).is_some());
    }
}
