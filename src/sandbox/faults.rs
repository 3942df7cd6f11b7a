//! Fault knobs: latency, throttling, server errors, garbage bodies, random
//! failures and token lifetime, changeable while the sandbox runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The faults the sandbox injects. `Faults::default()` injects none.
///
/// The `*_next` counters count down as requests consume them; they are
/// checked in this order: throttling, server errors, garbage bodies. The
/// random failure rate applies to requests no counter took.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Added before every affected response.
    pub latency: Duration,
    /// Fraction of affected requests (0.0 to 1.0) answered 500 at random,
    /// from a generator seeded by [`SandboxBuilder::seed`](super::SandboxBuilder::seed)
    /// or [`FaultControl::reseed`].
    pub failure_rate: f64,
    /// The next this-many affected requests are answered 429 with `Retry-After`.
    pub throttle_next: u32,
    /// The `Retry-After` of those 429s (whole seconds; default 60, as Entra).
    pub retry_after: Duration,
    /// The next this-many affected requests are answered `server_error_status`.
    pub server_error_next: u32,
    /// The status of those errors (default 503), with an HTML body as a
    /// gateway would send.
    pub server_error_status: u16,
    /// The next this-many affected requests are answered 200 with `garbage`.
    pub garbage_next: u32,
    /// The kind of garbage body.
    pub garbage: GarbageBody,
    /// Overrides the lifetime of newly issued tokens.
    pub token_lifetime: Option<Duration>,
    /// Whether the faults also hit the API routes (they always hit the token
    /// endpoints; discovery and JWKS are never affected).
    pub include_api_routes: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            failure_rate: 0.0,
            throttle_next: 0,
            retry_after: Duration::from_secs(60),
            server_error_next: 0,
            server_error_status: 503,
            garbage_next: 0,
            garbage: GarbageBody::TruncatedJson,
            token_lifetime: None,
            include_api_routes: false,
        }
    }
}

/// A body no client can parse, answered with status 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GarbageBody {
    /// `application/json` cut off in the middle of a string.
    TruncatedJson,
    /// `text/html`: a sign-in page, as a captive proxy answers.
    Html,
}

/// Where a request arrived, for deciding whether faults apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Site {
    TokenEndpoint,
    Api,
}

/// A fault picked for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Injected {
    Throttle { retry_after_secs: u64 },
    ServerError { status: StatusCode },
    Garbage(GarbageBody),
    RandomFailure,
}

/// A handle on the sandbox's faults: cheap to clone, changes apply to the
/// next request.
#[derive(Debug, Clone)]
pub struct FaultControl {
    inner: Arc<FaultState>,
}

#[derive(Debug)]
struct FaultState {
    faults: Mutex<Faults>,
    rng: Mutex<fastrand::Rng>,
    injected: AtomicU64,
}

impl FaultControl {
    pub(crate) fn new(faults: Faults, seed: u64) -> Self {
        Self {
            inner: Arc::new(FaultState {
                faults: Mutex::new(faults),
                rng: Mutex::new(fastrand::Rng::with_seed(seed)),
                injected: AtomicU64::new(0),
            }),
        }
    }

    /// Replaces every knob.
    pub fn set(&self, faults: Faults) {
        *self.lock() = faults;
    }

    /// The knobs as they are now (counters show what is left).
    pub fn get(&self) -> Faults {
        self.lock().clone()
    }

