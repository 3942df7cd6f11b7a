//! Concurrency stress, end to end: thousands of concurrent generated-client
//! calls on a multi-thread runtime, through `Auth`, the token cache and the
//! token endpoint, against the sandbox, while an injected clock (shared by
//! the sandbox, so the API expires tokens exactly when the cache does) moves
//! tokens through several generations. What must hold: exactly one token
//! request per token generation, and no failed call.

#[path = "support/e2e.rs"]
mod e2e;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use e2e::{Chain, manual_clock, sandbox, sandbox_endpoint, validate};
use m2m::apis::nxtsoft_transactions as nxtsoft;

/// Sandbox tokens live five minutes: the cache refreshes them in the
/// background from 150 s of age and hands them out until 290 s.
const LIFETIME: Duration = Duration::from_secs(300);
/// Waves of concurrent calls across expiries; each one sees a new token
/// generation.
const WAVES: usize = 5;
/// Waves of concurrent calls across refresh windows.
const REFRESH_WINDOWS: usize = 3;
const CALLS_PER_WAVE: usize = 1000;

/// Starts `count` concurrent calls, each on its own task; the returned
/// counter tells how many have finished.
fn spawn_calls(
    client: &Arc<nxtsoft::Client>,
    count: usize,
) -> (Vec<tokio::task::JoinHandle<bool>>, Arc<AtomicUsize>) {
    let finished = Arc::new(AtomicUsize::new(0));
    let tasks = (0..count)
        .map(|_| {
            let client = Arc::clone(client);
            let finished = Arc::clone(&finished);
            tokio::spawn(async move {
                let succeeded = validate(&client).await.is_ok();
                finished.fetch_add(1, Ordering::SeqCst);
                succeeded
            })
        })
        .collect();
    (tasks, finished)
}

/// How many of `tasks` ended with a failed call.
async fn failures(tasks: Vec<tokio::task::JoinHandle<bool>>) -> usize {
    let mut failed = 0;
    for task in tasks {
        if !task.await.expect("a call task does not panic") {
            failed += 1;
        }
    }
    failed
}

/// In every wave the token expires while the calls are in flight: calls
/// already holding it are answered 401 `invalid_token` by the sandbox and
/// renewed by the generated client's hook; calls that ask for a token after
/// the expiry find none usable. Either way, one token request replaces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousands_of_calls_across_expiries_make_one_token_request_per_generation() {
    let clock = manual_clock();
    let sandbox = sandbox(&clock, LIFETIME).await;
    let chain = Chain::new(sandbox_endpoint(&sandbox, &clock).build().unwrap(), &clock);
    let client = Arc::new(chain.client(&sandbox.nxtsoft_api_url()));

    let (mut calls, mut failed) = (0, 0);
    for _ in 0..WAVES {
        // The first call of a wave fetches this generation's token, unless
        // a call of the last wave already did after the expiry.
        failed += usize::from(validate(&client).await.is_err());
        calls += 1;
        let (tasks, finished) = spawn_calls(&client, CALLS_PER_WAVE);
        while finished.load(Ordering::SeqCst) < CALLS_PER_WAVE / 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Past the token's expiry (the sandbox answers `now >= exp` with
        // `invalid_token`), with half the wave still to finish.
        clock.advance(LIFETIME + Duration::from_secs(1));
        failed += failures(tasks).await;
        calls += CALLS_PER_WAVE;
    }
    // After the last expiry: the last generation's token, if no call of the
    // last wave fetched it already.
    failed += usize::from(validate(&client).await.is_err());
    calls += 1;

    assert_eq!(calls, 5006);
    assert_eq!(failed, 0, "no call failed");
    let generations = (WAVES + 1) as u64;
    let stats = sandbox.stats();
    assert_eq!(
        stats.cognito_token_requests, generations,
        "one token request per generation"
    );
    assert_eq!(stats.tokens_issued, generations);
    let cache = chain.cache.stats();
    assert_eq!((cache.fetches, cache.fetch_failures), (generations, 0));
    // Each call reached the API once, and once more if its token expired
    // on the way: some did (hundreds per run), at most the half of each
    // wave still in flight at the expiry.
    let resent = stats.nxtsoft_api_requests - calls as u64;
    assert!(
        (1..=(WAVES * CALLS_PER_WAVE / 2) as u64).contains(&resent),
        "{resent} calls sent twice"
    );
}

/// In every wave the token is in its refresh window: every call is served
/// at once with the current token while exactly one background refresh
/// replaces it; no call waits and none is rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_ahead_under_load_fetches_once_per_window_and_keeps_every_call_moving() {
    let clock = manual_clock();
    let sandbox = sandbox(&clock, LIFETIME).await;
    let chain = Chain::new(sandbox_endpoint(&sandbox, &clock).build().unwrap(), &clock);
    let client = Arc::new(chain.client(&sandbox.nxtsoft_api_url()));

    validate(&client).await.unwrap();
    let mut failed = 0;
    for _ in 0..REFRESH_WINDOWS {
        // 160 s of age: past the refresh point (150 s), far from the end of
        // the token's usable life (290 s).
        clock.advance(Duration::from_secs(160));
        let (tasks, _) = spawn_calls(&client, CALLS_PER_WAVE);
        failed += failures(tasks).await;
        // The refresh ends before time moves on.
        chain.source.settled().await;
    }

    assert_eq!(failed, 0, "no call failed");
    let calls = (1 + REFRESH_WINDOWS * CALLS_PER_WAVE) as u64;
    let stats = sandbox.stats();
    assert_eq!(stats.cognito_token_requests, 1 + REFRESH_WINDOWS as u64);
    assert_eq!(stats.nxtsoft_api_requests, calls, "no call was rejected");
    let cache = chain.cache.stats();
    assert_eq!(cache.fetches, 1 + REFRESH_WINDOWS as u64);
    assert_eq!(cache.background_refreshes, REFRESH_WINDOWS as u64);
    assert_eq!(
        (cache.misses, cache.waited),
        (1, 1),
        "only the very first call waited for a token"
    );
    assert_eq!(cache.hits, calls - 1);
}
