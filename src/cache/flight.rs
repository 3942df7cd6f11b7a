//! The work of one flight: look in the store, take the refresh lock, fetch,
//! store, and tell the waiters. Runs in its own task, so a caller that gives
//! up does not cancel the fetch the others are waiting for.

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, SystemTime};

use http::HeaderValue;

use super::key_state::{FlightEnd, FlightGuard, KeyState};
use super::observer::CacheObserver;
use super::settings::{Plan, Standing};
use super::shared::Shared;
use super::stats::Counters;
use crate::endpoint::fetch_token::FetchToken;
use crate::oauth::error::{AuthError, SharedFailure, UnfinishedFetch};
use crate::oauth::token::AccessToken;
use crate::store::token_store::{StoreError, StoreLock};
use crate::time::clock::Clock;

/// Why a flight was started; decides which stored token it may take
/// instead of fetching.
#[derive(Debug, Clone)]
pub(crate) enum FlightKind {
    /// No usable token: callers wait. Any usable stored token will do,
    /// except the one an API just rejected.
    Cold { avoid: Option<HeaderValue> },
    /// The token expiring at `replacing` is still served meanwhile; only a
    /// later one will do.
    Background { replacing: SystemTime },
    /// Asked for explicitly: always fetches, unless another process holds
    /// the refresh lock and stores a token later than `replacing`.
    Forced { replacing: Option<SystemTime> },
}

impl FlightKind {
    fn label(&self) -> &'static str {
        match self {
            Self::Cold { .. } => "cold",
            Self::Background { .. } => "background",
            Self::Forced { .. } => "forced",
        }
    }

    /// Whether `token`, found in the store at `now`, may be taken.
    /// `from_lock_holder`: it appeared while another process held the lock.
    fn may_take(
        &self,
        shared: &Shared,
        state: &KeyState,
        token: &AccessToken,
        now: SystemTime,
        from_lock_holder: bool,
    ) -> bool {
        let plan = state.lock().peek_plan(token, &shared.settings, now);
        if plan.standing(now) == Standing::Unusable {
            return false;
        }
        match self {
            Self::Cold { avoid } => !avoid.as_ref().is_some_and(|a| token.is_sent_as(a)),
            Self::Background { replacing } => token.expires_at() > *replacing,
            Self::Forced { replacing } => {
                from_lock_holder && replacing.is_none_or(|r| token.expires_at() > r)
            }
        }
    }
}

/// Runs a flight to its end and publishes the outcome.
pub(crate) async fn run(
    shared: Arc<Shared>,
    state: Arc<KeyState>,
    fetcher: Arc<dyn FetchToken>,
    observer: Arc<CacheObserver>,
    kind: FlightKind,
    mut guard: FlightGuard,
) {
    guard.start();
    let result = obtain(&shared, &state, fetcher.as_ref(), &observer, &kind).await;
    let now = shared.clock.now();
    let mut inner = state.lock();
    let result = match result {
        Ok(Obtained::Fetched(token)) => {
            inner.retry.succeeded();
            // The latest epoch any source of the key has seen (see
            // `credential_changed`).
            state.credential_epoch.fetch_max(
                fetcher.credential_epoch(),
                std::sync::atomic::Ordering::AcqRel,
            );
            let lifetime = token.expires_at().duration_since(now).unwrap_or_default();
            let plan = Plan::new(
                &shared.settings,
                token.expires_at(),
                lifetime,
                shared.jitter.fraction(),
            );
            inner.plan = Some(plan);
            if plan.standing(now) == Standing::Fresh {
                state.publish_fresh(&mut inner, &token, &plan, None);
            }
            Ok(token)
        }
        Ok(Obtained::Taken(token)) => {
            inner.retry.succeeded();
            let plan = inner.plan_for(&token, &shared.settings, now, shared.jitter.as_ref());
            if plan.standing(now) == Standing::Fresh {
                state.publish_fresh(&mut inner, &token, &plan, None);
            }
            Ok(token)
        }
        Err(error) => {
            let retry_in = inner
                .retry
                .failed(&shared.settings, now, Some(error.clone()));
            let failures = inner.retry.failures;
            let key = &state.key;
            if matches!(kind, FlightKind::Background { .. }) {
                tracing::warn!(provider = key.provider(), key = key.short(), failures, ?retry_in, %error,
                    "token refresh failed; the current token is still served");
            } else {
                tracing::warn!(provider = key.provider(), key = key.short(), failures, ?retry_in, %error,
                    "token fetch failed");
            }
            Err(error)
        }
    };
    let publish = guard.finish(&mut inner);
    drop(inner);
    publish.send(FlightEnd::Done(result));
}

