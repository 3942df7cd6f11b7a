//! [`TokenEndpoint`]: obtains one token from a provider's token endpoint,
//! with retries, and nothing else (no caching: that is the cache's job).
//!
//! - Every call has a timeout (see [`HttpSettings`]).
//! - Connection errors, timeouts, 5xx and 429 are retried with jittered
//!   exponential backoff ([`RetryPolicy`]); a `Retry-After` (seconds or an
//!   HTTP date, capped) replaces the backoff. Waiting goes through the
//!   injected [`Clock`], so tests see every wait in `ManualClock::sleeps`.
//! - `invalid_client`, `invalid_scope` and other 400s are not retried.
//! - After a 429 that is not retried away, later fetches **fail fast** with
//!   [`AuthError::HeldOff`] (carrying the time left) until `Retry-After` has
//!   passed, without sending a request: the server is not hammered, and the
//!   cache above can keep serving a still-valid token meanwhile.
//! - One `tracing` span per fetch (`m2m_token_fetch`) with the provider,
//!   client id, scopes, the last attempt, status and duration; never a secret.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use http::StatusCode;
use oauth2::basic::{BasicRevocationErrorResponse, BasicTokenIntrospectionResponse};
use oauth2::{ClientId, EndpointNotSet, EndpointSet, Scope, StandardRevocableToken, TokenUrl};
use tracing::Instrument;
use url::Url;

use super::clock::{Clock, Jitter, RandomJitter, SystemClock, later};
use super::credentials::RequestAuth;
use super::discovery::Discovery;
use super::http::{
    HttpSettings, MAX_RETRY_AFTER, RecordingClient, TokenHttpClient, check_credentials_url,
};
use super::response::{
    ErrorResponseBody, FailureContext, TokenLifetimes, TokenResponseBody, read_token_answer,
};
use super::{
    AccessToken, AuthError, BoxFuture, CacheKey, ClientAuthMethod, ClientCredential, ConfigError,
    FetchToken, TransportErrorKind,
};
use crate::provider::{Provider, TokenAuthority};

/// When and how often to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts per fetch, the first included (3). `1` means no retry.
    pub max_attempts: u32,
    /// Wait before the first retry (250 ms); doubles with each retry.
    pub base_delay: Duration,
    /// Longest backoff wait (10 s).
    pub max_delay: Duration,
    /// Longest `Retry-After` honoured, from the token endpoint or the
    /// discovery document: longer values are cut to it, for the wait before
    /// a retry and for the hold-off after a final 429. Default and upper
    /// bound: [`MAX_RETRY_AFTER`] (120 s); it can only be lowered.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
            max_retry_after: MAX_RETRY_AFTER,
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub fn no_retries() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// With `max_attempts` attempts (at least one).
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    /// With another base and cap of the backoff.
    pub fn with_backoff(mut self, base_delay: Duration, max_delay: Duration) -> Self {
        self.base_delay = base_delay;
        self.max_delay = max_delay;
        self
    }

    /// With a lower cap for `Retry-After` (at most [`MAX_RETRY_AFTER`]).
    pub fn with_max_retry_after(mut self, max_retry_after: Duration) -> Self {
        self.max_retry_after = max_retry_after.min(MAX_RETRY_AFTER);
        self
    }

    /// The wait before retry number `retry` (1 = the first retry):
    /// `min(max_delay, base_delay × 2^(retry−1))`, reduced by up to half by
    /// the jitter fraction (`0.0` gives the exact exponential value).
    pub fn backoff(&self, retry: u32, jitter_fraction: f64) -> Duration {
        let exponent = retry.saturating_sub(1).min(30);
        let exponential = self
            .base_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        exponential.mul_f64(1.0 - jitter_fraction.clamp(0.0, 1.0) / 2.0)
    }
}

/// What identifies the tokens of an endpoint: everything a cache key needs,
/// nothing secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct EndpointIdentity {
    /// The provider's short name (`cenda`, …).
    pub provider: &'static str,
    /// The token URL, or the discovery URL when the token URL is discovered.
    pub authority: String,
    /// The client id.
    pub client_id: String,
    /// The scopes requested, in request order.
    pub scopes: Vec<String>,
    /// The RFC 8707 `resource`, when one is requested.
    pub resource: Option<String>,
}

