//! The HTTP client of token requests: one reqwest client that never
//! follows redirects, times out every call, and stops reading a body past a
//! limit, and the answer as it was received.

use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::ACCEPT;
use http::{HeaderMap, StatusCode};
use url::Url;

use super::error::{ConfigError, TransportError, TransportErrorKind};
use super::retry_after::retry_after;

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
