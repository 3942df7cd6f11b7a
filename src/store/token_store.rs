//! Where cached tokens live.
//!
//! The [`TokenCache`](super::TokenCache) decides *when* to fetch; a
//! [`TokenStore`] keeps the tokens. [`MemoryStore`] keeps them in this
//! process. A store shared between processes (Redis) implements the same
//! trait, keeps a small in-process tier for [`TokenStore::peek`], and may
//! implement [`TokenStore::try_lock`] so that only one process fetches;
//! [`FileStore`](super::FileStore) does so for the processes of one user.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http::HeaderValue;

use super::key::CacheKey;
use crate::future::BoxFuture;
use crate::oauth::error::SharedFailure;
use crate::oauth::token::AccessToken;

/// Storage for cached tokens, one per [`CacheKey`].
///
/// Contract for implementers:
/// - never log or put into an error a token value;
/// - `put` may keep the token longer than `ttl` (the cache checks expiry
///   itself), never shorter without reason: an evicted token is fetched again;
/// - `remove_if_same` must be atomic with respect to `put` (in Redis: a
///   compare-and-delete script), so a fresh token put by another caller is
///   never evicted in place of the rejected one.
pub trait TokenStore: Send + Sync + 'static {
    /// The token for `key` if the store can tell without I/O (an in-process
    /// tier), else `None`: the cache then calls [`TokenStore::get`] when it
    /// needs a token. This is the hot path of every call: no allocation, no
    /// waiting. The default knows nothing.
    fn peek(&self, key: &CacheKey) -> Option<AccessToken> {
        let _ = key;
        None
    }

    /// The token for `key`, expired or not, if the store has one.
    fn get<'a>(
        &'a self,
        key: &'a CacheKey,
    ) -> BoxFuture<'a, Result<Option<AccessToken>, StoreError>>;

    /// Stores `token` under `key`, replacing any other. `ttl` is how long
    /// the token stays valid (a shared store sets it as the entry's TTL).
    fn put<'a>(
        &'a self,
        key: &'a CacheKey,
        token: &'a AccessToken,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Removes the token for `key`, whatever it is.
    fn remove<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Removes the token for `key` only if it is still the one sent as
    /// `rejected` ([`AccessToken::is_sent_as`]); `true` if it was removed.
    fn remove_if_same<'a>(
        &'a self,
        key: &'a CacheKey,
        rejected: &'a HeaderValue,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Tries to become the one fetcher of a new token for `key`, for at most
    /// `ttl`: `Some(lock)` if granted, `None` if another holder has it (the
    /// cache then watches the store for that holder's token, as long as the
    /// lock is held). A shared store implements it with `SET key NX PX ttl`
    /// and a random owner, and says which TTL it granted
    /// ([`StoreLock::with_ttl`]) if it is not `ttl`. The default always
    /// grants a local lock: within one process the cache already fetches
    /// once per key.
    fn try_lock<'a>(
        &'a self,
        key: &'a CacheKey,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<StoreLock>, StoreError>> {
        let _ = (key, ttl);
        Box::pin(std::future::ready(Ok(Some(StoreLock::local()))))
    }

    /// Keeps a lock from [`TokenStore::try_lock`] for another `ttl` from
    /// now, only if it is still held by `lock`'s owner: `false` if it was
    /// lost (it expired, and may have passed to another). The cache calls
    /// it every third of the lock's TTL while its fetch runs, so a lock
    /// never expires under a live holder however long the fetch takes,
    /// and a holder that died frees it within one TTL. The default (a local
    /// lock) has nothing to renew.
    fn extend_lock<'a>(
        &'a self,
        key: &'a CacheKey,
        lock: &'a StoreLock,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let _ = (key, lock, ttl);
        Box::pin(std::future::ready(Ok(true)))
    }

    /// Shares, for `ttl`, how the fetch of the refresh lock's holder
    /// failed: the processes watching for its token fail with it at once,
    /// and so do those that come for the lock within `ttl`, instead of each
    /// asking the token endpoint again. A shared store keeps it next to the
    /// token and the lock, and drops it when a token is `put`. The default
    /// (one process) shares nothing: the cache's single flight already
    /// hands the failure to every caller.
    fn put_failure<'a>(
        &'a self,
        key: &'a CacheKey,
        failure: &'a SharedFailure,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let _ = (key, failure, ttl);
        Box::pin(std::future::ready(Ok(())))
    }

    /// The failure a lock holder shared less than its TTL ago, if any.
    fn failure<'a>(
        &'a self,
        key: &'a CacheKey,
    ) -> BoxFuture<'a, Result<Option<SharedFailure>, StoreError>> {
        let _ = key;
        Box::pin(std::future::ready(Ok(None)))
    }

    /// Releases a lock from [`TokenStore::try_lock`], only if it is still
    /// held by `lock`'s owner (it may have expired and passed to another).
    fn unlock<'a>(
        &'a self,
        key: &'a CacheKey,
        lock: StoreLock,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let _ = (key, lock);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// A granted refresh lock: who holds it, and for how long the store keeps
