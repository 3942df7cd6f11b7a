//! What the cache knows about one key in this process: the token served
//! without a lock while it is fresh, the refresh plan of the current token,
//! the fetch under way (single flight) and the failures that hold the next
//! attempt back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use http::{HeaderValue, StatusCode};
use tokio::sync::watch;

use super::settings::{CacheSettings, Plan, retry_delay};
use crate::oauth::error::AuthError;
use crate::oauth::token::AccessToken;
use crate::store::key::CacheKey;
use crate::time::clock::{Jitter, later};

/// Shared by every source bound to the same key.
pub(crate) struct KeyState {
    pub key: CacheKey,
    /// The token a warm call is served, read without a lock and without
    /// allocating, while it is fresh (before its refresh is due). Written
    /// only under `inner`'s lock.
    fresh: ArcSwapOption<FreshToken>,
    /// Bumped (under `inner`'s lock) whenever the fresh token is dropped
    /// because it was rejected or forgotten: a token looked up before that
    /// is not made the fresh one again.
    evictions: AtomicU64,
    inner: Mutex<KeyInner>,
    /// The fetcher's [`credential_epoch`](crate::auth::FetchToken::credential_epoch)
    /// the key's token was obtained under.
    pub credential_epoch: std::sync::atomic::AtomicU64,
}

/// A token and the moment its refresh is due: until then it is served as
/// it is; after, while this process refreshes it in the background, until
/// it is no longer usable.
pub(crate) struct FreshToken {
    pub token: AccessToken,
    pub refresh_at: SystemTime,
    pub usable_until: SystemTime,
    /// A background refresh of this token is under way (set and cleared
    /// under the key's lock).
    refreshing: AtomicBool,
}

/// The value of [`KeyState::evictions`] when a token was looked up.
#[derive(Clone, Copy)]
pub(crate) struct Evictions(u64);

#[derive(Default)]
pub(crate) struct KeyInner {
    /// The plan of the token seen last (tokens are told apart by expiry).
    pub plan: Option<Plan>,
    /// The fetch under way, if any: there is at most one per key.
    pub flight: Option<Flight>,
    next_flight_id: u64,
    pub retry: RetryState,
}

/// Consecutive failures, and when the next attempt may start.
#[derive(Default)]
pub(crate) struct RetryState {
    pub failures: u32,
    pub not_before: Option<SystemTime>,
    pub last_error: Option<AuthError>,
}

impl RetryState {
    /// Whether a new attempt may start at `now`.
    pub fn allows(&self, now: SystemTime) -> bool {
        self.not_before.is_none_or(|at| now >= at)
    }

    /// The error to answer with instead of trying again, while backing off.
    /// After a throttle (HTTP 429, or the endpoint's own hold-off), that is
    /// [`AuthError::HeldOff`] with the time left, as the endpoint says it.
    pub fn holding_off(&self, now: SystemTime) -> Option<AuthError> {
        if self.allows(now) {
            return None;
        }
        let error = self.last_error.as_ref()?;
        let throttled = matches!(error, AuthError::HeldOff { .. })
            || error.status() == Some(StatusCode::TOO_MANY_REQUESTS);
        match self.not_before {
            Some(at) if throttled => Some(AuthError::HeldOff {
                retry_after: at.duration_since(now).unwrap_or_default(),
            }),
            _ => Some(error.clone()),
        }
    }

    /// Records a failure at `now`; returns the wait before the next attempt:
    /// the backoff, or the `Retry-After` the error carries if longer. The
    /// wait is the key's, so it holds back every source bound to the key,
    /// whichever token endpoint instance was told to wait.
    pub fn failed(
        &mut self,
        settings: &CacheSettings,
        now: SystemTime,
        error: Option<AuthError>,
    ) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let backoff = retry_delay(settings, self.failures);
        let retry_after = error.as_ref().and_then(AuthError::retry_after);
        let delay = retry_after.map_or(backoff, |after| after.max(backoff));
        self.not_before = Some(later(now, delay));
        self.last_error = error;
        delay
    }

    pub fn succeeded(&mut self) {
        *self = Self::default();
    }
}

/// How a fetch ended, as its waiters see it.
#[derive(Clone)]
pub(crate) enum FlightEnd {
    /// Its result (a panic of the fetcher is an error too).
    Done(Result<AccessToken, AuthError>),
    /// The flight was dropped before it ran: the runtime it was spawned on
    /// is shutting down.
    NotStarted,
}

/// The fetch under way for a key; waiters clone the receiver.
pub(crate) struct Flight {
    id: u64,
    done: watch::Receiver<Option<FlightEnd>>,
}

/// What a waiter learns.
pub(crate) enum Waited {
    Ended(FlightEnd),
    /// The fetch was dropped unfinished (its runtime shut down, or the
    /// caller running it inline went away): try again.
    Abandoned,
}

