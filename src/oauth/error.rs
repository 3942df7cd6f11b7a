//! Errors of the token layer: one type, [`AuthError`], that says what went
//! wrong and what to check, and never contains a secret.
//!
//! Everything that comes from a server (an `error_description`, a body
//! excerpt) is scrubbed of the client secret, the client assertion and the
//! Basic credentials before it is stored here, and bodies of successful
//! responses are never quoted when they mention an access token.

use std::fmt;
use std::time::Duration;

use http::StatusCode;

/// Why no token could be had.
///
/// `Clone` so that a cache can hand the same failure to every waiter.
/// Display says what to check (the client secret's value, the scope format
/// of the provider, how long to wait after a 429).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The token endpoint refused: an HTTP error status, or an OAuth error
    /// body (even one sent with status 200).
    #[error("{0}")]
    Rejected(Box<EndpointError>),
    /// The token endpoint answered with success, but not with a usable token.
    #[error("{0}")]
    InvalidResponse(Box<InvalidResponse>),
    /// No complete answer: connection, timeout, TLS, a body over the limit.
    #[error("{0}")]
    Transport(Box<TransportError>),
    /// An earlier request was throttled (HTTP 429) and its `Retry-After` has
    /// not passed yet: no request was sent.
    #[error(
        "token requests are held off for {}s more: the token endpoint throttled this client (HTTP 429) and asked to retry later",
        retry_after.as_secs().max(1)
    )]
    HeldOff {
        /// How long until a request may be sent again.
        retry_after: Duration,
    },
    /// The configuration cannot work; nothing was sent.
    #[error("{0}")]
    Config(ConfigError),
    /// A credential read at the token request could not be used: a client
    /// assertion file that is missing, empty or expired, a secret or key
    /// file that became unreadable. Names the file, never its content;
    /// nothing was sent.
    #[error("{0}")]
    Credential(Box<CredentialError>),
    /// The OpenID Connect discovery document could not be used.
    #[error("{0}")]
    Discovery(Box<DiscoveryError>),
    /// The token endpoint returned a token that cannot be sent in a header.
    #[error(transparent)]
    InvalidToken(#[from] InvalidTokenValue),
    /// The token fetch this call waited for ended without a result.
    #[error(transparent)]
    Unfinished(UnfinishedFetch),
    /// No token within the token cache's load timeout
    /// ([`CacheSettings::load_timeout`](crate::auth::CacheSettings)): the
    /// fetch, with its retries and their waits, took longer and was
    /// abandoned. Every call waiting for it gets this error.
    #[error(
        "no token within the load timeout of {budget:?}: the token fetch (its retries and waits included) was abandoned"
    )]
    LoadTimeout {
        /// The budget that was spent.
        budget: Duration,
    },
    /// Another process of the fleet held the refresh lock for this token,
    /// fetched and failed, and shared its failure through the token store:
    /// this process fails with it at once instead of asking the token
    /// endpoint again.
    #[error("{0}")]
    Shared(Box<SharedFailure>),
    /// The token endpoint issued a token of a type m2m does not send (see
    /// [`TokenType`](crate::auth::TokenType)); it was not used.
    #[error(
        "the token endpoint issued a token of type {token_type:?}, which m2m does not use (RFC 6749 §7.1: a client must not use a token type it does not understand); only Bearer tokens are sent, and DPoP tokens when the client has a DPoP key (dpop = true)"
    )]
    UnsupportedTokenType {
        /// The `token_type` as the server sent it (shortened; scrubbed of
        /// secrets).
        token_type: String,
    },
    /// An API call this handle guarded failed on m2m's side: a limit of its
    /// [`ApiSettings`](crate::auth::ApiSettings) was hit.
    #[error("{0}")]
    ApiCall(Box<ApiCallError>),
    /// A token request with a DPoP proof was answered with a token that is
    /// not bound to the key (`token_type` Bearer): the server does not do
    /// DPoP for this client. It was not used; set `dpop_allow_bearer` (or
    /// [`Dpop::allow_bearer`](crate::auth::Dpop::allow_bearer)) to accept it.
    #[error(
        "the token endpoint answered a DPoP token request with a token of type {token_type:?}, not bound to the DPoP key; it was not used (set dpop_allow_bearer = true to accept it as a Bearer token)"
    )]
    NotSenderConstrained {
        /// The `token_type` the server sent.
        token_type: String,
    },
}