impl EndpointIdentity {
    /// The token cache's key for these tokens.
    pub fn cache_key(&self) -> CacheKey {
        CacheKey::new(
            self.provider,
            &self.authority,
            &self.client_id,
            &self.scopes,
            self.resource.as_deref(),
        )
    }
}

/// Builds a [`TokenEndpoint`]; see [`TokenEndpoint::builder`].
pub struct TokenEndpointBuilder {
    provider: Provider,
    client_id: String,
    credential: ClientCredential,
    scopes: Option<Vec<String>>,
    resource: Option<String>,
    client_auth: Option<ClientAuthMethod>,
    allow_http: bool,
    strict_issuer: bool,
    http: Option<TokenHttpClient>,
    http_settings: HttpSettings,
    retry: RetryPolicy,
    lifetimes: TokenLifetimes,
    clock: Arc<dyn Clock>,
    jitter: Arc<dyn Jitter>,
}

impl TokenEndpointBuilder {
    /// The scopes to request, replacing the provider's default. Each item may
    /// hold several space-separated scopes; repeats are dropped, order kept.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut unique: Vec<String> = Vec::new();
        for item in scopes {
            for scope in item.as_ref().split_whitespace() {
                if !unique.iter().any(|known| known == scope) {
                    unique.push(scope.to_owned());
                }
            }
        }
        self.scopes = Some(unique);
        self
    }

    /// An RFC 8707 `resource` parameter to send.
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// The client-authentication method, replacing the provider's default.
    pub fn client_auth(mut self, method: ClientAuthMethod) -> Self {
        self.client_auth = Some(method);
        self
    }

    /// Allows plain-http token and discovery URLs for any host (loopback is
    /// always allowed). Credentials then travel unencrypted: only for test
    /// networks.
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// Refuses a discovery document whose `issuer` is not the discovery
    /// URL less `/.well-known/openid-configuration` (OpenID Connect
    /// Discovery §4.3; see [`Discovery::strict_issuer`]). Only for a
    /// provider found through discovery: [`Self::build`] fails otherwise.
    pub fn strict_issuer(mut self, strict: bool) -> Self {
        self.strict_issuer = strict;
        self
    }

    /// Limits of the HTTP client built for this endpoint (ignored when
    /// [`Self::http_client`] is given).
    pub fn http_settings(mut self, settings: HttpSettings) -> Self {
        self.http_settings = settings;
        self
    }

    /// A shared HTTP client.
    pub fn http_client(mut self, client: TokenHttpClient) -> Self {
        self.http = Some(client);
        self
    }

    /// The retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Default and bounds of token lifetimes.
    pub fn lifetimes(mut self, lifetimes: TokenLifetimes) -> Self {
        self.lifetimes = lifetimes;
        self
    }

    /// The clock (expiry times and waits).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The jitter source of the backoff.
    pub fn jitter(mut self, jitter: Arc<dyn Jitter>) -> Self {
        self.jitter = jitter;
        self
    }

    /// Checks the configuration and builds the endpoint. Fails, without
    /// sending anything, on a plain-http URL (not loopback, no opt-in), an
    /// empty client id, or a method that does not fit the credential.
    pub fn build(self) -> Result<TokenEndpoint, ConfigError> {
        if self.client_id.trim().is_empty() {
            return Err(ConfigError::Invalid("the client id is empty".into()));
        }
        let method = self
            .credential
            .method(self.client_auth, self.provider.default_client_auth())?;
        let authority = self.provider.token_authority()?;
        let target = match &authority {
            TokenAuthority::TokenUrl(url) => {
                check_credentials_url(url, self.allow_http)?;
                if self.strict_issuer {
                    return Err(ConfigError::Invalid(
                        "strict_issuer checks a discovery document, and this client has a token URL"
                            .into(),
                    ));
                }
                Target::TokenUrl(url.clone())
            }
            TokenAuthority::Discovery(url) => Target::Discovery(
                Discovery::new(url.clone(), self.allow_http)?.strict_issuer(self.strict_issuer)?,
            ),
        };
        let scopes = self
            .scopes
            .unwrap_or_else(|| self.provider.default_scopes(&self.client_id));
        let http = match self.http {
            Some(http) => http,
            None => TokenHttpClient::new(&self.http_settings)?,
        };
        let identity = EndpointIdentity {
            provider: self.provider.name(),
            authority: authority.url().to_string(),
            client_id: self.client_id.clone(),
            scopes: scopes.clone(),
            resource: self.resource.clone(),
        };
        Ok(TokenEndpoint {
            scope_format: self.provider.scope_format(),
            provider: self.provider,
            identity,
            client_id: self.client_id,
            credential: self.credential,
            method,
            scopes,
            resource: self.resource,
            target,
            http,
            retry: self.retry,
            lifetimes: self.lifetimes,
            clock: self.clock,
            jitter: self.jitter,
            held_off_until: Mutex::new(None),
            warned_auth_methods: AtomicBool::new(false),
        })
    }
}

