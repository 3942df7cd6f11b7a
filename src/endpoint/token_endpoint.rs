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
use tracing::Instrument;
use url::Url;

use super::discovery::Discovery;
use super::fetch_token::FetchToken;
use super::retry::RetryPolicy;
use crate::future::BoxFuture;
use crate::oauth::credentials::{ClientAuthMethod, ClientCredential, RequestAuth};
use crate::oauth::dpop::{Dpop, USE_DPOP_NONCE};
use crate::oauth::error::{AuthError, ConfigError, DiscoveryError, TransportErrorKind};
use crate::oauth::exchange::exchange;
use crate::oauth::http_client::{HttpSettings, TokenHttpClient};
use crate::oauth::mtls::{TlsIdentity, TlsIdentityFiles};
use crate::oauth::response::{FailureContext, TokenLifetimes, read_token_answer};
use crate::oauth::tls_roots::TlsRoots;
use crate::oauth::token::{AccessToken, TokenType};
use crate::oauth::url_policy::check_credentials_url;
use crate::provider::{Provider, TokenAuthority};
use crate::time::clock::{Clock, Jitter, RandomJitter, SystemClock, later};

/// What identifies the tokens of an endpoint, nothing secret: the facts a
/// cache key is made of.
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
    /// What the tokens are bound to, when they are sender-constrained: the
    /// DPoP key's thumbprint (`dpop-jkt:…`). Tokens bound to one key are
    /// never handed to a holder of another.
    pub key_binding: Option<String>,
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
    dpop: Option<Dpop>,
    tls_roots: Option<TlsRoots>,
}

impl TokenEndpointBuilder {
    /// Trusts `roots` too (a private CA) on the token endpoint and
    /// discovery, and on the API calls of an [`Auth`](crate::auth::Auth)
    /// handle over this endpoint. Not used when [`Self::http_client`] gives the
    /// client.
    pub fn tls_roots(mut self, roots: TlsRoots) -> Self {
        self.tls_roots = Some(roots);
        self
    }

    /// DPoP (RFC 9449): every token request carries a proof signed with
    /// `dpop`'s key, and the tokens are bound to it (`token_type` DPoP).
    /// An [`Auth`](crate::auth::Auth) handle over this endpoint sends each
    /// API call with a fresh proof.
    pub fn dpop(mut self, dpop: Dpop) -> Self {
        self.dpop = Some(dpop);
        self
    }

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

