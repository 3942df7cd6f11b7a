//! The fleet-wide token store (feature `redis`): see [`RedisStore`].

mod config;
mod connection;
mod failure;
mod health;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::HeaderValue;
use redis::{Cmd, RedisResult};

pub use config::RedisStoreConfig;
use connection::Connection;
use health::Health;

use super::encryption::{self, CacheEncryptionKey};
use super::envelope::{self, Codec};
use super::key::CacheKey;
use super::token_store::{MemoryStore, StoreError, StoreLock, TokenStore};
use crate::future::BoxFuture;
use crate::oauth::error::SharedFailure;
use crate::oauth::token::AccessToken;
use crate::time::clock::Clock;

// Every script names each key it touches in KEYS, and every call passes
// keys of one token only: `{prefix}{<hash>}`, the same and `:lock`, the
// same and `:failure`. They share the `{<hash>}` hash tag (a prefix may not
// hold braces on a cluster), so a script never spans two Redis Cluster
// slots (no CROSSSLOT) and runs on the node that holds the token.
// They are sent with EVAL, not EVALSHA: a few dozen bytes more, and no
// NOSCRIPT round trip on a new primary after a failover (its script cache
// is empty), nor a SCRIPT LOAD that a cluster client sends to every
// primary (and that fails while one of them is down).

/// Deletes `KEYS[1]` only if it still holds `ARGV[1]`: releases a lock only
/// for its owner, evicts a token only if it is still the rejected one.
const COMPARE_AND_DELETE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Sets `KEYS[1]`'s TTL to `ARGV[2]` ms only if it still holds `ARGV[1]`:
/// keeps a refresh lock alive for its owner only.
const COMPARE_AND_EXPIRE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Stores a token in `KEYS[1]` (`ARGV[1]`, for `ARGV[2]` ms) and deletes
/// the failure shared in `KEYS[2]`: a token supersedes a shared failure.
const STORE_TOKEN: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
return 1
";

/// The wait between two releases of a lock whose request failed.
const ORPHAN_RETRY: Duration = Duration::from_millis(500);

