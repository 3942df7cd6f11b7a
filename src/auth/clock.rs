//! Time and randomness, injected so that expiry, refresh and backoff can be
//! tested deterministically (no test sleeps for real minutes).

#[cfg(any(test, feature = "test-util", feature = "fuzzing"))]
use std::future::Future;
#[cfg(any(test, feature = "test-util", feature = "fuzzing"))]
use std::pin::Pin;
#[cfg(any(test, feature = "test-util", feature = "fuzzing"))]
use std::sync::{Arc, Mutex};
#[cfg(any(test, feature = "test-util", feature = "fuzzing"))]
use std::task::{Context, Poll, Waker};
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

    /// Completes once the clock reads `at` or later: a deadline (the token
    /// cache's load timeout). Unlike [`Clock::sleep`], it does not move a
    /// clock that moves only when told ([`ManualClock`]); it fires when
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

#[cfg(any(test, feature = "test-util", feature = "fuzzing"))]
/// A clock that only moves when told to, for tests and simulations.
///
/// `sleep` does not wait: it moves the clock forward by the duration at once
/// and records it, so a test can assert the backoff a retry loop chose.
/// A [`Clock::timer`] fires when [`ManualClock::advance`] (or a `sleep`)
/// moves the clock to its time.
#[derive(Debug)]
pub struct ManualClock {
    state: Arc<Mutex<ManualState>>,
}

#[cfg(any(test, feature = "test-util", feature = "fuzzing"))]
#[derive(Debug)]
struct ManualState {
    now: SystemTime,
    sleeps: Vec<Duration>,
    /// Timers waiting for the clock: id, time, the task to wake.
    timers: Vec<(u64, SystemTime, Waker)>,
    next_timer: u64,
}

#[cfg(any(test, feature = "test-util", feature = "fuzzing"))]
impl ManualState {
    /// Moves to `now`; returns the wakers of the timers that are due.
    fn move_to(&mut self, now: SystemTime) -> Vec<Waker> {
        self.now = now;
        let (due, waiting) = std::mem::take(&mut self.timers)
            .into_iter()
            .partition(|(_, at, _)| *at <= now);
        self.timers = waiting;
        due.into_iter().map(|(_, _, waker)| waker).collect()
    }
}

#[cfg(any(test, feature = "test-util", feature = "fuzzing"))]
impl ManualClock {
    /// A clock that reads `start` until advanced.
    pub fn new(start: SystemTime) -> Self {
        Self {
            state: Arc::new(Mutex::new(ManualState {
                now: start,
                sleeps: Vec::new(),
                timers: Vec::new(),
                next_timer: 0,
            })),
        }
    }

    /// A clock starting at a fixed, arbitrary date (2026-01-01T00:00:00Z).
    pub fn at_fixed_date() -> Self {
        Self::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600))
    }

    /// Moves the clock forward (and fires the timers that are due).
    pub fn advance(&self, by: Duration) {
        let due = {
            let mut state = self.lock();
            let now = later(state.now, by);
            state.move_to(now)
        };
        due.into_iter().for_each(Waker::wake);
    }

    /// Every duration passed to [`Clock::sleep`] so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.lock().sleeps.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ManualState> {
        lock_manual(&self.state)
    }
}

#[cfg(any(test, feature = "test-util", feature = "fuzzing"))]
fn lock_manual(state: &Mutex<ManualState>) -> std::sync::MutexGuard<'_, ManualState> {
    // A panic while holding this lock cannot leave the state torn (each
    // critical section only assigns and moves values), so poisoning is
    // ignored.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(any(test, feature = "test-util", feature = "fuzzing"))]
impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.lock().now
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let due = {
            let mut state = self.lock();
            state.sleeps.push(duration);
            let now = later(state.now, duration);
            state.move_to(now)
        };
        due.into_iter().for_each(Waker::wake);
        Box::pin(std::future::ready(()))
    }

    fn timer(&self, at: SystemTime) -> BoxFuture<'static, ()> {
        let id = {
            let mut state = self.lock();
            state.next_timer += 1;
            state.next_timer
        };
        Box::pin(ManualTimer {
            state: Arc::clone(&self.state),
            id,
            at,
        })
    }
}

#[cfg(any(test, feature = "test-util", feature = "fuzzing"))]
/// A [`Clock::timer`] of a [`ManualClock`].
struct ManualTimer {
    state: Arc<Mutex<ManualState>>,
    id: u64,
    at: SystemTime,
}

#[cfg(any(test, feature = "test-util", feature = "fuzzing"))]
impl Future for ManualTimer {
    type Output = ();

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        let mut state = lock_manual(&self.state);
        state.timers.retain(|(id, ..)| *id != self.id);
        if state.now >= self.at {
            return Poll::Ready(());
        }
        state
            .timers
            .push((self.id, self.at, context.waker().clone()));
        Poll::Pending
    }
}

#[cfg(any(test, feature = "test-util", feature = "fuzzing"))]
impl Drop for ManualTimer {
    fn drop(&mut self) {
        lock_manual(&self.state)
            .timers
            .retain(|(id, ..)| *id != self.id);
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

#[cfg(any(test, feature = "test-util", feature = "fuzzing"))]
/// The same fraction every time, for deterministic tests (`0.0` = no jitter).
#[derive(Debug, Clone, Copy)]
pub struct FixedJitter(pub f64);

#[cfg(any(test, feature = "test-util", feature = "fuzzing"))]
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
    fn a_manual_timer_fires_when_the_clock_is_moved_to_it() {
        let clock = ManualClock::at_fixed_date();
        let at = clock.now() + Duration::from_secs(60);
        let mut timer = clock.timer(at);
        let waker = std::task::Waker::noop();
        let mut context = Context::from_waker(waker);
        assert!(timer.as_mut().poll(&mut context).is_pending());
        clock.advance(Duration::from_secs(59));
        assert!(timer.as_mut().poll(&mut context).is_pending());
        assert!(clock.sleeps().is_empty(), "a timer does not move the clock");
        // A sleep (of a retry loop, say) moves the clock past it too.
        drop(clock.sleep(Duration::from_secs(1)));
        assert!(timer.as_mut().poll(&mut context).is_ready());
        drop(timer);
        assert!(clock.lock().timers.is_empty());
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
