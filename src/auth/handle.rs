//! [`Auth`], the handle every generated client carries.

use std::fmt;
use std::sync::Arc;

use http::HeaderValue;
use reqwest::{Request, Response};

use super::api::{ApiSettings, FollowingClient};
use super::recent_failures::RecentFailures;
use super::renewal::{Renewals, Resend, Sent};
use crate::cache::token_cache::TokenCache;
use crate::cache::token_source::TokenSource;
use crate::endpoint::token_endpoint::TokenEndpoint;
use crate::metrics::MetricLabels;
use crate::oauth::dpop::Dpop;
use crate::oauth::error::AuthError;
use crate::oauth::token::AccessToken;
use crate::store::key::CacheKey;
use crate::time::clock::{Clock, SystemClock};

/// The auth handle: cheap to clone, shared by every generated client.
///
/// Its tokens are kept in a [`TokenCache`] that the caller passes in: make
/// one per process (or per configuration) and give it to every handle, and
/// every client shares the tokens of an endpoint, however often it is
/// built. A cache of the handle's own is only the explicit choice of
/// passing a new one.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use m2m::auth::{Auth, ClientCredential, TokenCache, TokenEndpoint};
/// use m2m::provider::Provider;
///
/// let endpoint = TokenEndpoint::builder(
///     Provider::cenda("permissions-tenant-id", "gateway-client-id"),
///     "client-id",
///     ClientCredential::secret(std::env::var("CENDA_CLIENT_SECRET")?),
/// )
/// .build()?;
/// let cache = TokenCache::in_memory(); // one for the whole process
/// let auth = Auth::new(endpoint, &cache);
/// let cenda = m2m::apis::cenda_configuration::Client::new("https://api.cenda.app", auth);
/// let page = cenda.list_organisations().send().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Auth {
    source: Arc<dyn TokenSource>,
    api: ApiSettings,
    renewals: Arc<Renewals>,
    clock: Arc<dyn Clock>,
    dpop: Option<Dpop>,
    /// See [`Auth::api_client_now`].
    following: Option<Arc<FollowingClient>>,
}

impl Auth {
    /// Tokens from `endpoint`, kept in `cache` under the endpoint's key
    /// ([`CacheKey::for_endpoint`]: provider, token endpoint, client id,
    /// scopes, resource). Every handle made with the same cache for the
    /// same key shares its tokens and its one fetch at a time.
    /// With DPoP on the endpoint, API calls carry a fresh proof each; with
    /// a client certificate, API calls present it too.
    ///
    /// Its metrics (feature `metrics`) name the client after the host of
    /// the token URL; [`Auth::named`] gives it a name.
    pub fn new(endpoint: TokenEndpoint, cache: &TokenCache) -> Self {
        Self::over_endpoint(endpoint, cache, None)
    }

    /// [`Auth::new`], its metrics labelled `client=name` (feature
    /// `metrics`; [`Config::auth`](crate::config::Config::auth) names each
    /// handle after its client). A fixed name per client: never a secret.
    pub fn named(name: &str, endpoint: TokenEndpoint, cache: &TokenCache) -> Self {
        Self::over_endpoint(endpoint, cache, Some(name))
    }

    fn over_endpoint(endpoint: TokenEndpoint, cache: &TokenCache, name: Option<&str>) -> Self {
        let key = CacheKey::for_endpoint(endpoint.identity());
        let dpop = endpoint.dpop().cloned();
        let api = ApiSettings::default().with_tls_of(&endpoint);
        let source = cache.source(key, Arc::new(endpoint));
        let mut auth = match name {
            Some(name) => Self::from_source(source.with_name(name)),
            None => Self::from_source(source),
        };
        auth.api = api;
        auth.follow_certificate_files();
        match dpop {
            Some(dpop) => auth.with_dpop(dpop),
            None => auth,
        }
    }

