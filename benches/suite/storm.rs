//! B2: a cold storm. `n` concurrent first calls of a service that has just
//! started (a fresh cache), each asking its `Auth` handle for the token, as
//! the generated client's `pre` hook does before every call. The token
//! endpoint is the sandbox's, answering after 100 ms as a remote identity
//! provider does, so every caller arrives while the one fetch is under way.
//!
//! Counted at the server: how many token requests it saw. Timed per caller:
//! from its call to its token (p50, p99).
//!
//! The API call after the token is left out on purpose: 10,000 concurrent
//! HTTP/1 calls need 10,000 client and 10,000 server sockets in this one
//! process, beyond the 20,000 descriptors allowed here, and would measure
//! the kernel's accept queue rather than m2m.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use m2m::auth::TokenCache;
use m2m::sandbox::{DEFAULT_TOKEN_LIFETIME, ProviderStyle, Sandbox};
use serde_json::json;

use super::sample::{Sample, millis, round};
use super::wiring::{self, Servers, client_runtime};
use super::{Options, Row};

/// How long the sandbox takes to answer a token request in B2.
pub const TOKEN_LATENCY: Duration = Duration::from_millis(100);

/// Runs B2 at every size: one row per size.
pub fn run(options: &Options, servers: &Servers) -> Vec<Row> {
    let sizes: &[usize] = if options.quick {
        &[1, 10, 100]
    } else {
        &[1, 10, 100, 1_000, 10_000]
    };
    let sandbox = servers.sandbox(DEFAULT_TOKEN_LIFETIME, TOKEN_LATENCY);
    let runtime = client_runtime(2);
    let rows = sizes
        .iter()
        .map(|&callers| {
            sandbox.reset_stats();
            runtime.block_on(storm(&sandbox, callers))
        })
        .collect();
    servers.stop(sandbox);
    rows
}

async fn storm(sandbox: &Sandbox, callers: usize) -> Row {
    let cache = TokenCache::in_memory();
    let auth = wiring::auth(wiring::endpoint(sandbox), &cache);
    let (go, start) = tokio::sync::watch::channel(false);
    let waiting = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let auth = auth.clone();
            let mut start = start.clone();
            let waiting = Arc::clone(&waiting);
            tokio::spawn(async move {
                waiting.fetch_add(1, Ordering::SeqCst);
                let _ = start.wait_for(|go| *go).await;
                let called = Instant::now();
                let ok = auth.token().await.is_ok();
                (called.elapsed(), ok)
            })
        })
        .collect();
    // Every caller is parked on the start line before the storm begins.
    while waiting.load(Ordering::SeqCst) < callers {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let started = Instant::now();
    go.send_replace(true);
    let mut latencies = Vec::with_capacity(callers);
    let mut failed = 0;
    for task in tasks {
        let (latency, ok) = task.await.expect("a caller does not panic");
        latencies.push(latency);
        failed += usize::from(!ok);
    }
    let all_served = started.elapsed();
    let latencies = Sample::new(latencies);
    let server = sandbox.stats();
    let requests = server.token_requests_for(ProviderStyle::Cognito);
    let stats = cache.stats();
    let pass = requests == 1 && failed == 0;
    Row::new(
        &format!("B2 cold storm, {callers} callers"),
        requests as f64,
        "token requests",
        "== 1",
        pass,
        json!({
            "summary": format!(
                "p50 {:.1} ms, p99 {:.1} ms (token endpoint {} ms)",
                millis(latencies.median()), millis(latencies.p99()), TOKEN_LATENCY.as_millis()
            ),
            "callers": callers,
            "token_requests": requests,
            "tokens_issued": server.tokens_issued,
            "failed": failed,
            "p50_ms": round(millis(latencies.median()), 2),
            "p99_ms": round(millis(latencies.p99()), 2),
            "max_ms": round(millis(latencies.max()), 2),
            "all_served_ms": round(millis(all_served), 2),
            "token_endpoint_latency_ms": TOKEN_LATENCY.as_millis() as u64,
            "cache_waited": stats.waited,
            "cache_hits": stats.hits,
            "cache_fetches": stats.fetches,
        }),
    )
}
