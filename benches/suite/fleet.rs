//! B6: the fleet figure. `P` real processes (this executable started again
//! as workers), each with its own `TokenCache` over a `RedisStore` (its own
//! in-process tier) on one real `redis-server`, start cold at the same
//! instant and make `C` concurrent calls each for a token of the same
//! client. The token endpoint is the sandbox's, answering in 300 ms (every
//! process is waiting while the one fetch runs); the server counts the
//! token requests (target: 1 for the whole fleet).
//!
//! Without the `redis` feature, or without a `redis-server` binary, the
//! row says so (`pass: false` with the reason): it is never skipped quietly.

use super::wiring::Servers;
use super::{Options, Row};

/// Set (to [`WORKER_ROLE`]) in the environment of a fleet worker process.
pub const ROLE_VAR: &str = "M2M_BENCH_ROLE";
/// The value of [`ROLE_VAR`] for a fleet worker.
pub const WORKER_ROLE: &str = "fleet-worker";
const NAME: &str = "B6 fleet, token requests";
const UNIT: &str = "token requests";
const TARGET: &str = "== 1";

/// Whether this process was started as a fleet worker.
pub fn is_worker() -> bool {
    std::env::var(ROLE_VAR).as_deref() == Ok(WORKER_ROLE)
}

/// Runs B6 (one row).
pub fn run(options: &Options, servers: &Servers) -> Row {
    imp::run(options, servers)
}

/// The body of a worker process: does nothing unless [`is_worker`].
pub fn worker_main() {
    if is_worker() {
        imp::worker_main();
    }
}

#[cfg(not(feature = "redis"))]
mod imp {
    use super::*;

    pub fn run(_: &Options, _: &Servers) -> Row {
        Row::unmeasured(
            NAME,
            UNIT,
            TARGET,
            "built without the `redis` feature: run `cargo bench --all-features --bench m2m`",
        )
    }

    pub fn worker_main() {
        eprintln!("fleet worker: built without the `redis` feature");
    }
}

#[cfg(feature = "redis")]
mod imp {
    use std::io::{BufRead, BufReader};
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::sync::Arc;
    use std::sync::mpsc::Receiver;
    use std::time::{Duration, Instant};

    use m2m::auth::clock::{RandomJitter, SystemClock};
    use m2m::auth::{CacheEncryptionKey, CacheSettings, RedisStore, RedisStoreConfig, TokenCache};
    use m2m::sandbox::{DEFAULT_TOKEN_LIFETIME, ProviderStyle};
    use redis::aio::MultiplexedConnection;
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    use super::super::redis_server::RedisServer;
    use super::super::sample::{Sample, millis, round};
    use super::super::wiring::{self, client_runtime};
    use super::*;

    const RESULT: &str = "M2M-BENCH-FLEET-RESULT";
    /// 32 bytes, base64: the fleet's shared cache key in the benchmark.
    const FLEET_KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const TOKEN_LATENCY: Duration = Duration::from_millis(300);

    /// What one worker reports.
    #[derive(Debug, Default, Serialize, Deserialize)]
    struct WorkerResult {
        ok: usize,
        failed: usize,
        fetches: u64,
        adopted: u64,
        store_errors: u64,
        /// Each call's time to its token, in microseconds.
        latencies_us: Vec<u64>,
        elapsed_ms: u64,
    }

