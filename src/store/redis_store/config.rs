//! Settings of a [`RedisStore`](super::RedisStore), as a builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::redaction::redact_password;
use crate::store::encryption::{CacheEncryptionKey, EncryptionKeyError};
use crate::store::token_store::MemoryStore;
use crate::time::clock::{Clock, SystemClock};

/// How to reach Redis and how to keep tokens there. Start from
/// [`RedisStoreConfig::new`] with the URL (`[cache] redis_url` in the config
/// file, `--cache-url` on the command line) and change what you need:
///
/// ```
/// # use std::time::Duration;
/// # use m2m::auth::RedisStoreConfig;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = RedisStoreConfig::new("rediss://cache.internal:6380/0".parse()?)
///     .prefix("billing:m2m:token:")
///     .op_timeout(Duration::from_millis(100))
///     .encryption_key_from_env()?; // M2M_CACHE_KEY, 32 bytes in base64
/// # Ok(()) }
/// ```
///
/// For a Redis Cluster (ElastiCache with cluster mode, Azure Cache for
/// Redis clustered, Memorystore Cluster, or your own), say so with
/// [`RedisStoreConfig::cluster`] (`[cache] redis_cluster = true`): the URL is
/// then one seed node (or the service's configuration endpoint), the other
/// nodes are discovered, and [`RedisStoreConfig::cluster_seed`] adds seeds
/// for a start while a node is down.
///
/// `Debug` hides the URLs' passwords and the key.
#[derive(Clone)]
pub struct RedisStoreConfig {
    url: Url,
    cluster: bool,
    extra_seeds: Vec<Url>,
    prefix: String,
    op_timeout: Duration,
    lock_ttl: Option<Duration>,
    expiry_margin: Duration,
    encryption_key: Option<Arc<CacheEncryptionKey>>,
    local_capacity: usize,
    warning_interval: Duration,
    tls_root_certificate: Option<Vec<u8>>,
    clock: Arc<dyn Clock>,
}

impl RedisStoreConfig {
    /// The default key prefix.
    pub const DEFAULT_PREFIX: &'static str = "m2m:token:";
    /// The default time limit of one Redis operation.
    pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_millis(250);
    /// The default margin between a token's expiry and its entry's.
    pub const DEFAULT_EXPIRY_MARGIN: Duration = Duration::from_secs(10);
    /// The default interval between two warnings about the same trouble.
    pub const DEFAULT_WARNING_INTERVAL: Duration = Duration::from_secs(60);

    /// Settings for the Redis at `url`: `redis://[user:password@]host[:port][/db]`,
    /// `rediss://…` for TLS (rustls, the operating system's roots unless
    /// [`RedisStoreConfig::tls_root_certificate`] is given), or
    /// `redis+unix:///path` / `unix:///path`. Everything else at its default:
    /// prefix `m2m:token:`, 250 ms per operation, the cache's lock TTL,
    /// entries expiring 10 s before their token, no encryption.
    pub fn new(url: Url) -> Self {
        Self {
            url,
            cluster: false,
            extra_seeds: Vec::new(),
            prefix: Self::DEFAULT_PREFIX.to_owned(),
            op_timeout: Self::DEFAULT_OP_TIMEOUT,
            lock_ttl: None,
            expiry_margin: Self::DEFAULT_EXPIRY_MARGIN,
            encryption_key: None,
            local_capacity: MemoryStore::DEFAULT_CAPACITY,
            warning_interval: Self::DEFAULT_WARNING_INTERVAL,
            tls_root_certificate: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Whether the URL is a node of a Redis Cluster (`redis://` or
    /// `rediss://`; the database must be 0). The store then talks to the
    /// node that holds each key's slot, follows `MOVED`/`ASK` while slots
    /// move, and finds a new primary after a failover. A token's keys
    /// share one hash tag, so every multi-key operation stays in one slot.
    /// Default `false`: one server (or a managed primary endpoint).
    pub fn cluster(mut self, cluster: bool) -> Self {
        self.cluster = cluster;
        self
    }

    /// Another seed node of the cluster (same scheme and credentials as
    /// the URL), tried when the first one is down at start; implies
    /// [`RedisStoreConfig::cluster`].
    pub fn cluster_seed(mut self, url: Url) -> Self {
        self.cluster = true;
        self.extra_seeds.push(url);
        self
    }

    /// Keys are this prefix followed by the [`CacheKey`](crate::auth::CacheKey)'s
    /// hashed form (its refresh lock: the same, then `:lock`). Give each
    /// environment sharing a Redis its own prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest one Redis operation (and one connection attempt) may
    /// take; past it, the operation fails and the cache carries on without
    /// Redis. Default 250 ms.
    pub fn op_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The lifetime of a refresh lock, instead of the one the cache asks
    /// for ([`CacheSettings::lock_ttl`](crate::auth::CacheSettings)). A live
    /// holder renews it while it fetches; a holder that dies is replaced
    /// when it passes.
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = Some(ttl.max(Duration::from_millis(1)));
        self
    }

    /// Entries expire this long before their token does (a token is not
    /// handed out in its last seconds anyway); a token with less left is not
    /// written to Redis. Default 10 s.
    pub fn expiry_margin(mut self, margin: Duration) -> Self {
        self.expiry_margin = margin;
        self
    }

    /// Encrypts tokens with `key` (AES-256-GCM) before they go to Redis.
    pub fn encryption_key(mut self, key: CacheEncryptionKey) -> Self {
        self.encryption_key = Some(Arc::new(key));
        self
    }

    /// Encrypts tokens with the key in `M2M_CACHE_KEY` when it is set
    /// ([`CacheEncryptionKey::from_env`]); fails if it is set but invalid.
    pub fn encryption_key_from_env(mut self) -> Result<Self, EncryptionKeyError> {
        if let Some(key) = CacheEncryptionKey::from_env()? {
            self.encryption_key = Some(Arc::new(key));
        }
        Ok(self)
    }

    /// How many keys the in-process tier in front of Redis holds. Default
    /// [`MemoryStore::DEFAULT_CAPACITY`].
    pub fn local_capacity(mut self, capacity: usize) -> Self {
        self.local_capacity = capacity.max(1);
        self
    }

    /// While Redis fails, warn at most this often. Default 60 s.
    pub fn warning_interval(mut self, interval: Duration) -> Self {
        self.warning_interval = interval;
        self
    }

    /// For `rediss://`: trust this CA certificate (PEM) instead of the
    /// operating system's roots.
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_certificate = Some(pem.into());
        self
    }

    /// The clock to read token lifetimes on: give the store the clock of
    /// the [`TokenCache`](crate::auth::TokenCache) it serves (a
    /// [`ManualClock`](crate::auth::clock::ManualClock) in tests). Default
    /// [`SystemClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The Redis URL (it may hold a password: do not log it).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Whether Redis is a cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// The URL and the extra cluster seeds (they may hold passwords).
    pub fn seed_urls(&self) -> impl Iterator<Item = &Url> {
        std::iter::once(&self.url).chain(&self.extra_seeds)
    }

    /// The key prefix.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The time limit of one operation.
    pub fn operation_timeout(&self) -> Duration {
        self.op_timeout
    }

    /// The lock TTL that overrides the cache's, if set.
    pub fn lock_ttl_override(&self) -> Option<Duration> {
        self.lock_ttl
    }

    /// The margin between a token's expiry and its entry's.
    pub fn entry_expiry_margin(&self) -> Duration {
        self.expiry_margin
    }

    /// Whether tokens are encrypted at rest.
    pub fn encrypts(&self) -> bool {
        self.encryption_key.is_some()
    }

    pub(super) fn key(&self) -> Option<Arc<CacheEncryptionKey>> {
        self.encryption_key.clone()
    }

    pub(super) fn capacity(&self) -> usize {
        self.local_capacity
    }

    pub(super) fn warnings_every(&self) -> Duration {
        self.warning_interval
    }

    pub(super) fn tls_root(&self) -> Option<&[u8]> {
        self.tls_root_certificate.as_deref()
    }

    pub(super) fn clock_in_use(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.clock)
    }