/// A [`TokenStore`] shared by every process that uses the same Redis and
/// prefix: Redis behind an in-process tier, so every process of a service
/// shares one token per key and one fetch per token lifetime (feature `redis`).
/// Share one per process in an `Arc` (as
/// [`TokenCache::new`](crate::auth::TokenCache::new) takes it): it holds one
/// multiplexed connection that reconnects by itself.
///
/// ```no_run
/// # use std::sync::Arc;
/// # use m2m::auth::{Auth, CacheKey, CacheSettings, FetchToken, RedisStore, RedisStoreConfig, TokenCache};
/// # use m2m::auth::clock::{RandomJitter, SystemClock};
/// # async fn wire(fetcher: Arc<dyn FetchToken>) -> Result<(), Box<dyn std::error::Error>> {
/// let config = RedisStoreConfig::new("redis://127.0.0.1:6379".parse()?).encryption_key_from_env()?;
/// let store = RedisStore::connect(config).await?;
/// let cache = TokenCache::new(Arc::new(store), Arc::new(SystemClock), Arc::new(RandomJitter), CacheSettings::default());
/// let key = CacheKey::new("Cenda", "https://login.example/token", "client-id", ["api/.default"], None);
/// let auth = Auth::from_source(cache.source(key, fetcher));
/// # Ok(()) }
/// ```
///
/// - **Reads**: [`TokenStore::peek`] answers from the in-process tier, so
///   a hot call never touches Redis; [`TokenStore::get`] reads Redis and
///   keeps what it finds in the in-process tier.
/// - **Keys**: the prefix (`m2m:token:`) and the [`CacheKey`]'s SHA-256 form
///   in braces, so no secret is ever in a key; the refresh lock is the same
///   key and `:lock`, a failure shared by the lock holder the same and
///   `:failure`. The braces are a Redis Cluster hash tag: the three keys of
///   a token live in one slot.
/// - **Values**: versioned JSON, the access token AES-256-GCM encrypted when a
///   [`CacheEncryptionKey`] is configured (a loud warning at start-up
///   otherwise). They expire with their token, less a margin. A value that
///   does not read back (garbage, another format version, another key) is a
///   miss, and the next token overwrites it.
/// - **One fetch across the fleet**: [`TokenStore::try_lock`] is
///   `SET key:lock <random owner> NX PX <ttl>`, then a look at the token: if
///   a token newer than this process knows was stored meanwhile (the last
///   holder finished between the caller's look and the grant), the lock is
///   handed back and `None` returned, so the cache takes that token instead
///   of fetching again. [`TokenStore::unlock`] and
///   [`TokenStore::remove_if_same`] are compare-and-delete Lua scripts,
///   [`TokenStore::extend_lock`] a compare-and-expire one. The holder keeps
///   its lock alive while it fetches; the cache's callers that do not get
///   the lock watch Redis for the holder's token, or for the failure it
///   shares ([`TokenStore::put_failure`]: its error, for the backoff, so
///   the whole fleet fails at once instead of each process asking the token
///   endpoint again); a holder that dies is replaced when its lock expires.
/// - **Redis Cluster** ([`RedisStoreConfig::cluster`]): each key goes to
///   the node of its slot; every script names its keys, all of one token,
///   so none spans two slots; `MOVED`/`ASK` are followed. A failover that
///   loses the lock (the replica had not received it) allows one more
///   fetch; while a slot has no primary, the store is unavailable (below).
/// - **Redis down or slow**: every operation is cut at the operation timeout
///   (250 ms) and fails with a [`StoreError`]; the cache then fetches by
///   itself (one fetch per key per process) and serves from the in-process
///   tier. Warnings are rate-limited. The connection is re-established in the
///   background, and Redis is used again as soon as it answers.
pub struct RedisStore {
    local: MemoryStore,
    redis: Connection,
    prefix: String,
    op_timeout: Duration,
    lock_ttl: Option<Duration>,
    expiry_margin: Duration,
    codec: Codec,
    encrypted: bool,
    health: Health,
    clock: Arc<dyn Clock>,
    redacted_url: String,
}

impl RedisStore {
    /// Connects to Redis and checks that it answers (`PING` within the
    /// operation timeout).
    ///
    /// Fails if the URL is not a Redis URL, the TLS settings are invalid,
    /// or Redis does not answer: a service that must start without Redis
    /// can use [`RedisStore::connect_lazy`] instead (or fall back to a
    /// [`MemoryStore`]). Must be called within a Tokio runtime, which then
    /// runs the connection.
    pub async fn connect(config: RedisStoreConfig) -> Result<Self, StoreError> {
        let store = Self::connect_lazy(config).await?;
        store.ping().await?;
        tracing::info!(url = %store.redacted_url, prefix = %store.prefix, encrypted = store.encrypted,
            "Redis token store connected");
        Ok(store)
    }

