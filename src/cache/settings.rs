//! How early to refresh, how long to back off: the cache's knobs and the
//! arithmetic behind them (pure functions, tested here).

use std::time::{Duration, SystemTime};

/// Tuning of a [`TokenCache`](crate::auth::TokenCache). Start from `default()` and
/// change fields:
///
/// ```
/// # use std::time::Duration;
/// let mut settings = m2m::auth::CacheSettings::default();
/// settings.refresh_before = Duration::from_secs(60);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CacheSettings {
    /// Refresh this long before a token expires, in the background, while
    /// callers keep getting the current token. Default 5 minutes.
    pub refresh_before: Duration,
    /// `refresh_before` never exceeds this share of the token's lifetime, so
    /// short-lived tokens (5 minutes) are still used for most of their life.
    /// Clamped to `0.0..=0.5`. Default `0.5`.
    pub max_refresh_share: f64,
    /// A random extra of up to this share of the refresh buffer (drawn once
    /// per token from the injected jitter), so processes sharing a client
    /// do not all refresh at the same instant. Clamped to `0.0..=0.5`.
    /// Default `0.25`.
    pub refresh_jitter: f64,
    /// A token is not handed out in its last moments (it could expire on
    /// the way to the API): this margin, at most a quarter of the token's
    /// lifetime. Default 10 seconds.
    pub expiry_margin: Duration,
    /// After a failed fetch, wait this long before the next attempt; the
    /// wait doubles with each consecutive failure. Default 1 second.
    pub retry_initial: Duration,
    /// The longest wait between attempts. Default 30 seconds.
    pub retry_max: Duration,
    /// The lifetime of a distributed refresh lock (stores that share
    /// tokens between processes): the holder renews it every third of it
    /// while it fetches, so it bounds how long a holder that died blocks
    /// the others, not how long a fetch may take. Default 30 seconds.
    pub lock_ttl: Duration,
    /// While another process holds the refresh lock, look for its token (or
    /// the failure it shares) in the store this often, and ask for the lock
    /// again after each `lock_ttl` of looking. Default 250 ms.
    pub lock_poll: Duration,
    /// The total time one fetch may take, its retries, their waits and the
    /// wait for another process's refresh lock included (on the cache's
    /// clock). Past it, every call waiting for the fetch gets
    /// [`AuthError::LoadTimeout`](crate::auth::AuthError::LoadTimeout), the
    /// fetch is dropped and the failure backs the key off like any other.
    /// Default 60 seconds.
    pub load_timeout: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            refresh_before: Duration::from_secs(5 * 60),
            max_refresh_share: 0.5,
            refresh_jitter: 0.25,
            expiry_margin: Duration::from_secs(10),
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
            lock_ttl: Duration::from_secs(30),
            lock_poll: Duration::from_millis(250),
            load_timeout: Duration::from_secs(60),
        }
    }
}

/// When one token should be refreshed, and until when it may be handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The token this plan is for (tokens are told apart by expiry).
    pub expires_at: SystemTime,
    /// From here on, a background refresh is due.
    pub refresh_at: SystemTime,
    /// From here on, the token is not handed out any more.
    pub usable_until: SystemTime,
}

/// Where a token stands at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Hand it out.
    Fresh,
    /// Hand it out, and refresh in the background.
    RefreshDue,
    /// Do not hand it out: get another one first.
    Unusable,
}

impl Plan {
    /// Plans a token fetched here: it expires at `expires_at` after a life
    /// of `lifetime`. `jitter` is in `[0, 1)`.
    pub fn new(
        settings: &CacheSettings,
        expires_at: SystemTime,
        lifetime: Duration,
        jitter: f64,
    ) -> Self {
        let margin = settings.expiry_margin.min(lifetime / 4);
        Self::with_margin(settings, expires_at, lifetime, jitter, margin)
    }

    /// Plans a token first seen in the store at `now` (another process
    /// fetched it): its lifetime is unknown, so what is left of it caps the
    /// refresh buffer, and the expiry margin is kept whole.
    pub fn first_seen(
        settings: &CacheSettings,
        expires_at: SystemTime,
        now: SystemTime,
        jitter: f64,
    ) -> Self {
        let left = expires_at.duration_since(now).unwrap_or_default();
        Self::with_margin(settings, expires_at, left, jitter, settings.expiry_margin)
    }

