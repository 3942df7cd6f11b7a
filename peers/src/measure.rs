//! The four rows, measured the same way for every peer.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::alloc;
use crate::env::Env;
use crate::peers::{Kind, Peer};
use crate::sample::Sample;

/// How big a run is.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// Batches of warm cache hits (the median is taken).
    pub hit_batches: usize,
    /// Wall time of one batch of hits.
    pub hit_batch_time: Duration,
    /// Concurrent cold callers, one storm each.
    pub storms: Vec<usize>,
    /// The token endpoint's latency during a storm.
    pub storm_latency: Duration,
    /// How long a steady-load token is used (its lifetime, plus the peer's
    /// fixed refresh margin if it has one).
    pub usable: Duration,
    /// Token lifetimes the steady load runs across.
    pub lifetimes: u32,
    /// The token endpoint's latency under steady load.
    pub steady_latency: Duration,
    /// Workers of the steady load, each asking for a token every `pace`.
    pub workers: usize,
    /// See `workers`.
    pub pace: Duration,
    /// Clients (or keys), each holding one token, for the memory row.
    pub memory_clients: usize,
}

impl Sizes {
    /// The full run (about two and a half minutes).
    pub fn full() -> Self {
        Self {
            hit_batches: 31,
            hit_batch_time: Duration::from_millis(20),
            storms: vec![1, 100, 10_000],
            storm_latency: Duration::from_millis(100),
            usable: Duration::from_secs(4),
            lifetimes: 3,
            steady_latency: Duration::from_millis(200),
            workers: 8,
            pace: Duration::from_millis(2),
            memory_clients: 2_000,
        }
    }

    /// Seconds, for checking that it all works; the figures mean little.
    pub fn quick() -> Self {
        Self {
            hit_batches: 5,
            hit_batch_time: Duration::from_millis(2),
            storms: vec![1, 100],
            storm_latency: Duration::from_millis(50),
            usable: Duration::from_secs(2),
            lifetimes: 1,
            steady_latency: Duration::from_millis(100),
            workers: 2,
            pace: Duration::from_millis(5),
            memory_clients: 100,
        }
    }
}

/// The lifetime of tokens outside the steady load.
pub const LONG_LIFETIME: Duration = Duration::from_secs(3599);

/// One storm of cold callers.
#[derive(Debug, Clone)]
pub struct Storm {
    /// Token requests the sandbox counted.
    pub requests: u64,
    /// p99 from a caller's call to its token.
    pub p99: Duration,
    /// Callers that got no token.
    pub failed: usize,
}

/// The steady load across several lifetimes.
#[derive(Debug, Clone)]
pub struct Steady {
    /// Calls made.
    pub calls: usize,
    /// Calls that took at least half the token endpoint's latency: they
    /// waited on a fetch (a cache hit takes microseconds).
    pub waited: usize,
    /// p99 of the calls that overlapped a token fetch.
    pub p99_during: Duration,
    /// Calls that overlapped a token fetch.
    pub during: usize,
    /// p99 of the others.
    pub p99_outside: Duration,
    /// Token requests the sandbox counted.
    pub requests: u64,
    /// Calls that got no token.
    pub failed: usize,
}

impl Steady {
    /// p99 during a refresh over p99 outside; `None` when either is empty.
    pub fn p99_ratio(&self) -> Option<f64> {
        (self.during > 0 && self.calls > self.during)
            .then(|| self.p99_during.as_secs_f64() / self.p99_outside.as_secs_f64())
    }
}

/// Everything measured for one peer.
#[derive(Debug, Clone)]
pub struct Figures {
    /// The peer's column heading.
    pub name: &'static str,
    /// Whether it caches at all.
    pub caches: bool,
    /// (a) a warm cache hit (for a peer without a cache: a token request).
    pub hit: Duration,
    /// (b) one per storm size.
    pub storms: Vec<Storm>,
    /// (c).
    pub steady: Steady,
    /// The steady-load token lifetime this peer was given.
    pub steady_lifetime: Duration,
    /// (d) bytes retained per cached token; `None` without a cache.
    pub bytes_per_token: Option<f64>,
}

/// Measures every row for `K`.
pub async fn peer<K: Kind>(env: &Env, sizes: &Sizes) -> Figures {
    eprintln!("  {}: warm hit", K::NAME);
    env.set(Duration::ZERO, LONG_LIFETIME);
    let hit = hit(&K::client(env, false), sizes).await;
    let mut storms = Vec::new();
    for &callers in &sizes.storms {
        eprintln!("  {}: {callers} cold callers", K::NAME);
        env.set(sizes.storm_latency, LONG_LIFETIME);
        storms.push(storm::<K>(env, callers).await);
    }
    eprintln!("  {}: steady load", K::NAME);
    let steady_lifetime = sizes.usable + K::FIXED_REFRESH_MARGIN;
    env.set(sizes.steady_latency, steady_lifetime);
    let steady = steady::<K>(env, sizes).await;
    eprintln!("  {}: memory", K::NAME);
    env.set(Duration::ZERO, LONG_LIFETIME);
    let bytes_per_token = memory::<K>(env, sizes.memory_clients).await;
    Figures {
        name: K::NAME,
        caches: K::CACHES,
        hit,
        storms,
        steady,
        steady_lifetime,
        bytes_per_token,
    }
}

