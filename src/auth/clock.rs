//! Time and randomness, injected so that expiry, refresh and backoff can be
//! tested deterministically (no test sleeps for real minutes).

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::BoxFuture;

/// The source of "now" and of waiting.
///
/// Wall-clock time ([`SystemTime`]) is used because token lifetimes are
/// shared across processes (the Redis store keeps absolute expiry times).
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// Waits for `duration` (backoff between retries, Retry-After hold-off).
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// `at + by`, or the latest time the platform can hold when the sum does not
/// fit: a wait or a lifetime from the network (a `Retry-After`, an
/// `expires_in`) never overflows `SystemTime + Duration` into a panic.
pub(crate) fn later(at: SystemTime, by: Duration) -> SystemTime {
    if let Some(sum) = at.checked_add(by) {
        return sum;
    }
    // Climb to the last representable instant: at most one step succeeds
    // per halving, so this ends after about a hundred steps.
    let mut latest = at;
    let mut step = by;
    while !step.is_zero() {
        match latest.checked_add(step) {
            Some(next) => latest = next,
            None => step /= 2,
        }
    }
    latest
}

/// The real clock: `SystemTime::now` and `tokio::time::sleep`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that only moves when told to, for tests and simulations.
///
/// `sleep` does not wait: it moves the clock forward by the duration at once
/// and records it, so a test can assert the backoff a retry loop chose.
#[derive(Debug)]
pub struct ManualClock {
    state: Mutex<ManualState>,
}

#[derive(Debug)]
struct ManualState {
    now: SystemTime,
    sleeps: Vec<Duration>,
}

impl ManualClock {
    /// A clock that reads `start` until advanced.
    pub fn new(start: SystemTime) -> Self {
        Self {
            state: Mutex::new(ManualState {
                now: start,
                sleeps: Vec::new(),
            }),
        }
    }

    /// A clock starting at a fixed, arbitrary date (2026-01-01T00:00:00Z).
    pub fn at_fixed_date() -> Self {
        Self::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut state = self.lock();
        state.now = later(state.now, by);
    }

    /// Every duration passed to [`Clock::sleep`] so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.lock().sleeps.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ManualState> {
        // A panic while holding this lock cannot leave the state torn (each
        // critical section is one assignment), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.lock().now
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let mut state = self.lock();
        state.now = later(state.now, duration);
        state.sleeps.push(duration);
        Box::pin(std::future::ready(()))
    }
}

/// Randomness for jitter: a value in `[0, 1)`.
pub trait Jitter: Send + Sync + 'static {
    /// A fraction in `[0, 1)`.
    fn fraction(&self) -> f64;
}

/// Jitter from a fast, non-cryptographic generator.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomJitter;

impl Jitter for RandomJitter {
    fn fraction(&self) -> f64 {
        fastrand::f64()
    }
}

/// The same fraction every time, for deterministic tests (`0.0` = no jitter).
#[derive(Debug, Clone, Copy)]
pub struct FixedJitter(pub f64);

impl Jitter for FixedJitter {
    fn fraction(&self) -> f64 {
        self.0.clamp(0.0, 0.999_999)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_records_sleeps_and_moves() {
        let clock = ManualClock::at_fixed_date();
        let start = clock.now();
        clock.sleep(Duration::from_secs(2)).await;
        clock.advance(Duration::from_secs(3));
        assert_eq!(clock.now(), start + Duration::from_secs(5));
        assert_eq!(clock.sleeps(), vec![Duration::from_secs(2)]);
    }

    #[test]
    fn later_saturates_at_the_last_representable_time() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        assert_eq!(
            later(start, Duration::from_secs(5)),
            start + Duration::from_secs(5)
        );
        let last = later(start, Duration::MAX);
        assert!(last > start + Duration::from_secs(1 << 62), "{last:?}");
        assert_eq!(last.checked_add(Duration::from_nanos(1)), None);
        assert_eq!(later(last, Duration::from_secs(120)), last);
        let clock = ManualClock::new(last);
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), last);
    }

    #[test]
    fn fixed_jitter_stays_below_one() {
        assert!(FixedJitter(1.0).fraction() < 1.0);
        assert_eq!(FixedJitter(0.25).fraction(), 0.25);
    }
}
