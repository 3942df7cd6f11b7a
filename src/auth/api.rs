//! What m2m enforces on every API call it attaches a token to, in the
//! generated clients' hooks and in [`AuthMiddleware`](super::AuthMiddleware)
//! alike: the token goes only where credentials may go (https, loopback, or
//! the explicit `allow_http`), redirects are followed only within the origin
//! of the request, a call has a time limit, and an answer a size limit.

use std::sync::Mutex;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::{Response, ResponseBuilderExt};
use url::Url;

use crate::endpoint::token_endpoint::TokenEndpoint;
use crate::oauth::error::{ApiCallError, ApiCallErrorKind, AuthError, ConfigError};
use crate::oauth::mtls::{TlsIdentity, TlsIdentityFiles};
use crate::oauth::tls_roots::TlsRoots;
use crate::oauth::url_policy::check_credentials_url;

/// The settings of the API calls an [`Auth`](super::Auth) handle guards.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiSettings {
    /// Time for a whole call: connect, send, and read the whole answer
    /// (30 s). A resent call (after a renewed token) has its own.
    pub timeout: Duration,
    /// Largest answer read (16 MiB): an answer whose `Content-Length` is
    /// larger is not read at all, and reading any other stops there.
    pub max_response_bytes: u64,
    /// Send the token over plain http to a host that is not loopback
    /// (off: RFC 6750 §5.3, a bearer token goes over TLS only).
    pub allow_http: bool,
    /// The client certificate the API calls present (mutual TLS, RFC 8705):
    /// a certificate-bound token is accepted only with it. [`Auth::new`](crate::auth::Auth::new)
    /// sets the token endpoint's.
    pub tls_identity: Option<TlsIdentity>,
    /// Client certificate files (wins over `tls_identity`): the generated
    /// clients' calls present the certificate the token endpoint read last,
    /// with an HTTP client made again when it changes. [`Auth::new`](crate::auth::Auth::new)
    /// sets the token endpoint's. (A client of your own, under
    /// [`AuthMiddleware`](crate::auth::AuthMiddleware), keeps the
    /// certificate it was built with.)
    pub tls_identity_files: Option<TlsIdentityFiles>,
    /// CA certificates trusted beside the platform's (a private CA);
    /// [`Auth::new`](crate::auth::Auth::new) sets the token endpoint's.
    pub tls_roots: Option<TlsRoots>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_response_bytes: 16 * 1024 * 1024,
            allow_http: false,
            tls_identity: None,
            tls_identity_files: None,
            tls_roots: None,
        }
    }
}

/// The API HTTP client of a handle whose client certificate comes from
/// files, with the thumbprint of the certificate it presents: made for the
/// certificate read last, and again when that changes.
#[derive(Default)]
pub(crate) struct FollowingClient(Mutex<Option<(String, reqwest::Client)>>);

/// An API call that m2m stopped: the answer comes back without its body,
/// marked with the error, and the hooks or the middleware turn it into that
/// error (`exec` cannot return one of its own).
#[derive(Clone)]
struct Stopped(AuthError);

impl ApiSettings {
    /// Redirects followed within one origin, at most (reqwest's default).
    const MAX_REDIRECTS: usize = 10;

    /// With another time limit for a whole call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// With another size limit for an answer.
    pub fn with_max_response_bytes(mut self, max_response_bytes: u64) -> Self {
        self.max_response_bytes = max_response_bytes;
        self
    }

    /// With `allow_http` set.
    pub fn with_allow_http(mut self, allow_http: bool) -> Self {
        self.allow_http = allow_http;
        self
    }

    /// With the client certificate the API calls present.
    pub fn with_tls_identity(mut self, identity: Option<TlsIdentity>) -> Self {
        self.tls_identity = identity;
        self
    }

    /// With CA certificates trusted beside the platform's.
    pub fn with_tls_roots(mut self, roots: Option<TlsRoots>) -> Self {
        self.tls_roots = roots;
        self
    }

    /// With the client certificate and the CA roots of `endpoint`, where
    /// these settings name none: the API calls then present the certificate
    /// its tokens are bound to, and trust the servers its tokens come from.
    pub fn with_tls_of(mut self, endpoint: &TokenEndpoint) -> Self {
        if self.tls_identity.is_none() && self.tls_identity_files.is_none() {
            self.tls_identity = endpoint.tls_identity();
            self.tls_identity_files = endpoint.tls_identity_files().cloned();
        }
        if self.tls_roots.is_none() {
            self.tls_roots = endpoint.tls_roots().cloned();
        }
        self
    }