/// (a) The median time of one call with a warm cache, over batches.
async fn hit<P: Peer>(client: &P, sizes: &Sizes) -> Duration {
    assert!(client.token().await, "the first token comes");
    let probe = Instant::now();
    let mut probes = 0u32;
    while probes < 10_000 && probe.elapsed() < Duration::from_millis(50) {
        black_box(client.token().await);
        probes += 1;
    }
    let per_call = probe.elapsed() / probes;
    let batch =
        (sizes.hit_batch_time.as_nanos() / per_call.as_nanos().max(1)).clamp(1, 1_000_000) as u32;
    let mut batches = Vec::with_capacity(sizes.hit_batches);
    for _ in 0..sizes.hit_batches {
        let started = Instant::now();
        for _ in 0..batch {
            black_box(client.token().await);
        }
        batches.push(started.elapsed() / batch);
    }
    Sample::new(batches).median()
}

/// (b) `callers` concurrent first calls on one new client.
async fn storm<K: Kind>(env: &Env, callers: usize) -> Storm {
    env.reset();
    let client = Arc::new(K::client(env, false));
    let (go, start) = tokio::sync::watch::channel(false);
    let ready = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let client = Arc::clone(&client);
            let mut start = start.clone();
            let ready = Arc::clone(&ready);
            tokio::spawn(async move {
                ready.fetch_add(1, Ordering::SeqCst);
                let _ = start.wait_for(|go| *go).await;
                let called = Instant::now();
                let ok = client.token().await;
                (called.elapsed(), ok)
            })
        })
        .collect();
    while ready.load(Ordering::SeqCst) < callers {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    go.send_replace(true);
    let mut latencies = Vec::with_capacity(callers);
    let mut failed = 0;
    for task in tasks {
        let (latency, ok) = task.await.expect("a caller does not panic");
        latencies.push(latency);
        failed += usize::from(!ok);
    }
    Storm {
        requests: env.token_requests(),
        p99: Sample::new(latencies).p99(),
        failed,
    }
}

/// (c) Paced calls from several workers across a few token lifetimes.
async fn steady<K: Kind>(env: &Env, sizes: &Sizes) -> Steady {
    let client = Arc::new(K::client(env, true));
    assert!(client.token().await, "the first token comes");
    env.reset();
    let run_for = sizes.usable * sizes.lifetimes;
    let deadline = Instant::now() + run_for;
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
                    let ok = client.token().await;
                    calls.push((started, started.elapsed()));
                    failed += usize::from(!ok);
                }
                (calls, failed)
            })
        })
        .collect();
    let mut calls = Vec::new();
    let mut failed = 0;
    for worker in workers {
        let (mut worker_calls, worker_failed) = worker.await.expect("a worker ends");
        calls.append(&mut worker_calls);
        failed += worker_failed;
    }
    let requests = env.token_requests();
    let windows = env.fetches.take();
    let waited_from = sizes.steady_latency / 2;
    let waited = calls
        .iter()
        .filter(|(_, took)| *took >= waited_from)
        .count();
    let (mut during, mut outside) = (Vec::new(), Vec::new());
    for &(start, took) in &calls {
        let end = start + took;
        if windows.iter().any(|&(ws, we)| start < we && end > ws) {
            during.push(took);
        } else {
            outside.push(took);
        }
    }
    let (during, outside) = (Sample::new(during), Sample::new(outside));
    Steady {
        calls: calls.len(),
        waited,
        p99_during: during.p99(),
        during: during.len(),
        p99_outside: outside.p99(),
        requests,
        failed,
    }
}

/// (d) Bytes allocated and retained per client holding one cached token.
async fn memory<K: Kind>(env: &Env, clients: usize) -> Option<f64> {
    if !K::CACHES {
        return None;
    }
    // Warm-up: connections, lazily built statics, pools.
    let warm = K::clients(env, 16);
    for client in &warm {
        assert!(client.token().await, "a token comes");
    }
    alloc::start();
    let before = alloc::live();
    let filled = K::clients(env, clients);
    for client in &filled {
        assert!(client.token().await, "a token comes");
    }
    let after = alloc::live();
    alloc::stop();
    drop(filled);
    Some((after - before) as f64 / clients as f64)
}
