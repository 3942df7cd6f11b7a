//! The one thing the token cache asks of whatever obtains its tokens.

use crate::future::BoxFuture;
use crate::oauth::error::AuthError;
use crate::oauth::token::AccessToken;

/// One way to obtain a new token: a request to a token endpoint, with its
/// retries. The cache calls it; it knows nothing about caching.
pub trait FetchToken: Send + Sync + 'static {
    /// Requests a new token.
    fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>>;

    /// Bumped whenever the credential changed so that tokens obtained
    /// before are not to be served any more (a client secret the server
    /// now refuses, replaced by the other: see
    /// [`ClientSecrets`](crate::auth::ClientSecrets)). The cache evicts the
    /// key's token when it sees a new value. Constant (0) by default.
    fn credential_epoch(&self) -> u64 {
        0
    }
}
