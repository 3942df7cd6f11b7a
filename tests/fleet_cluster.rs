//! The fleet-wide token cache on a real Redis Cluster (three masters on
//! loopback, tests/support/redis_cluster.rs): every multi-key operation in
//! one slot, redirections while a slot moves, a seed down at start, eight
//! processes sharing one token fetch, and a node killed while they do.
//!
//! Multi-process tests re-execute this test binary, as tests/fleet.rs does:
//! the parent runs the token server and the cluster, the workers
//! (`cluster_worker`, started with `--exact cluster_worker --ignored`) find
//! their settings in `M2M_CLUSTER_*` variables, say `CLUSTER-READY` once
//! connected, start when the parent creates the go file, and print one
//! `CLUSTER-RESULT` line.

#[path = "support/redis_server.rs"]
mod redis_server;

#[path = "support/redis_cluster.rs"]
mod redis_cluster;

#[path = "support/numbered_tokens.rs"]
mod numbered_tokens;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant, SystemTime};

use http::HeaderValue;
use m2m::auth::clock::{RandomJitter, SystemClock};
use m2m::auth::{
    AccessToken, CacheKey, CacheSettings, RedisStore, RedisStoreConfig, SharedFailure, TokenCache,
    TokenStore,
};
use secrecy::{ExposeSecret, SecretString};
use wiremock::MockServer;

use numbered_tokens::{HttpFetcher, token_requests, token_server};
use redis_cluster::RedisCluster;

// ---------------------------------------------------------------- helpers

const TOKEN_PREFIX: &str = "cluster-token-";

fn key(client: &str) -> CacheKey {
    CacheKey::new(
        "Custom",
        "https://idp.test/oauth2/token",
        client,
        ["api/.default"],
        None,
    )
}

fn prefix(test: &str) -> String {
    format!("m2m-test:{test}:{}:", std::process::id())
}

/// Settings for a store on `cluster`, every node a seed.
fn config(cluster: &RedisCluster, test: &str) -> RedisStoreConfig {
    seeded(&cluster.urls()).prefix(prefix(test))
}

fn seeded(urls: &[url::Url]) -> RedisStoreConfig {
    let (first, rest) = urls.split_first().expect("a seed");
    rest.iter().fold(
        RedisStoreConfig::new(first.clone()).cluster(true),
        |config, url| config.cluster_seed(url.clone()),
    )
}

fn token(value: &str, lives: Duration) -> AccessToken {
    AccessToken::new(
        SecretString::from(value.to_owned()),
        "Bearer",
        SystemTime::now() + lives,
        None,
    )
    .unwrap()
}

fn value_of(token: &AccessToken) -> &str {
    token.secret().expose_secret()
}

// ------------------------------------------------------ in-process tests

