//! OpenID Connect discovery: the token endpoint read from
//! `/.well-known/openid-configuration`. The document is kept for
//! [`Discovery::MAX_AGE`] (concurrent callers wait for the one fetch; a
//! failed fetch is not kept, so the next call tries again), and read again
//! sooner when the token endpoint it named seems to have moved
//! ([`Discovery::forget`]). With [`Discovery::strict_issuer`], its `issuer`
//! must be the URL it was fetched from (OpenID Connect Discovery §4.3).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

use crate::oauth::error::{AuthError, ConfigError, DiscoveryError};
use crate::oauth::http_client::{RecordedResponse, TokenHttpClient};
use crate::oauth::url_policy::check_credentials_url;
use crate::redaction::Scrubber;
use crate::time::clock::later;

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
    /// `mtls_endpoint_aliases.token_endpoint` (RFC 8705 §5), checked like
    /// `token_endpoint`: where a client presenting its certificate asks.
    /// An alias that cannot be used is `Err` with what is wrong: an error
    /// for a client with a certificate only, as the others never use it.
    pub mtls_token_endpoint: Option<Result<Url, String>>,
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
    mtls_endpoint_aliases: Option<RawAliases>,
}

#[derive(Deserialize)]
struct RawAliases {
    token_endpoint: Option<String>,
}

/// The path a discovery URL ends with (OpenID Connect Discovery §4).
const WELL_KNOWN: &str = "/.well-known/openid-configuration";

/// A discovery document, fetched when first needed and again when it is
/// [`Discovery::MAX_AGE`] old or was [forgotten](Discovery::forget).
#[derive(Debug)]
pub struct Discovery {
    url: Url,
    allow_http: bool,
    /// With `strict_issuer`: the issuer the document must name.
    expected_issuer: Option<String>,
    /// The document and when it was fetched; held across a fetch, so that
    /// concurrent callers wait for the one fetch.
    kept: Mutex<Option<Kept>>,
}

#[derive(Debug)]
struct Kept {
    metadata: Arc<ProviderMetadata>,
    fetched_at: SystemTime,
}

impl Discovery {
    /// How long a discovery document is used before it is fetched again.
    pub const MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

    /// Discovery at `url` (refused unless https, loopback or `allow_http`).
    pub fn new(url: Url, allow_http: bool) -> Result<Self, ConfigError> {
        check_credentials_url(&url, allow_http)?;
        Ok(Self {
            url,
            allow_http,
            expected_issuer: None,
            kept: Mutex::new(None),
        })
    }

    /// With `strict`, a document is refused unless its `issuer` is exactly
    /// the discovery URL less `/.well-known/openid-configuration` (OpenID
    /// Connect Discovery §4.3), so a document served from one place cannot
    /// speak for another issuer. Fails for a discovery URL that does not
    /// end with that path.
    pub fn strict_issuer(mut self, strict: bool) -> Result<Self, ConfigError> {
        self.expected_issuer = if strict {
            let mut base = self.url.clone();
            base.set_query(None);
            base.set_fragment(None);
            let issuer =
                base.as_str()
                    .strip_suffix(WELL_KNOWN)
                    .ok_or_else(|| ConfigError::InvalidUrl {
                        url: self.url.to_string(),
                        reason: format!(
                            "strict_issuer needs a discovery URL ending in {WELL_KNOWN}"
                        ),
                    })?;
            Some(issuer.to_owned())
        } else {
            None
        };
        Ok(self)
    }

    /// The discovery URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The metadata: the document kept, or a new fetch when there is none
    /// or it is [`Discovery::MAX_AGE`] old. When a document that is only
    /// old cannot be fetched again, the old one is used meanwhile (with a
    /// warning), and the next call tries again.
    pub async fn metadata(
        &self,
        http: &TokenHttpClient,
        now: SystemTime,
    ) -> Result<Arc<ProviderMetadata>, AuthError> {
        let mut kept = self.kept.lock().await;
        let stale = match kept.as_ref() {
            Some(kept) if now < later(kept.fetched_at, Self::MAX_AGE) => {
                return Ok(Arc::clone(&kept.metadata));
            }
            Some(kept) => Some(Arc::clone(&kept.metadata)),
            None => None,
        };
        match self.fetch(http, now).await {
            Ok(metadata) => {
                tracing::debug!(
                    discovery_url = %self.url,
                    issuer = %metadata.issuer,
                    token_endpoint = %metadata.token_endpoint,
                    "discovery document fetched"
                );
                let metadata = Arc::new(metadata);
                *kept = Some(Kept {
                    metadata: Arc::clone(&metadata),
                    fetched_at: now,
                });
                Ok(metadata)
            }
            Err(error) => match stale {
                Some(stale) => {
                    tracing::warn!(discovery_url = %self.url, %error,
                        "the discovery document could not be fetched again: using the one fetched a day ago");
                    Ok(stale)
                }
                None => Err(error),
            },
        }
    }