    /// Like [`RedisStore::connect`], without waiting for Redis: the
    /// connection is made on first use, and until Redis answers every
    /// operation fails (the cache then works per process). Fails only for
    /// an invalid URL or TLS settings, or outside a Tokio runtime.
    pub async fn connect_lazy(config: RedisStoreConfig) -> Result<Self, StoreError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StoreError::new(
                "the Redis token store needs a Tokio runtime",
            ));
        }
        if config.is_cluster() && config.key_prefix().contains(['{', '}']) {
            // A brace in the prefix would change the hash tag: a token, its
            // lock and its failure could land in different slots.
            return Err(StoreError::new(
                "a Redis Cluster key prefix may not contain `{` or `}`",
            ));
        }
        let redacted_url = config.redacted_url();
        let redis = Connection::open_lazy(&config)?;
        let key = config.key();
        if key.is_none() {
            tracing::warn!(
                url = %redacted_url,
                env = CacheEncryptionKey::ENV_VAR,
                "no cache encryption key: access tokens are stored in Redis in CLEAR TEXT, \
                 readable by anyone who can read Redis; set a 32-byte base64 key \
                 (`openssl rand -base64 32`) in M2M_CACHE_KEY for every process of the fleet"
            );
        }
        Ok(Self {
            local: MemoryStore::with_capacity(config.capacity()),
            redis,
            prefix: config.key_prefix().to_owned(),
            op_timeout: config.operation_timeout(),
            lock_ttl: config.lock_ttl_override(),
            expiry_margin: config.entry_expiry_margin(),
            encrypted: key.is_some(),
            codec: Codec::new(key),
            health: Health::new(config.warnings_every()),
            clock: config.clock_in_use(),
            redacted_url,
        })
    }

    /// The Redis key a token for `key` is stored under: the prefix and the
    /// key's hashed form as a `{…}` hash tag, which the lock and the
    /// failure keys share, so that all three live in one Redis Cluster
    /// slot.
    pub fn token_key(&self, key: &CacheKey) -> String {
        format!("{}{{{}}}", self.prefix, key.as_str())
    }

    /// The Redis key of the refresh lock for `key`.
    pub fn lock_key(&self, key: &CacheKey) -> String {
        format!("{}:lock", self.token_key(key))
    }

    /// The Redis key where the lock holder shares a failed fetch for `key`.
    pub fn failure_key(&self, key: &CacheKey) -> String {
        format!("{}:failure", self.token_key(key))
    }

    /// Whether tokens are encrypted at rest.
    pub fn encrypts(&self) -> bool {
        self.encrypted
    }

    /// The in-process tier (what [`TokenStore::peek`] answers from).
    pub fn local(&self) -> &MemoryStore {
        &self.local
    }

    /// Asks Redis for `PONG`, within the operation timeout.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut redis = self.redis.clone();
        let pong: String = self
            .run("PING", redis::cmd("PING").query_async(&mut redis))
            .await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::new("Redis answered PING with something else"))
        }
    }

    /// Runs one Redis operation within the timeout, and tells [`Health`].
    async fn run<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        let error = match tokio::time::timeout(self.op_timeout, call).await {
            Ok(Ok(value)) => {
                self.health.succeeded();
                return Ok(value);
            }
            Ok(Err(error)) => {
                StoreError::with_source(format!("Redis {operation} failed: {error}"), error)
            }
            Err(_) => StoreError::new(format!(
                "Redis {operation} timed out after {:?}",
                self.op_timeout
            )),
        };
        self.health.failed(operation, &error);
        Err(error)
    }

    async fn read(&self, key: &CacheKey) -> Result<Option<AccessToken>, StoreError> {
        let token_key = self.token_key(key);
        let mut redis = self.redis.clone();
        let raw: Option<Vec<u8>> = self
            .run(
                "GET",
                redis::cmd("GET").arg(&token_key).query_async(&mut redis),
            )
            .await?;
        let Some(raw) = raw else { return Ok(None) };
        match self.codec.decode(key, &raw) {
            Ok(token) => Ok(Some(token)),
            Err(reason) => {
                self.health.unreadable(&token_key, &reason);
                Ok(None)
            }
        }
    }

    /// The later of the Redis and the in-process token; the in-process tier
    /// learns a later one from Redis.
    async fn get_token(&self, key: &CacheKey) -> Result<Option<AccessToken>, StoreError> {
        let shared = self.read(key).await?;
        let local = self.local.peek(key);
        Ok(match (shared, local) {
            (Some(shared), Some(local)) if !is_later(&shared, &local) => Some(local),
            (Some(shared), _) => {
                self.remember(key, &shared).await;
                Some(shared)
            }
            (None, local) => local,
        })
    }

    async fn remember(&self, key: &CacheKey, token: &AccessToken) {
        let ttl = remaining(token, self.clock.now());
        // The in-process tier never fails.
        let _ = self.local.put(key, token, ttl).await;
    }

    async fn put_token(
        &self,
        key: &CacheKey,
        token: &AccessToken,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.local.put(key, token, ttl).await?;
        let Some(entry_ttl) = ttl
            .checked_sub(self.expiry_margin)
            .filter(|left| *left >= Duration::from_millis(1))
        else {
            tracing::debug!(
                key = key.short(),
                ?ttl,
                "token too close to expiry: kept in process, not written to Redis"
            );
            return Ok(());
        };
        let value = self.codec.encode(key, token)?;
        let mut redis = self.redis.clone();
        let _: i64 = self
            .run(
                "EVAL store-token",
                eval(STORE_TOKEN, &[&self.token_key(key), &self.failure_key(key)])
                    .arg(value)
                    .arg(millis(entry_ttl))
                    .query_async(&mut redis),
            )
            .await?;
        Ok(())
    }

    async fn share_failure(
        &self,
        key: &CacheKey,
        failure: &SharedFailure,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut redis = self.redis.clone();
        self.run(
            "SET failure",
            redis::cmd("SET")
                .arg(self.failure_key(key))
                .arg(failure::encode(failure))
                .arg("PX")
                .arg(millis(ttl))
                .query_async(&mut redis),
        )
        .await
    }

    async fn shared_failure(&self, key: &CacheKey) -> Result<Option<SharedFailure>, StoreError> {
        let mut redis = self.redis.clone();
        let raw: Option<Vec<u8>> = self
            .run(
                "GET failure",
                redis::cmd("GET")
                    .arg(self.failure_key(key))
                    .query_async(&mut redis),
            )
            .await?;
        Ok(raw.as_deref().and_then(failure::decode))
    }

    async fn remove_token(&self, key: &CacheKey) -> Result<(), StoreError> {
        self.local.remove(key).await?;
        let mut redis = self.redis.clone();
        let _: i64 = self
            .run(
                "DEL",
                redis::cmd("DEL")
                    .arg(self.token_key(key))
                    .query_async(&mut redis),
            )
            .await?;
        Ok(())
    }

    async fn remove_token_if_same(
        &self,
        key: &CacheKey,
        rejected: &HeaderValue,
    ) -> Result<bool, StoreError> {
        let removed_here = self.local.remove_if_same(key, rejected).await?;
        let token_key = self.token_key(key);
        let mut redis = self.redis.clone();
        let raw: Option<Vec<u8>> = self
            .run(
                "GET",
                redis::cmd("GET").arg(&token_key).query_async(&mut redis),
            )
            .await?;
        let same = raw.as_deref().is_some_and(|raw| {
            self.codec
                .decode(key, raw)
                .is_ok_and(|token| token.is_sent_as(rejected))
        });
        if !same {
            return Ok(removed_here);
        }
        // Deletes only the exact value read: a token stored meanwhile stays.
        let deleted: i64 = self
            .run(
                "EVAL compare-and-delete",
                eval(COMPARE_AND_DELETE, &[&token_key])
                    .arg(raw)
                    .query_async(&mut redis),
            )
            .await?;
        Ok(removed_here || deleted == 1)
    }

    async fn lock(&self, key: &CacheKey, ttl: Duration) -> Result<Option<StoreLock>, StoreError> {
        let ttl = self.lock_ttl.unwrap_or(ttl);
        let owner = random_owner()?;
        let mut redis = self.redis.clone();
        let granted: Option<String> = match self
            .run(
                "SET NX",
                redis::cmd("SET")
                    .arg(self.lock_key(key))
                    .arg(&owner)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(ttl))
                    .query_async(&mut redis),
            )
            .await
        {
            Ok(granted) => granted,
            Err(error) => {
                self.release_orphan(key, owner, ttl);
                return Err(error);
            }
        };
        if granted.is_none() {
            return Ok(None);
        }
        let lock = StoreLock::owned(owner).with_ttl(ttl);
        // The previous holder may have stored its token and released the
        // lock between the caller's look in the store and this grant: then
        // there is nothing to fetch. Decline; the cache's first look at the
        // store finds that token.
        let known = self.local.peek(key);
        match self.read(key).await {
            Ok(Some(stored)) if known.is_none_or(|known| is_later(&stored, &known)) => {
                tracing::debug!(
                    key = key.short(),
                    "a newer token was stored just before the refresh lock was granted: not fetching"
                );
                self.release(key, lock).await?;
                Ok(None)
            }
            _ => Ok(Some(lock)),
        }
    }

    /// A lock request that failed (timed out, most likely) may still reach
    /// a slow Redis later and hold the lock nobody will release: release it
    /// in the background as soon as Redis answers, for at most its TTL.
    /// Answers come in order on a connection, so once one arrives, the lock
    /// request sent before it has been handled; a second release a moment
    /// later covers a request stuck on a connection that was replaced.
    fn release_orphan(&self, key: &CacheKey, owner: String, ttl: Duration) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut redis = self.redis.clone();
        let release = eval(COMPARE_AND_DELETE, &[&self.lock_key(key)])
            .arg(owner)
            .clone();
        let retry = self.op_timeout.max(ORPHAN_RETRY);
        // At most an hour of tries, whatever the TTL (it is the user's).
        let tries_for = ttl.min(Duration::from_secs(3600));
        runtime.spawn(async move {
            let deadline = tokio::time::Instant::now() + tries_for;
            let mut answered = 0;
            while answered < 2 && tokio::time::Instant::now() < deadline {
                let attempt = release.query_async::<i64>(&mut redis);
                if let Ok(Ok(_)) = tokio::time::timeout_at(deadline, attempt).await {
                    answered += 1;
                }
                tokio::time::sleep(retry).await;
            }
        });
    }

    async fn extend(
        &self,
        key: &CacheKey,
        lock: &StoreLock,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let Some(owner) = lock.owner() else {
            return Ok(true);
        };
        let ttl = self.lock_ttl.unwrap_or(ttl);
        let mut redis = self.redis.clone();
        let extended: i64 = self
            .run(
                "EVAL compare-and-expire",
                eval(COMPARE_AND_EXPIRE, &[&self.lock_key(key)])
                    .arg(owner)
                    .arg(millis(ttl))
                    .query_async(&mut redis),
            )
            .await?;
        Ok(extended == 1)
    }

    async fn release(&self, key: &CacheKey, lock: StoreLock) -> Result<(), StoreError> {
        let Some(owner) = lock.owner() else {
            return Ok(());
        };
        let mut redis = self.redis.clone();
        let released: i64 = self
            .run(
                "EVAL compare-and-delete",
                eval(COMPARE_AND_DELETE, &[&self.lock_key(key)])
                    .arg(owner)
                    .query_async(&mut redis),
            )
            .await?;
        if released == 0 {
            tracing::debug!(
                key = key.short(),
                "refresh lock had expired (and may be held by another process): left alone"
            );
        }
        Ok(())
    }
}