/// A token, its refresh lock and its shared failure live in one slot; every
/// operation of the store (the Lua scripts with two keys among them) runs
/// on the cluster without CROSSSLOT, through any seed.
#[tokio::test]
async fn every_operation_runs_on_a_cluster_within_one_slot() {
    let cluster = RedisCluster::start();
    let store = RedisStore::connect(config(&cluster, "ops")).await.unwrap();
    let key = key("ops");
    let node = cluster.node_of(&store.token_key(&key));
    assert_eq!(cluster.node_of(&store.lock_key(&key)), node);
    assert_eq!(cluster.node_of(&store.failure_key(&key)), node);

    // A shared failure, then a token that supersedes it (SET + DEL in one
    // script: both keys in the slot).
    let failure = SharedFailure::new("the token endpoint said no", false);
    store
        .put_failure(&key, &failure, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(store.failure(&key).await.unwrap(), Some(failure));
    let first = token("cluster-a", Duration::from_secs(600));
    store
        .put(&key, &first, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(store.failure(&key).await.unwrap(), None);

    // A second process (its own connection, through one seed that may not
    // hold the slot: MOVED) reads it.
    for seed in cluster.urls() {
        let other = RedisStore::connect(seeded(&[seed]).prefix(prefix("ops")))
            .await
            .unwrap();
        let read = other.get(&key).await.unwrap().expect("the stored token");
        assert_eq!(value_of(&read), "cluster-a");
    }

    // The lock: exclusive, renewed and released by its owner only.
    let lock = store
        .try_lock(&key, Duration::from_secs(5))
        .await
        .unwrap()
        .expect("granted");
    assert!(
        store
            .try_lock(&key, Duration::from_secs(5))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .extend_lock(&key, &lock, Duration::from_secs(5))
            .await
            .unwrap()
    );
    store.unlock(&key, lock).await.unwrap();
    assert!(
        !store
            .extend_lock(
                &key,
                &m2m::auth::StoreLock::owned("nobody".to_owned()),
                Duration::from_secs(5)
            )
            .await
            .unwrap()
    );

    // Compare-and-delete of a rejected token.
    let rejected = HeaderValue::from_static("Bearer cluster-a");
    assert!(store.remove_if_same(&key, &rejected).await.unwrap());
    assert!(store.get(&key).await.unwrap().is_none());
    store.ping().await.unwrap();
}

/// A prefix with a brace would change the hash tag (a `{}` in it makes
/// Redis hash the whole key): refused on a cluster.
#[tokio::test]
async fn a_cluster_prefix_with_braces_is_refused() {
    for prefix in ["app:{}:", "app:{tenant}:", "app}:"] {
        let config = RedisStoreConfig::new("redis://127.0.0.1:1/".parse().unwrap())
            .cluster(true)
            .prefix(prefix);
        let error = RedisStore::connect_lazy(config).await.unwrap_err();
        assert!(error.to_string().contains("may not contain"), "{error}");
    }
}

/// A seed that is down at start does not stop the store: the next seed
/// answers and the cluster's map comes from it.
#[tokio::test]
async fn a_seed_down_at_start_is_passed_over() {
    let cluster = RedisCluster::start();
    let dead: url::Url = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        format!("redis://127.0.0.1:{port}/").parse().unwrap()
    };
    let mut seeds = vec![dead];
    seeds.extend(cluster.urls());
    let store = RedisStore::connect(seeded(&seeds).prefix(prefix("seed")))
        .await
        .unwrap();
    let key = key("seed");
    store
        .put(
            &key,
            &token("seeded", Duration::from_secs(600)),
            Duration::from_secs(600),
        )
        .await
        .unwrap();
    assert!(store.get(&key).await.unwrap().is_some());
}

/// While the token's slot moves to another node (resharding), the store
/// follows ASK for a key already moved and MOVED once the slot has, with
/// the lock and the token still exclusive and readable.
#[tokio::test]
async fn a_slot_moving_to_another_node_is_followed() {
    let cluster = RedisCluster::start();
    let store = RedisStore::connect(config(&cluster, "reshard"))
        .await
        .unwrap();
    let key = key("reshard");
    let token_key = store.token_key(&key);
    store
        .put(
            &key,
            &token("before-the-move", Duration::from_secs(600)),
            Duration::from_secs(600),
        )
        .await
        .unwrap();
    let lock = store
        .try_lock(&key, Duration::from_secs(30))
        .await
        .unwrap()
        .expect("granted");

    let from = cluster.node_of(&token_key);
    let to = (from + 1) % 3;
    let slot = cluster
        .cli(from, &["CLUSTER", "KEYSLOT", &token_key])
        .trim()
        .to_owned();
    let id = |n: usize| cluster.cli(n, &["CLUSTER", "MYID"]).trim().to_owned();
    let (from_id, to_id) = (id(from), id(to));
    cluster.cli(to, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]);
    cluster.cli(from, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]);
    // Only the token moves for now: the lock stays behind.
    let to_port = cluster.node(to).port().to_string();
    let migrate = [
        "MIGRATE",
        "127.0.0.1",
        &to_port,
        "",
        "0",
        "5000",
        "KEYS",
        &token_key,
    ];
    assert_eq!(cluster.cli(from, &migrate).trim(), "OK");

    // Mid-move: the token is read through ASK, the lock is still held.
    let read = store.get(&key).await.unwrap().expect("read through ASK");
    assert_eq!(value_of(&read), "before-the-move");
    assert!(
        store
            .try_lock(&key, Duration::from_secs(30))
            .await
            .unwrap()
            .is_none(),
        "the lock still held on the old node"
    );

    // The rest moves; the slot is the new node's.
    let lock_key = store.lock_key(&key);
    assert_eq!(
        cluster
            .cli(
                from,
                &[
                    "MIGRATE",
                    "127.0.0.1",
                    &to_port,
                    "",
                    "0",
                    "5000",
                    "KEYS",
                    &lock_key
                ]
            )
            .trim(),
        "OK"
    );
    for n in 0..3 {
        cluster.cli(n, &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]);
    }
    assert_eq!(cluster.node_of(&token_key), to);

    // After the move: MOVED, then every operation on the new node.
    assert!(
        store
            .extend_lock(&key, &lock, Duration::from_secs(30))
            .await
            .unwrap(),
        "the lock moved with its owner"
    );
    store.unlock(&key, lock).await.unwrap();
    store
        .put(
            &key,
            &token("after-the-move", Duration::from_secs(900)),
            Duration::from_secs(900),
        )
        .await
        .unwrap();
    let read = store.get(&key).await.unwrap().expect("read after MOVED");
    assert_eq!(value_of(&read), "after-the-move");
}

