//! The one thing the token cache asks of whatever obtains its tokens.

use crate::future::BoxFuture;
use crate::oauth::error::AuthError;
use crate::oauth::token::AccessToken;

/// One way to obtain a new token: a request to a token endpoint, with its
/// retries. The cache calls it; it knows nothing about caching.
pub trait FetchToken: Send + Sync + 'static {
    /// Requests a new token.
    fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>>;
}