impl TokenStore for RedisStore {
    fn peek(&self, key: &CacheKey) -> Option<AccessToken> {
        self.local.peek(key)
    }

    fn get<'a>(
        &'a self,
        key: &'a CacheKey,
    ) -> BoxFuture<'a, Result<Option<AccessToken>, StoreError>> {
        Box::pin(self.get_token(key))
    }

    fn put<'a>(
        &'a self,
        key: &'a CacheKey,
        token: &'a AccessToken,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.put_token(key, token, ttl))
    }

    fn remove<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.remove_token(key))
    }

    fn remove_if_same<'a>(
        &'a self,
        key: &'a CacheKey,
        rejected: &'a HeaderValue,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.remove_token_if_same(key, rejected))
    }

    fn try_lock<'a>(
        &'a self,
        key: &'a CacheKey,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<StoreLock>, StoreError>> {
        Box::pin(self.lock(key, ttl))
    }

    fn extend_lock<'a>(
        &'a self,
        key: &'a CacheKey,
        lock: &'a StoreLock,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.extend(key, lock, ttl))
    }

    fn put_failure<'a>(
        &'a self,
        key: &'a CacheKey,
        failure: &'a SharedFailure,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.share_failure(key, failure, ttl))
    }

    fn failure<'a>(
        &'a self,
        key: &'a CacheKey,
    ) -> BoxFuture<'a, Result<Option<SharedFailure>, StoreError>> {
        Box::pin(self.shared_failure(key))
    }

    fn unlock<'a>(
        &'a self,
        key: &'a CacheKey,
        lock: StoreLock,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.release(key, lock))
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.redacted_url)
            .field("prefix", &self.prefix)
            .field("op_timeout", &self.op_timeout)
            .field("encrypted", &self.encrypted)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

