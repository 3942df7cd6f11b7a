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
