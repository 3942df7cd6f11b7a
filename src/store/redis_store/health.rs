//! Whether Redis answers, told to the logs without flooding them: a warning
//! when it stops answering, then at most one per interval (with the count of
//! failures in between), and a note when it answers again.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::store::token_store::StoreError;

pub(super) struct Health {
    interval: Duration,
    /// Set while operations fail: the success path reads only this.
    failing: AtomicBool,
    state: Mutex<State>,
    unreadable: RateLimit,
}

#[derive(Default)]
struct State {
    failing_since: Option<Instant>,
    limit: RateLimitState,
}

/// At most one warning per interval; counts what it held back.
struct RateLimit {
    interval: Duration,
    state: Mutex<RateLimitState>,
}

#[derive(Default)]
struct RateLimitState {
    last_warning: Option<Instant>,
    suppressed: u64,
}

impl RateLimitState {
    /// `Some(suppressed since the last warning)` if a warning is due now.
    fn due(&mut self, interval: Duration) -> Option<u64> {
        let now = Instant::now();
        if self
            .last_warning
            .is_some_and(|at| now.duration_since(at) < interval)
        {
            self.suppressed += 1;
            return None;
        }
        self.last_warning = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

impl RateLimit {
    fn due(&self) -> Option<u64> {
        lock(&self.state).due(self.interval)
    }
}

impl Health {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            failing: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            unreadable: RateLimit {
                interval,
                state: Mutex::new(RateLimitState::default()),
            },
        }
    }

    /// A Redis operation failed.
    pub fn failed(&self, operation: &'static str, error: &StoreError) {
        let mut state = lock(&self.state);
        let since = *state.failing_since.get_or_insert_with(Instant::now);
        self.failing.store(true, Ordering::Relaxed);
        match state.limit.due(self.interval) {
            Some(suppressed) => tracing::warn!(
                operation,
                %error,
                failing_for = ?since.elapsed(),
                suppressed,
                "Redis token store unavailable: tokens are fetched and kept per process until it answers again"
            ),
            None => tracing::debug!(operation, %error, "Redis token store operation failed"),
        }
    }

    /// A Redis operation succeeded.
    pub fn succeeded(&self) {
        if !self.failing.load(Ordering::Relaxed) {
            return;
        }
        let mut state = lock(&self.state);
        self.failing.store(false, Ordering::Relaxed);
        if let Some(since) = state.failing_since.take() {
            state.limit = RateLimitState::default();
            tracing::info!(
                failed_for = ?since.elapsed(),
                "Redis token store answers again: tokens are shared across processes"
            );
        }
    }

    /// A value in Redis was not readable (and is treated as a miss).
    pub fn unreadable(&self, key: &str, reason: &dyn std::fmt::Display) {
        match self.unreadable.due() {
            Some(suppressed) => tracing::warn!(
                key,
                %reason,
                suppressed,
                "ignoring an unreadable token value in Redis (treated as a miss; the next token overwrites it)"
            ),
            None => tracing::debug!(key, %reason, "ignoring an unreadable token value in Redis"),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Critical sections only assign fields: poisoning is ignored.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_once_per_interval_and_counts_what_it_held_back() {
        let mut state = RateLimitState::default();
        let interval = Duration::from_secs(3600);
        assert_eq!(state.due(interval), Some(0));
        assert_eq!(state.due(interval), None);
        assert_eq!(state.due(interval), None);
        assert_eq!(state.suppressed, 2);
        assert_eq!(state.due(Duration::ZERO), Some(2));
        assert_eq!(state.due(Duration::ZERO), Some(0));
    }

    #[test]
    fn recovery_resets_the_limit() {
        let health = Health::new(Duration::from_secs(3600));
        let error = StoreError::new("down");
        health.failed("get", &error);
        health.failed("get", &error);
        assert!(health.failing.load(Ordering::Relaxed));
        assert_eq!(lock(&health.state).limit.suppressed, 1);
        health.succeeded();
        assert!(!health.failing.load(Ordering::Relaxed));
        assert_eq!(lock(&health.state).limit.last_warning, None);
        assert_eq!(lock(&health.state).failing_since, None);
    }
}
