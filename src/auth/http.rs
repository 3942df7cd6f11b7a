//! The HTTP side of token requests: one reqwest 0.13 client that never
//! follows redirects, times out every call, and stops reading a body past a
//! limit; an `oauth2::AsyncHttpClient` adapter over it that remembers the
//! answer (status, `Retry-After`, body) so errors can carry them; and the
//! rule for which URLs may receive credentials.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, StatusCode};
use url::Url;

use super::error::{TransportError, TransportErrorKind};
use super::{AuthError, ConfigError};

/// Limits of the token HTTP client.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpSettings {
    /// Time for a whole call: connect, send, and read the body (10 s).
    pub timeout: Duration,
    /// Time to establish the connection (5 s).
    pub connect_timeout: Duration,
    /// Largest body read (64 KiB); reading stops and fails beyond it.
    pub max_body_bytes: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_body_bytes: 64 * 1024,
        }
    }
}

impl HttpSettings {
    /// With another timeout for a whole call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// With another body limit.
    pub fn with_max_body_bytes(mut self, max_body_bytes: usize) -> Self {
        self.max_body_bytes = max_body_bytes;
        self
    }
}

/// The HTTP client of the token layer. Cheap to clone; share one between
/// endpoints.
#[derive(Debug, Clone)]
pub struct TokenHttpClient {
    client: reqwest::Client,
    max_body_bytes: usize,
}

impl TokenHttpClient {
    /// A client with `settings`, redirects off, the crate's TLS.
    pub fn new(settings: &HttpSettings) -> Result<Self, ConfigError> {
        Self::from_builder(reqwest::Client::builder(), settings)
    }

    /// A client from your own builder (proxy, root certificates, …).
    /// Redirects are turned off and the timeouts of `settings` set, whatever
    /// the builder said: a redirect could carry the credentials elsewhere.
    pub fn from_builder(
        builder: reqwest::ClientBuilder,
        settings: &HttpSettings,
    ) -> Result<Self, ConfigError> {
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .build()
            .map_err(|e| ConfigError::Invalid(format!("the HTTP client cannot be built: {e}")))?;
        Ok(Self {
            client,
            max_body_bytes: settings.max_body_bytes,
        })
    }