    /// Forgets `metadata` if it is still the document kept (the token
    /// endpoint it names answered 404, or nothing listens there): the next
    /// call fetches the document again. `true` if it was forgotten.
    pub async fn forget(&self, metadata: &Arc<ProviderMetadata>) -> bool {
        let mut kept = self.kept.lock().await;
        let same = kept
            .as_ref()
            .is_some_and(|kept| Arc::ptr_eq(&kept.metadata, metadata));
        if same {
            *kept = None;
            tracing::info!(discovery_url = %self.url, token_endpoint = %metadata.token_endpoint,
                "the token endpoint seems to have moved: reading the discovery document again");
        }
        same
    }

    async fn fetch(
        &self,
        http: &TokenHttpClient,
        now: SystemTime,
    ) -> Result<ProviderMetadata, AuthError> {
        let response = http.get_json(&self.url).await?;
        read_document(
            &self.url,
            &response,
            now,
            self.allow_http,
            self.expected_issuer.as_deref(),
        )
    }
}

/// Reads the answer to a discovery request: the metadata, or the error that
/// says what is wrong with it (quoting the body only when it is not a
/// discovery document at all). With `expected_issuer`, the document's
/// `issuer` must be exactly that.
pub(crate) fn read_document(
    url: &Url,
    response: &RecordedResponse,
    now: SystemTime,
    allow_http: bool,
    expected_issuer: Option<&str>,
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
    if let Some(expected) = expected_issuer
        && issuer != expected
    {
        // The server's text, scrubbed and shortened like a body.
        let shown = Scrubber::default()
            .excerpt(issuer.as_bytes(), Scrubber::EXCERPT_CHARS)
            .unwrap_or_default();
        return Err(fail(
            &format!(
                "`issuer` is {shown:?}, not {expected:?}, the URL the document was fetched from \
                 (strict_issuer; OpenID Connect Discovery §4.3)"
            ),
            false,
        ));
    }
    let token_endpoint = raw
        .token_endpoint
        .ok_or_else(|| fail("`token_endpoint` is missing", false))?;
    let token_endpoint = Url::parse(&token_endpoint)
        .map_err(|e| fail(&format!("`token_endpoint` is not a URL ({e})"), false))?;
    check_credentials_url(&token_endpoint, allow_http)
        .map_err(|e| fail(&format!("`token_endpoint` cannot be used: {e}"), false))?;
    let mtls_token_endpoint = raw
        .mtls_endpoint_aliases
        .and_then(|aliases| aliases.token_endpoint)
        .map(|alias| {
            let alias = Url::parse(&alias).map_err(|e| {
                format!("`mtls_endpoint_aliases.token_endpoint` is not a URL ({e})")
            })?;
            check_credentials_url(&alias, allow_http).map_err(|e| {
                format!("`mtls_endpoint_aliases.token_endpoint` cannot be used: {e}")
            })?;
            Ok(alias)
        });
    Ok(ProviderMetadata {
        issuer,
        token_endpoint,
        mtls_token_endpoint,
        token_endpoint_auth_methods_supported: raw.token_endpoint_auth_methods_supported,
        grant_types_supported: raw.grant_types_supported,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discovery(url: &str) -> Discovery {
        Discovery::new(Url::parse(url).unwrap(), false).unwrap()
    }

    #[test]
    fn the_strict_issuer_is_the_discovery_url_less_the_well_known_path() {
        let strict = |url: &str| {
            discovery(url)
                .strict_issuer(true)
                .map(|d| d.expected_issuer)
        };
        assert_eq!(
            strict("https://auth.apiture.com/oidc/.well-known/openid-configuration"),
            Ok(Some("https://auth.apiture.com/oidc".to_owned()))
        );
        assert_eq!(
            strict("https://idp.example/.well-known/openid-configuration?x=1"),
            Ok(Some("https://idp.example".to_owned()))
        );
        let error = strict("https://idp.example/metadata.json").unwrap_err();
        assert!(error.to_string().contains("strict_issuer"), "{error}");
        let lenient = discovery("https://idp.example/metadata.json").strict_issuer(false);
        assert_eq!(lenient.map(|d| d.expected_issuer), Ok(None));
    }
}