impl AuthError {
    /// The HTTP status of the answer behind this error, when there was one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Rejected(e) => Some(e.status),
            Self::InvalidResponse(e) => Some(e.status),
            Self::Transport(e) => e.status,
            Self::Discovery(e) => e.status,
            Self::Shared(e) => e.status,
            _ => None,
        }
    }

    /// How long the server asked to wait (`Retry-After`), or how long
    /// requests are still held off.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Rejected(e) => e.retry_after,
            Self::Discovery(e) => e.retry_after,
            Self::HeldOff { retry_after } => Some(*retry_after),
            Self::Shared(e) => e.retry_after,
            _ => None,
        }
    }

    /// Whether trying again (later) may succeed: connection problems,
    /// timeouts, 5xx, 408, 429, `temporarily_unavailable`. Wrong credentials,
    /// a wrong scope and configuration errors are not retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Rejected(e) => {
                is_retryable_status(e.status)
                    || e.oauth.as_ref().is_some_and(|o| {
                        matches!(o.error.as_str(), "temporarily_unavailable" | "server_error")
                    })
            }
            Self::Transport(e) => !matches!(e.kind, TransportErrorKind::BodyTooLarge { .. }),
            Self::Discovery(e) => e.status.is_some_and(is_retryable_status),
            Self::HeldOff { .. } | Self::LoadTimeout { .. } => true,
            Self::Shared(e) => e.retryable,
            _ => false,
        }
    }

    /// The RFC 6749 §5.2 error the server sent, when it sent one.
    pub fn oauth_error(&self) -> Option<&OAuthError> {
        match self {
            Self::Rejected(e) => e.oauth.as_ref(),
            Self::Shared(e) => e.oauth.as_ref(),
            _ => None,
        }
    }
}

/// Why the token fetch a call waited for ended without a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnfinishedFetch {
    /// The fetch could not start: the Tokio runtime it was handed to is
    /// shutting down (it drops new tasks unrun).
    #[error("the token fetch could not start: the Tokio runtime is shutting down")]
    RuntimeShutDown,
    /// The fetcher panicked (its panic was printed where it happened). The
    /// key backs off as after any failed fetch.
    #[error("the token fetcher panicked (its message was printed where it happened)")]
    FetcherPanicked,
    /// The fetches this call waited for were dropped unfinished `times`
    /// times in a row: the calls running them went away, or their Tokio
    /// runtime shut down.
    #[error(
        "the token fetch this call waited for was dropped unfinished {times} times in a row (the calls running it went away, or its Tokio runtime shut down)"
    )]
    Abandoned {
        /// How many fetches in a row were dropped.
        times: u32,
    },
}

/// A failed token fetch as the process that held the refresh lock shares
/// it, through the token store, with the processes waiting on that lock
/// (and those that come for it shortly after). Built from the holder's
/// [`AuthError`], whose text never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedFailure {
    /// The holder's error, as it displayed it.
    pub message: String,
    /// The HTTP status behind it, when there was one.
    pub status: Option<StatusCode>,
    /// The OAuth error the token endpoint sent, when it sent one.
    pub oauth: Option<OAuthError>,
    /// The `Retry-After` the holder was given.
    pub retry_after: Option<Duration>,
    /// Whether trying again later may succeed.
    pub retryable: bool,
}

impl SharedFailure {
    /// The failure `error` of this process, to share.
    pub fn of(error: &AuthError) -> Self {
        Self {
            message: error.to_string(),
            status: error.status(),
            oauth: error.oauth_error().cloned(),
            retry_after: error.retry_after(),
            retryable: error.is_retryable(),
        }
    }

    /// A failure read back from a store: its message and whether it is
    /// retryable; [`SharedFailure::with_details`] adds the rest.
    pub fn new(message: impl Into<String>, retryable: bool) -> Self {
        Self {
            message: message.into(),
            status: None,
            oauth: None,
            retry_after: None,
            retryable,
        }
    }

    /// With the status, the OAuth error and the `Retry-After` behind it.
    pub fn with_details(
        mut self,
        status: Option<StatusCode>,
        oauth: Option<OAuthError>,
        retry_after: Option<Duration>,
    ) -> Self {
        self.status = status;
        self.oauth = oauth;
        self.retry_after = retry_after;
        self
    }
}