/// it without renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLock {
    owner: Option<String>,
    ttl: Option<Duration>,
}

impl StoreLock {
    /// A lock that exists only in this process (nothing to release).
    pub fn local() -> Self {
        Self {
            owner: None,
            ttl: None,
        }
    }

    /// A lock held in a shared store under the random `owner` value.
    pub fn owned(owner: impl Into<String>) -> Self {
        Self {
            owner: Some(owner.into()),
            ttl: None,
        }
    }

    /// The same lock, granted for `ttl` (when the store did not grant the
    /// TTL it was asked for).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The owner value of a shared lock; `None` for a local one.
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// The TTL the store granted, when it says (else the one asked for).
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
    }
}

/// A store operation failed. The cache logs it, counts it and carries on
/// (fetching instead of reading, serving instead of storing).
///
/// Messages and sources must never contain a token.
#[derive(Debug, Clone, thiserror::Error)]
#[error("token store failed: {message}")]
pub struct StoreError {
    message: String,
    #[source]
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

impl StoreError {
    /// A failure described by `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// A failure caused by `source` (e.g. the Redis client's error).
    pub fn with_source(
        message: impl Into<String>,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }
}

/// Tokens in this process, at most `capacity` keys.
///
/// Reads take a shared lock and clone the token (a reference count): no
/// allocation, no write in the steady state. When a new key would exceed the
/// capacity, the least recently used key goes (ties: the one expiring first).
pub struct MemoryStore {
    capacity: usize,
    entries: RwLock<HashMap<CacheKey, Entry>>,
    /// Advances on every write; a read stamps its entry with it, so recency
    /// is known to within one write without a write on every read.
    epoch: AtomicU64,
}

struct Entry {
    token: AccessToken,
    last_used: AtomicU64,
}

impl MemoryStore {
    /// The capacity of [`MemoryStore::default`].
    pub const DEFAULT_CAPACITY: usize = 1024;

    /// A store for at most `capacity` keys (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: RwLock::new(HashMap::new()),
            epoch: AtomicU64::new(0),
        }
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most keys it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn lookup(&self, key: &CacheKey) -> Option<AccessToken> {
        let entries = self.read();
        let entry = entries.get(key)?;
        let epoch = self.epoch.load(Relaxed);
        if entry.last_used.load(Relaxed) != epoch {
            entry.last_used.store(epoch, Relaxed);
        }
        Some(entry.token.clone())
    }

    /// Removes `key`, whatever its token.
    pub(crate) fn forget(&self, key: &CacheKey) {
        self.write().remove(key);
    }

