//! Counters of a token cache, readable at any time.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of a [`TokenCache`](crate::auth::TokenCache)'s counters since it was
/// created (all keys together).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Calls answered at once with a cached token (including those served
    /// while a background refresh was under way).
    pub hits: u64,
    /// Calls that found no usable token.
    pub misses: u64,
    /// Background refreshes started while the current token was still valid.
    pub background_refreshes: u64,
    /// Calls that waited for a fetch (or for a look in the store) to finish.
    pub waited: u64,
    /// Calls to the token endpoint (`FetchToken::fetch`).
    pub fetches: u64,
    /// Fetches that failed.
    pub fetch_failures: u64,
    /// Tokens taken from the store instead of fetched (another process or
    /// an earlier fetch had put them there).
    pub adopted: u64,
    /// Store operations that failed (the cache carried on without them).
    pub store_errors: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub background_refreshes: AtomicU64,
    pub waited: AtomicU64,
    pub fetches: AtomicU64,
    pub fetch_failures: AtomicU64,
    pub adopted: AtomicU64,
    pub store_errors: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            background_refreshes: self.background_refreshes.load(Relaxed),
            waited: self.waited.load(Relaxed),
            fetches: self.fetches.load(Relaxed),
            fetch_failures: self.fetch_failures.load(Relaxed),
            adopted: self.adopted.load(Relaxed),
            store_errors: self.store_errors.load(Relaxed),
        }
    }
}
