//! The token cache: one fetch per key at a time, refresh ahead of expiry in
//! the background, a still-valid token served through endpoint outages,
//! backoff between failed attempts (at least the `Retry-After` a throttled
//! fetch was given, for every source of the key), and eviction of a
//! rejected token only if it is still the cached one.
//!
//! A [`TokenCache`] is shared (clone it freely); [`TokenCache::source`] binds
//! a [`CacheKey`] and a [`FetchToken`] into a [`CachedTokenSource`], the
//! [`TokenSource`] behind an [`Auth`](crate::auth::Auth) handle:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use m2m::auth::{Auth, CacheKey, FetchToken, TokenCache};
//! # fn wire(fetcher: Arc<dyn FetchToken>) {
//! let cache = TokenCache::in_memory();
//! let key = CacheKey::new("Cenda", "https://login.example/token", "client-id", ["api/.default"], None);
//! let auth = Auth::from_source(cache.source(key, fetcher));
//! # }
//! ```
//!
//! How a call goes: the store is peeked (no I/O, no allocation). A token
//! before its refresh time is returned at once. A token past its refresh
//! time but still usable is returned at once too, and a background fetch is
//! started unless one is under way or the last failure's backoff has not
//! passed. With no usable token, the caller waits for the one fetch of the
//! key (started if needed); every caller waiting for it gets its result.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

use http::HeaderValue;
use tokio::runtime::Handle;

use super::flight::{self, FlightKind};
use super::key_state::{self, Evictions, FlightEnd, KeyState, Waited};
use super::observer::CacheObserver;
use super::settings::{CacheSettings, Standing};
use super::shared::{Shared, store_failed};
use super::stats::{CacheStats, Counters};
use super::token_source::TokenSource;
use crate::endpoint::fetch_token::FetchToken;
use crate::future::BoxFuture;
use crate::metrics::MetricLabels;
use crate::oauth::error::{AuthError, UnfinishedFetch};
use crate::oauth::token::AccessToken;
use crate::store::key::CacheKey;
use crate::store::token_store::{MemoryStore, StoreError, TokenStore};
use crate::time::clock::{Clock, Jitter, RandomJitter, SystemClock};

/// A shared token cache over a [`TokenStore`]. Cloning shares it.
#[derive(Clone)]
pub struct TokenCache {
    shared: Arc<Shared>,
}