    pub(crate) fn insert(&self, key: &CacheKey, token: &AccessToken) {
        let mut entries = self.write();
        let epoch = self.epoch.fetch_add(1, Relaxed) + 1;
        if !entries.contains_key(key) && entries.len() >= self.capacity {
            let oldest = entries
                .iter()
                .min_by_key(|(_, e)| (e.last_used.load(Relaxed), e.token.expires_at()))
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
                tracing::debug!(
                    key = oldest.short(),
                    "token store full: least recently used key evicted"
                );
            }
        }
        entries.insert(
            key.clone(),
            Entry {
                token: token.clone(),
                last_used: AtomicU64::new(epoch),
            },
        );
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<CacheKey, Entry>> {
        // Every critical section leaves the map whole: poisoning is ignored.
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<CacheKey, Entry>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl TokenStore for MemoryStore {
    fn peek(&self, key: &CacheKey) -> Option<AccessToken> {
        self.lookup(key)
    }

    fn get<'a>(
        &'a self,
        key: &'a CacheKey,
    ) -> BoxFuture<'a, Result<Option<AccessToken>, StoreError>> {
        Box::pin(std::future::ready(Ok(self.lookup(key))))
    }

    fn put<'a>(
        &'a self,
        key: &'a CacheKey,
        token: &'a AccessToken,
        _ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.insert(key, token);
        Box::pin(std::future::ready(Ok(())))
    }

    fn remove<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<(), StoreError>> {
        self.forget(key);
        Box::pin(std::future::ready(Ok(())))
    }

    fn remove_if_same<'a>(
        &'a self,
        key: &'a CacheKey,
        rejected: &'a HeaderValue,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let mut entries = self.write();
        let same = entries
            .get(key)
            .is_some_and(|entry| entry.token.is_sent_as(rejected));
        if same {
            entries.remove(key);
        }
        Box::pin(std::future::ready(Ok(same)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;
    use std::time::SystemTime;

    fn key(n: usize) -> CacheKey {
        CacheKey::new(
            "Custom",
            "https://idp.test/token",
            &format!("client-{n}"),
            ["s"],
            None,
        )
    }

    fn token(value: &str, expires_in: u64) -> AccessToken {
        let expires_at = SystemTime::UNIX_EPOCH + Duration::from_secs(expires_in);
        AccessToken::new(SecretString::from(value), "Bearer", expires_at, None).unwrap()
    }

    fn put(store: &MemoryStore, n: usize, value: &str) {
        store.insert(&key(n), &token(value, 100));
    }

    #[test]
    fn keeps_at_most_capacity_and_evicts_the_least_recently_used() {
        let store = MemoryStore::with_capacity(3);
        put(&store, 1, "one");
        put(&store, 2, "two");
        put(&store, 3, "three");
        // Key 1 is read after key 2 was written: key 2 is now the oldest.
        assert!(store.peek(&key(1)).is_some());
        put(&store, 4, "four");
        assert_eq!(store.len(), 3);
        assert!(store.peek(&key(2)).is_none());
        for n in [1, 3, 4] {
            assert!(store.peek(&key(n)).is_some(), "key {n}");
        }
    }

    #[test]
    fn replacing_a_key_does_not_evict() {
        let store = MemoryStore::with_capacity(2);
        put(&store, 1, "one");
        put(&store, 2, "two");
        put(&store, 2, "two-again");
        assert_eq!(store.len(), 2);
        let again = token("two-again", 100);
        assert!(
            store
                .peek(&key(2))
                .unwrap()
                .is_sent_as(again.authorization())
        );
    }

    #[tokio::test]
    async fn remove_if_same_spares_a_newer_token() {
        let store = MemoryStore::default();
        let old = token("old", 100);
        store.insert(&key(1), &token("new", 200));
        assert!(
            !store
                .remove_if_same(&key(1), old.authorization())
                .await
                .unwrap()
        );
        assert_eq!(store.len(), 1);
        let new = token("new", 200);
        assert!(
            store
                .remove_if_same(&key(1), new.authorization())
                .await
                .unwrap()
        );
        assert!(store.is_empty());
    }

    #[test]
    fn debug_shows_no_token() {
        let store = MemoryStore::default();
        store.insert(&key(1), &token("memory-store-secret", 100));
        let debug = format!("{store:?}");
        assert!(!debug.contains("memory-store-secret"), "{debug}");
        assert_eq!(debug, "MemoryStore { capacity: 1024, len: 1 }");
    }
}