// ------------------------------------------------------ multi-process tests

const ROLE: &str = "M2M_CLUSTER_ROLE";
const READY: &str = "CLUSTER-READY";
const RESULT: &str = "CLUSTER-RESULT";

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct WorkerResult {
    ok: usize,
    failed: usize,
    fetches: u64,
    adopted: u64,
    store_errors: u64,
    tokens: Vec<String>,
    first_error: Option<String>,
    slowest_ms: u64,
}

/// A fleet of `processes` workers, connected to the cluster and waiting
/// for the go file.
struct Fleet {
    workers: Vec<Child>,
    lines: Vec<Receiver<String>>,
    go_file: PathBuf,
}

impl Fleet {
    fn start(processes: usize, env: &[(&str, String)]) -> Self {
        let go_file = std::env::temp_dir().join(format!(
            "m2m-cluster-go-{}-{}",
            std::process::id(),
            fastrand_suffix()
        ));
        let mut workers = Vec::new();
        let mut lines = Vec::new();
        for _ in 0..processes {
            let mut command = Command::new(std::env::current_exe().unwrap());
            command
                .args([
                    "--exact",
                    "cluster_worker",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(ROLE, "worker")
                .env("M2M_CLUSTER_GO", &go_file)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            for (name, value) in env {
                command.env(name, value);
            }
            let mut child = command.spawn().expect("re-executing the test binary");
            lines.push(marked_lines(&mut child));
            workers.push(child);
        }
        let fleet = Self {
            workers,
            lines,
            go_file,
        };
        for lines in &fleet.lines {
            let line = lines
                .recv_timeout(Duration::from_secs(30))
                .expect("a worker connected");
            assert!(line.starts_with(READY), "{line}");
        }
        fleet
    }

    fn go(&self) {
        std::fs::write(&self.go_file, b"go").unwrap();
    }

    /// Every worker's result; a worker that does not finish within
    /// `within` fails the test (none may hang).
    fn results(mut self, within: Duration) -> Vec<WorkerResult> {
        let deadline = Instant::now() + within;
        let mut results = Vec::new();
        for (worker, lines) in self.workers.iter_mut().zip(&self.lines) {
            loop {
                if let Some(status) = worker.try_wait().unwrap() {
                    assert!(status.success(), "worker failed: {status}");
                    break;
                }
                if Instant::now() > deadline {
                    let _ = worker.kill();
                    panic!("worker {} did not finish within {within:?}", worker.id());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let line = lines
                .recv_timeout(Duration::from_secs(5))
                .expect("worker result");
            let json = line.strip_prefix(RESULT).expect("a result line").trim();
            results.push(serde_json::from_str(json).unwrap());
        }
        let _ = std::fs::remove_file(&self.go_file);
        results
    }
}

fn fastrand_suffix() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// The worker's `CLUSTER-…` lines, read on a thread.
fn marked_lines(child: &mut Child) -> Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // libtest may have printed `test <name> ... ` on the same line.
            if let Some(at) = line.find("CLUSTER-") {
                let _ = tx.send(line[at..].trim().to_owned());
            }
        }
    });
    rx
}

fn fleet_env(
    cluster: &RedisCluster,
    tokens: &MockServer,
    test: &str,
    lock_ttl: Duration,
    lock_poll: Duration,
    load_timeout: Duration,
) -> Vec<(&'static str, String)> {
    let seeds: Vec<String> = cluster.urls().iter().map(url::Url::to_string).collect();
    vec![
        ("M2M_CLUSTER_SEEDS", seeds.join(",")),
        ("M2M_CLUSTER_PREFIX", prefix(test)),
        (
            "M2M_CLUSTER_TOKEN_URL",
            format!("{}/oauth2/token", tokens.uri()),
        ),
        ("M2M_CLUSTER_CALLS", CALLS.to_string()),
        ("M2M_CLUSTER_LOCK_TTL_MS", lock_ttl.as_millis().to_string()),
        (
            "M2M_CLUSTER_LOCK_POLL_MS",
            lock_poll.as_millis().to_string(),
        ),
        (
            "M2M_CLUSTER_LOAD_TIMEOUT_MS",
            load_timeout.as_millis().to_string(),
        ),
    ]
}

const PROCESSES: usize = 8;
const CALLS: usize = 50;