    /// A handle over any token source. Its metrics carry the source's
    /// [`TokenSource::metric_labels`].
    pub fn from_source(source: impl TokenSource) -> Self {
        let labels = source.metric_labels().unwrap_or_else(MetricLabels::custom);
        Self {
            source: Arc::new(source),
            api: ApiSettings::default(),
            renewals: Arc::new(Renewals::new(&labels)),
            clock: SystemClock::shared(),
            dpop: None,
            following: None,
        }
    }

    /// With the DPoP key (and nonces) that the source's DPoP tokens are
    /// bound to: every API call with such a token gets a fresh proof.
    /// [`Auth::new`] takes it from the endpoint.
    pub fn with_dpop(mut self, dpop: Dpop) -> Self {
        self.dpop = Some(dpop);
        self
    }

    /// Sets `Authorization` on a request of your own, and for a DPoP token
    /// its `DPoP` proof (made for this request's method and URL: build the
    /// request first, and send it once; a resent request needs a new proof).
    pub async fn authorize(&self, request: &mut Request) -> Result<(), AuthError> {
        self.api.refuse_insecure(request.url())?;
        let token = self.token().await?;
        self.attach(request, &token)
    }

    /// Puts `token` on `request`: `Authorization`, and a fresh proof for a
    /// DPoP token.
    pub(crate) fn attach(
        &self,
        request: &mut Request,
        token: &AccessToken,
    ) -> Result<(), AuthError> {
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, token.authorization().clone());
        self.prove(request)
    }

    /// A fresh DPoP proof on `request` when it carries a DPoP token.
    pub(crate) fn prove(&self, request: &mut Request) -> Result<(), AuthError> {
        super::dpop_calls::prove(self.dpop.as_ref(), request, self.clock.now())
    }

    /// A copy of `request` to send again when the API asks for a DPoP nonce
    /// (only for a request that carries a proof: no cost otherwise).
    pub(crate) fn nonce_retry_copy(&self, request: &Request) -> Option<Request> {
        (self.dpop.is_some() && super::dpop_calls::has_proof(request))
            .then(|| request.try_clone())
            .flatten()
    }

    /// After `response` to a request with a proof, keeps the API's DPoP
    /// nonce; `copy` with a new proof when the API asked for that nonce.
    pub(crate) fn nonce_retry(
        &self,
        response: &Response,
        copy: Option<Request>,
    ) -> Option<Request> {
        let dpop = self.dpop.as_ref()?;
        let asked = super::dpop_calls::wants_nonce_retry(Some(dpop), copy.is_some(), response);
        let mut copy = copy.filter(|_| asked)?;
        self.prove(&mut copy).ok()?;
        tracing::debug!("the API asked for a DPoP nonce: sending once more with it");
        Some(copy)
    }

    /// With other settings for the API calls this handle guards (the
    /// generated clients and [`AuthMiddleware`](crate::auth::AuthMiddleware)): by default the token goes
    /// only over https or to loopback.
    /// The endpoint's client certificate and CA roots stay unless `api`
    /// names its own.
    pub fn with_api_settings(mut self, mut api: ApiSettings) -> Self {
        if api.tls_identity.is_none() && api.tls_identity_files.is_none() {
            api.tls_identity = self.api.tls_identity.take();
            api.tls_identity_files = self.api.tls_identity_files.take();
        }
        if api.tls_roots.is_none() {
            api.tls_roots = self.api.tls_roots.take();
        }
        self.api = api;
        self.follow_certificate_files();
        self
    }

    /// A new [`FollowingClient`] when the API settings have certificate
    /// files, none otherwise.
    fn follow_certificate_files(&mut self) {
        self.following = self.api.tls_identity_files.is_some().then(Arc::default);
    }

    /// With client certificate files, the HTTP client for the certificate
    /// the token endpoint read last (made again when it changes), which
    /// the generated clients' calls go through instead of their own.
    pub(crate) fn api_client_now(&self) -> Option<reqwest::Client> {
        self.api.client_for_now(self.following.as_deref()?)
    }

    /// The settings of the API calls this handle guards.
    pub fn api_settings(&self) -> &ApiSettings {
        &self.api
    }

    /// With another clock: the one that times how long renewals stay
    /// stopped for an API that keeps rejecting fresh tokens.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// A token valid now, from the cache when it has one. A warm call (the
    /// cached token is not due for a refresh) takes no lock and allocates
    /// nothing.
    pub async fn token(&self) -> Result<AccessToken, AuthError> {
        if let Some(token) = self.source.cached() {
            return Ok(token);
        }
        self.source.token().await
    }

    /// The `Authorization` header value for a request of your own
    /// (`{token_type} {access_token}`, marked sensitive).
    pub async fn authorization(&self) -> Result<HeaderValue, AuthError> {
        Ok(self.token().await?.authorization().clone())
    }

    /// Renews after the API rejected the `Authorization` value `rejected`:
    /// the cached token is evicted only if it is still that one (another
    /// caller may have renewed it already), then a valid token is returned.
    pub async fn renew(&self, rejected: &HeaderValue) -> Result<AccessToken, AuthError> {
        self.source.renew(rejected).await
    }

    /// The typed error behind a generated-client call that failed because
    /// no token could be had or sent, or that m2m stopped (a limit of the
    /// [`ApiSettings`]). The same as [`crate::auth_error`], which needs no
    /// handle: prefer that one.
    ///
    /// Such calls fail with `progenitor_client::Error::Custom(message)`,
    /// whose message starts with [`crate::apis::AUTH_ERROR_PREFIX`] or
    /// [`crate::apis::CALL_ERROR_PREFIX`] and
    /// carries a reference to the process-wide [`RecentFailures`] (the last
    /// [`RecentFailures::CAPACITY`] distinct failures are kept; calls that
    /// failed with the same error, such as every caller waiting for one
    /// failed fetch, share one entry). `None` for any other error.
    ///
    /// ```no_run
    /// # async fn example(cenda: m2m::apis::cenda_configuration::Client) {
    /// use progenitor_client::ClientInfo;
    /// if let Err(error) = cenda.list_organisations().send().await {
    ///     if let Some(auth_error) = cenda.inner().error_of(&error) {
    ///         eprintln!("HTTP status from the token endpoint: {:?}", auth_error.status());
    ///     }
    /// }
    /// # }
    /// ```
    pub fn error_of<E>(&self, error: &progenitor_client::Error<E>) -> Option<AuthError> {
        match error {
            progenitor_client::Error::Custom(message) => RecentFailures::global().find(message),
            _ => None,
        }
    }

    /// Notes what `request` carries as it is sent (see
    /// [`Renewals::sending`]).
    pub(crate) fn sending(&self, request: &Request) -> Sent {
        self.renewals.sending(request)
    }

    /// Renews a token the API rejected and says whether to send the
    /// request once more (see [`Renewals::resend_after`]).
    pub(crate) async fn resend_after(
        &self,
        response: &Response,
        sent: Sent,
        retry: Option<Request>,
        call: &str,
    ) -> Resend {
        let (source, clock) = (self.source.as_ref(), self.clock.as_ref());
        match self
            .renewals
            .resend_after(source, clock, response, sent, retry, call)
            .await
        {
            // The renewed token needs a proof of its own (a new `ath`).
            Resend::Once(mut retry) => match self.prove(&mut retry) {
                Ok(()) => Resend::Once(retry),
                Err(error) => Resend::Stop(error),
            },
            other => other,
        }
    }

    /// Notes whether `response` accepted its token (see
    /// [`Renewals::note_answer`]).
    pub(crate) fn note_answer(&self, response: &Response) {
        self.renewals.note_answer(response);
        self.note_nonce(response);
    }

    /// Keeps the API's `DPoP-Nonce` from `response`: a server may give the
    /// next nonce with any answer (RFC 9449 §8.2), a success included.
    pub(crate) fn note_nonce(&self, response: &Response) {
        if let Some(dpop) = &self.dpop {
            dpop.note_nonce(response.url(), response.headers());
        }
    }

    /// Records `error` and returns the reference to put in a message.
    pub(crate) fn record_failure(&self, error: &AuthError) -> String {
        RecentFailures::global().record(error)
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}