enum Obtained {
    Fetched(AccessToken),
    Taken(AccessToken),
}

/// A flight's work within its budget (`load_timeout` from its start, on
/// the cache's clock): the token another process stored, or a fetch under
/// the refresh lock. A fetch still running at the deadline is dropped (its
/// request with it), and the lock is released all the same.
async fn obtain(
    shared: &Shared,
    state: &KeyState,
    fetcher: &dyn FetchToken,
    observer: &CacheObserver,
    kind: &FlightKind,
) -> Result<Obtained, AuthError> {
    let key = &state.key;
    let clock = shared.clock.as_ref();
    // No deadline when it cannot be represented (a clock at the end of time).
    let deadline = clock.now().checked_add(shared.settings.load_timeout);
    let timed_out = || AuthError::LoadTimeout {
        budget: shared.settings.load_timeout,
    };
    let find = find_or_lock(shared, state, observer, kind, deadline);
    let lock = match within(clock, deadline, find).await {
        Some(Ok(lock)) => lock,
        Some(Err(Found::Token(token))) => return Ok(Obtained::Taken(token)),
        Some(Err(Found::Failure(failure))) => return Err(AuthError::Shared(failure)),
        Some(Err(Found::Deadline)) | None => return Err(timed_out()),
    };
    // The last holder of a shared lock failed moments ago: fail with its
    // error, as its waiters did, instead of asking the endpoint again (an
    // explicit refresh asks all the same).
    if let Some(held) = lock.as_ref().filter(|lock| lock.owner().is_some())
        && !matches!(kind, FlightKind::Forced { .. })
        && let Some(failure) = shared_failure(shared, state).await
    {
        release(shared, state, held.clone()).await;
        return Err(AuthError::Shared(Box::new(failure)));
    }

    Counters::bump(&shared.counters.fetches);
    tracing::debug!(
        provider = key.provider(),
        key = key.short(),
        kind = kind.label(),
        "fetching a token"
    );
    let timer = observer.fetch_started();
    let fetch = caught(fetcher.fetch());
    let fetch = while_renewing(shared, state, lock.as_ref(), fetch);
    let result = match within(clock, deadline, fetch).await {
        Some(Ok(result)) => result,
        Some(Err(Panicked)) => Err(AuthError::Unfinished(UnfinishedFetch::FetcherPanicked)),
        None => Err(timed_out()),
    };
    observer.fetched(timer, &result);
    match &result {
        Ok(token) => store_token(shared, state, token).await,
        Err(error) => {
            Counters::bump(&shared.counters.fetch_failures);
            if lock.as_ref().is_some_and(|lock| lock.owner().is_some()) {
                share_failure(shared, state, error).await;
            }
        }
    }
    if let Some(lock) = lock {
        release(shared, state, lock).await;
    }
    result.map(Obtained::Fetched)
}

/// Tells the processes waiting on this holder's lock how its fetch failed,
/// for as long as this process backs off after a first failure (or the
/// `Retry-After` it was given, if longer).
async fn share_failure(shared: &Shared, state: &KeyState, error: &AuthError) {
    let ttl = error
        .retry_after()
        .unwrap_or_default()
        .max(shared.settings.retry_initial)
        .max(Duration::from_millis(1));
    let failure = SharedFailure::of(error);
    if let Err(error) = shared.store.put_failure(&state.key, &failure, ttl).await {
        store_failed(shared, state, "put_failure", &error);
    }
}

/// The failure the last lock holder shared, if it is still fresh.
async fn shared_failure(shared: &Shared, state: &KeyState) -> Option<SharedFailure> {
    match shared.store.failure(&state.key).await {
        Ok(Some(failure)) => {
            tracing::debug!(
                provider = state.key.provider(),
                key = state.key.short(),
                "the lock holder's fetch failed: failing with its error"
            );
            Some(failure)
        }
        Ok(None) => None,
        Err(error) => {
            store_failed(shared, state, "failure", &error);
            None
        }
    }
}

