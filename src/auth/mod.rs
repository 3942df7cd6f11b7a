//! The hand-written token layer.
//!
//! [`Auth`] is the handle every generated client carries: it hands out a
//! fresh-enough [`AccessToken`] for each call and renews a token the API
//! rejected. What sits behind it is a [`TokenSource`].

mod assertion;
mod cache;
pub mod challenge;
pub mod clock;
mod credentials;
mod discovery;
mod endpoint;
mod error;
mod http;
#[cfg(feature = "redis")]
mod redis_store;
mod response;
mod store;
mod token;

use std::fmt;
use std::sync::Arc;

use ::http::HeaderValue;

pub use assertion::{KeyIdentifier, PrivateKeyJwt, SigningAlgorithm};
pub use cache::{CacheKey, CacheSettings, CacheStats, CachedTokenSource, TokenCache};
pub use credentials::{ClientAuthMethod, ClientCredential, JWT_BEARER_ASSERTION_TYPE};
pub use discovery::{Discovery, ProviderMetadata};
pub use endpoint::{EndpointIdentity, RetryPolicy, TokenEndpoint, TokenEndpointBuilder};
pub use error::{
    AuthError, ConfigError, DiscoveryError, EndpointError, InvalidResponse, OAuthError,
    TransportError, TransportErrorKind,
};
pub use http::{HttpSettings, TokenHttpClient, check_credentials_url};
#[cfg(feature = "redis")]
pub use redis_store::{CacheEncryptionKey, EncryptionKeyError, RedisStore, RedisStoreConfig};
pub use response::TokenLifetimes;
pub use store::{MemoryStore, StoreError, StoreLock, TokenStore};
pub use token::{AccessToken, InvalidTokenValue};

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
    failures: Arc<RecentFailures>,
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
            failures: Arc::default(),
        }
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
    /// no token could be had.
    ///
    /// Such calls fail with `progenitor_client::Error::Custom(message)`,
    /// whose message starts with [`crate::apis::AUTH_ERROR_PREFIX`] and
    /// carries a reference this handle resolves (the last
    /// [`RecentFailures::CAPACITY`] failures are kept). `None` for any other
    /// error.
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
            progenitor_client::Error::Custom(message) => self.failures.find(message),
            _ => None,
        }
    }

    /// Records `error` and returns the reference to put in a message.
    pub(crate) fn record_failure(&self, error: &AuthError) -> String {
        self.failures.record(error)
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}

/// The last few token failures of an [`Auth`] handle, so that a generated
/// call's string error can be turned back into the typed [`AuthError`].
#[derive(Debug, Default)]
pub struct RecentFailures {
    next: std::sync::atomic::AtomicU64,
    kept: std::sync::Mutex<std::collections::VecDeque<(u64, AuthError)>>,
}

impl RecentFailures {
    /// How many failures are kept.
    pub const CAPACITY: usize = 32;
    const TAG: &'static str = "[m2m-auth-failure ";

    fn record(&self, error: &AuthError) -> String {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() == Self::CAPACITY {
            kept.pop_front();
        }
        kept.push_back((id, error.clone()));
        format!("{}{id}]", Self::TAG)
    }

    fn find(&self, message: &str) -> Option<AuthError> {
        let start = message.find(Self::TAG)? + Self::TAG.len();
        let id: u64 = message[start..].split(']').next()?.parse().ok()?;
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter()
            .find(|(kept_id, _)| *kept_id == id)
            .map(|(_, error)| error.clone())
    }
}