impl fmt::Debug for TokenEndpointBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEndpointBuilder")
            .field("provider", &self.provider)
            .field("client_id", &self.client_id)
            .field("credential", &self.credential)
            .field("scopes", &self.scopes)
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

enum Target {
    TokenUrl(Url),
    Discovery(Discovery),
}

/// How an attempt failed.
enum Failed {
    Error(AuthError),
    /// A failure that says the discovered token endpoint moved; the
    /// discovery document was forgotten.
    Moved(AuthError),
}

impl From<AuthError> for Failed {
    fn from(error: AuthError) -> Self {
        Self::Error(error)
    }
}

/// Whether `error`, from a token request, says the token endpoint is not
/// where it was: 404, or nothing to connect to.
fn says_moved(error: &AuthError) -> bool {
    match error {
        AuthError::Rejected(rejected) => rejected.status == StatusCode::NOT_FOUND,
        AuthError::Transport(transport) => transport.kind == TransportErrorKind::Connect,
        _ => false,
    }
}

/// Obtains tokens from one provider for one client and one set of scopes.
///
/// ```no_run
/// # async fn demo() -> Result<(), m2m::auth::AuthError> {
/// use m2m::auth::{ClientCredential, FetchToken, TokenEndpoint};
/// use m2m::provider::Provider;
///
/// let endpoint = TokenEndpoint::builder(
///     Provider::cenda("permissions-tenant-id", "gateway-client-id"),
///     "api-client-id",
///     ClientCredential::secret("the secret's value"),
/// )
/// .build()?;
/// let token = endpoint.fetch().await?;
/// # let _ = token; Ok(()) }
/// ```
pub struct TokenEndpoint {
    provider: Provider,
    identity: EndpointIdentity,
    client_id: String,
    credential: ClientCredential,
    method: ClientAuthMethod,
    scopes: Vec<String>,
    resource: Option<String>,
    target: Target,
    http: TokenHttpClient,
    retry: RetryPolicy,
    lifetimes: TokenLifetimes,
    clock: Arc<dyn Clock>,
    jitter: Arc<dyn Jitter>,
    scope_format: &'static str,
    held_off_until: Mutex<Option<SystemTime>>,
    warned_auth_methods: AtomicBool,
}

pub(crate) type OAuthClient = oauth2::Client<
    ErrorResponseBody,
    TokenResponseBody,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

impl TokenEndpoint {
    /// Starts a builder: the provider, the client id and its credential.
    /// Scopes default to the provider's ([`Provider::default_scopes`]), the
    /// method to the provider's ([`Provider::default_client_auth`]) or
    /// `private_key_jwt` for a key; the clock to [`SystemClock`], jitter to
    /// [`RandomJitter`].
    pub fn builder(
        provider: Provider,
        client_id: impl Into<String>,
        credential: ClientCredential,
    ) -> TokenEndpointBuilder {
        TokenEndpointBuilder {
            provider,
            client_id: client_id.into(),
            credential,
            scopes: None,
            resource: None,
            client_auth: None,
            allow_http: false,
            strict_issuer: false,
            http: None,
            http_settings: HttpSettings::default(),
            retry: RetryPolicy::default(),
            lifetimes: TokenLifetimes::default(),
            clock: Arc::new(SystemClock),
            jitter: Arc::new(RandomJitter),
        }
    }

    /// What identifies this endpoint's tokens (for cache keys).
    pub fn identity(&self) -> &EndpointIdentity {
        &self.identity
    }

    /// The provider.
    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    /// The client-authentication method in use.
    pub fn client_auth(&self) -> ClientAuthMethod {
        self.method
    }

