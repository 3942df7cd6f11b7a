//! The cache's metrics, emitted from here only (feature `metrics`; without
//! it every method is empty and the observer holds nothing).
//!
//! The handles of the per-call metrics are registered once per source, at
//! its first call, so a warm hit costs one counter increment and one gauge
//! store, no look-up by name. Install the recorder before the first call.

#[cfg(feature = "metrics")]
use std::sync::OnceLock;
use std::time::SystemTime;

use crate::metrics::MetricLabels;
use crate::oauth::error::AuthError;
use crate::oauth::token::AccessToken;

/// What one token source reports.
pub(crate) struct CacheObserver {
    #[cfg(feature = "metrics")]
    labels: MetricLabels,
    #[cfg(feature = "metrics")]
    handles: OnceLock<Handles>,
}

/// The handles registered once per source.
#[cfg(feature = "metrics")]
struct Handles {
    hits: metrics::Counter,
    stale_served: metrics::Counter,
    misses: metrics::Counter,
    background_refreshes: metrics::Counter,
    fetch_waits: metrics::Counter,
    held_off_calls: metrics::Counter,
    lock_waits: metrics::Counter,
    lock_takeovers: metrics::Counter,
    remaining: metrics::Gauge,
}

/// A fetch being timed (real time: the duration is not the cache's
/// business, its clock may be a test's).
pub(crate) struct FetchTimer {
    #[cfg(feature = "metrics")]
    started: std::time::Instant,
}

impl CacheObserver {
    pub fn new(labels: &MetricLabels) -> Self {
        #[cfg(not(feature = "metrics"))]
        let _ = labels;
        Self {
            #[cfg(feature = "metrics")]
            labels: labels.clone(),
            #[cfg(feature = "metrics")]
            handles: OnceLock::new(),
        }
    }

    #[cfg(feature = "metrics")]
    fn handles(&self) -> &Handles {
        use crate::metrics::names;
        self.handles.get_or_init(|| {
            let labels = self.labels.with(&[]);
            Handles {
                hits: metrics::counter!(names::CACHE_HITS, labels.clone()),
                stale_served: metrics::counter!(names::STALE_SERVED, labels.clone()),
                misses: metrics::counter!(names::CACHE_MISSES, labels.clone()),
                background_refreshes: metrics::counter!(
                    names::BACKGROUND_REFRESHES,
                    labels.clone()
                ),
                fetch_waits: metrics::counter!(names::FETCH_WAITS, labels.clone()),
                held_off_calls: metrics::counter!(names::HELD_OFF_CALLS, labels.clone()),
                lock_waits: metrics::counter!(names::LOCK_WAITS, labels.clone()),
                lock_takeovers: metrics::counter!(names::LOCK_TAKEOVERS, labels.clone()),
                remaining: metrics::gauge!(names::REMAINING, labels.clone()),
            }
        })
    }

    /// `token` was handed out at `now`; `stale`: its refresh was due.
    #[inline]
    pub fn served(&self, token: &AccessToken, now: SystemTime, stale: bool) {
        #[cfg(feature = "metrics")]
        {
            let handles = self.handles();
            handles.hits.increment(1);
            if stale {
                handles.stale_served.increment(1);
            }
            let left = token.expires_at().duration_since(now).unwrap_or_default();
            handles.remaining.set(left.as_secs_f64());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (token, now, stale);
    }

    /// A call found no usable token.
    pub fn missed(&self) {
        #[cfg(feature = "metrics")]
        self.handles().misses.increment(1);
    }

    /// A refresh was started in the background.
    pub fn refreshing_in_background(&self) {
        #[cfg(feature = "metrics")]
        self.handles().background_refreshes.increment(1);
    }

    /// A call waits for a fetch.
    pub fn waiting(&self) {
        #[cfg(feature = "metrics")]
        self.handles().fetch_waits.increment(1);
    }

    /// A call failed at once: the last fetch failed and its backoff (or
    /// the endpoint's `Retry-After`) has not passed.
    pub fn held_off(&self) {
        #[cfg(feature = "metrics")]
        self.handles().held_off_calls.increment(1);
    }

    /// Another process holds the fleet's refresh lock: this one waits.
    pub fn lock_held_elsewhere(&self) {
        #[cfg(feature = "metrics")]
        self.handles().lock_waits.increment(1);
    }

    /// The lock's holder let it expire: this process took it over.
    pub fn lock_taken_over(&self) {
        #[cfg(feature = "metrics")]
        self.handles().lock_takeovers.increment(1);
    }

    /// A fetch starts.
    pub fn fetch_started(&self) -> FetchTimer {
        FetchTimer {
            #[cfg(feature = "metrics")]
            started: std::time::Instant::now(),
        }
    }

    /// A fetch ended with `result`. A throttled answer (HTTP 429, or the
    /// endpoint's own hold-off) counts as a hold-off, with its
    /// `Retry-After` when it gave one.
    pub fn fetched(&self, timer: FetchTimer, result: &Result<AccessToken, AuthError>) {
        #[cfg(feature = "metrics")]
        {
            use crate::metrics::{OUTCOME, STATUS, names};
            let took = timer.started.elapsed();
            let (outcome, status) = outcome(result);
            let labels = self.labels.with(&[(OUTCOME, outcome.to_owned())]);
            metrics::histogram!(names::FETCH_DURATION, labels.clone()).record(took.as_secs_f64());
            let labels = self
                .labels
                .with(&[(OUTCOME, outcome.to_owned()), (STATUS, status)]);
            metrics::counter!(names::FETCHES, labels.clone()).increment(1);
            if outcome == "throttled" {
                let labels = self.labels.with(&[]);
                metrics::counter!(names::HOLD_OFFS, labels.clone()).increment(1);
                if let Some(after) = result.as_ref().err().and_then(AuthError::retry_after) {
                    metrics::histogram!(names::RETRY_AFTER, labels.clone())
                        .record(after.as_secs_f64());
                }
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (timer, result);
    }
}

/// The `outcome` and `status` labels of a fetch that ended with `result`:
/// `ok` (status `2xx`: the endpoint accepts any success status),
/// `throttled` (429, or the endpoint's hold-off), `rejected` (another error
/// status or an OAuth error), `invalid_response`, `transport`, `timeout`
/// (the cache's `load_timeout`), or `other`. The status is the token endpoint's three
/// digits when it answered, else `none`.
#[cfg(feature = "metrics")]
fn outcome(result: &Result<AccessToken, AuthError>) -> (&'static str, String) {
    let error = match result {
        Ok(_) => return ("ok", "2xx".to_owned()),
        Err(error) => error,
    };
    let status = error
        .status()
        .map_or_else(|| "none".to_owned(), |status| status.as_u16().to_string());
    let outcome = match error {
        _ if error.status() == Some(http::StatusCode::TOO_MANY_REQUESTS) => "throttled",
        AuthError::HeldOff { .. } => "throttled",
        AuthError::Rejected(_) => "rejected",
        AuthError::InvalidResponse(_) | AuthError::UnsupportedTokenType { .. } => {
            "invalid_response"
        }
        AuthError::Transport(_) => "transport",
        AuthError::LoadTimeout { .. } => "timeout",
        _ => "other",
    };
    (outcome, status)
}