/// Why a flight fetches nothing.
enum Found {
    /// A token another process stored.
    Token(AccessToken),
    /// The failure the lock holder shared.
    Failure(Box<SharedFailure>),
    /// The budget ran out while waiting for another process's lock.
    Deadline,
}

/// A usable token in the store, or the refresh lock (`Ok(None)`: fetch
/// without it).
async fn find_or_lock(
    shared: &Shared,
    state: &KeyState,
    observer: &CacheObserver,
    kind: &FlightKind,
    deadline: Option<SystemTime>,
) -> Result<Option<StoreLock>, Found> {
    if !matches!(kind, FlightKind::Forced { .. })
        && let Some(token) = look_in_store(shared, state, kind, false).await
    {
        return Err(Found::Token(token));
    }
    take_lock(shared, state, observer, kind, deadline).await
}

/// Runs `work` until it ends or `clock` reaches `deadline`, whichever comes
/// first (`None`: the deadline; `work` is dropped unfinished).
async fn within<T>(
    clock: &dyn Clock,
    deadline: Option<SystemTime>,
    work: impl Future<Output = T>,
) -> Option<T> {
    let mut work = std::pin::pin!(work);
    let Some(deadline) = deadline else {
        return Some(work.await);
    };
    let mut timer = clock.timer(deadline);
    std::future::poll_fn(|context| {
        if timer.as_mut().poll(context).is_ready() {
            return Poll::Ready(None);
        }
        work.as_mut().poll(context).map(Some)
    })
    .await
}

/// Runs `fetch`, renewing `lock` (a shared one) every third of its TTL
/// meanwhile, so that it never expires under a live holder however long
/// the fetch takes. The store counts the TTL in real time, so the renewals
/// wait on Tokio's timer, not on the cache's clock (outside a Tokio
/// runtime there is no shared lock to renew).
async fn while_renewing<T>(
    shared: &Shared,
    state: &KeyState,
    lock: Option<&StoreLock>,
    fetch: impl Future<Output = T>,
) -> T {
    let Some(lock) = lock.filter(|lock| lock.owner().is_some()) else {
        return fetch.await;
    };
    if tokio::runtime::Handle::try_current().is_err() {
        return fetch.await;
    }
    let ttl = lock.ttl().unwrap_or(shared.settings.lock_ttl);
    let renew = async {
        let every = (ttl / 3).max(Duration::from_millis(1));
        loop {
            tokio::time::sleep(every).await;
            match shared.store.extend_lock(&state.key, lock, ttl).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(
                        provider = state.key.provider(),
                        key = state.key.short(),
                        "the refresh lock expired during the fetch: another process may fetch too"
                    );
                    return;
                }
                Err(error) => store_failed(shared, state, "extend_lock", &error),
            }
        }
    };
    let mut fetch = std::pin::pin!(fetch);
    let mut renew = std::pin::pin!(renew);
    let mut renewing = true;
    std::future::poll_fn(|context| {
        if let Poll::Ready(result) = fetch.as_mut().poll(context) {
            return Poll::Ready(result);
        }
        if renewing && renew.as_mut().poll(context).is_ready() {
            renewing = false;
        }
        Poll::Pending
    })
    .await
}

/// The fetcher's future panicked (the panic hook printed where).
struct Panicked;

/// Runs `fetch` to its end, a panic inside it included: the flight's
/// waiters then get a typed error instead of a panic, and only a panic of
/// the fetch itself is reported as one.
async fn caught<T>(fetch: impl Future<Output = T>) -> Result<T, Panicked> {
    let mut fetch = std::pin::pin!(fetch);
    std::future::poll_fn(|context| {
        // The fetch is never polled again after it panicked: whatever state
        // it was left in is only dropped.
        match panic::catch_unwind(AssertUnwindSafe(|| fetch.as_mut().poll(context))) {
            Ok(poll) => poll.map(Ok),
            Err(_) => Poll::Ready(Err(Panicked)),
        }
    })
    .await
}

async fn look_in_store(
    shared: &Shared,
    state: &KeyState,
    kind: &FlightKind,
    from_lock_holder: bool,
) -> Option<AccessToken> {
    match shared.store.get(&state.key).await {
        Ok(Some(token))
            if kind.may_take(shared, state, &token, shared.clock.now(), from_lock_holder) =>
        {
            Counters::bump(&shared.counters.adopted);
            tracing::debug!(
                provider = state.key.provider(),
                key = state.key.short(),
                "took a token from the store instead of fetching"
            );
            Some(token)
        }
        Ok(_) => None,
        Err(error) => {
            store_failed(shared, state, "get", &error);
            None
        }
    }
}