    /// `redis-server` as the harness would start it, if it can be found.
    fn redis_binary() -> Option<PathBuf> {
        if let Some(path) = std::env::var_os("M2M_REDIS_SERVER") {
            return Some(PathBuf::from(path));
        }
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|dir| dir.join("redis-server"))
            .find(|candidate| candidate.is_file())
    }

    pub fn run(options: &Options, servers: &Servers) -> Row {
        let Some(binary) = redis_binary() else {
            return Row::unmeasured(
                NAME,
                UNIT,
                TARGET,
                "redis-server is not installed: `apt-get install redis-server` \
                 (scripts/test-all does), or set M2M_REDIS_SERVER",
            );
        };
        let redis = match std::panic::catch_unwind(RedisServer::start) {
            Ok(redis) => redis,
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                return Row::unmeasured(
                    NAME,
                    UNIT,
                    TARGET,
                    &format!("{} did not start: {why}", binary.display()),
                );
            }
        };
        let (processes, calls) = if options.quick { (3, 20) } else { (8, 250) };
        let sandbox = servers.sandbox(DEFAULT_TOKEN_LIFETIME, TOKEN_LATENCY);
        let runtime = client_runtime(1);
        let prefix = format!("m2m-bench:{}:", std::process::id());
        let env = vec![
            (ROLE_VAR, WORKER_ROLE.to_owned()),
            ("M2M_BENCH_REDIS_URL", redis.url().to_string()),
            (
                "M2M_BENCH_TOKEN_URL",
                sandbox.token_url(ProviderStyle::Cognito),
            ),
            ("M2M_BENCH_PREFIX", prefix.clone()),
            ("M2M_BENCH_CALLS", calls.to_string()),
            (CacheEncryptionKey::ENV_VAR, FLEET_KEY_B64.to_owned()),
        ];
        let outcome = runtime.block_on(run_fleet(options, &redis, &env, &prefix, processes));
        let requests = sandbox.stats().token_requests_for(ProviderStyle::Cognito);
        servers.stop(sandbox);
        let results = match outcome {
            Ok(results) => results,
            Err(why) => return Row::unmeasured(NAME, UNIT, TARGET, &why),
        };
        let ok: usize = results.iter().map(|r| r.ok).sum();
        let failed: usize = results.iter().map(|r| r.failed).sum();
        let fetches: u64 = results.iter().map(|r| r.fetches).sum();
        let adopted: u64 = results.iter().map(|r| r.adopted).sum();
        let store_errors: u64 = results.iter().map(|r| r.store_errors).sum();
        let slowest_ms = results.iter().map(|r| r.elapsed_ms).max().unwrap_or(0);
        let latencies = Sample::new(
            results
                .iter()
                .flat_map(|r| r.latencies_us.iter())
                .map(|&us| Duration::from_micros(us))
                .collect(),
        );
        let pass = requests == 1 && ok == processes * calls && failed == 0;
        Row::new(
            NAME,
            requests as f64,
            UNIT,
            TARGET,
            pass,
            json!({
                "summary": format!(
                    "{processes} processes x {calls} concurrent calls, cold: p50 {:.0} ms, p99 {:.0} ms (IdP {} ms)",
                    millis(latencies.median()), millis(latencies.p99()), TOKEN_LATENCY.as_millis()
                ),
                "processes": processes,
                "calls_per_process": calls,
                "ok": ok,
                "failed": failed,
                "fetches": fetches,
                "adopted_from_redis": adopted,
                "store_errors": store_errors,
                "p50_ms": round(millis(latencies.median()), 2),
                "p99_ms": round(millis(latencies.p99()), 2),
                "slowest_process_ms": slowest_ms,
                "token_endpoint_latency_ms": TOKEN_LATENCY.as_millis() as u64,
                "redis": "real redis-server on loopback, values encrypted (M2M_CACHE_KEY)",
            }),
        )
    }

    async fn run_fleet(
        options: &Options,
        redis: &RedisServer,
        env: &[(&str, String)],
        prefix: &str,
        processes: usize,
    ) -> Result<Vec<WorkerResult>, String> {
        let exe = std::env::current_exe().map_err(|e| format!("no executable to start: {e}"))?;
        let mut workers = Vec::with_capacity(processes);
        for _ in 0..processes {
            let mut command = Command::new(&exe);
            command
                .args(&options.worker_args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            for (name, value) in env {
                command.env(name, value);
            }
            let mut child = command
                .spawn()
                .map_err(|e| format!("cannot start a worker: {e}"))?;
            let lines = result_lines(&mut child);
            workers.push((child, lines));
        }
        let outcome = coordinate(redis, prefix, processes, &mut workers).await;
        for (child, _) in &mut workers {
            let _ = child.kill();
            let _ = child.wait();
        }
        outcome
    }

    async fn coordinate(
        redis: &RedisServer,
        prefix: &str,
        processes: usize,
        workers: &mut [(Child, Receiver<String>)],
    ) -> Result<Vec<WorkerResult>, String> {
        let mut conn = connect(redis.url().as_str()).await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready: Option<usize> = redis::cmd("GET")
                .arg(format!("{prefix}ready"))
                .query_async(&mut conn)
                .await
                .map_err(|e| format!("redis: {e}"))?;
            if ready == Some(processes) {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("fleet workers not ready in time: {ready:?}"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _: () = redis::cmd("SET")
            .arg(format!("{prefix}go"))
            .arg(1)
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("redis: {e}"))?;
        let mut results = Vec::with_capacity(processes);
        for (_, lines) in workers.iter() {
            let line = lines
                .recv_timeout(Duration::from_secs(60))
                .map_err(|_| "a fleet worker gave no result".to_owned())?;
            results.push(serde_json::from_str(&line).map_err(|e| e.to_string())?);
        }
        Ok(results)
    }

    async fn connect(url: &str) -> Result<MultiplexedConnection, String> {
        redis::Client::open(url)
            .map_err(|e| format!("redis: {e}"))?
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| format!("redis: {e}"))
    }

    /// The worker's result lines (the marker may follow libtest's
    /// `test name ... ` on the same line), read on a thread.
    fn result_lines(child: &mut Child) -> Receiver<String> {
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find(RESULT) {
                    let _ = tx.send(line[at + RESULT.len()..].trim().to_owned());
                }
            }
        });
        rx
    }

    pub fn worker_main() {
        let runtime = client_runtime(2);
        let result = runtime.block_on(worker());
        println!(
            "{RESULT} {}",
            serde_json::to_string(&result).expect("a result serialises")
        );
    }

    async fn worker() -> WorkerResult {
        let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is set"));
        let calls: usize = var("M2M_BENCH_CALLS").parse().expect("a number of calls");
        let prefix = var("M2M_BENCH_PREFIX");
        let redis_url = var("M2M_BENCH_REDIS_URL");
        let config = RedisStoreConfig::new(redis_url.parse().expect("a Redis URL"))
            .prefix(prefix.clone())
            .encryption_key_from_env()
            .expect("M2M_CACHE_KEY is a valid key");
        let store = Arc::new(
            RedisStore::connect(config)
                .await
                .expect("the worker reaches Redis"),
        );
        let mut settings = CacheSettings::default();
        settings.lock_ttl = Duration::from_secs(10);
        settings.lock_poll = Duration::from_millis(10);
        let cache = TokenCache::new(
            store,
            Arc::new(SystemClock),
            Arc::new(RandomJitter),
            settings,
        );
        let endpoint = wiring::endpoint_at(&var("M2M_BENCH_TOKEN_URL"));
        let source = cache.source(
            m2m::auth::CacheKey::for_endpoint(endpoint.identity()),
            Arc::new(endpoint),
        );

        let mut conn = connect(&redis_url).await.expect("the worker reaches Redis");
        let _: i64 = redis::cmd("INCR")
            .arg(format!("{prefix}ready"))
            .query_async(&mut conn)
            .await
            .expect("INCR ready");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let go: Option<String> = redis::cmd("GET")
                .arg(format!("{prefix}go"))
                .query_async(&mut conn)
                .await
                .expect("GET go");
            if go.is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "no go signal");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let started = Instant::now();
        let tasks: Vec<_> = (0..calls)
            .map(|_| {
                let source = source.clone();
                tokio::spawn(async move {
                    let at = Instant::now();
                    let ok = source.token().await.is_ok();
                    (at.elapsed(), ok)
                })
            })
            .collect();
        let mut result = WorkerResult::default();
        for task in tasks {
            let (took, ok) = task.await.expect("a call does not panic");
            result.latencies_us.push(took.as_micros() as u64);
            if ok {
                result.ok += 1;
            } else {
                result.failed += 1;
            }
        }
        result.elapsed_ms = started.elapsed().as_millis() as u64;
        let stats = cache.stats();
        result.fetches = stats.fetches;
        result.adopted = stats.adopted;
        result.store_errors = stats.store_errors;
        result
    }
}