    /// Sends `request` and reads the answer, at most `max_body_bytes` of it.
    pub(crate) async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<RecordedResponse, TransportError> {
        let url = request.uri().to_string();
        let request =
            reqwest::Request::try_from(request).map_err(|e| transport_error(&url, None, &e))?;
        let mut response = self
            .client
            .execute(request)
            .await
            .map_err(|e| transport_error(&url, None, &e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let too_large = || TransportError {
            kind: TransportErrorKind::BodyTooLarge {
                limit: self.max_body_bytes,
            },
            url: url.clone(),
            status: Some(status),
            detail: String::new(),
        };
        if response
            .content_length()
            .is_some_and(|length| length > self.max_body_bytes as u64)
        {
            return Err(too_large());
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| transport_error(&url, Some(status), &e))?
        {
            if body.len() + chunk.len() > self.max_body_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(RecordedResponse {
            status,
            headers,
            body: body.freeze(),
        })
    }

    /// `GET url` asking for JSON.
    pub(crate) async fn get_json(&self, url: &Url) -> Result<RecordedResponse, TransportError> {
        let request = http::Request::get(url.as_str())
            .header(ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| TransportError {
                kind: TransportErrorKind::Other,
                url: url.to_string(),
                status: None,
                detail: e.to_string(),
            })?;
        self.send(request).await
    }
}

/// An answer as it was received (body within the limit).
#[derive(Debug, Clone)]
pub(crate) struct RecordedResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl RecordedResponse {
    /// `Retry-After` (seconds or an HTTP date) as a duration from `now`,
    /// at most [`MAX_RETRY_AFTER`].
    pub(crate) fn retry_after(&self, now: SystemTime) -> Option<Duration> {
        retry_after(&self.headers, now)
    }

    /// The `Content-Type`, when present and readable.
    pub(crate) fn content_type(&self) -> Option<&str> {
        self.headers.get(http::header::CONTENT_TYPE)?.to_str().ok()
    }

    /// The answer as oauth2 reads it (without `Content-Length`: the body is
    /// whole).
    pub(crate) fn to_oauth_response(&self) -> Result<oauth2::HttpResponse, TransportError> {
        let mut response = http::Response::builder().status(self.status);
        for (name, value) in &self.headers {
            if name != CONTENT_LENGTH {
                response = response.header(name, value);
            }
        }
        response
            .body(self.body.to_vec())
            .map_err(|e| TransportError {
                kind: TransportErrorKind::Other,
                url: String::new(),
                status: Some(self.status),
                detail: e.to_string(),
            })
    }
}

/// The longest wait a `Retry-After` can impose, wherever m2m reads one (a
/// token endpoint, a discovery document, an API answer): longer values are
/// cut to it. A server asking for an hour (or for 2^64 seconds) gets two
/// minutes; a [`RetryPolicy`](crate::auth::RetryPolicy) may lower it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// The `Retry-After` of an answer (RFC 9110 §10.2.3: delay-seconds or an
/// HTTP date, a date in the past meaning zero) as a wait from `now`, at most
/// [`MAX_RETRY_AFTER`]; `None` when absent or unreadable. The helper for
/// any answer m2m or its user reads:
///
/// ```
/// # use std::time::{Duration, SystemTime};
/// # use m2m::auth::{retry_after, MAX_RETRY_AFTER};
/// let mut headers = http::HeaderMap::new();
/// headers.insert(http::header::RETRY_AFTER, "3600".parse().unwrap());
/// assert_eq!(retry_after(&headers, SystemTime::now()), Some(MAX_RETRY_AFTER));
/// headers.insert(http::header::RETRY_AFTER, "30".parse().unwrap());
/// assert_eq!(retry_after(&headers, SystemTime::now()), Some(Duration::from_secs(30)));
/// ```
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    parse_retry_after(headers.get(RETRY_AFTER)?, now)
}

fn parse_retry_after(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    let wait = match text.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let date = httpdate::parse_http_date(text).ok()?;
            date.duration_since(now).unwrap_or_default()
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The `oauth2::AsyncHttpClient` handed to one oauth2 request: sends through
/// [`TokenHttpClient`], optionally replaces the `Authorization` value oauth2
/// built (unencoded Basic), and keeps the answer for error reporting.
pub(crate) struct RecordingClient<'a> {
    http: &'a TokenHttpClient,
    authorization: Option<HeaderValue>,
    recorded: Mutex<Option<RecordedResponse>>,
}

impl<'a> RecordingClient<'a> {
    pub(crate) fn new(http: &'a TokenHttpClient, authorization: Option<HeaderValue>) -> Self {
        Self {
            http,
            authorization,
            recorded: Mutex::new(None),
        }
    }

    /// The answer received, if one was.
    pub(crate) fn take(&self) -> Option<RecordedResponse> {
        self.recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

type HttpFuture<'c> =
    Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, TransportError>> + Send + 'c>>;

impl<'c> oauth2::AsyncHttpClient<'c> for RecordingClient<'_> {
    type Error = TransportError;
    type Future = HttpFuture<'c>;

    fn call(&'c self, mut request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            if let Some(value) = &self.authorization {
                request.headers_mut().insert(AUTHORIZATION, value.clone());
            }
            if let Some(value) = request.headers_mut().get_mut(AUTHORIZATION) {
                value.set_sensitive(true);
            }
            let recorded = self.http.send(request).await?;
            let response = recorded.to_oauth_response()?;
            *self.recorded.lock().unwrap_or_else(|e| e.into_inner()) = Some(recorded);
            Ok(response)
        })
    }
}

impl std::error::Error for TransportError {}