    /// Whether the token may be sent to `url`: the rule for token URLs
    /// ([`check_credentials_url`]) with this handle's `allow_http`. The error
    /// names the URL without its query.
    pub fn check_url(&self, url: &Url) -> Result<(), ConfigError> {
        // The verdict does not depend on the query: a URL that passes is
        // not copied (every API call passes here).
        if check_credentials_url(url, self.allow_http).is_ok() {
            return Ok(());
        }
        let mut shown = url.clone();
        shown.set_query(None);
        shown.set_fragment(None);
        check_credentials_url(&shown, self.allow_http)
    }

    /// A reqwest client for API calls, with the timeout, that follows a
    /// redirect only within the origin (scheme, host and port) of the
    /// request: never to another host, never from https to http, so the
    /// token cannot follow it elsewhere. A redirect elsewhere comes back as
    /// the 3xx answer.
    pub fn http_client(&self) -> Result<reqwest::Client, ConfigError> {
        self.http_client_from(reqwest::Client::builder())
    }

    /// [`ApiSettings::http_client`] from your own builder (proxy, root
    /// certificates, …); its redirect policy is replaced, and the client
    /// certificate ([`ApiSettings::tls_identity`]) and the roots
    /// ([`ApiSettings::tls_roots`]) added.
    pub fn http_client_from(
        &self,
        builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::Client, ConfigError> {
        let identity = match &self.tls_identity_files {
            Some(files) => Some(files.last()),
            None => self.tls_identity.clone(),
        };
        let builder = match identity {
            Some(identity) => identity.apply(builder),
            None => builder,
        };
        let builder = match &self.tls_roots {
            Some(roots) => roots.apply(builder),
            None => builder,
        };
        builder
            .timeout(self.timeout)
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

    /// With certificate files, the HTTP client for the certificate read
    /// last: the one in `following` while that is still it, else a new one
    /// kept there. `None` without certificate files, or (logged) when no
    /// client can be built, and the caller's client is used.
    pub(crate) fn client_for_now(&self, following: &FollowingClient) -> Option<reqwest::Client> {
        let identity = self.tls_identity_files.as_ref()?.last();
        let mut kept = following.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((thumbprint, client)) = kept.as_ref()
            && thumbprint == identity.thumbprint()
        {
            return Some(client.clone());
        }
        let thumbprint = identity.thumbprint().to_owned();
        let fixed = Self {
            tls_identity: Some(identity),
            tls_identity_files: None,
            ..self.clone()
        };
        match fixed.http_client() {
            Ok(client) => {
                *kept = Some((thumbprint, client.clone()));
                Some(client)
            }
            Err(error) => {
                tracing::error!(%error, "no API HTTP client for the client certificate read last");
                None
            }
        }
    }

    /// [`ApiSettings::check_url`] as the error of a call.
    pub(crate) fn refuse_insecure(&self, url: &Url) -> Result<(), AuthError> {
        self.check_url(url).map_err(AuthError::Config)
    }

    /// Gives `request` the timeout, or keeps its own when that is shorter.
    /// Whether the handle's timeout is the one that applies. (The generated
    /// clients' hook keeps the time itself; the middleware sets it here.)
    #[cfg(feature = "middleware")]
    pub(crate) fn limit_time(&self, request: &mut reqwest::Request) -> bool {
        let timeout = request.timeout_mut();
        let ours = timeout.is_none_or(|own| own >= self.timeout);
        if ours {
            *timeout = Some(self.timeout);
        }
        ours
    }

    /// The error for `error` when it is this timeout running out (a
    /// connection that could not be made in the client's own connect
    /// timeout is not).
    pub(crate) fn timed_out(&self, error: &reqwest::Error) -> Option<AuthError> {
        if !error.is_timeout() || error.is_connect() {
            return None;
        }
        let url = error.url()?;
        Some(ApiCallError::stopped(
            url,
            ApiCallErrorKind::TimedOut {
                limit: self.timeout,
            },
        ))
    }

    /// When a request sent now runs out of time.
    pub(crate) fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.timeout
    }

    /// The answer to a call whose time ran out before it came (or was
    /// read): none, marked with the error ([`stopped_by`]) naming `url`.
    pub(crate) fn time_ran_out(&self, url: Option<Url>) -> Response {
        let url = url.unwrap_or_else(|| Url::parse("http://no.url.provided.local").expect("a URL"));
        let error = ApiCallError::stopped(
            &url,
            ApiCallErrorKind::TimedOut {
                limit: self.timeout,
            },
        );
        tracing::debug!(%error, "API request failed");
        let answer = http::Response::builder()
            .status(http::StatusCode::GATEWAY_TIMEOUT)
            .url(url)
            .body(Vec::new())
            .expect("a valid answer");
        let mut stopped = Response::from(answer);
        stopped.extensions_mut().insert(Stopped(error));
        stopped
    }

    /// Reads the whole answer, at most `max_response_bytes` of it (none when
    /// its `Content-Length` says more), within the request's own timeout and
    /// by `deadline` if given, and returns it with the body read. An answer
    /// over the limit, or not read by `deadline`, comes back without its
    /// body, marked with the error ([`stopped_by`]).
    pub(crate) async fn read_whole(
        &self,
        mut response: Response,
        deadline: Option<tokio::time::Instant>,
    ) -> reqwest::Result<Response> {
        let too_large = |response: &Response, content_length| {
            ApiCallError::stopped(
                response.url(),
                ApiCallErrorKind::TooLarge {
                    limit: self.max_response_bytes,
                    content_length,
                },
            )
        };
        if let Some(length) = response
            .content_length()
            .filter(|length| *length > self.max_response_bytes)
        {
            let error = too_large(&response, Some(length));
            return Ok(stop(response, error));
        }
        // An answer in one chunk (most are) is kept as it came, uncopied.
        let mut first = Bytes::new();
        let mut joined: Option<BytesMut> = None;
        loop {
            let chunk = match deadline {
                None => response.chunk().await?,
                Some(deadline) => match tokio::time::timeout_at(deadline, response.chunk()).await {
                    Ok(chunk) => chunk?,
                    Err(_) => {
                        let error = ApiCallError::stopped(
                            response.url(),
                            ApiCallErrorKind::TimedOut {
                                limit: self.timeout,
                            },
                        );
                        return Ok(stop(response, error));
                    }
                },
            };
            let Some(chunk) = chunk else { break };
            let read = joined.as_ref().map_or(first.len(), BytesMut::len);
            if (read + chunk.len()) as u64 > self.max_response_bytes {
                let error = too_large(&response, None);
                return Ok(stop(response, error));
            }
            match joined.as_mut() {
                Some(joined) => joined.extend_from_slice(&chunk),
                None if first.is_empty() => first = chunk,
                None => {
                    let mut both = BytesMut::with_capacity(first.len() + chunk.len());
                    both.extend_from_slice(&first);
                    both.extend_from_slice(&chunk);
                    joined = Some(both);
                }
            }
        }
        let body = joined.map_or(first, BytesMut::freeze);
        Ok(with_body(response, reqwest::Body::from(body)))
    }
}

/// `response` without its body, marked with `error` (see [`stopped_by`]).
pub(crate) fn stop(response: Response, error: AuthError) -> Response {
    let mut stopped = with_body(response, reqwest::Body::from(Vec::new()));
    stopped.extensions_mut().insert(Stopped(error));
    stopped
}

/// The error that stopped the call whose answer is `response`, if any.
pub(crate) fn stopped_by(response: &Response) -> Option<&AuthError> {
    response
        .extensions()
        .get::<Stopped>()
        .map(|Stopped(error)| error)
}

/// `response`'s status, version, headers, URL and extensions with `body`.
fn with_body(mut response: Response, body: reqwest::Body) -> Response {
    let mut rebuilt = http::Response::new(body);
    *rebuilt.status_mut() = response.status();
    *rebuilt.version_mut() = response.version();
    *rebuilt.headers_mut() = std::mem::take(response.headers_mut());
    *rebuilt.extensions_mut() = std::mem::take(response.extensions_mut());
    // reqwest keeps the URL in an extension only its response builder sets.
    if let Ok(url) = http::Response::builder()
        .url(response.url().clone())
        .body(())
    {
        rebuilt
            .extensions_mut()
            .extend(url.into_parts().0.extensions);
    }
    Response::from(rebuilt)
}
