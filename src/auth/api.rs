//! What m2m enforces on every API call it attaches a token to, in the
//! generated clients' hooks and in [`AuthMiddleware`](super::AuthMiddleware)
//! alike: the token goes only where credentials may go (https, loopback, or
//! the explicit `allow_http`), and redirects are followed only within the
//! origin of the request.

use url::Url;

use super::{AuthError, ConfigError, check_credentials_url};

/// The settings of the API calls an [`Auth`](super::Auth) handle guards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiSettings {
    /// Send the token over plain http to a host that is not loopback
    /// (off: RFC 6750 §5.3, a bearer token goes over TLS only).
    pub allow_http: bool,
}

impl ApiSettings {
    /// Redirects followed within one origin, at most (reqwest's default).
    const MAX_REDIRECTS: usize = 10;

    /// With `allow_http` set.
    pub fn with_allow_http(mut self, allow_http: bool) -> Self {
        self.allow_http = allow_http;
        self
    }

    /// Whether the token may be sent to `url`: the rule for token URLs
    /// ([`check_credentials_url`]) with this handle's `allow_http`. The error
    /// names the URL without its query.
    pub fn check_url(&self, url: &Url) -> Result<(), ConfigError> {
        let mut shown = url.clone();
        shown.set_query(None);
        shown.set_fragment(None);
        check_credentials_url(&shown, self.allow_http)
    }

    /// A reqwest client for API calls that follows a redirect only within
    /// the origin (scheme, host and port) of the request: never to another
    /// host, never from https to http, so the token cannot follow it
    /// elsewhere. A redirect elsewhere comes back as the 3xx answer.
    pub fn http_client(&self) -> Result<reqwest::Client, ConfigError> {
        self.http_client_from(reqwest::Client::builder())
    }

    /// [`ApiSettings::http_client`] from your own builder (proxy, root
    /// certificates, …); its redirect policy is replaced.
    pub fn http_client_from(
        &self,
        builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::Client, ConfigError> {
        builder
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let same_origin = attempt
                    .previous()
                    .first()
                    .is_some_and(|first| first.origin() == attempt.url().origin());
                if same_origin && attempt.previous().len() <= Self::MAX_REDIRECTS {
                    attempt.follow()
                } else {
                    attempt.stop()
                }
            }))
            .build()
            .map_err(|e| ConfigError::Invalid(format!("the API HTTP client cannot be built: {e}")))
    }

    /// [`ApiSettings::check_url`] as the error of a call.
    pub(crate) fn refuse_insecure(&self, url: &Url) -> Result<(), AuthError> {
        self.check_url(url).map_err(AuthError::Config)
    }
}
