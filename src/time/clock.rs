//! Time and randomness, injected so that expiry, refresh and backoff can be
//! tested deterministically (no test sleeps for real minutes). The doubles a
//! test drives by hand are in [`test_doubles`](super::test_doubles).

use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use crate::future::BoxFuture;

/// The source of "now" and of waiting.
///
/// Wall-clock time ([`SystemTime`]) is used because token lifetimes are
/// shared across processes (the Redis store keeps absolute expiry times).
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// Waits for `duration` (backoff between retries, Retry-After hold-off).
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;

    /// Completes once the clock reads `at` or later: a deadline (the token
    /// cache's load timeout). Unlike [`Clock::sleep`], it does not move a
    /// clock that moves only when told
    /// ([`ManualClock`](crate::auth::clock::ManualClock)); it fires when
    /// something else moves that clock past `at`.
    ///
    /// The default sleeps for the time left, which suits a clock whose
    /// `sleep` really waits; a clock whose `sleep` returns at once must
    /// override it.
    fn timer(&self, at: SystemTime) -> BoxFuture<'static, ()> {
        self.sleep(at.duration_since(self.now()).unwrap_or_default())
    }
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

impl SystemClock {
    /// One `Arc` of it for the whole process: the handles and endpoints
    /// that default to the system clock share it rather than allocating
    /// one each.
    pub(crate) fn shared() -> Arc<dyn Clock> {
        static SHARED: LazyLock<Arc<dyn Clock>> = LazyLock::new(|| Arc::new(SystemClock));
        Arc::clone(&SHARED)
    }
}

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }

    /// A Tokio timer; outside a Tokio runtime (no timer to be had) it never
    /// fires.
    fn timer(&self, at: SystemTime) -> BoxFuture<'static, ()> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Box::pin(std::future::pending());
        }
        let left = at.duration_since(SystemTime::now()).unwrap_or_default();
        Box::pin(tokio::time::sleep(left))
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

impl RandomJitter {
    /// One `Arc` of it for the whole process, as [`SystemClock::shared`].
    pub(crate) fn shared() -> Arc<dyn Jitter> {
        static SHARED: LazyLock<Arc<dyn Jitter>> = LazyLock::new(|| Arc::new(RandomJitter));
        Arc::clone(&SHARED)
    }
}

impl Jitter for RandomJitter {
    fn fraction(&self) -> f64 {
        fastrand::f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::test_doubles::ManualClock;

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
}
