//! B3: refresh under load. A steady, paced load of generated NXTsoft calls
//! (`POST /transactions/mock`, which the sandbox answers only with a valid
//! token) runs across several token lifetimes. Tokens live 4 s; the cache
//! refreshes them in the background from 1.8 s before expiry (plus jitter)
//! and the token endpoint takes 200 ms to answer, as a remote identity
//! provider does, so each refresh is a window of real length.
//!
//! Measured:
//! - calls that waited on a token fetch: the cache's own `waited` counter
//!   after the warm-up call (target 0: every call is served at once while
//!   the refresh runs in the background);
//! - p99 of the calls in flight during a refresh (their time overlaps a
//!   fetch, as the fetcher recorded it) against the p99 of all other calls;
//! - token requests the server saw per new token the calls used (each
//!   token fetched once, in its lifetime).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use http::HeaderValue;
use m2m::auth::clock::{RandomJitter, SystemClock};
use m2m::auth::{
    AccessToken, Auth, AuthError, BoxFuture, CacheSettings, CachedTokenSource, FetchToken,
    MemoryStore, TokenCache, TokenEndpoint, TokenSource,
};
use m2m::sandbox::{ProviderStyle, Sandbox};
use serde_json::json;

use super::sample::{Sample, millis, round};
use super::wiring::{self, Servers, client_runtime};
use super::{Options, Row};

/// Target for p99 during a refresh over p99 outside one.
pub const P99_RATIO_TARGET: f64 = 1.1;
/// How long after a refresh a call counts as "just after" it (reported,
/// not part of the target).
const AFTER_REFRESH: Duration = Duration::from_millis(300);

/// Calls and refreshes over time, for the plot.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// Each call: when it started (from the start of the load) and how
    /// long it took.
    pub calls: Vec<(Duration, Duration)>,
    /// Each token fetch during the load: start and end.
    pub refreshes: Vec<(Duration, Duration)>,
    /// The token lifetime.
    pub lifetime: Duration,
}

struct Sizes {
    lifetime: Duration,
    token_latency: Duration,
    run_for: Duration,
    workers: usize,
    /// Each worker starts a call this often.
    pace: Duration,
}

/// Runs B3: three rows, and the timeline for the plot.
pub fn run(options: &Options, servers: &Servers) -> (Vec<Row>, Timeline) {
    let sizes = if options.quick {
        Sizes {
            lifetime: Duration::from_secs(3),
            token_latency: Duration::from_millis(100),
            run_for: Duration::from_millis(3500),
            workers: 4,
            pace: Duration::from_millis(4),
        }
    } else {
        Sizes {
            lifetime: Duration::from_secs(4),
            token_latency: Duration::from_millis(200),
            run_for: Duration::from_secs(24),
            workers: 8,
            pace: Duration::from_millis(4),
        }
    };
    let sandbox = servers.sandbox(sizes.lifetime, sizes.token_latency);
    let runtime = client_runtime(2);
    let result = runtime.block_on(measure(&sizes, &sandbox));
    servers.stop(sandbox);
    result
}

/// The cache's settings for tokens of `lifetime`: refresh from 45% of the
/// lifetime before expiry (plus up to a quarter of that as jitter), stop
/// handing a token out 1/8 before it. (The sandbox's `exp` is whole
/// seconds, so its tokens may end up to 1 s before the `expires_in` the
/// client counts from: the refresh must be done by then.)
fn settings(lifetime: Duration) -> CacheSettings {
    let mut settings = CacheSettings::default();
    settings.refresh_before = lifetime.mul_f64(0.45);
    settings.expiry_margin = lifetime / 8;
    settings
}