    /// The URL with its password replaced, for logs and `Debug`; for a
    /// cluster, `cluster:` and every seed.
    pub fn redacted_url(&self) -> String {
        if !self.cluster {
            return redact_password(&self.url);
        }
        let seeds: Vec<String> = self.seed_urls().map(redact_password).collect();
        format!("cluster:{}", seeds.join(","))
    }
}

impl fmt::Debug for RedisStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreConfig")
            .field("url", &self.redacted_url())
            .field("prefix", &self.prefix)
            .field("op_timeout", &self.op_timeout)
            .field("lock_ttl", &self.lock_ttl)
            .field("expiry_margin", &self.expiry_margin)
            .field("encryption_key", &self.encryption_key)
            .field("local_capacity", &self.local_capacity)
            .field("warning_interval", &self.warning_interval)
            .field("tls_root_certificate", &self.tls_root_certificate.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_builder() {
        let config = RedisStoreConfig::new("redis://127.0.0.1:6379".parse().unwrap());
        assert_eq!(config.key_prefix(), "m2m:token:");
        assert_eq!(config.operation_timeout(), Duration::from_millis(250));
        assert_eq!(config.lock_ttl_override(), None);
        assert_eq!(config.entry_expiry_margin(), Duration::from_secs(10));
        assert!(!config.encrypts());
        let config = config
            .prefix("p:")
            .op_timeout(Duration::ZERO)
            .lock_ttl(Duration::from_secs(5))
            .encryption_key(CacheEncryptionKey::from_bytes(&[3; 32]).unwrap());
        assert_eq!(config.key_prefix(), "p:");
        assert_eq!(config.operation_timeout(), Duration::from_millis(1));
        assert_eq!(config.lock_ttl_override(), Some(Duration::from_secs(5)));
        assert!(config.encrypts());
    }

    #[test]
    fn a_cluster_has_seeds_and_says_so_without_passwords() {
        let config = RedisStoreConfig::new("rediss://u:pw-one@node-a.test:6380".parse().unwrap());
        assert!(!config.is_cluster());
        assert_eq!(config.seed_urls().count(), 1);
        let config = config.cluster_seed("rediss://u:pw-two@node-b.test:6380".parse().unwrap());
        assert!(config.is_cluster());
        let debug = format!("{config:?}");
        assert!(!debug.contains("pw-"), "{debug}");
        assert!(
            debug.contains(
                "cluster:rediss://u:redacted@node-a.test:6380,rediss://u:redacted@node-b.test:6380"
            ),
            "{debug}"
        );
        assert!(!config.cluster(false).is_cluster());
    }

    #[test]
    fn debug_hides_the_password_and_the_key() {
        let config = RedisStoreConfig::new(
            "rediss://user:hunter2-redis-password@cache.test:6380/0"
                .parse()
                .unwrap(),
        )
        .encryption_key(CacheEncryptionKey::from_bytes(&[3; 32]).unwrap());
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(
            debug.contains("rediss://user:redacted@cache.test:6380/0"),
            "{debug}"
        );
        assert!(debug.contains("CacheEncryptionKey { id: "), "{debug}");
    }
}