    /// The scopes requested.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// Requests a new token: retries, backoff and hold-off included.
    pub async fn request_token(&self) -> Result<AccessToken, AuthError> {
        let span = tracing::info_span!(
            "m2m_token_fetch",
            provider = self.identity.provider,
            client_id = %self.client_id,
            scopes = %self.scopes.join(" "),
            attempt = tracing::field::Empty,
            status = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        self.request_with_retries(&span)
            .instrument(span.clone())
            .await
    }

    async fn request_with_retries(&self, span: &tracing::Span) -> Result<AccessToken, AuthError> {
        if let Some(retry_after) = self.held_off() {
            tracing::debug!(
                retry_after_s = retry_after.as_secs(),
                "held off after a 429: no request sent"
            );
            return Err(AuthError::HeldOff { retry_after });
        }
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            span.record("attempt", attempt);
            let result = self.attempt().await;
            span.record("duration_ms", started.elapsed().as_millis() as u64);
            let (error, moved) = match result {
                Ok(token) => {
                    span.record("status", 200);
                    return Ok(token);
                }
                Err(Failed::Error(error)) => (error, false),
                Err(Failed::Moved(error)) => (error, true),
            };
            if let Some(status) = error.status() {
                span.record("status", status.as_u16());
            }
            let throttled = error.status() == Some(StatusCode::TOO_MANY_REQUESTS);
            let wait = match error.retry_after() {
                Some(after) => after.min(self.retry.max_retry_after),
                None => self.retry.backoff(attempt, self.jitter.fraction()),
            };
            if !(error.is_retryable() || moved) || attempt >= self.retry.max_attempts {
                if throttled {
                    self.hold_off(wait);
                }
                tracing::warn!(attempt, %error, "no token");
                return Err(error);
            }
            if moved {
                // The next attempt reads the discovery document again and
                // asks where it says the token endpoint is now.
                tracing::warn!(attempt, %error, "the token endpoint moved: retrying at once");
                continue;
            }
            tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, %error, "token request failed: retrying");
            self.clock.sleep(wait).await;
        }
    }

    /// One token request; `Moved` when it failed in a way that says the
    /// discovered token endpoint moved, and the discovery document was
    /// forgotten for it.
    async fn attempt(&self) -> Result<AccessToken, Failed> {
        let now = self.clock.now();
        let (token_url, discovered) = match &self.target {
            Target::TokenUrl(url) => (url.clone(), None),
            Target::Discovery(discovery) => {
                let metadata = discovery.metadata(&self.http, now).await?;
                self.check_advertised_methods(
                    metadata.token_endpoint_auth_methods_supported.as_deref(),
                );
                (metadata.token_endpoint.clone(), Some((discovery, metadata)))
            }
        };
        match self.request_at(&token_url, now).await {
            Err(error) if says_moved(&error) => match discovered {
                Some((discovery, metadata)) if discovery.forget(&metadata).await => {
                    Err(Failed::Moved(error))
                }
                _ => Err(Failed::Error(error)),
            },
            result => Ok(result?),
        }
    }

    async fn request_at(&self, token_url: &Url, now: SystemTime) -> Result<AccessToken, AuthError> {
        let auth = RequestAuth::prepare(
            &self.client_id,
            &self.credential,
            self.method,
            token_url.as_str(),
            now,
        )?;
        let mut client: OAuthClient = oauth2::Client::new(ClientId::new(self.client_id.clone()))
            .set_auth_type(auth.auth_type.clone())
            .set_token_uri(TokenUrl::from_url(token_url.clone()));
        if let Some(secret) = auth.client_secret.clone() {
            client = client.set_client_secret(secret);
        }
        let mut request = client
            .exchange_client_credentials()
            .add_scopes(self.scopes.iter().map(|s| Scope::new(s.clone())));
        for (name, value) in &auth.extra_params {
            request = request.add_extra_param(*name, value.as_str());
        }
        if let Some(resource) = &self.resource {
            request = request.add_extra_param("resource", resource.as_str());
        }
        let adapter = RecordingClient::new(&self.http, auth.authorization.clone());
        let result = request.request_async(&adapter).await;
        let recorded = adapter.take();
        let url = token_url.as_str();
        let context = FailureContext {
            url,
            now,
            max_retry_after: self.retry.max_retry_after,
            scope_format: self.scope_format,
            scrubber: &auth.scrubber,
        };
        let (token, lifetime, source) =
            read_token_answer(result, recorded.as_ref(), &context, &self.lifetimes)?;
        tracing::debug!(
            token_type = token.token_type(),
            lifetime_s = lifetime.as_secs(),
            lifetime_from = ?source,
            "token received"
        );
        Ok(token)
    }

    fn held_off(&self) -> Option<Duration> {
        let until = (*self
            .held_off_until
            .lock()
            .unwrap_or_else(|e| e.into_inner()))?;
        until
            .duration_since(self.clock.now())
            .ok()
            .filter(|left| !left.is_zero())
    }

    fn hold_off(&self, duration: Duration) {
        let until = later(self.clock.now(), duration);
        *self
            .held_off_until
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(until);
    }

    fn check_advertised_methods(&self, supported: Option<&[String]>) {
        let Some(supported) = supported else { return };
        let name = self.method.registry_name();
        if !supported.iter().any(|m| m == name)
            && !self.warned_auth_methods.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                method = name,
                supported = %supported.join(" "),
                "the discovery document does not list this client authentication method"
            );
        }
    }
}