/// Takes the store's refresh lock, or a token a lock holder stored
/// meanwhile (`Err`). `Ok(None)`: fetch without the lock (the store failed).
///
/// A live holder keeps its lock alive while it fetches, so a flight waits
/// for it as long as the lock is held, within its own budget: a holder that
/// died leaves its lock until `lock_ttl`, then one of the processes waiting
/// on it takes the lock over and the others go on watching, so a dead
/// holder costs one extra fetch, not one per waiter.
async fn take_lock(
    shared: &Shared,
    state: &KeyState,
    observer: &CacheObserver,
    kind: &FlightKind,
    deadline: Option<SystemTime>,
) -> Result<Option<StoreLock>, Found> {
    let key = &state.key;
    let mut waited = false;
    loop {
        match shared.store.try_lock(key, shared.settings.lock_ttl).await {
            Ok(Some(lock)) => {
                if waited {
                    observer.lock_taken_over();
                }
                return Ok(Some(lock));
            }
            Ok(None) => {
                if !waited {
                    observer.lock_held_elsewhere();
                }
                waited = true;
                tracing::debug!(
                    provider = key.provider(),
                    key = key.short(),
                    "another process holds the refresh lock: watching the store for its token"
                );
                watch_lock_holder(shared, state, kind, deadline).await?;
            }
            Err(error) => {
                store_failed(shared, state, "try_lock", &error);
                return Ok(None);
            }
        }
    }
}

/// Polls the store while another process fetches, for about `lock_ttl`
/// (and not past `deadline`): `Err` with what ended the watch early. Each
/// poll waits `lock_poll` plus up to half of it again at random, so the
/// waiters of a fleet do not ask the store in step. The watch ends after
/// `lock_ttl` on the clock even when the polls are slow (a store that
/// fails each one at its operation timeout, its node down), so a waiter
/// then fetches by itself instead of waiting out `load_timeout`.
async fn watch_lock_holder(
    shared: &Shared,
    state: &KeyState,
    kind: &FlightKind,
    deadline: Option<SystemTime>,
) -> Result<(), Found> {
    let poll = shared.settings.lock_poll.max(Duration::from_millis(1));
    let rounds = (shared.settings.lock_ttl.as_nanos() / poll.as_nanos()).max(1);
    let watch_until = shared.clock.now().checked_add(shared.settings.lock_ttl);
    for _ in 0..rounds {
        // A clock whose sleep does not wait (a test's) never lets the
        // deadline's timer run: look at the deadline here too.
        let now = shared.clock.now();
        if deadline.is_some_and(|deadline| now >= deadline) {
            return Err(Found::Deadline);
        }
        if watch_until.is_some_and(|until| now >= until) {
            return Ok(());
        }
        let extra = 0.5 * shared.jitter.fraction();
        shared
            .clock
            .sleep(poll.saturating_add(poll.mul_f64(extra.min(0.5))))
            .await;
        if let Some(token) = look_in_store(shared, state, kind, true).await {
            return Err(Found::Token(token));
        }
        if let Some(failure) = shared_failure(shared, state).await {
            return Err(Found::Failure(Box::new(failure)));
        }
    }
    Ok(())
}

async fn store_token(shared: &Shared, state: &KeyState, token: &AccessToken) {
    let Ok(ttl) = token.expires_at().duration_since(shared.clock.now()) else {
        tracing::debug!(
            provider = state.key.provider(),
            key = state.key.short(),
            "the token endpoint returned an expired token: not stored"
        );
        return;
    };
    if ttl.is_zero() {
        return;
    }
    if let Err(error) = shared.store.put(&state.key, token, ttl).await {
        store_failed(shared, state, "put", &error);
    }
}

async fn release(shared: &Shared, state: &KeyState, lock: StoreLock) {
    if let Err(error) = shared.store.unlock(&state.key, lock).await {
        store_failed(shared, state, "unlock", &error);
    }
}

fn store_failed(shared: &Shared, state: &KeyState, operation: &'static str, error: &StoreError) {
    super::shared::store_failed(shared, &state.key, operation, error);
}