impl fmt::Display for SharedFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "another process fetching this token failed moments ago (shared through the token store): {}",
            self.message
        )
    }
}

pub(crate) fn is_retryable_status(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
}

/// An RFC 6749 §5.2 error response, with the Microsoft Entra extensions.
/// (Serialisable, so a fleet can share it: [`SharedFailure`].)
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct OAuthError {
    /// `error`: `invalid_client`, `invalid_scope`, `invalid_request`, …
    pub error: String,
    /// `error_description` (scrubbed of secrets, at most ~500 characters).
    pub error_description: Option<String>,
    /// `error_uri`.
    pub error_uri: Option<String>,
    /// Entra's `error_codes` (`7000215` is "secret ID sent instead of value").
    pub error_codes: Vec<i64>,
    /// Entra's `trace_id`.
    pub trace_id: Option<String>,
    /// Entra's `correlation_id`.
    pub correlation_id: Option<String>,
    /// Entra's `timestamp`.
    pub timestamp: Option<String>,
}

impl OAuthError {
    /// Whether the server reported the Entra code `AADSTS{code}`, in
    /// `error_codes` or at the start of the description.
    pub fn has_entra_code(&self, code: i64) -> bool {
        self.error_codes.contains(&code)
            || self
                .error_description
                .as_deref()
                .is_some_and(|d| d.starts_with(&format!("AADSTS{code}:")))
    }
}

/// The token endpoint refused the request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EndpointError {
    /// The token endpoint (no query, no credentials).
    pub url: String,
    /// The HTTP status (200 when an OAuth error came with a success status).
    pub status: StatusCode,
    /// `Retry-After`, when given (capped by the retry policy).
    pub retry_after: Option<Duration>,
    /// The OAuth error, when the body was one.
    pub oauth: Option<OAuthError>,
    /// A short, secret-free excerpt of a body that was not an OAuth error
    /// (an HTML page from a proxy, a plain-text 429).
    pub excerpt: Option<String>,
    /// What the provider expects as scope, shown on `invalid_scope`.
    pub scope_format: Option<&'static str>,
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the token endpoint {} refused the request (HTTP {}",
            self.url, self.status
        )?;
        if let Some(oauth) = &self.oauth {
            write!(f, ", {}", oauth.error)?;
        }
        f.write_str(")")?;
        if let Some(oauth) = &self.oauth {
            if let Some(description) = &oauth.error_description {
                write!(f, ": {description}")?;
            }
            let ids: Vec<String> = [
                (!oauth.error_codes.is_empty()).then(|| {
                    let codes: Vec<String> = oauth.error_codes.iter().map(i64::to_string).collect();
                    format!("error codes {}", codes.join(", "))
                }),
                oauth.trace_id.as_ref().map(|t| format!("trace id {t}")),
                oauth
                    .correlation_id
                    .as_ref()
                    .map(|c| format!("correlation id {c}")),
                oauth.timestamp.as_ref().map(|t| format!("at {t}")),
            ]
            .into_iter()
            .flatten()
            .collect();
            if !ids.is_empty() {
                write!(f, " [{}]", ids.join("; "))?;
            }
        } else if let Some(excerpt) = &self.excerpt {
            write!(f, ": body starts with {excerpt:?}")?;
        }
        if let Some(advice) = self.advice() {
            write!(f, ". {advice}")?;
        }
        Ok(())
    }
}

impl EndpointError {
    /// What the user should check, from the error code and status.
    fn advice(&self) -> Option<String> {
        let oauth = self.oauth.as_ref();
        let code = oauth.map(|o| o.error.as_str()).unwrap_or_default();
        if oauth.is_some_and(|o| o.has_entra_code(7_000_215)) {
            return Some(
                "Check the client secret: send the secret's VALUE, not its secret ID (Entra shows the value only once, when the secret is created)".into(),
            );
        }
        if oauth.is_some_and(|o| o.has_entra_code(7_000_222)) {
            return Some("The client secret has expired: create a new one".into());
        }
        if oauth.is_some_and(|o| o.has_entra_code(700_016)) {
            return Some(
                "Check the client id and the tenant: the application was not found in this tenant"
                    .into(),
            );
        }
        match code {
            "invalid_client" => {
                return Some(
                    "Check the client id and the client secret (or the key or certificate registered for the client), and the client authentication method".into(),
                );
            }
            "invalid_scope" => {
                let format = self
                    .scope_format
                    .unwrap_or("the scope names the server knows, separated by spaces");
                return Some(format!("Check the scope: this provider expects {format}"));
            }
            "unauthorized_client" => {
                return Some("The client is not allowed the client_credentials grant: check its registration".into());
            }
            "unsupported_grant_type" => {
                return Some(
                    "The server does not offer the client_credentials grant at this endpoint"
                        .into(),
                );
            }
            _ => {}
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            return Some(match self.retry_after {
                Some(after) => format!("Throttled: retry after {} s", after.as_secs()),
                None => "Throttled: retry later".into(),
            });
        }
        if self.status.is_server_error() {
            return Some("The token endpoint (or a proxy before it) failed: retry later".into());
        }
        if self.status.is_redirection() {
            return Some(
                "The token endpoint answered with a redirect, which is not followed (credentials must not go elsewhere): configure the final token URL".into(),
            );
        }
        None
    }
}