/// `EVAL script <number of keys> keys…`; the caller adds the arguments.
/// A cluster client sends it to the node of the first key.
fn eval(script: &str, keys: &[&str]) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len()).arg(keys);
    cmd
}

/// Whether `a` expires later than `b` (tokens are told apart by expiry;
/// Redis keeps milliseconds).
fn is_later(a: &AccessToken, b: &AccessToken) -> bool {
    envelope::to_unix_ms(a.expires_at()) > envelope::to_unix_ms(b.expires_at())
}

/// What is left of `token` at `now` (the injected clock's).
fn remaining(token: &AccessToken, now: SystemTime) -> Duration {
    token.expires_at().duration_since(now).unwrap_or_default()
}

/// Whole milliseconds, at least one (Redis refuses `PX 0`).
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// 128 random bits in hex: the owner value of a refresh lock.
fn random_owner() -> Result<String, StoreError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| StoreError::new("no randomness for the lock owner"))?;
    Ok(encryption::to_hex(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> RedisStoreConfig {
        RedisStoreConfig::new(url.parse().unwrap())
    }

    /// Issue 11, item 11: what is left of a token read from Redis was
    /// measured on `SystemTime::now()`, not on the injected clock.
    #[tokio::test]
    async fn what_is_left_of_a_token_is_measured_on_the_injected_clock() {
        use crate::auth::clock::ManualClock;
        use secrecy::SecretString;
        // A clock 30 years before the machine's: a token expiring 10 minutes
        // after it has 10 minutes left on it, and none on the system clock.
        let past = SystemTime::UNIX_EPOCH + Duration::from_secs(600_000_000);
        let clock = Arc::new(ManualClock::new(past));
        let store = RedisStore::connect_lazy(config("redis://127.0.0.1:1/").clock(clock.clone()))
            .await
            .unwrap();
        let token = AccessToken::new(
            SecretString::from("t"),
            "Bearer",
            past + Duration::from_secs(600),
            None,
        )
        .unwrap();
        assert_eq!(
            remaining(&token, store.clock.now()),
            Duration::from_secs(600)
        );
        clock.advance(Duration::from_secs(60));
        assert_eq!(
            remaining(&token, store.clock.now()),
            Duration::from_secs(540)
        );
    }

    #[test]
    fn outside_a_tokio_runtime_it_fails_instead_of_panicking() {
        let error =
            futures::executor::block_on(RedisStore::connect_lazy(config("redis://127.0.0.1:6379")))
                .unwrap_err();
        assert_eq!(
            error.to_string(),
            "token store failed: the Redis token store needs a Tokio runtime"
        );
    }

    #[tokio::test]
    async fn a_url_that_is_not_redis_is_refused_without_echoing_its_password() {
        let error = RedisStore::connect_lazy(config("http://user:url-password@cache.test/"))
            .await
            .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("invalid Redis settings"), "{message}");
        assert!(!message.contains("url-password"), "{message}");
    }

    #[tokio::test]
    async fn keys_are_the_prefix_and_the_hashed_cache_key() {
        let store = RedisStore::connect_lazy(config("redis://127.0.0.1:1/").prefix("env-a:"))
            .await
            .unwrap();
        let key = CacheKey::new("Cenda", "https://login.test/t", "client-id", ["s"], None);
        // One hash tag for the three keys of a token: one Cluster slot.
        assert_eq!(store.token_key(&key), format!("env-a:{{{}}}", key.as_str()));
        assert_eq!(
            store.lock_key(&key),
            format!("env-a:{{{}}}:lock", key.as_str())
        );
        assert_eq!(
            store.failure_key(&key),
            format!("env-a:{{{}}}:failure", key.as_str())
        );
        assert!(!store.token_key(&key).contains("client-id"));
        assert!(!store.encrypts());
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_micros(2_500)), 2);
        let owner = random_owner().unwrap();
        assert_eq!(owner.len(), 32);
        assert_ne!(owner, random_owner().unwrap());
    }
}