impl Flight {
    pub fn waiter(&self) -> watch::Receiver<Option<FlightEnd>> {
        self.done.clone()
    }
}

pub(crate) async fn wait(mut done: watch::Receiver<Option<FlightEnd>>) -> Waited {
    match done.wait_for(Option::is_some).await {
        Ok(end) => match end.as_ref() {
            Some(end) => Waited::Ended(end.clone()),
            None => Waited::Abandoned,
        },
        Err(_) => Waited::Abandoned,
    }
}

impl KeyState {
    pub fn new(key: CacheKey) -> Self {
        Self {
            key,
            fresh: ArcSwapOption::empty(),
            evictions: AtomicU64::new(0),
            inner: Mutex::new(KeyInner::default()),
            credential_epoch: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The token to serve without a lock at `now`, and whether its
    /// refresh is due: before its refresh is due, or after while a
    /// background refresh is under way and it is still usable. No lock, no
    /// allocation (one reference count).
    pub fn fresh(&self, now: SystemTime) -> Option<(AccessToken, bool)> {
        let fresh = self.fresh.load();
        let fresh = fresh.as_deref()?;
        if now < fresh.refresh_at {
            Some((fresh.token.clone(), false))
        } else if now < fresh.usable_until && fresh.refreshing.load(Ordering::Acquire) {
            Some((fresh.token.clone(), true))
        } else {
            None
        }
    }

    /// A background refresh of `token` has started: it stays served
    /// without a lock until it is replaced or unusable, if it is the one
    /// published. `_inner`: the key's lock, held.
    pub fn refreshing(&self, _inner: &mut KeyInner, token: &AccessToken) {
        if let Some(current) = self.fresh.load().as_deref()
            && current.token.is_sent_as(token.authorization())
        {
            current.refreshing.store(true, Ordering::Release);
        }
    }

    /// The key's flight ended: a token whose refresh is due goes back to
    /// the locked path, which decides whether to try again. `_inner`: the
    /// key's lock, held.
    fn refresh_ended(&self, _inner: &mut KeyInner) {
        if let Some(current) = self.fresh.load().as_deref() {
            current.refreshing.store(false, Ordering::Release);
        }
    }

    /// Taken before a token is looked up in the store, for
    /// [`KeyState::publish_fresh`].
    pub fn evictions(&self) -> Evictions {
        Evictions(self.evictions.load(Ordering::Acquire))
    }

    /// Makes `token` the one served without a lock as `plan` says,
    /// unless it was looked up before an eviction (`seen`: a token from the
    /// store, which is then not replaced by one that expires sooner; `None`:
    /// a flight's token, the newest). `_inner`: the key's lock, held.
    pub fn publish_fresh(
        &self,
        _inner: &mut KeyInner,
        token: &AccessToken,
        plan: &Plan,
        seen: Option<Evictions>,
    ) {
        if seen.is_some_and(|Evictions(seen)| seen != self.evictions.load(Ordering::Acquire)) {
            return;
        }
        let current = self.fresh.load();
        if current.as_deref().is_some_and(|current| {
            current.token.is_sent_as(token.authorization())
                || (seen.is_some() && current.token.expires_at() > token.expires_at())
        }) {
            return;
        }
        self.fresh.store(Some(Arc::new(FreshToken {
            token: token.clone(),
            refresh_at: plan.refresh_at,
            usable_until: plan.usable_until,
            refreshing: AtomicBool::new(false),
        })));
    }

    /// Stops serving the fresh token without a lock: all of them, or only
    /// the one sent as `rejected`. `_inner`: the key's lock, held.
    pub fn evict_fresh(&self, _inner: &mut KeyInner, rejected: Option<&HeaderValue>) {
        self.evictions.fetch_add(1, Ordering::AcqRel);
        let current = self.fresh.load();
        if current
            .as_deref()
            .is_some_and(|current| rejected.is_none_or(|r| current.token.is_sent_as(r)))
        {
            self.fresh.store(None);
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, KeyInner> {
        // Critical sections only assign fields: poisoning is ignored.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl KeyInner {
    /// Registers a new flight: the guard publishes its end, the receiver
    /// is the starter's own way to wait for it.
    pub fn start_flight(
        &mut self,
        state: &Arc<KeyState>,
    ) -> (FlightGuard, watch::Receiver<Option<FlightEnd>>) {
        let (tx, rx) = watch::channel(None);
        self.next_flight_id += 1;
        let id = self.next_flight_id;
        self.flight = Some(Flight {
            id,
            done: rx.clone(),
        });
        let guard = FlightGuard {
            state: Arc::clone(state),
            id,
            tx: Some(tx),
            started: false,
        };
        (guard, rx)
    }

    /// The plan for `token`: the one made when it was fetched or first
    /// seen, else a new one (with a fresh jitter draw) that is kept.
    pub fn plan_for(
        &mut self,
        token: &AccessToken,
        settings: &CacheSettings,
        now: SystemTime,
        jitter: &dyn Jitter,
    ) -> Plan {
        match self.plan {
            Some(plan) if plan.expires_at == token.expires_at() => plan,
            _ => {
                let plan = Plan::first_seen(settings, token.expires_at(), now, jitter.fraction());
                self.plan = Some(plan);
                plan
            }
        }
    }

    /// Like [`KeyInner::plan_for`], without keeping a new plan (for a token
    /// that may not be taken at all) and without jitter.
    pub fn peek_plan(
        &self,
        token: &AccessToken,
        settings: &CacheSettings,
        now: SystemTime,
    ) -> Plan {
        match self.plan {
            Some(plan) if plan.expires_at == token.expires_at() => plan,
            _ => Plan::first_seen(settings, token.expires_at(), now, 0.0),
        }
    }
}

/// Held by whoever runs a flight: publishes how it ended, and if it is
/// dropped unfinished (a cancelled task, a runtime shutting down, an unwind
/// through the caller running it) still clears the slot so the key is never
/// stuck; the waiters then learn that the flight was abandoned. (A panic of
/// the fetcher itself is caught by the flight and published as its result.)
///
/// Its drop takes the key's lock: never drop one (nor spawn the flight that
/// owns it, as a runtime that is shutting down drops it inside `spawn`)
/// while holding that lock.
pub(crate) struct FlightGuard {
    state: Arc<KeyState>,
    id: u64,
    tx: Option<watch::Sender<Option<FlightEnd>>>,
    /// The flight has begun to run (set on its first poll).
    started: bool,
}

impl FlightGuard {
    /// The flight runs: from now on, a drop means it was abandoned.
    pub fn start(&mut self) {
        self.started = true;
    }

    /// Clears the slot under `inner` (already locked by the caller, who
    /// updates plan and retry state in the same critical section) and
    /// publishes `end` once the lock is released.
    pub fn finish(mut self, inner: &mut KeyInner) -> Publish {
        clear_slot(&self.state, inner, self.id);
        Publish { tx: self.tx.take() }
    }
}

/// Sends a flight's end to its waiters.
pub(crate) struct Publish {
    tx: Option<watch::Sender<Option<FlightEnd>>>,
}

impl Publish {
    pub fn send(self, end: FlightEnd) {
        if let Some(tx) = self.tx {
            tx.send_replace(Some(end));
        }
    }
}

fn clear_slot(state: &KeyState, inner: &mut KeyInner, id: u64) {
    if inner.flight.as_ref().is_some_and(|f| f.id == id) {
        inner.flight = None;
        state.refresh_ended(inner);
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        let Some(tx) = self.tx.take() else { return };
        clear_slot(&self.state, &mut self.state.lock(), self.id);
        if !self.started {
            tx.send_replace(Some(FlightEnd::NotStarted));
        }
        // Otherwise the sender is dropped with no end: the flight was
        // abandoned, and its waiters try again (a bounded number of times).
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::EndpointError;

    fn throttled(retry_after: Option<u64>, status: StatusCode) -> AuthError {
        AuthError::Rejected(Box::new(EndpointError {
            url: "https://login.example/token".into(),
            status,
            retry_after: retry_after.map(Duration::from_secs),
            oauth: None,
            excerpt: None,
            scope_format: None,
        }))
    }

    #[test]
    fn a_retry_after_longer_than_the_backoff_holds_the_key_off() {
        let settings = CacheSettings::default();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let at = |secs: u64| now + Duration::from_secs(secs);
        let mut retry = RetryState::default();

        let error = throttled(Some(30), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            retry.failed(&settings, now, Some(error)),
            Duration::from_secs(30)
        );
        let held = retry.holding_off(at(5)).unwrap();
        assert!(matches!(held, AuthError::HeldOff { .. }), "{held:?}");
        assert_eq!(held.retry_after(), Some(Duration::from_secs(25)));
        assert!(retry.holding_off(at(30)).is_none());

        // A 503 with a Retry-After is honoured too, and answered as it was.
        let error = throttled(Some(10), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            retry.failed(&settings, at(30), Some(error)),
            Duration::from_secs(10)
        );
        let again = retry.holding_off(at(31)).unwrap();
        assert_eq!(again.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
        // A Retry-After shorter than the backoff (third failure: 4 s) does
        // not shorten it.
        let error = throttled(Some(1), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            retry.failed(&settings, at(40), Some(error)),
            Duration::from_secs(4)
        );
        assert_eq!(
            retry.holding_off(at(41)).and_then(|e| e.retry_after()),
            Some(Duration::from_secs(3))
        );
    }
}