    /// Changes some knobs in place.
    pub fn update(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.lock());
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.set(Faults::default());
    }

    /// The next `count` affected requests are answered 429 with
    /// `Retry-After: {retry_after}` (whole seconds).
    pub fn throttle_next(&self, count: u32, retry_after: Duration) {
        self.update(|f| {
            f.throttle_next = count;
            f.retry_after = retry_after;
        });
    }

    /// The next `count` affected requests are answered with `status` (a
    /// 5xx; anything else is taken as 503) and an HTML body.
    pub fn fail_next(&self, count: u32, status: u16) {
        let status = if (500..600).contains(&status) {
            status
        } else {
            503
        };
        self.update(|f| {
            f.server_error_next = count;
            f.server_error_status = status;
        });
    }

    /// The next `count` affected requests are answered 200 with `garbage`.
    pub fn garble_next(&self, count: u32, garbage: GarbageBody) {
        self.update(|f| {
            f.garbage_next = count;
            f.garbage = garbage;
        });
    }

    /// Adds `latency` before every affected response.
    pub fn set_latency(&self, latency: Duration) {
        self.update(|f| f.latency = latency);
    }

    /// Answers this fraction (clamped to 0.0–1.0) of affected requests 500.
    pub fn set_failure_rate(&self, rate: f64) {
        self.update(|f| f.failure_rate = rate);
    }

    /// Issues tokens with this lifetime from now on (`None`: the sandbox's).
    pub fn set_token_lifetime(&self, lifetime: Option<Duration>) {
        self.update(|f| f.token_lifetime = lifetime);
    }

    /// Restarts the random-failure generator from `seed`, so a run of
    /// failures can be replayed.
    pub fn reseed(&self, seed: u64) {
        *self.inner.rng.lock().unwrap_or_else(|e| e.into_inner()) = fastrand::Rng::with_seed(seed);
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.inner.injected.load(Ordering::Relaxed)
    }

    pub(crate) fn reset_injected(&self) {
        self.inner.injected.store(0, Ordering::Relaxed);
    }

    pub(crate) fn token_lifetime(&self) -> Option<Duration> {
        self.lock().token_lifetime
    }

    /// Picks the fault for one request at `site`, consuming a counter, and
    /// returns it with the latency to add first.
    pub(crate) fn decide(&self, site: Site) -> (Duration, Option<Injected>) {
        let mut faults = self.lock();
        if site == Site::Api && !faults.include_api_routes {
            return (Duration::ZERO, None);
        }
        let injected = if faults.throttle_next > 0 {
            faults.throttle_next -= 1;
            Some(Injected::Throttle {
                retry_after_secs: whole_seconds(faults.retry_after),
            })
        } else if faults.server_error_next > 0 {
            faults.server_error_next -= 1;
            let status = StatusCode::from_u16(faults.server_error_status)
                .ok()
                .filter(StatusCode::is_server_error)
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            Some(Injected::ServerError { status })
        } else if faults.garbage_next > 0 {
            faults.garbage_next -= 1;
            Some(Injected::Garbage(faults.garbage))
        } else if faults.failure_rate > 0.0 {
            let draw = self
                .inner
                .rng
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .f64();
            (draw < faults.failure_rate.min(1.0)).then_some(Injected::RandomFailure)
        } else {
            None
        };
        if injected.is_some() {
            self.inner.injected.fetch_add(1, Ordering::Relaxed);
        }
        (faults.latency, injected)
    }

    fn lock(&self) -> MutexGuard<'_, Faults> {
        // Each critical section leaves the knobs whole: poisoning is ignored.
        self.inner.faults.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whole seconds, rounded up (a `Retry-After` of 0.5 s is 1).
fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// The garbage response itself (status 200).
pub(crate) fn garbage_response(garbage: GarbageBody) -> Response {
    match garbage {
        GarbageBody::TruncatedJson => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            r#"{"token_type":"Bearer","expires_in":3599,"access_token":"eyJ0eXAiOiJKV1Qi"#,
        )
            .into_response(),
        GarbageBody::Html => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            "<!DOCTYPE html><html><head><title>Sign in</title></head>\
             <body><form method=\"post\" action=\"/login\"><h1>Sign in to continue</h1>\
             <input name=\"user\"><input name=\"password\" type=\"password\"></form></body></html>",
        )
            .into_response(),
    }
}

/// The HTML page a gateway answers a 5xx with.
pub(crate) fn gateway_error_response(status: StatusCode) -> Response {
    let reason = status.canonical_reason().unwrap_or("Server Error");
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"))],
        format!(
            "<html><head><title>{code} {reason}</title></head><body><center><h1>{code} {reason}</h1></center><hr><center>sandbox-gateway</center></body></html>",
            code = status.as_u16()
        ),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_consumed_in_order() {
        let control = FaultControl::new(Faults::default(), 7);
        control.throttle_next(1, Duration::from_millis(1_500));
        control.fail_next(1, 502);
        control.garble_next(1, GarbageBody::Html);
        let picks: Vec<_> = (0..4)
            .map(|_| control.decide(Site::TokenEndpoint).1)
            .collect();
        assert_eq!(
            picks,
            vec![
                Some(Injected::Throttle {
                    retry_after_secs: 2
                }),
                Some(Injected::ServerError {
                    status: StatusCode::BAD_GATEWAY
                }),
                Some(Injected::Garbage(GarbageBody::Html)),
                None,
            ]
        );
        assert_eq!(control.injected(), 3);
    }

    #[test]
    fn api_routes_are_spared_unless_included() {
        let control = FaultControl::new(Faults::default(), 7);
        control.throttle_next(2, Duration::from_secs(1));
        assert_eq!(control.decide(Site::Api).1, None);
        assert_eq!(control.get().throttle_next, 2);
        control.update(|f| f.include_api_routes = true);
        assert!(control.decide(Site::Api).1.is_some());
        assert_eq!(control.get().throttle_next, 1);
    }

    #[test]
    fn random_failures_replay_with_the_same_seed() {
        let control = FaultControl::new(Faults::default(), 42);
        control.set_failure_rate(0.5);
        let run = |control: &FaultControl| -> Vec<bool> {
            (0..32)
                .map(|_| control.decide(Site::TokenEndpoint).1.is_some())
                .collect()
        };
        let first = run(&control);
        control.reseed(42);
        assert_eq!(run(&control), first);
        let failures = first.iter().filter(|failed| **failed).count();
        assert!((4..=28).contains(&failures), "{failures} of 32");
        control.set_failure_rate(1.0);
        assert!(run(&control).iter().all(|failed| *failed));
    }

    #[test]
    fn fail_next_keeps_to_server_errors() {
        let control = FaultControl::new(Faults::default(), 1);
        control.fail_next(1, 404);
        assert_eq!(control.get().server_error_status, 503);
    }
}
