//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`; m2m installs no exporter): the names, and the labels every
//! one of them carries. The README's "Metrics" section lists them; the
//! observers of the cache (`cache::observer`) and of the auth handle
//! (`auth::observer`) emit them, each from one place.
//!
//! Without the feature, only [`MetricLabels`] remains (so that code naming
//! its clients compiles either way) and every observer is empty.

use std::fmt;
use std::sync::Arc;

/// What the metrics of a token source, and of the auth handles over it, are
/// labelled with: `client`, the client's name, and `provider`, its
/// provider's. Neither is ever a secret or a token (the cache key is not a
/// label either).
///
/// [`Config::auth`](crate::config::Config::auth) names a client as the
/// configuration does; a hand-built [`Auth`](crate::auth::Auth) or
/// [`CachedTokenSource`](crate::auth::CachedTokenSource) is named after the
/// host of its token URL unless given a name
/// ([`Auth::named`](crate::auth::Auth::named),
/// [`CachedTokenSource::with_name`](crate::auth::CachedTokenSource::with_name)).
/// Give each client a fixed name: every distinct name is a series of its
/// own in the exporter.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MetricLabels {
    client: Arc<str>,
    provider: Arc<str>,
}

impl MetricLabels {
    /// Labels for the client `client` of provider `provider`.
    pub fn new(client: &str, provider: &str) -> Self {
        Self {
            client: client.into(),
            provider: provider.into(),
        }
    }

    /// The default labels of a source of tokens from `token_url` (a token
    /// endpoint or an issuer) of `provider`: the client is named after the
    /// URL's host (`unknown` when it has none).
    pub(crate) fn for_token_url(token_url: &str, provider: &str) -> Self {
        let host = url::Url::parse(token_url)
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned));
        Self::new(host.as_deref().unwrap_or("unknown"), provider)
    }

    /// The labels of a handle over a token source that has none of its own.
    pub(crate) fn custom() -> Self {
        Self::new("custom", "custom")
    }

    /// The client's name.
    pub fn client(&self) -> &str {
        &self.client
    }

    /// The provider's name.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// With another client name.
    pub(crate) fn with_client(&self, client: &str) -> Self {
        Self {
            client: client.into(),
            provider: Arc::clone(&self.provider),
        }
    }

    /// The labels as the facade takes them, with `extra` after them.
    #[cfg(feature = "metrics")]
    pub(crate) fn with(&self, extra: &[(&'static str, String)]) -> Vec<metrics::Label> {
        let mut labels = vec![
            metrics::Label::new(CLIENT, self.client.to_string()),
            metrics::Label::new(PROVIDER, self.provider.to_string()),
        ];
        labels.extend(
            extra
                .iter()
                .map(|(key, value)| metrics::Label::new(*key, value.clone())),
        );
        labels
    }
}

impl fmt::Debug for MetricLabels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricLabels")
            .field("client", &self.client)
            .field("provider", &self.provider)
            .finish()
    }
}

/// Label: the client's name.
#[cfg(feature = "metrics")]
pub(crate) const CLIENT: &str = "client";
/// Label: the provider's name.
#[cfg(feature = "metrics")]
pub(crate) const PROVIDER: &str = "provider";
/// Label of fetches: how each ended.
#[cfg(feature = "metrics")]
pub(crate) const OUTCOME: &str = "outcome";
/// Label of fetches: the HTTP status of the token endpoint's answer.
#[cfg(feature = "metrics")]
pub(crate) const STATUS: &str = "status";

/// The metric names (README, "Metrics").
#[cfg(feature = "metrics")]
pub(crate) mod names {
    pub const CACHE_HITS: &str = "m2m_token_cache_hits_total";
    pub const STALE_SERVED: &str = "m2m_token_cache_stale_served_total";
    pub const CACHE_MISSES: &str = "m2m_token_cache_misses_total";
    pub const BACKGROUND_REFRESHES: &str = "m2m_token_background_refreshes_total";
    pub const FETCH_WAITS: &str = "m2m_token_fetch_waits_total";
    pub const FETCHES: &str = "m2m_token_fetches_total";
    pub const FETCH_DURATION: &str = "m2m_token_fetch_duration_seconds";
    pub const HOLD_OFFS: &str = "m2m_token_hold_offs_total";
    pub const RETRY_AFTER: &str = "m2m_token_retry_after_seconds";
    pub const HELD_OFF_CALLS: &str = "m2m_token_held_off_calls_total";
    pub const LOCK_WAITS: &str = "m2m_token_lock_waits_total";
    pub const LOCK_TAKEOVERS: &str = "m2m_token_lock_takeovers_total";
    pub const REMAINING: &str = "m2m_token_remaining_seconds";
    pub const RENEWALS: &str = "m2m_token_renewals_total";
    pub const RESENDS: &str = "m2m_api_resends_total";
    pub const RENEWALS_STOPPED: &str = "m2m_api_renewals_stopped_total";
}
