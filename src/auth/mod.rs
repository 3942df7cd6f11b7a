//! The hand-written token layer.
//!
//! [`Auth`] is the handle every generated client carries: it hands out a
//! fresh-enough [`AccessToken`] for each call and renews a token the API
//! rejected. What sits behind it is a [`TokenSource`].

mod cache;
pub mod challenge;
pub mod clock;
mod error;
#[cfg(feature = "redis")]
mod redis_store;
mod store;
mod token;

use std::fmt;
use std::sync::Arc;

use http::HeaderValue;

pub use cache::{CacheKey, CacheSettings, CacheStats, CachedTokenSource, TokenCache};
pub use error::AuthError;
#[cfg(feature = "redis")]
pub use redis_store::{CacheEncryptionKey, EncryptionKeyError, RedisStore, RedisStoreConfig};
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
#[derive(Clone)]
pub struct Auth {
    source: Arc<dyn TokenSource>,
}

impl Auth {
    /// A handle over any token source.
    pub fn from_source(source: impl TokenSource) -> Self {
        Self {
            source: Arc::new(source),
        }
    }

    /// A token valid now, from the cache when it has one.
    pub async fn token(&self) -> Result<AccessToken, AuthError> {
        self.source.token().await
    }

    /// Renews after the API rejected the `Authorization` value `rejected`:
    /// the cached token is evicted only if it is still that one (another
    /// caller may have renewed it already), then a valid token is returned.
    pub async fn renew(&self, rejected: &HeaderValue) -> Result<AccessToken, AuthError> {
        self.source.renew(rejected).await
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}
