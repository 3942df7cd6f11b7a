//! The OAuth 2.0 client-credentials request: how the client authenticates
//! (a secret or a signed assertion), the HTTP client and the URLs it may
//! send credentials to, the thin adapter to the `oauth2` crate, the answer
//! read into an [`AccessToken`](token::AccessToken), and the errors of all
//! of it.

pub(crate) mod assertion;
pub(crate) mod assertion_source;
pub(crate) mod credential_file;
pub(crate) mod credentials;
pub(crate) mod dpop;
pub(crate) mod error;
pub(crate) mod exchange;
pub(crate) mod http_client;
pub(crate) mod key_file;
pub(crate) mod mtls;
pub(crate) mod response;
pub(crate) mod retry_after;
pub(crate) mod secret_rotation;
pub(crate) mod tls_roots;
pub(crate) mod token;
pub(crate) mod url_policy;