/// A success status whose body is not a usable token.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct InvalidResponse {
    /// The token endpoint.
    pub url: String,
    /// The HTTP status.
    pub status: StatusCode,
    /// What is wrong (`no access_token`, `truncated JSON`, …).
    pub problem: String,
    /// A short excerpt of the body, only when it cannot hold a token.
    pub excerpt: Option<String>,
}

impl fmt::Display for InvalidResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the token endpoint {} answered HTTP {} without a usable token: {}",
            self.url, self.status, self.problem
        )?;
        if let Some(excerpt) = &self.excerpt {
            write!(f, "; body starts with {excerpt:?}")?;
        }
        Ok(())
    }
}

/// What kind of transport failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// The connection could not be made (DNS, refused, TLS handshake).
    Connect,
    /// No complete answer within the timeout.
    Timeout,
    /// The body was larger than the limit; reading stopped there.
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Any other failure while sending or reading.
    Other,
}

/// Sending the request or reading the answer failed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TransportError {
    /// What failed.
    pub kind: TransportErrorKind,
    /// The URL requested.
    pub url: String,
    /// The status, when headers had arrived.
    pub status: Option<StatusCode>,
    /// The underlying error, as text (never carries request data).
    pub detail: String,
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            TransportErrorKind::Connect => write!(f, "could not connect to {}", self.url)?,
            TransportErrorKind::Timeout => write!(f, "no answer from {} in time", self.url)?,
            TransportErrorKind::BodyTooLarge { limit } => write!(
                f,
                "the answer of {} is larger than {limit} bytes: reading stopped",
                self.url
            )?,
            TransportErrorKind::Other => write!(f, "the request to {} failed", self.url)?,
        }
        if let Some(status) = self.status {
            write!(f, " (HTTP {status})")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// What stopped an API call (see [`AuthError::ApiCall`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiCallErrorKind {
    /// No complete answer within `api_timeout_secs`.
    TimedOut {
        /// The limit.
        limit: Duration,
    },
    /// The answer is larger than `max_response_bytes`.
    TooLarge {
        /// The limit in bytes.
        limit: u64,
        /// The `Content-Length` the answer declared, when it was over the
        /// limit (then nothing was read).
        content_length: Option<u64>,
    },
    /// The API rejected (401 `invalid_token`) the tokens of the last
    /// `renewals` renewals too: no more are renewed for it until it accepts
    /// one, or for a minute after the last renewal.
    TokensRejected {
        /// Renewals in a row whose tokens the API rejected.
        renewals: u32,
    },
}

/// An API call stopped by m2m (never holds the token or the answer).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApiCallError {
    /// The URL called, without its query.
    pub url: String,
    /// What stopped it.
    pub kind: ApiCallErrorKind,
}

impl ApiCallError {
    /// The error for a call to `url` (shown without query or user info).
    pub(crate) fn stopped(url: &url::Url, kind: ApiCallErrorKind) -> AuthError {
        let mut shown = url.clone();
        shown.set_query(None);
        shown.set_fragment(None);
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        AuthError::ApiCall(Box::new(Self {
            url: shown.to_string(),
            kind,
        }))
    }
}