async fn measure(sizes: &Sizes, sandbox: &Sandbox) -> (Vec<Row>, Timeline) {
    let epoch = Instant::now();
    let cache = TokenCache::new(
        Arc::new(MemoryStore::default()),
        Arc::new(SystemClock),
        Arc::new(RandomJitter),
        settings(sizes.lifetime),
    );
    // m2m takes a short `expires_in` at its word: the sandbox's 1 s
    // tokens live 1 s.
    let endpoint = wiring::endpoint(sandbox);
    let key = m2m::auth::CacheKey::for_endpoint(endpoint.identity());
    let fetcher = Arc::new(TimedFetcher {
        endpoint,
        epoch,
        windows: Mutex::default(),
    });
    let source = cache.source(key, fetcher.clone());
    let used = Arc::new(Mutex::new(HashSet::new()));
    let auth = Auth::from_source(Tally {
        source: source.clone(),
        used: Arc::clone(&used),
    });
    let client = wiring::nxtsoft_client(sandbox, auth);

    // Warm-up: the first call fetches the first token (and waits for it).
    assert!(wiring::validate(&client).await, "the warm-up call succeeds");
    let before = cache.stats();
    sandbox.reset_stats();
    lock(&used).clear();
    let load_start = epoch.elapsed();
    let deadline = Instant::now() + sizes.run_for;

    let workers: Vec<_> = (0..sizes.workers)
        .map(|_| {
            let client = Arc::clone(&client);
            let pace = sizes.pace;
            tokio::spawn(async move {
                let mut calls = Vec::new();
                let mut failed = 0usize;
                let mut ticks = tokio::time::interval(pace);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while Instant::now() < deadline {
                    ticks.tick().await;
                    let started = Instant::now();
                    let ok = wiring::validate(&client).await;
                    calls.push((started.duration_since(epoch), started.elapsed()));
                    failed += usize::from(!ok);
                }
                (calls, failed)
            })
        })
        .collect();
    let mut calls = Vec::new();
    let mut failed = 0;
    for worker in workers {
        let (mut worker_calls, worker_failed) = worker.await.expect("a load worker ends");
        calls.append(&mut worker_calls);
        failed += worker_failed;
    }
    // The refresh started by the last calls ends, and one more call uses its
    // token, so that every token fetched during the load was used.
    source.settled().await;
    failed += usize::from(!wiring::validate(&client).await);
    let after = cache.stats();
    let server = sandbox.stats();
    let token_requests = server.token_requests_for(ProviderStyle::Cognito);
    // The warm-up token is among those used: the others are new.
    let new_tokens = lock(&used).len().saturating_sub(1) as u64;

    let windows: Vec<(Duration, Duration)> = lock(&fetcher.windows)
        .iter()
        .filter(|(start, _)| *start >= load_start)
        .copied()
        .collect();
    let (mut during, mut outside, mut just_after) = (Vec::new(), Vec::new(), Vec::new());
    for &(start, took) in &calls {
        let end = start + took;
        if windows.iter().any(|&(ws, we)| start < we && end > ws) {
            during.push(took);
        } else {
            outside.push(took);
            // Among the others: those started in the 300 ms after a
            // refresh ended (the first calls with the new token).
            if windows
                .iter()
                .any(|&(_, we)| start >= we && start < we + AFTER_REFRESH)
            {
                just_after.push(took);
            }
        }
    }
    let (during, outside, just_after) = (
        Sample::new(during),
        Sample::new(outside),
        Sample::new(just_after),
    );
    let p99_ratio = if outside.is_empty() || during.is_empty() {
        f64::NAN
    } else {
        during.p99().as_secs_f64() / outside.p99().as_secs_f64()
    };
    let waited = after.waited - before.waited;
    let per_lifetime = if new_tokens == 0 {
        f64::NAN
    } else {
        token_requests as f64 / new_tokens as f64
    };
    let lifetimes = sizes.run_for.as_secs_f64() / sizes.lifetime.as_secs_f64();
    let common = json!({
        "calls": calls.len(),
        "failed": failed,
        "workers": sizes.workers,
        "calls_per_second": round(calls.len() as f64 / sizes.run_for.as_secs_f64(), 0),
        "run_s": sizes.run_for.as_secs_f64(),
        "token_lifetime_s": sizes.lifetime.as_secs(),
        "lifetimes_covered": round(lifetimes, 1),
        "token_endpoint_latency_ms": sizes.token_latency.as_millis() as u64,
        "refreshes": windows.len(),
    });
    let rows = vec![
        Row::new(
            "B3 calls that waited on a token fetch",
            waited as f64,
            "calls",
            "== 0",
            waited == 0 && failed == 0,
            json!({
                "summary": format!(
                    "{} calls across {:.0} lifetimes, {} background refreshes, {} failed",
                    calls.len(), lifetimes, after.background_refreshes - before.background_refreshes, failed
                ),
                "cache_waited": waited,
                "cache_misses": after.misses - before.misses,
                "background_refreshes": after.background_refreshes - before.background_refreshes,
                "load": common,
            }),
        ),
        Row::new(
            "B3 p99 during refresh / outside",
            round(p99_ratio, 3),
            "ratio",
            &format!("<= {P99_RATIO_TARGET}"),
            p99_ratio <= P99_RATIO_TARGET,
            json!({
                "summary": format!(
                    "p99 {:.2} ms during ({} calls) vs {:.2} ms outside ({} calls)",
                    millis(during.p99()), during.len(), millis(outside.p99()), outside.len()
                ),
                "during_p99_ms": round(millis(during.p99()), 3),
                "during_p50_ms": round(millis(during.median()), 3),
                "during_calls": during.len(),
                "outside_p99_ms": round(millis(outside.p99()), 3),
                "outside_p50_ms": round(millis(outside.median()), 3),
                "outside_calls": outside.len(),
                "just_after_refresh_p99_ms": round(millis(just_after.p99()), 3),
                "just_after_refresh_calls": just_after.len(),
                "just_after_refresh_window_ms": AFTER_REFRESH.as_millis() as u64,
            }),
        ),
        Row::new(
            "B3 token requests per lifetime",
            round(per_lifetime, 3),
            "requests/token",
            "== 1",
            per_lifetime == 1.0,
            json!({
                "summary": format!(
                    "{token_requests} token requests for {new_tokens} new tokens over {lifetimes:.0} lifetimes"
                ),
                "token_requests": token_requests,
                "new_tokens_used": new_tokens,
                "cache_fetches": after.fetches - before.fetches,
            }),
        ),
    ];
    let timeline = Timeline {
        calls: calls
            .iter()
            .map(|&(start, took)| (start.saturating_sub(load_start), took))
            .collect(),
        refreshes: windows
            .iter()
            .map(|&(s, e)| (s.saturating_sub(load_start), e.saturating_sub(load_start)))
            .collect(),
        lifetime: sizes.lifetime,
    };
    (rows, timeline)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The token endpoint, recording when each fetch ran.
struct TimedFetcher {
    endpoint: TokenEndpoint,
    epoch: Instant,
    windows: Mutex<Vec<(Duration, Duration)>>,
}

impl FetchToken for TimedFetcher {
    fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>> {
        Box::pin(async move {
            let start = self.epoch.elapsed();
            let result = self.endpoint.request_token().await;
            lock(&self.windows).push((start, self.epoch.elapsed()));
            result
        })
    }
}

/// The cached source, noting which tokens the calls were given (told apart
/// by expiry).
struct Tally {
    source: CachedTokenSource,
    used: Arc<Mutex<HashSet<SystemTime>>>,
}

impl Tally {
    fn note(&self, result: Result<AccessToken, AuthError>) -> Result<AccessToken, AuthError> {
        if let Ok(token) = &result {
            lock(&self.used).insert(token.expires_at());
        }
        result
    }
}

impl TokenSource for Tally {
    fn token(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>> {
        Box::pin(async move { self.note(self.source.token().await) })
    }

    fn renew<'a>(
        &'a self,
        rejected: &'a HeaderValue,
    ) -> BoxFuture<'a, Result<AccessToken, AuthError>> {
        Box::pin(async move { self.note(self.source.renew(rejected).await) })
    }
}