/// Eight processes, fifty concurrent cold calls each, one cluster: one
/// token request for the whole fleet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_on_a_cluster_share_one_token_fetch() {
    let cluster = RedisCluster::start();
    let latency = Duration::from_millis(300);
    let tokens = token_server(TOKEN_PREFIX, latency).await;
    let env = fleet_env(
        &cluster,
        &tokens,
        "share",
        Duration::from_secs(10),
        Duration::from_millis(10),
        Duration::from_secs(20),
    );
    let fleet = Fleet::start(PROCESSES, &env);
    let go = Instant::now();
    fleet.go();
    let results = tokio::task::spawn_blocking(move || fleet.results(Duration::from_secs(30)))
        .await
        .unwrap();
    let served_in = go.elapsed();

    assert_eq!(token_requests(&tokens).await, 1, "token requests");
    let ok: usize = results.iter().map(|r| r.ok).sum();
    assert_eq!(ok, PROCESSES * CALLS, "{results:?}");
    assert_eq!(results.iter().map(|r| r.fetches).sum::<u64>(), 1);
    assert_eq!(
        results.iter().map(|r| r.adopted).sum::<u64>(),
        PROCESSES as u64 - 1
    );
    assert_eq!(results.iter().map(|r| r.store_errors).sum::<u64>(), 0);
    assert!(
        results
            .iter()
            .all(|r| r.tokens == [format!("{TOKEN_PREFIX}1")]),
        "{results:?}"
    );
    eprintln!(
        "cluster fleet: {PROCESSES} processes x {CALLS} calls, 1 token request, \
         served in {served_in:?} (token endpoint latency {latency:?}); slowest process {} ms",
        results.iter().map(|r| r.slowest_ms).max().unwrap_or(0)
    );
}

/// The master that holds the token's slot (and so the refresh lock) is
/// killed while the lock holder fetches and seven processes wait on its
/// lock. Without a replica, that slot is gone: no process can see the
/// holder's token or take the lock, so each process fetches for itself,
/// once (its in-process single flight holds), after watching for the
/// holder's token for a lock TTL. Exactly one token request per process,
/// 8 in all, and every call gets a token: none hangs, none fails.
///
/// Issue 15: the watch was counted in polls (`lock_ttl / lock_poll`), and
/// each poll of the dead node costs two operation timeouts: 40 polls of
/// 50 ms + 2 × 250 ms outlasted the 15 s budget, and every waiting
/// process failed with a load timeout. The watch now ends after
/// `lock_ttl` on the clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_while_eight_processes_share_one_fetch() {
    let mut cluster = RedisCluster::start();
    let latency = Duration::from_millis(800);
    let tokens = token_server(TOKEN_PREFIX, latency).await;
    let env = fleet_env(
        &cluster,
        &tokens,
        "kill",
        Duration::from_secs(2),
        Duration::from_millis(50),
        Duration::from_secs(15),
    );
    let fleet = Fleet::start(PROCESSES, &env);
    let go = Instant::now();
    fleet.go();
    // The holder's request has reached the token endpoint: kill the node
    // that holds its lock.
    while token_requests(&tokens).await == 0 {
        assert!(go.elapsed() < Duration::from_secs(10), "no token request");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let probe = RedisStore::connect_lazy(config(&cluster, "kill"))
        .await
        .unwrap();
    let node = cluster.node_of(&probe.lock_key(&key("fleet")));
    cluster.kill(node);
    let killed_at = go.elapsed();
    let results = tokio::task::spawn_blocking(move || fleet.results(Duration::from_secs(60)))
        .await
        .unwrap();
    let served_in = go.elapsed();

    let requests = token_requests(&tokens).await;
    let ok: usize = results.iter().map(|r| r.ok).sum();
    let failed: usize = results.iter().map(|r| r.failed).sum();
    eprintln!(
        "cluster node killed at {killed_at:?} mid-fetch: {requests} token requests for \
         {PROCESSES} processes, {ok} ok, {failed} failed, all done in {served_in:?}; \
         store errors {}",
        results.iter().map(|r| r.store_errors).sum::<u64>()
    );
    assert_eq!(ok + failed, PROCESSES * CALLS, "every call ended");
    assert_eq!(failed, 0, "{results:?}");
    assert_eq!(requests, PROCESSES, "one token request per process");
    assert_eq!(
        results.iter().map(|r| r.fetches).sum::<u64>(),
        PROCESSES as u64
    );
    assert!(
        results.iter().all(|r| r.tokens.len() == 1),
        "one token per process: {results:?}"
    );
}

