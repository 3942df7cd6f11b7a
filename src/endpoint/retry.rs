//! When and how often a token request is tried again.

use std::time::Duration;

use crate::oauth::retry_after::MAX_RETRY_AFTER;

/// When and how often to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts per fetch, the first included (3). `1` means no retry.
    pub max_attempts: u32,
    /// Wait before the first retry (250 ms); doubles with each retry.
    pub base_delay: Duration,
    /// Longest backoff wait (10 s).
    pub max_delay: Duration,
    /// Longest `Retry-After` honoured, from the token endpoint or the
    /// discovery document: longer values are cut to it, for the wait before
    /// a retry and for the hold-off after a final 429. Default and upper
    /// bound: [`MAX_RETRY_AFTER`] (120 s); it can only be lowered.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
            max_retry_after: MAX_RETRY_AFTER,
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub fn no_retries() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// With `max_attempts` attempts (at least one).
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    /// With another base and cap of the backoff.
    pub fn with_backoff(mut self, base_delay: Duration, max_delay: Duration) -> Self {
        self.base_delay = base_delay;
        self.max_delay = max_delay;
        self
    }

    /// With a lower cap for `Retry-After` (at most [`MAX_RETRY_AFTER`]).
    pub fn with_max_retry_after(mut self, max_retry_after: Duration) -> Self {
        self.max_retry_after = max_retry_after.min(MAX_RETRY_AFTER);
        self
    }

    /// The wait before retry number `retry` (1 = the first retry):
    /// `min(max_delay, base_delay × 2^(retry−1))`, reduced by up to half by
    /// the jitter fraction (`0.0` gives the exact exponential value).
    pub fn backoff(&self, retry: u32, jitter_fraction: f64) -> Duration {
        let exponent = retry.saturating_sub(1).min(30);
        let exponential = self
            .base_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        exponential.mul_f64(1.0 - jitter_fraction.clamp(0.0, 1.0) / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_only_shortens() {
        let policy = RetryPolicy::default()
            .with_backoff(Duration::from_millis(100), Duration::from_millis(350));
        let waits: Vec<Duration> = (1..=4).map(|n| policy.backoff(n, 0.0)).collect();
        assert_eq!(
            waits,
            [100, 200, 350, 350].map(Duration::from_millis).to_vec()
        );
        assert_eq!(policy.backoff(2, 0.5), Duration::from_millis(150));
        assert_eq!(policy.backoff(64, 0.0), Duration::from_millis(350));
    }
}