impl TokenCache {
    /// A cache over `store`, reading time from `clock` and drawing refresh
    /// jitter from `jitter`.
    pub fn new(
        store: Arc<dyn TokenStore>,
        clock: Arc<dyn Clock>,
        jitter: Arc<dyn Jitter>,
        settings: CacheSettings,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                store,
                clock,
                jitter,
                settings,
                counters: Counters::default(),
                keys: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A cache in this process ([`MemoryStore::default`]) with the system
    /// clock, random jitter and default settings.
    pub fn in_memory() -> Self {
        Self::new(
            Arc::new(MemoryStore::default()),
            Arc::new(SystemClock),
            Arc::new(RandomJitter),
            CacheSettings::default(),
        )
    }

    /// Binds `key` and the `fetcher` that obtains its tokens into a token
    /// source. Sources bound to the same key share its tokens, its single
    /// fetch and its backoff (whichever source starts a fetch, its fetcher
    /// is used).
    ///
    /// Its metrics (feature `metrics`) name the client after the host of
    /// the key's token endpoint; [`CachedTokenSource::with_name`] names it.
    pub fn source(&self, key: CacheKey, fetcher: Arc<dyn FetchToken>) -> CachedTokenSource {
        let mut keys = self.shared.keys.lock().unwrap_or_else(|e| e.into_inner());
        let state = match keys.get(&key).and_then(Weak::upgrade) {
            Some(state) => state,
            None => {
                keys.retain(|_, state| state.strong_count() > 0);
                let state = Arc::new(KeyState::new(key.clone()));
                state
                    .credential_epoch
                    .store(fetcher.credential_epoch(), Ordering::Release);
                keys.insert(key, Arc::downgrade(&state));
                state
            }
        };
        let labels = MetricLabels::for_token_url(state.key.token_endpoint(), state.key.provider());
        CachedTokenSource {
            shared: Arc::clone(&self.shared),
            state,
            fetcher,
            observer: Arc::new(CacheObserver::new(&labels)),
            labels,
        }
    }

    /// Forgets the token of `key`: the next call fetches a new one.
    pub async fn invalidate(&self, key: &CacheKey) -> Result<(), StoreError> {
        let state = {
            let keys = self.shared.keys.lock().unwrap_or_else(|e| e.into_inner());
            keys.get(key).and_then(Weak::upgrade)
        };
        if let Some(state) = state {
            state.evict_fresh(&mut state.lock(), None);
        }
        self.shared.store.remove(key).await
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        self.shared.counters.snapshot()
    }

    /// The settings the cache was made with.
    pub fn settings(&self) -> &CacheSettings {
        &self.shared.settings
    }

    /// The store the cache keeps its tokens in.
    pub fn store(&self) -> &Arc<dyn TokenStore> {
        &self.shared.store
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("settings", &self.shared.settings)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// One key of a [`TokenCache`] with the fetcher of its tokens: the
/// [`TokenSource`] an [`Auth`](crate::auth::Auth) handle sits on. Cloning
/// shares it.
///
/// If the [`FetchToken`] panics, the panic is printed where it happened and
/// every call waiting for that fetch gets the error
/// [`UnfinishedFetch::FetcherPanicked`] (in [`AuthError::Unfinished`]); the
/// next attempt waits for the backoff like after any failure.
#[derive(Clone)]
pub struct CachedTokenSource {
    shared: Arc<Shared>,
    state: Arc<KeyState>,
    fetcher: Arc<dyn FetchToken>,
    labels: MetricLabels,
    observer: Arc<CacheObserver>,
}

impl CachedTokenSource {
    /// A token valid now: the cached one, or the result of the one fetch
    /// under way for the key. Fails only when no usable token is cached and
    /// the fetch fails (or failed less than the backoff ago: its error is
    /// returned again without a new request; after a throttle, that is
    /// [`AuthError::HeldOff`] with the time left of its `Retry-After`), or
    /// cannot run ([`AuthError::Unfinished`]: the Tokio runtime is shutting
    /// down).
    ///
    /// Until its refresh is due, the key's token is served from the key's
    /// own state, without a lock and without a look in the store (see
    /// [`CachedTokenSource::cached`]): a token another process or cache puts
    /// in a shared store is taken up at the next refresh, and a token is
    /// dropped at once by [`renew`](CachedTokenSource::renew) and
    /// [`invalidate`](CachedTokenSource::invalidate) (or the cache's).
    pub async fn token(&self) -> Result<AccessToken, AuthError> {
        self.evict_if_the_credential_changed().await;
        if let Some(token) = self.cached() {
            return Ok(token);
        }
        let seen = self.state.evictions();
        if let Some(token) = self.shared.store.peek(&self.state.key)
            && let Some(token) = self.serve(token, seen)
        {
            return Ok(token);
        }
        self.wait_for_token(None).await
    }

    /// The key's fresh token, if it has one (its refresh not due yet): no
    /// lock, no allocation, no look in the store.
    pub fn cached(&self) -> Option<AccessToken> {
        if self.credential_changed() {
            // Not served: `token()` evicts what the old credential got.
            return None;
        }
        let now = self.shared.clock.now();
        let (token, refresh_due) = self.state.fresh(now)?;
        Counters::bump(&self.shared.counters.hits);
        self.observer.served(&token, now, refresh_due);
        let key = &self.state.key;
        tracing::trace!(
            provider = key.provider(),
            key = key.short(),
            "token cache hit"
        );
        Some(token)
    }

    /// The API rejected the token sent as `rejected`: evicts it if it is
    /// still the cached one, then returns a valid token. When another caller
    /// already renewed it, the new token is returned without a fetch.
    pub async fn renew(&self, rejected: &HeaderValue) -> Result<AccessToken, AuthError> {
        let key = &self.state.key;
        self.state
            .evict_fresh(&mut self.state.lock(), Some(rejected));
        let seen = self.state.evictions();
        let current = match self.shared.store.peek(key) {
            Some(token) => Some(token),
            None => match self.shared.store.get(key).await {
                Ok(token) => token,
                Err(error) => {
                    store_failed(&self.shared, key, "get", &error);
                    None
                }
            },
        };
        if let Some(token) = current {
            if !token.is_sent_as(rejected) {
                if let Some(token) = self.serve(token, seen) {
                    tracing::debug!(
                        provider = key.provider(),
                        key = key.short(),
                        "rejected token already replaced: serving the current one"
                    );
                    return Ok(token);
                }
            } else {
                match self.shared.store.remove_if_same(key, rejected).await {
                    Ok(removed) => tracing::debug!(
                        provider = key.provider(),
                        key = key.short(),
                        removed,
                        "token rejected by the API: evicted"
                    ),
                    Err(error) => store_failed(&self.shared, key, "remove_if_same", &error),
                }
            }
        }
        self.wait_for_token(Some(rejected)).await
    }

    /// Fetches a new token now, whatever the cached one (waits for the
    /// fetch under way instead if there is one). Ignores the backoff.
    pub async fn refresh(&self) -> Result<AccessToken, AuthError> {
        self.join_or_start(
            |plan_expiry| FlightKind::Forced {
                replacing: plan_expiry,
            },
            false,
        )
        .await
    }

    /// Forgets the cached token: the next call fetches a new one.
    pub async fn invalidate(&self) -> Result<(), StoreError> {
        self.state.evict_fresh(&mut self.state.lock(), None);
        self.shared.store.remove(&self.state.key).await
    }

    /// Waits until no fetch is under way for this key (for tests; feature
    /// `test-util`).
    #[cfg(any(test, feature = "test-util", feature = "fuzzing"))]
    pub async fn settled(&self) {
        loop {
            let waiter = self.state.lock().flight.as_ref().map(|f| f.waiter());
            match waiter {
                Some(waiter) => {
                    key_state::wait(waiter).await;
                }
                None => return,
            }
        }
    }

    /// The key this source serves.
    pub fn key(&self) -> &CacheKey {
        &self.state.key
    }

    /// With `name` as the `client` label of its metrics (feature
    /// `metrics`), instead of the host of its token endpoint. A fixed name
    /// per client: never a secret, never one per request.
    pub fn with_name(mut self, name: &str) -> Self {
        self.labels = self.labels.with_client(name);
        self.observer = Arc::new(CacheObserver::new(&self.labels));
        self
    }

    /// The labels of its metrics.
    pub fn metric_labels(&self) -> &MetricLabels {
        &self.labels
    }

    /// The counters of the whole cache.
    pub fn stats(&self) -> CacheStats {
        self.shared.counters.snapshot()
    }

    /// Whether the fetcher's credential changed since the key's token was
    /// obtained (two atomic loads): its epoch is past the key's. Only past:
    /// a source whose credential has an epoch of its own (a handle built
    /// apart, with its own pair of secrets) that lags behind the key's does
    /// not evict the token another source obtained after a fail-over.
    fn credential_changed(&self) -> bool {
        self.fetcher.credential_epoch() > self.state.credential_epoch.load(Ordering::Acquire)
    }

    /// Evicts the key's token when the fetcher's credential changed since
    /// it was obtained (a client secret the server refuses now was
    /// replaced by the other, perhaps by the fetch of another key sharing
    /// the credential): it is not served again.
    async fn evict_if_the_credential_changed(&self) {
        let epoch = self.fetcher.credential_epoch();
        let seen = self.state.credential_epoch.load(Ordering::Acquire);
        if epoch <= seen
            || self
                .state
                .credential_epoch
                .compare_exchange(seen, epoch, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
        self.state.evict_fresh(&mut self.state.lock(), None);
        let key = &self.state.key;
        match self.shared.store.remove(key).await {
            Ok(()) => tracing::info!(
                provider = key.provider(),
                key = key.short(),
                "the client credential changed (a refused secret was replaced): the token obtained with the old one is evicted"
            ),
            Err(error) => store_failed(&self.shared, key, "remove", &error),
        }
    }

    /// Hands out `token` if it is usable now, starting a background refresh
    /// when one is due; `None` if a new token is needed first. A fresh one
    /// becomes the key's token served without a lock, unless it was looked
    /// up before an eviction (`seen`).
    fn serve(&self, token: AccessToken, seen: Evictions) -> Option<AccessToken> {
        let shared = &self.shared;
        let now = shared.clock.now();
        let mut inner = self.state.lock();
        let plan = inner.plan_for(&token, &shared.settings, now, shared.jitter.as_ref());
        let standing = plan.standing(now);
        let refresh = match standing {
            Standing::Unusable => return None,
            Standing::Fresh => {
                self.state
                    .publish_fresh(&mut inner, &token, &plan, Some(seen));
                None
            }
            Standing::RefreshDue if inner.flight.is_none() && inner.retry.allows(now) => {
                Handle::try_current().ok().map(|runtime| {
                    let (guard, _) = inner.start_flight(&self.state);
                    self.state.refreshing(&mut inner, &token);
                    (runtime, guard)
                })
            }
            Standing::RefreshDue => None,
        };
        drop(inner);
        Counters::bump(&shared.counters.hits);
        self.observer
            .served(&token, now, standing == Standing::RefreshDue);
        let key = &self.state.key;
        tracing::trace!(
            provider = key.provider(),
            key = key.short(),
            "token cache hit"
        );
        if let Some((runtime, guard)) = refresh {
            Counters::bump(&shared.counters.background_refreshes);
            self.observer.refreshing_in_background();
            tracing::debug!(
                provider = key.provider(),
                key = key.short(),
                "token refresh scheduled in the background"
            );
            let kind = FlightKind::Background {
                replacing: token.expires_at(),
            };
            runtime.spawn(flight::run(
                Arc::clone(shared),
                Arc::clone(&self.state),
                Arc::clone(&self.fetcher),
                Arc::clone(&self.observer),
                kind,
                guard,
            ));
        }
        Some(token)
    }

    /// No usable token: waits for the key's one fetch.
    async fn wait_for_token(&self, avoid: Option<&HeaderValue>) -> Result<AccessToken, AuthError> {
        Counters::bump(&self.shared.counters.misses);
        self.observer.missed();
        let key = &self.state.key;
        tracing::debug!(
            provider = key.provider(),
            key = key.short(),
            "token cache miss"
        );
        self.join_or_start(
            |_| FlightKind::Cold {
                avoid: avoid.cloned(),
            },
            true,
        )
        .await
    }

    /// Waits for the flight under way, or starts one of `kind` (given the
    /// expiry of the token planned last). With `honour_backoff`, the last
    /// error is returned instead of starting a flight before the backoff.
    async fn join_or_start(
        &self,
        kind: impl Fn(Option<SystemTime>) -> FlightKind,
        honour_backoff: bool,
    ) -> Result<AccessToken, AuthError> {
        let shared = &self.shared;
        let mut abandoned = 0;
        loop {
            let now = shared.clock.now();
            let mut run = None;
            let waiter = {
                let mut inner = self.state.lock();
                if let Some(flight) = &inner.flight {
                    flight.waiter()
                } else if let Some(error) = honour_backoff
                    .then(|| inner.retry.holding_off(now))
                    .flatten()
                {
                    let key = &self.state.key;
                    tracing::debug!(
                        provider = key.provider(),
                        key = key.short(),
                        "last fetch failed and its backoff has not passed: failing at once"
                    );
                    self.observer.held_off();
                    return Err(error);
                } else {
                    let kind = kind(inner.plan.map(|plan| plan.expires_at));
                    let (guard, waiter) = inner.start_flight(&self.state);
                    run = Some(flight::run(
                        Arc::clone(shared),
                        Arc::clone(&self.state),
                        Arc::clone(&self.fetcher),
                        Arc::clone(&self.observer),
                        kind,
                        guard,
                    ));
                    waiter
                }
            };
            // Spawned only now, the key's lock released: a runtime that is
            // shutting down drops the task inside `spawn`, and its guard
            // takes that lock.
            let inline = run.and_then(|run| match Handle::try_current() {
                Ok(runtime) => {
                    drop(runtime.spawn(run));
                    None
                }
                // Outside a Tokio runtime: this caller runs the fetch.
                Err(_) => Some(run),
            });
            Counters::bump(&shared.counters.waited);
            self.observer.waiting();
            if let Some(run) = inline {
                run.await;
            }
            match key_state::wait(waiter).await {
                Waited::Ended(FlightEnd::Done(result)) => return result,
                Waited::Ended(FlightEnd::NotStarted) => {
                    return Err(AuthError::Unfinished(UnfinishedFetch::RuntimeShutDown));
                }
                Waited::Abandoned => {
                    abandoned += 1;
                    if abandoned >= MAX_ABANDONED_FLIGHTS {
                        return Err(AuthError::Unfinished(UnfinishedFetch::Abandoned {
                            times: abandoned,
                        }));
                    }
                }
            }
        }
    }
}

/// How many flights in a row a call waits for that end unfinished (their
/// runner went away) before it gives up with
/// [`UnfinishedFetch::Abandoned`].
const MAX_ABANDONED_FLIGHTS: u32 = 3;

impl TokenSource for CachedTokenSource {
    fn token(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>> {
        Box::pin(CachedTokenSource::token(self))
    }

    fn cached(&self) -> Option<AccessToken> {
        CachedTokenSource::cached(self)
    }

    fn metric_labels(&self) -> Option<MetricLabels> {
        Some(self.labels.clone())
    }

    fn renew<'a>(
        &'a self,
        rejected: &'a HeaderValue,
    ) -> BoxFuture<'a, Result<AccessToken, AuthError>> {
        Box::pin(CachedTokenSource::renew(self, rejected))
    }
}

impl fmt::Debug for CachedTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedTokenSource")
            .field("key", &self.state.key)
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}