/// The primary that holds the token's slot changes while the lock holder
/// fetches and seven processes wait on its lock: its replica is promoted
/// with `CLUSTER FAILOVER`, which first lets the replica catch up, so the
/// lock is on the new primary. The holder keeps renewing it there and
/// stores its token there; the waiters, redirected (MOVED), find it.
/// Exactly one token request for the fleet, as without a failover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_failover_while_eight_processes_share_one_fetch() {
    let cluster = RedisCluster::start_with_replicas();
    let latency = Duration::from_millis(800);
    let tokens = token_server(TOKEN_PREFIX, latency).await;
    let env = fleet_env(
        &cluster,
        &tokens,
        "failover",
        Duration::from_millis(1000),
        Duration::from_millis(20),
        Duration::from_secs(20),
    );
    let fleet = Fleet::start(PROCESSES, &env);
    let go = Instant::now();
    fleet.go();
    while token_requests(&tokens).await == 0 {
        assert!(go.elapsed() < Duration::from_secs(10), "no token request");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let probe = RedisStore::connect_lazy(config(&cluster, "failover"))
        .await
        .unwrap();
    let lock_key = probe.lock_key(&key("fleet"));
    let primary = cluster.node_of(&lock_key);
    let replica = cluster.replica_of(primary);
    let failover_started = go.elapsed();
    cluster.failover(replica);
    let promoted_at = go.elapsed();
    assert_eq!(cluster.node_of(&lock_key), replica);
    let results = tokio::task::spawn_blocking(move || fleet.results(Duration::from_secs(60)))
        .await
        .unwrap();
    let served_in = go.elapsed();

    let requests = token_requests(&tokens).await;
    let ok: usize = results.iter().map(|r| r.ok).sum();
    eprintln!(
        "cluster failover from {failover_started:?} to {promoted_at:?} mid-fetch: \
         {requests} token request(s) for {PROCESSES} processes, {ok} ok, all done in \
         {served_in:?}; store errors {}",
        results.iter().map(|r| r.store_errors).sum::<u64>()
    );
    assert_eq!(ok, PROCESSES * CALLS, "{results:?}");
    assert_eq!(requests, 1, "token requests across the failover");
    assert!(
        results
            .iter()
            .all(|r| r.tokens == [format!("{TOKEN_PREFIX}1")]),
        "{results:?}"
    );
}

/// One process of a fleet test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a worker process of the cluster fleet tests"]
async fn cluster_worker() {
    if std::env::var(ROLE).as_deref() != Ok("worker") {
        eprintln!("cluster_worker runs only when started by a cluster fleet test");
        return;
    }
    let var = |name: &str| std::env::var(name).unwrap();
    let ms = |name: &str| Duration::from_millis(var(name).parse().unwrap());
    let seeds: Vec<url::Url> = var("M2M_CLUSTER_SEEDS")
        .split(',')
        .map(|url| url.parse().unwrap())
        .collect();
    let store = RedisStore::connect(seeded(&seeds).prefix(var("M2M_CLUSTER_PREFIX")))
        .await
        .unwrap();
    let mut settings = CacheSettings::default();
    settings.lock_ttl = ms("M2M_CLUSTER_LOCK_TTL_MS");
    settings.lock_poll = ms("M2M_CLUSTER_LOCK_POLL_MS");
    settings.load_timeout = ms("M2M_CLUSTER_LOAD_TIMEOUT_MS");
    let cache = TokenCache::new(
        Arc::new(store),
        Arc::new(SystemClock),
        Arc::new(RandomJitter),
        settings,
    );
    let fetcher = HttpFetcher::new(var("M2M_CLUSTER_TOKEN_URL"));
    let source = cache.source(key("fleet"), fetcher);
    let calls: usize = var("M2M_CLUSTER_CALLS").parse().unwrap();
    println!("{READY}");
    let go_file = PathBuf::from(var("M2M_CLUSTER_GO"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !go_file.exists() {
        assert!(Instant::now() < deadline, "no go signal");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    let started = Instant::now();
    let tasks: Vec<_> = (0..calls)
        .map(|_| {
            let source = source.clone();
            tokio::spawn(async move { source.token().await })
        })
        .collect();
    let mut result = WorkerResult::default();
    for task in tasks {
        match task.await.unwrap() {
            Ok(token) => {
                result.ok += 1;
                let value = value_of(&token).to_owned();
                if !result.tokens.contains(&value) {
                    result.tokens.push(value);
                }
            }
            Err(error) => {
                result.failed += 1;
                result.first_error.get_or_insert(error.to_string());
            }
        }
    }
    result.slowest_ms = started.elapsed().as_millis() as u64;
    let stats = cache.stats();
    result.fetches = stats.fetches;
    result.adopted = stats.adopted;
    result.store_errors = stats.store_errors;
    println!("{RESULT} {}", serde_json::to_string(&result).unwrap());
}
