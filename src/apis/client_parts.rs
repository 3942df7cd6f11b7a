//! What a generated client is made of when it comes from a configuration.

use url::Url;

use crate::auth::Auth;
use crate::config::{Config, ConfigFileError};

/// The base URL, HTTP client and auth handle of the client called `name`
/// in a [`Config`]: what every generated `Client::from_config` is built
/// from.
#[derive(Debug, Clone)]
pub struct ClientParts {
    /// The client's `api_base_url`, else its provider's.
    pub base_url: Url,
    /// An HTTP client that follows the client's API settings (redirects
    /// only within the origin, its timeouts).
    pub http: reqwest::Client,
    /// The client's auth handle, over the token cache `config` owns.
    pub auth: Auth,
}

impl ClientParts {
    /// The parts of the client called `name` in `config`.
    pub fn from_config(config: &Config, name: &str) -> Result<Self, ConfigFileError> {
        let base_url = config.api_base_url(name)?;
        let auth = config.auth(name)?;
        let http = auth
            .api_settings()
            .http_client()
            .map_err(|error| ConfigFileError::Client {
                client: name.to_owned(),
                message: error.to_string(),
            })?;
        Ok(Self {
            base_url,
            http,
            auth,
        })
    }
}

/// The HTTP client of a generated `Client::new(base_url, auth)`: the one
/// [`ApiSettings::http_client`](crate::auth::ApiSettings::http_client)
/// makes from `auth`'s settings (its client certificate and CA roots,
/// redirects only within the origin, its timeout), as `from_auth` and
/// `from_config` use. progenitor's own `new` made a plain reqwest client,
/// which presented no certificate: a certificate-bound token went out
/// without it and was refused.
///
/// The settings were checked when the handle's endpoint built its own
/// client with the same certificate and roots, so building fails only
/// where reqwest cannot start TLS at all; then the error is logged and
/// reqwest's default client used (`from_auth` returns the error instead).
pub fn http_client_of(auth: &Auth) -> reqwest::Client {
    auth.api_settings()
        .http_client()
        .unwrap_or_else(|error| {
            tracing::error!(%error, "the API HTTP client cannot be built from the handle's settings: using reqwest's default (prefer Client::from_auth, which returns the error)");
            reqwest::Client::new()
        })
}
