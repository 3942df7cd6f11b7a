//! The token layer, as a caller sees it.
//!
//! [`Auth`] is the handle every generated client carries: it hands out a
//! fresh-enough [`AccessToken`] for each call and renews a token the API
//! rejected. What sits behind it is a [`TokenSource`]: m2m's own is a
//! [`TokenCache`] over a [`TokenStore`], fed by a [`TokenEndpoint`].
//!
//! This module only gathers the public items of the layers below it
//! (time, the OAuth request, the token endpoint, the stores, the cache) and
//! holds the handle's own: [`Auth`], its [`ApiSettings`], the renewal of
//! rejected tokens and the [`AuthMiddleware`].

pub(crate) mod api;
pub mod challenge;
mod dpop_calls;
mod handle;
#[cfg(feature = "middleware")]
mod middleware;
mod observer;
mod recent_failures;
pub(crate) mod renewal;

/// Time and randomness, injected (see [`Clock`](clock::Clock)).
pub mod clock {
    pub use crate::time::{Clock, Jitter, RandomJitter, SystemClock};
    #[cfg(any(test, feature = "test-util", feature = "fuzzing"))]
    pub use crate::time::{FixedJitter, ManualClock};
}

pub use crate::cache::settings::CacheSettings;
pub use crate::cache::stats::CacheStats;
pub use crate::cache::token_cache::{CachedTokenSource, TokenCache};
pub use crate::cache::token_source::TokenSource;
pub use crate::endpoint::discovery::{Discovery, ProviderMetadata};
pub use crate::endpoint::fetch_token::FetchToken;
pub use crate::endpoint::retry::RetryPolicy;
pub use crate::endpoint::token_endpoint::{EndpointIdentity, TokenEndpoint, TokenEndpointBuilder};
pub use crate::future::BoxFuture;
pub use crate::metrics::MetricLabels;
pub use crate::oauth::assertion::{KeyIdentifier, PrivateKeyJwt, SigningAlgorithm};
pub use crate::oauth::assertion_source::{
    AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE, AssertionSource, ClientAssertion,
};
pub use crate::oauth::credentials::{
    ClientAuthMethod, ClientCredential, JWT_BEARER_ASSERTION_TYPE,
};
pub use crate::oauth::dpop::{DPOP_HEADER, DPOP_NONCE_HEADER, Dpop, DpopKey};
pub use crate::oauth::error::{
    ApiCallError, ApiCallErrorKind, AuthError, ConfigError, CredentialError, CredentialKind,
    CredentialOrigin, CredentialProblem, DiscoveryError, EndpointError, InvalidResponse,
    InvalidTokenValue, OAuthError, SharedFailure, TransportError, TransportErrorKind,
    UnfinishedFetch,
};
pub use crate::oauth::http_client::{HttpSettings, TokenHttpClient};
pub use crate::oauth::key_file::{KeyName, PrivateKeyFiles};
pub use crate::oauth::mtls::{TlsIdentity, TlsIdentityFiles};
pub use crate::oauth::response::TokenLifetimes;
pub use crate::oauth::retry_after::{MAX_RETRY_AFTER, retry_after};
pub use crate::oauth::secret_rotation::{ClientSecrets, SecretSlot};
pub use crate::oauth::tls_roots::TlsRoots;
pub use crate::oauth::token::{AccessToken, TokenType};
pub use crate::oauth::url_policy::check_credentials_url;
pub use crate::store::encryption::{CacheEncryptionKey, EncryptionKeyError};
pub use crate::store::file_store::FileStore;
pub use crate::store::key::CacheKey;
#[cfg(feature = "redis")]
pub use crate::store::redis_store::{RedisStore, RedisStoreConfig};
pub use crate::store::token_store::{MemoryStore, StoreError, StoreLock, TokenStore};
pub use api::ApiSettings;
pub use handle::Auth;
#[cfg(feature = "middleware")]
pub use middleware::AuthMiddleware;
pub use recent_failures::RecentFailures;