impl From<TransportError> for AuthError {
    fn from(error: TransportError) -> Self {
        Self::Transport(Box::new(error))
    }
}

fn transport_error(
    url: &str,
    status: Option<StatusCode>,
    error: &reqwest::Error,
) -> TransportError {
    let kind = if error.is_timeout() {
        TransportErrorKind::Timeout
    } else if error.is_connect() {
        TransportErrorKind::Connect
    } else {
        TransportErrorKind::Other
    };
    // The error chain, without the URL (already in `url`).
    let mut detail = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(current) = source {
        let text = current.to_string();
        let text = text.replace(&format!(" for url ({url})"), "");
        if !detail.contains(&text) {
            if !detail.is_empty() {
                detail.push_str(": ");
            }
            detail.push_str(&text);
        }
        source = current.source();
    }
    TransportError {
        kind,
        url: url.to_owned(),
        status,
        detail,
    }
}

/// Whether credentials may be sent to `url`: https always; plain http only
/// to a loopback host (`localhost`, `127.0.0.0/8`, `::1`) or with
/// `allow_http`. URLs with user info are refused (they would end up in logs).
pub fn check_credentials_url(url: &Url, allow_http: bool) -> Result<(), ConfigError> {
    if !url.username().is_empty() || url.password().is_some() {
        let mut shown = url.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        return Err(ConfigError::InvalidUrl {
            url: shown.to_string(),
            reason: "a URL must not carry credentials".into(),
        });
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_http || is_loopback(url) => Ok(()),
        "http" => Err(ConfigError::InsecureUrl {
            url: url.to_string(),
        }),
        other => Err(ConfigError::InvalidUrl {
            url: url.to_string(),
            reason: format!("the scheme must be https, not {other}"),
        }),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// `url` as text with its password, if any, replaced: for logs and `Debug`
/// (a Redis URL may carry one).
pub(crate) fn redact_password(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        // Only fails for URLs that cannot have a password at all.
        let _ = shown.set_password(Some("redacted"));
    }
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_over_https_or_loopback_only() {
        let ok = |u: &str, allow| check_credentials_url(&Url::parse(u).unwrap(), allow).is_ok();
        assert!(ok("https://login.example/token", false));
        assert!(ok("http://127.0.0.1:8080/token", false));
        assert!(ok("http://127.9.9.9/token", false));
        assert!(ok("http://[::1]:9/token", false));
        assert!(ok("http://localhost/token", false));
        assert!(!ok("http://login.example/token", false));
        assert!(!ok("http://10.0.0.1/token", false));
        assert!(!ok("http://localhost.evil.example/token", false));
        assert!(ok("http://login.example/token", true));
        assert!(!ok("ftp://login.example/token", true));
        let err = check_credentials_url(&Url::parse("https://u:p@login.example/").unwrap(), false)
            .unwrap_err();
        assert!(!err.to_string().contains("u:p"), "{err}");
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let parse = |v: &str| parse_retry_after(&HeaderValue::from_str(v).unwrap(), now);
        assert_eq!(parse("60"), Some(Duration::from_secs(60)));
        assert_eq!(parse(" 5 "), Some(Duration::from_secs(5)));
        let in_90_s = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(parse(&in_90_s), Some(Duration::from_secs(90)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(parse(&past), Some(Duration::ZERO));
        assert_eq!(parse("soon"), None);
        assert_eq!(parse("-3"), None);
    }

    #[test]
    fn every_retry_after_is_capped() {
        assert_eq!(MAX_RETRY_AFTER, Duration::from_secs(120));
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let parse = |v: &str| parse_retry_after(&HeaderValue::from_str(v).unwrap(), now);
        assert_eq!(parse("120"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse("3600"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse(&u64::MAX.to_string()), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse("Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(MAX_RETRY_AFTER)
        );
        // Beyond u64: not a number m2m can read, and not a date.
        assert_eq!(parse("18446744073709551616"), None);
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, now), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
    }
}