    fn with_margin(
        settings: &CacheSettings,
        expires_at: SystemTime,
        lifetime: Duration,
        jitter: f64,
        margin: Duration,
    ) -> Self {
        let share = clamp_share(settings.max_refresh_share);
        let base = settings.refresh_before.min(lifetime.mul_f64(share));
        let extra = clamp_share(settings.refresh_jitter) * jitter.clamp(0.0, 1.0);
        let buffer = base.mul_f64(1.0 + extra);
        let usable_until = sub(expires_at, margin);
        let refresh_at = sub(expires_at, buffer).min(usable_until);
        Self {
            expires_at,
            refresh_at,
            usable_until,
        }
    }

    /// Where the token stands at `now`.
    pub fn standing(&self, now: SystemTime) -> Standing {
        if now >= self.usable_until {
            Standing::Unusable
        } else if now >= self.refresh_at {
            Standing::RefreshDue
        } else {
            Standing::Fresh
        }
    }
}

/// The wait before the next attempt after `failures` consecutive failures
/// (`failures >= 1`): `retry_initial * 2^(failures - 1)`, at most `retry_max`.
pub(crate) fn retry_delay(settings: &CacheSettings, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    settings
        .retry_initial
        .checked_mul(1u32 << doublings)
        .unwrap_or(settings.retry_max)
        .min(settings.retry_max)
}

fn clamp_share(share: f64) -> f64 {
    if share.is_nan() {
        0.0
    } else {
        share.clamp(0.0, 0.5)
    }
}

fn sub(at: SystemTime, by: Duration) -> SystemTime {
    at.checked_sub(by).unwrap_or(SystemTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    #[test]
    fn hour_tokens_refresh_five_minutes_early_plus_jitter() {
        let settings = CacheSettings::default();
        let plan = Plan::new(&settings, at(3600), 60 * MIN, 0.0);
        assert_eq!(plan.refresh_at, at(3600 - 300));
        assert_eq!(plan.usable_until, at(3600 - 10));
        // jitter 0.5 of the 0.25 share: 5 min * 1.125 = 337.5 s early.
        let plan = Plan::new(&settings, at(3600), 60 * MIN, 0.5);
        assert_eq!(plan.refresh_at, at(3600 - 338) + Duration::from_millis(500));
    }

    #[test]
    fn five_minute_tokens_are_capped_at_half_their_life() {
        let settings = CacheSettings::default();
        let plan = Plan::new(&settings, at(300), 5 * MIN, 0.0);
        assert_eq!(plan.refresh_at, at(150));
        assert_eq!(plan.standing(at(149)), Standing::Fresh);
        assert_eq!(plan.standing(at(150)), Standing::RefreshDue);
        assert_eq!(plan.standing(at(289)), Standing::RefreshDue);
        assert_eq!(plan.standing(at(290)), Standing::Unusable);
    }

    #[test]
    fn very_short_tokens_keep_a_fresh_period() {
        let settings = CacheSettings::default();
        let plan = Plan::new(&settings, at(8), Duration::from_secs(8), 0.999);
        // margin: a quarter of 8 s; buffer: 4 s * (1 + 0.25 * 0.999) < 6 s.
        assert_eq!(plan.usable_until, at(6));
        assert!(
            plan.refresh_at > at(2) && plan.refresh_at < at(6),
            "{plan:?}"
        );
        assert_eq!(plan.standing(at(0)), Standing::Fresh);
    }

    #[test]
    fn a_token_from_another_process_keeps_the_whole_margin() {
        let settings = CacheSettings::default();
        // 8 s left of a token of unknown life: 10 s margin, not a quarter.
        let plan = Plan::first_seen(&settings, at(8), at(0), 0.0);
        assert_eq!(plan.standing(at(0)), Standing::Unusable);
        // 20 min left: refresh 5 min before expiry, as for own tokens.
        let plan = Plan::first_seen(&settings, at(1200), at(0), 0.0);
        assert_eq!(plan.refresh_at, at(900));
        assert_eq!(plan.usable_until, at(1190));
    }

    #[test]
    fn shares_are_clamped() {
        let settings = CacheSettings {
            max_refresh_share: 7.0,
            refresh_jitter: f64::NAN,
            refresh_before: 10 * MIN,
            ..CacheSettings::default()
        };
        let plan = Plan::new(&settings, at(600), 10 * MIN, 0.9);
        assert_eq!(plan.refresh_at, at(300));
    }

    #[test]
    fn retry_delay_doubles_up_to_the_cap() {
        let settings = CacheSettings::default();
        let delays: Vec<u64> = (1..=8)
            .map(|n| retry_delay(&settings, n).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(retry_delay(&settings, u32::MAX), settings.retry_max);
    }
}