impl FetchToken for TokenEndpoint {
    fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>> {
        Box::pin(self.request_token())
    }
}

impl fmt::Debug for TokenEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEndpoint")
            .field("identity", &self.identity)
            .field("client_auth", &self.method)
            .field("credential", &self.credential)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_only_shortens() {
        let policy = RetryPolicy::default()
            .with_backoff(Duration::from_millis(100), Duration::from_millis(350));
        let waits: Vec<Duration> = (1..=4).map(|n| policy.backoff(n, 0.0)).collect();
        assert_eq!(
            waits,
            [100, 200, 350, 350].map(Duration::from_millis).to_vec()
        );
        assert_eq!(policy.backoff(2, 0.5), Duration::from_millis(150));
        assert_eq!(policy.backoff(64, 0.0), Duration::from_millis(350));
    }

    #[test]
    fn cache_key_is_the_caches_key_of_the_identity() {
        let endpoint = TokenEndpoint::builder(
            Provider::sequel(Url::parse("https://s.example/Auth").unwrap()),
            "app.client",
            ClientCredential::secret("s"),
        )
        .scopes(["b a", "a"])
        .resource("https://api.example/")
        .build()
        .unwrap();
        let key = endpoint.identity().cache_key();
        assert_eq!(key.provider(), "sequel");
        assert_eq!(key.token_endpoint(), "https://s.example/Auth/connect/token");
        assert_eq!(key.client_id(), "app.client");
        assert_eq!(key.scopes(), ["a", "b"]);
        assert_eq!(key.resource(), Some("https://api.example/"));
        assert_eq!(endpoint.scopes(), ["b", "a"]);
        assert_eq!(
            key.as_str(),
            CacheKey::new(
                "sequel",
                "https://s.example/Auth/connect/token",
                "app.client",
                ["a b"],
                Some("https://api.example/")
            )
            .as_str()
        );
    }

    #[test]
    fn build_refuses_plain_http_and_mismatched_methods() {
        let build = |provider: Provider, allow_http| {
            TokenEndpoint::builder(provider, "id", ClientCredential::secret("s"))
                .allow_http(allow_http)
                .build()
        };
        let insecure = Provider::custom_token_url(Url::parse("http://auth.example/token").unwrap());
        assert!(matches!(
            build(insecure.clone(), false),
            Err(ConfigError::InsecureUrl { .. })
        ));
        assert!(build(insecure, true).is_ok());
        let err = TokenEndpoint::builder(Provider::nxtsoft(), "id", ClientCredential::secret("s"))
            .client_auth(ClientAuthMethod::PrivateKeyJwt)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("private key"), "{err}");
        assert!(
            TokenEndpoint::builder(Provider::nxtsoft(), " ", ClientCredential::secret("s"))
                .build()
                .is_err()
        );
        let error =
            TokenEndpoint::builder(Provider::nxtsoft(), "id", ClientCredential::secret("s"))
                .strict_issuer(true)
                .build()
                .unwrap_err();
        assert!(error.to_string().contains("strict_issuer"), "{error}");
        let nxtport = build(
            Provider::nxtport(crate::provider::NxtPortEnvironment::Live, "tenant"),
            false,
        )
        .unwrap();
        assert_eq!(nxtport.scopes(), ["id/.default"]);
        assert_eq!(nxtport.client_auth(), ClientAuthMethod::ClientSecretPost);
        assert_eq!(
            nxtport.identity().authority,
            "https://login.microsoftonline.com/tenant/oauth2/v2.0/token"
        );
    }
}