impl fmt::Display for ApiCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ApiCallErrorKind::TimedOut { limit } => write!(
                f,
                "the call to {} timed out after {} s without a complete answer (api_timeout_secs)",
                self.url,
                limit.as_secs_f64()
            ),
            ApiCallErrorKind::TooLarge {
                limit,
                content_length,
            } => {
                write!(
                    f,
                    "the answer of {} is larger than {limit} bytes (max_response_bytes): ",
                    self.url
                )?;
                match content_length {
                    Some(length) => write!(f, "its Content-Length is {length}, it was not read"),
                    None => f.write_str("reading stopped there"),
                }
            }
            ApiCallErrorKind::TokensRejected { renewals } => write!(
                f,
                "the API keeps rejecting fresh tokens: {} answered 401 invalid_token to the tokens of {renewals} renewals in a row. Check that the tokens are meant for this API (their audience or resource, and their scope) and the API's clock. No token is renewed for it until it accepts one, or for a minute after the last renewal",
                self.url
            ),
        }
    }
}

impl std::error::Error for TransportError {}

impl From<TransportError> for AuthError {
    fn from(error: TransportError) -> Self {
        Self::Transport(Box::new(error))
    }
}

/// A token value that cannot be sent in an HTTP header (control characters).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the token endpoint returned a token that cannot be sent in an HTTP header")]
pub struct InvalidTokenValue;

/// A configuration that cannot work. Nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A plain-http URL for a host that is not loopback, without opt-in.
    #[error(
        "refusing to send credentials over plain http to {url}: use https (plain http is allowed only for loopback hosts, or with the explicit allow_http opt-in)"
    )]
    InsecureUrl {
        /// The URL refused.
        url: String,
    },
    /// A URL that cannot be used.
    #[error("unusable URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL (credentials removed).
        url: String,
        /// Why.
        reason: String,
    },
    /// The private key or certificate could not be used.
    #[error("unusable private key or certificate: {reason}")]
    InvalidKey {
        /// Why (never the key).
        reason: String,
    },
    /// Any other inconsistent setting.
    #[error("invalid token endpoint configuration: {0}")]
    Invalid(String),
}

impl From<ConfigError> for AuthError {
    fn from(error: ConfigError) -> Self {
        Self::Config(error)
    }
}

/// The discovery document could not be fetched or used.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DiscoveryError {
    /// The discovery URL.
    pub url: String,
    /// The HTTP status, when the server answered.
    pub status: Option<StatusCode>,
    /// `Retry-After`, when given.
    pub retry_after: Option<Duration>,
    /// What is wrong.
    pub problem: String,
    /// A short excerpt of a body that is not a discovery document.
    pub excerpt: Option<String>,
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpenID Connect discovery at {} failed", self.url)?;
        if let Some(status) = self.status {
            write!(f, " (HTTP {status})")?;
        }
        write!(f, ": {}", self.problem)?;
        if let Some(excerpt) = &self.excerpt {
            write!(f, "; body starts with {excerpt:?}")?;
        }
        Ok(())
    }
}

/// Which credential a [`CredentialError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialKind {
    /// A client assertion made elsewhere (workload identity federation).
    ClientAssertion,
    /// A client secret.
    ClientSecret,
    /// A private key (PEM).
    PrivateKey,
    /// An X.509 certificate (PEM).
    Certificate,
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ClientAssertion => "client assertion",
            Self::ClientSecret => "client secret",
            Self::PrivateKey => "private key",
            Self::Certificate => "certificate",
        })
    }
}

/// Where a credential was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialOrigin {
    /// A file (the path as configured; a symbolic link is followed at
    /// every read).
    File(std::path::PathBuf),
    /// The callback given to
    /// [`ClientCredential::assertion_from`](crate::auth::ClientCredential::assertion_from).
    Callback,
}

impl fmt::Display for CredentialOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::Callback => f.write_str("callback"),
        }
    }
}

/// What is wrong with a credential (never its content).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialProblem {
    /// The file could not be read (missing, no permission, …).
    Unreadable {
        /// The operating system's reason.
        reason: String,
    },
    /// The file is larger than m2m reads for this credential.
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// Nothing but whitespace.
    Empty,
    /// A client assertion that is not a signed JWT (three base64url parts
    /// whose middle one is a JSON object).
    NotAJwt,
    /// A client assertion without the `exp` claim RFC 7523 §3 requires.
    NoExpiry,
    /// A client assertion whose `exp` has passed (read without checking
    /// the signature: only the issuer can).
    Expired {
        /// The `exp` claim, seconds since the Unix epoch.
        exp: u64,
        /// How long ago that was.
        ago: Duration,
    },
    /// The content cannot be used (a key that does not parse, …).
    Invalid {
        /// Why (never the content).
        reason: String,
    },
    /// The assertion callback failed.
    Callback {
        /// What the callback said.
        reason: String,
    },
}