    /// A shared HTTP client. With mutual TLS, it must present the client
    /// certificate itself (build it with [`TlsIdentity::apply`]), and a
    /// certificate renewed on disk ([`TlsIdentityFiles`]) is not taken by
    /// it: leave the client to the endpoint for that.
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
            TokenAuthority::Discovery(url) => Target::Discovery(Box::new(
                Discovery::new(url.clone(), self.allow_http)?.strict_issuer(self.strict_issuer)?,
            )),
        };
        let scopes = self
            .scopes
            .unwrap_or_else(|| self.provider.default_scopes(&self.client_id));
        let tls_identity = tls_identity_of(&self.credential);
        let (http, http_recipe) = match self.http {
            Some(http) => (http, None),
            None => {
                let http = token_http_client(
                    tls_identity.as_ref(),
                    self.tls_roots.as_ref(),
                    &self.http_settings,
                )?;
                // Certificate files: the client is made again when they change.
                let recipe = matches!(self.credential, ClientCredential::TlsCertificateFiles(_))
                    .then(|| {
                        Box::new(HttpRecipe {
                            settings: self.http_settings.clone(),
                            roots: self.tls_roots.clone(),
                        })
                    });
                (http, recipe)
            }
        };
        let key_binding = [
            self.dpop
                .as_ref()
                .map(|dpop| format!("dpop-jkt:{}", dpop.key().thumbprint())),
            // The certificate the client starts with: renewed on disk, it
            // does not move the tokens to another key (the epoch evicts
            // those bound to the old one).
            tls_identity
                .as_ref()
                .map(|identity| format!("x5t#S256:{}", identity.thumbprint())),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();
        let identity = EndpointIdentity {
            provider: self.provider.name(),
            authority: authority.url().to_string(),
            client_id: self.client_id,
            scopes,
            resource: self.resource,
            key_binding: (!key_binding.is_empty()).then(|| key_binding.join(" ")),
        };
        Ok(TokenEndpoint {
            scope_format: self.provider.scope_format(),
            provider: self.provider,
            identity,
            credential: self.credential,
            method,
            target,
            http: Mutex::new(PresentingHttp {
                thumbprint: tls_identity.map(|identity| identity.thumbprint().to_owned()),
                client: http,
            }),
            http_recipe,
            retry: self.retry,
            lifetimes: self.lifetimes,
            clock: self.clock,
            jitter: self.jitter,
            held_off_until: Mutex::new(None),
            warned_auth_methods: AtomicBool::new(false),
            dpop: self.dpop,
            tls_roots: self.tls_roots,
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

/// The client certificate `credential` presents (the one read last, for
/// certificate files).
fn tls_identity_of(credential: &ClientCredential) -> Option<TlsIdentity> {
    match credential {
        ClientCredential::TlsCertificate(identity) => Some(identity.clone()),
        ClientCredential::TlsCertificateFiles(files) => Some(files.last()),
        _ => None,
    }
}

/// The token requests' HTTP client: one per client certificate, so that a
/// connection pool never mixes two; it trusts `roots` beside the
/// platform's.
fn token_http_client(
    identity: Option<&TlsIdentity>,
    roots: Option<&TlsRoots>,
    settings: &HttpSettings,
) -> Result<TokenHttpClient, ConfigError> {
    let mut builder = reqwest::Client::builder();
    if let Some(identity) = identity {
        builder = identity.apply(builder);
    }
    if let Some(roots) = roots {
        builder = roots.apply(builder);
    }
    TokenHttpClient::from_builder(builder, settings)
}

/// The token requests' HTTP client and the thumbprint of the certificate it
/// presents.
struct PresentingHttp {
    client: TokenHttpClient,
    thumbprint: Option<String>,
}

/// What the token HTTP client is made of, to make it again for a renewed
/// certificate.
struct HttpRecipe {
    settings: HttpSettings,
    roots: Option<TlsRoots>,
}

/// Boxed discovery: most endpoints have a token URL, and their `Target`
/// is then no larger than one.
enum Target {
    TokenUrl(Url),
    Discovery(Box<Discovery>),
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
    /// Also the client id, scopes and resource the requests send (one copy).
    identity: EndpointIdentity,
    credential: ClientCredential,
    method: ClientAuthMethod,
    target: Target,
    /// Made again when the client certificate files change
    /// ([`TokenEndpoint::http_now`]); `http_recipe` says how (`None` when
    /// the caller gave the client, or the certificate is fixed).
    http: Mutex<PresentingHttp>,
    http_recipe: Option<Box<HttpRecipe>>,
    retry: RetryPolicy,
    lifetimes: TokenLifetimes,
    clock: Arc<dyn Clock>,
    jitter: Arc<dyn Jitter>,
    scope_format: &'static str,
    held_off_until: Mutex<Option<SystemTime>>,
    warned_auth_methods: AtomicBool,
    dpop: Option<Dpop>,
    tls_roots: Option<TlsRoots>,
}

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
            clock: SystemClock::shared(),
            jitter: RandomJitter::shared(),
            dpop: None,
            tls_roots: None,
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
        &self.identity.scopes
    }

    /// The client certificate presented on every connection, with mutual
    /// TLS (a certificate-bound token needs it on the API calls too): with
    /// certificate files, the one read last.
    pub fn tls_identity(&self) -> Option<TlsIdentity> {
        tls_identity_of(&self.credential)
    }

    /// The client certificate files, when the certificate is read from
    /// files (again at every token request).
    pub fn tls_identity_files(&self) -> Option<&TlsIdentityFiles> {
        match &self.credential {
            ClientCredential::TlsCertificateFiles(files) => Some(files),
            _ => None,
        }
    }

    /// The HTTP client for a token request now. With certificate files,
    /// they are read again first, and a changed certificate gets a client
    /// of its own, which the token requests use from then on.
    async fn http_now(&self) -> Result<TokenHttpClient, AuthError> {
        let (Some(files), Some(recipe)) = (self.tls_identity_files(), &self.http_recipe) else {
            return Ok(self.presenting().client.clone());
        };
        let identity = files.current().await?;
        let mut http = self.presenting();
        if http.thumbprint.as_deref() == Some(identity.thumbprint()) {
            return Ok(http.client.clone());
        }
        let client = token_http_client(Some(&identity), recipe.roots.as_ref(), &recipe.settings)?;
        tracing::info!(
            before = http.thumbprint.as_deref().unwrap_or_default(),
            now = identity.thumbprint(),
            "the client certificate changed on disk: the token requests present the new one"
        );
        *http = PresentingHttp {
            client: client.clone(),
            thumbprint: Some(identity.thumbprint().to_owned()),
        };
        Ok(client)
    }

    fn presenting(&self) -> std::sync::MutexGuard<'_, PresentingHttp> {
        self.http.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The CA certificates trusted beside the platform's, when set.
    pub fn tls_roots(&self) -> Option<&TlsRoots> {
        self.tls_roots.as_ref()
    }

    /// The DPoP key and nonces of this endpoint, when it uses DPoP.
    pub fn dpop(&self) -> Option<&Dpop> {
        self.dpop.as_ref()
    }

    /// Requests a new token: retries, backoff and hold-off included.
    pub async fn request_token(&self) -> Result<AccessToken, AuthError> {
        let span = tracing::info_span!(
            "m2m_token_fetch",
            provider = self.identity.provider,
            client_id = %self.identity.client_id,
            scopes = %self.identity.scopes.join(" "),
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
        let http = self.http_now().await?;
        let (token_url, discovered) = match &self.target {
            Target::TokenUrl(url) => (url.clone(), None),
            Target::Discovery(discovery) => {
                let metadata = discovery.metadata(&http, now).await?;
                self.check_advertised_methods(
                    metadata.token_endpoint_auth_methods_supported.as_deref(),
                );
                // RFC 8705 §5: a client presenting its certificate uses
                // the alias when there is one.
                let presents_a_certificate = matches!(
                    self.credential,
                    ClientCredential::TlsCertificate(_) | ClientCredential::TlsCertificateFiles(_)
                );
                let url = match (&metadata.mtls_token_endpoint, presents_a_certificate) {
                    (Some(Ok(alias)), true) => alias.clone(),
                    (Some(Err(problem)), true) => {
                        return Err(Failed::Error(AuthError::Discovery(Box::new(
                            DiscoveryError {
                                url: discovery.url().to_string(),
                                status: None,
                                retry_after: None,
                                problem: problem.clone(),
                                excerpt: None,
                            },
                        ))));
                    }
                    _ => metadata.token_endpoint.clone(),
                };
                (url, Some((discovery, metadata)))
            }
        };
        match self.request_at(&http, &token_url, now).await {
            Err(error) if says_moved(&error) => match discovered {
                Some((discovery, metadata)) if discovery.forget(&metadata).await => {
                    Err(Failed::Moved(error))
                }
                _ => Err(Failed::Error(error)),
            },
            result => Ok(result?),
        }
    }

    async fn request_at(
        &self,
        http: &TokenHttpClient,
        token_url: &Url,
        now: SystemTime,
    ) -> Result<AccessToken, AuthError> {
        let mut nonce_retry_left = self.dpop.is_some();
        loop {
            let fresh_nonce = AtomicBool::new(false);
            let result = self
                .credential
                .send_with(
                    &self.identity.client_id,
                    self.method,
                    token_url.as_str(),
                    now,
                    |auth| self.send(http, token_url, now, auth, &fresh_nonce),
                )
                .await;
            let Some(dpop) = &self.dpop else {
                return self.check_token_type(result?);
            };
            match result {
                Ok(token) => return self.check_token_type(token),
                // RFC 9449 §8: the server wants its nonce in the proof; a
                // new one is kept for the origin, and the request is made
                // once more with a fresh proof carrying it (and fresh
                // credentials: a new client assertion, the files read again).
                Err(error)
                    if nonce_retry_left
                        && fresh_nonce.load(Ordering::Relaxed)
                        && error
                            .oauth_error()
                            .is_some_and(|oauth| oauth.error == USE_DPOP_NONCE) =>
                {
                    nonce_retry_left = false;
                    tracing::debug!(
                        key = dpop.key().thumbprint(),
                        "the token endpoint asked for a DPoP nonce: sending once more with it"
                    );
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// A token of the type this endpoint may use: DPoP only with a DPoP key,
    /// Bearer with one only when allowed.
    fn check_token_type(&self, token: AccessToken) -> Result<AccessToken, AuthError> {
        match (token.kind(), &self.dpop) {
            (TokenType::DPoP, None) => Err(AuthError::UnsupportedTokenType {
                token_type: token.token_type().to_owned(),
            }),
            (TokenType::Bearer, Some(dpop)) if !dpop.allows_bearer() => {
                Err(AuthError::NotSenderConstrained {
                    token_type: token.token_type().to_owned(),
                })
            }
            (TokenType::Bearer, Some(_)) => {
                tracing::warn!(
                    "the token endpoint answered a DPoP request with a Bearer token: using it as Bearer (dpop_allow_bearer)"
                );
                Ok(token)
            }
            _ => Ok(token),
        }
    }

    /// One request with the credentials `auth` (and a DPoP proof with a
    /// DPoP key); `fresh_nonce` tells whether its answer brought a DPoP
    /// nonce other than the one its proof carried (errors only; a nonce on
    /// a success is kept all the same). Another request may have kept the
    /// same nonce first: what counts is what this proof lacked.
    async fn send(
        &self,
        http: &TokenHttpClient,
        token_url: &Url,
        now: SystemTime,
        mut auth: RequestAuth,
        fresh_nonce: &AtomicBool,
    ) -> Result<AccessToken, AuthError> {
        let (proof, sent_nonce) = match &self.dpop {
            Some(dpop) => {
                let nonce = dpop.nonce_for(token_url);
                let proof = dpop
                    .key()
                    .proof("POST", token_url, None, nonce.as_deref(), now)?;
                auth.scrubber.add(proof.to_str().unwrap_or_default());
                (Some(proof), nonce)
            }
            None => (None, None),
        };
        let (result, recorded) = exchange(
            http,
            &self.identity.client_id,
            token_url,
            &auth,
            &self.identity.scopes,
            self.identity.resource.as_deref(),
            proof,
        )
        .await;
        let fresh = match (&self.dpop, &recorded) {
            (Some(dpop), Some(recorded)) => dpop
                .note_nonce(token_url, &recorded.headers)
                .is_some_and(|nonce| sent_nonce.as_deref() != Some(nonce)),
            _ => false,
        };
        fresh_nonce.store(fresh, Ordering::Relaxed);
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

    fn credential_epoch(&self) -> u64 {
        self.credential.epoch()
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
