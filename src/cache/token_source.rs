//! What an [`Auth`](crate::auth::Auth) handle asks of where its tokens come
//! from.

use http::HeaderValue;

use crate::future::BoxFuture;
use crate::metrics::MetricLabels;
use crate::oauth::error::AuthError;
use crate::oauth::token::AccessToken;

/// Where an [`Auth`](crate::auth::Auth) handle gets its tokens from.
///
/// m2m's own implementation is the caching token manager; implement this
/// trait to plug in something else (a token from a sidecar, a test double).
pub trait TokenSource: Send + Sync + 'static {
    /// A token that is valid now.
    fn token(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>>;

    /// A token that can be handed out at once, without waiting, locking or
    /// allocating (a warm cache hit); `None` sends the call to
    /// [`TokenSource::token`]. The default has none.
    fn cached(&self) -> Option<AccessToken> {
        None
    }

    /// The labels of this source's metrics, which the auth handles over it
    /// carry too (feature `metrics`). The default has none: such handles
    /// are labelled `client="custom"`, `provider="custom"`.
    fn metric_labels(&self) -> Option<MetricLabels> {
        None
    }

    /// The API rejected the token sent as `rejected` (the `Authorization`
    /// value, answered by 401 `invalid_token`): forget that token if it is
    /// still the current one, and return a valid token.
    fn renew<'a>(
        &'a self,
        rejected: &'a HeaderValue,
    ) -> BoxFuture<'a, Result<AccessToken, AuthError>>;
}