/// A credential read at a token request could not be used (see
/// [`AuthError::Credential`]). Its Display names the file and the problem,
/// never the content.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CredentialError {
    /// Which credential.
    pub credential: CredentialKind,
    /// Where it was read from.
    pub origin: CredentialOrigin,
    /// What is wrong.
    pub problem: CredentialProblem,
}

impl CredentialError {
    /// The error an assertion callback returns when it has no assertion
    /// to give; `reason` is shown (put no secret in it).
    pub fn assertion_callback(reason: impl fmt::Display) -> Self {
        Self {
            credential: CredentialKind::ClientAssertion,
            origin: CredentialOrigin::Callback,
            problem: CredentialProblem::Callback {
                reason: reason.to_string(),
            },
        }
    }
}

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the {} {}", self.credential, self.origin)?;
        match &self.problem {
            CredentialProblem::Unreadable { reason } => write!(f, " cannot be read: {reason}"),
            CredentialProblem::TooLarge { limit } => write!(
                f,
                " is larger than {limit} bytes: it was not read (is it the right file?)"
            ),
            CredentialProblem::Empty => f.write_str(" is empty"),
            CredentialProblem::NotAJwt => f.write_str(
                " is not a signed JWT (three base64url parts, the middle one a JSON object)",
            ),
            CredentialProblem::NoExpiry => f.write_str(
                " has no exp claim (RFC 7523 §3 requires one; the token endpoint would refuse it)",
            ),
            CredentialProblem::Expired { exp, ago } => write!(
                f,
                " expired {} s ago (exp {exp}): whatever writes it (the Kubernetes token projection, a CI job) has not renewed it",
                ago.as_secs()
            ),
            CredentialProblem::Invalid { reason } => write!(f, " cannot be used: {reason}"),
            CredentialProblem::Callback { reason } => write!(f, " failed: {reason}"),
        }
    }
}

impl std::error::Error for CredentialError {}

impl From<CredentialError> for AuthError {
    fn from(error: CredentialError) -> Self {
        Self::Credential(Box::new(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(status: u16, oauth: Option<OAuthError>, retry_after: Option<u64>) -> AuthError {
        AuthError::Rejected(Box::new(EndpointError {
            url: "https://login.example/token".into(),
            status: StatusCode::from_u16(status).unwrap(),
            retry_after: retry_after.map(Duration::from_secs),
            oauth,
            excerpt: None,
            scope_format: Some("one scope `{client_id}/.default`"),
        }))
    }

    fn oauth(error: &str) -> OAuthError {
        OAuthError {
            error: error.into(),
            ..OAuthError::default()
        }
    }

    #[test]
    fn advice_follows_the_error_code() {
        let secret_id = OAuthError {
            error_codes: vec![7_000_215],
            ..oauth("invalid_client")
        };
        let text = rejected(400, Some(secret_id), None).to_string();
        assert!(text.contains("VALUE, not its secret ID"), "{text}");

        let text = rejected(400, Some(oauth("invalid_client")), None).to_string();
        assert!(
            text.contains("Check the client id and the client secret"),
            "{text}"
        );

        let text = rejected(400, Some(oauth("invalid_scope")), None).to_string();
        assert!(text.contains("`{client_id}/.default`"), "{text}");

        let text = rejected(429, None, Some(60)).to_string();
        assert!(text.contains("retry after 60 s"), "{text}");
    }

    #[test]
    fn retryable_by_status_and_code() {
        assert!(rejected(429, None, Some(1)).is_retryable());
        assert!(rejected(503, None, None).is_retryable());
        assert!(!rejected(400, Some(oauth("invalid_client")), None).is_retryable());
        assert!(rejected(200, Some(oauth("temporarily_unavailable")), None).is_retryable());
        let held = AuthError::HeldOff {
            retry_after: Duration::from_secs(5),
        };
        assert_eq!(held.retry_after(), Some(Duration::from_secs(5)));
        assert_eq!(
            rejected(400, None, None).status(),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            rejected(400, Some(oauth("invalid_scope")), None)
                .oauth_error()
                .map(|o| o.error.as_str()),
            Some("invalid_scope")
        );
    }
}
