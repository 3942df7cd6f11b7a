//! OpenID Connect discovery: the token endpoint read from
//! `/.well-known/openid-configuration`, fetched once for the life of the
//! endpoint (concurrent callers wait for the one fetch; a failed fetch is
//! not kept, so the next call tries again).

use std::sync::Arc;
use std::time::SystemTime;

use serde::Deserialize;
use tokio::sync::OnceCell;
use url::Url;

use super::error::{DiscoveryError, Scrubber};
use super::http::{RecordedResponse, TokenHttpClient, check_credentials_url};
use super::{AuthError, ConfigError};

/// What m2m uses from a discovery document.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderMetadata {
    /// `issuer`.
    pub issuer: String,
    /// `token_endpoint`, checked like any token URL (https unless loopback
    /// or `allow_http`).
    pub token_endpoint: Url,
    /// `token_endpoint_auth_methods_supported`, when listed.
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// `grant_types_supported`, when listed. Not enforced: many servers
    /// that issue client-credentials tokens leave it out.
    pub grant_types_supported: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawMetadata {
    issuer: Option<String>,
    token_endpoint: Option<String>,
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    grant_types_supported: Option<Vec<String>>,
}

/// A discovery document, fetched at most once successfully.
#[derive(Debug)]
pub struct Discovery {
    url: Url,
    allow_http: bool,
    metadata: OnceCell<Arc<ProviderMetadata>>,
}

impl Discovery {
    /// Discovery at `url` (refused unless https, loopback or `allow_http`).
    pub fn new(url: Url, allow_http: bool) -> Result<Self, ConfigError> {
        check_credentials_url(&url, allow_http)?;
        Ok(Self {
            url,
            allow_http,
            metadata: OnceCell::new(),
        })
    }

    /// The discovery URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The metadata, fetched on first use.
    pub async fn metadata(
        &self,
        http: &TokenHttpClient,
        now: SystemTime,
    ) -> Result<Arc<ProviderMetadata>, AuthError> {
        self.metadata
            .get_or_try_init(|| async {
                let metadata = self.fetch(http, now).await?;
                tracing::debug!(
                    discovery_url = %self.url,
                    issuer = %metadata.issuer,
                    token_endpoint = %metadata.token_endpoint,
                    "discovery document fetched"
                );
                Ok(Arc::new(metadata))
            })
            .await
            .cloned()
    }

    async fn fetch(
        &self,
        http: &TokenHttpClient,
        now: SystemTime,
    ) -> Result<ProviderMetadata, AuthError> {
        let response = http.get_json(&self.url).await?;
        read_document(&self.url, &response, now, self.allow_http)
    }
}

/// Reads the answer to a discovery request: the metadata, or the error that
/// says what is wrong with it (quoting the body only when it is not a
/// discovery document at all).
pub(crate) fn read_document(
    url: &Url,
    response: &RecordedResponse,
    now: SystemTime,
    allow_http: bool,
) -> Result<ProviderMetadata, AuthError> {
    let fail = |problem: &str, excerpt: bool| {
        AuthError::Discovery(Box::new(DiscoveryError {
            url: url.to_string(),
            status: Some(response.status),
            retry_after: response.retry_after(now),
            problem: problem.into(),
            excerpt: if excerpt {
                Scrubber::default().excerpt(&response.body, Scrubber::EXCERPT_CHARS)
            } else {
                None
            },
        }))
    };
    if !response.status.is_success() {
        return Err(fail("the server answered with an error", true));
    }
    let raw: RawMetadata = serde_json::from_slice(&response.body)
        .map_err(|_| fail("the body is not a JSON discovery document", true))?;
    let issuer = raw
        .issuer
        .filter(|issuer| !issuer.trim().is_empty())
        .ok_or_else(|| fail("`issuer` is missing", false))?;
    let token_endpoint = raw
        .token_endpoint
        .ok_or_else(|| fail("`token_endpoint` is missing", false))?;
    let token_endpoint = Url::parse(&token_endpoint)
        .map_err(|e| fail(&format!("`token_endpoint` is not a URL ({e})"), false))?;
    check_credentials_url(&token_endpoint, allow_http)
        .map_err(|e| fail(&format!("`token_endpoint` cannot be used: {e}"), false))?;
    Ok(ProviderMetadata {
        issuer,
        token_endpoint,
        token_endpoint_auth_methods_supported: raw.token_endpoint_auth_methods_supported,
        grant_types_supported: raw.grant_types_supported,
    })
}
