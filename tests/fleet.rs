//! The fleet-wide token cache on a real `redis-server`: tokens shared by
//! every process, encrypted at rest, one token request per lifetime across
//! processes, and a cache that keeps working when Redis goes away.
//!
//! Multi-process tests re-execute this test binary: the parent runs a
//! wiremock token server and Redis, and starts workers with
//! `--exact <worker> --ignored --nocapture`; the workers find what to do in
//! `M2M_FLEET_*` environment variables and print one result line each.
//!
//! The fleet figure can be measured with other sizes:
//! `M2M_FLEET_PROCESSES=16 M2M_FLEET_CALLS=500 M2M_FLEET_TOKEN_LATENCY_MS=300 cargo test --features redis --test fleet -- --nocapture eight_processes`
//! (it prints the processes, calls, token requests and timings).

#[path = "support/redis_server.rs"]
mod redis_server;

#[path = "support/numbered_tokens.rs"]
mod numbered_tokens;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use m2m::auth::clock::{RandomJitter, SystemClock};
use m2m::auth::{
    AccessToken, AuthError, BoxFuture, CacheEncryptionKey, CacheKey, CacheSettings,
    ClientCredential, FetchToken, RedisStore, RedisStoreConfig, StoreLock, TokenCache,
    TokenEndpoint, TokenStore,
};
use m2m::provider::Provider;
use redis::aio::MultiplexedConnection;
use secrecy::{ExposeSecret, SecretString};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use numbered_tokens::{HttpFetcher, token_requests, token_server};
use redis_server::RedisServer;

// ---------------------------------------------------------------- helpers

/// 32 bytes, base64: the fleet's shared key in these tests.
const FLEET_KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const TOKEN_PREFIX: &str = "fleet-token-";

fn fleet_key() -> CacheEncryptionKey {
    CacheEncryptionKey::from_base64(FLEET_KEY_B64).unwrap()
}

fn key(client: &str) -> CacheKey {
    CacheKey::new(
        "Custom",
        "https://idp.test/oauth2/token",
        client,
        ["api/.default"],
        None,
    )
}

/// A prefix of its own for each test, so tests sharing nothing never meet.
fn prefix(test: &str) -> String {
    format!("m2m-test:{test}:{}:", std::process::id())
}

fn config(server: &RedisServer, test: &str) -> RedisStoreConfig {
    RedisStoreConfig::new(server.url()).prefix(prefix(test))
}

async fn raw(server: &RedisServer) -> MultiplexedConnection {
    redis::Client::open(server.url().as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn raw_get(conn: &mut MultiplexedConnection, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET").arg(key).query_async(conn).await.unwrap()
}

async fn raw_pttl(conn: &mut MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query_async(conn).await.unwrap()
}

async fn raw_set(conn: &mut MultiplexedConnection, key: &str, value: &[u8]) {
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query_async(conn)
        .await
        .unwrap();
}

fn json(raw: &[u8]) -> serde_json::Value {
    serde_json::from_slice(raw).unwrap()
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

fn settings(lock_ttl: Duration, lock_poll: Duration) -> CacheSettings {
    let mut settings = CacheSettings::default();
    settings.lock_ttl = lock_ttl;
    settings.lock_poll = lock_poll;
    settings
}

fn cache_over(store: Arc<RedisStore>, settings: CacheSettings) -> TokenCache {
    TokenCache::new(
        store,
        Arc::new(SystemClock),
        Arc::new(RandomJitter),
        settings,
    )
}

/// The `n` of a `fleet-token-<n>` token.
fn token_number(token: &AccessToken) -> usize {
    token
        .secret()
        .expose_secret()
        .strip_prefix(TOKEN_PREFIX)
        .and_then(|n| n.parse().ok())
        .expect("a token from the test token server")
}

/// Log lines captured on this thread (a current-thread runtime keeps every
/// task of a test on it). One global subscriber routes each event to the
/// capture of the thread it happens on: scoped subscribers set and dropped
/// by tests running in parallel would race on tracing's callsite cache.
mod logs {
    use std::cell::RefCell;
    use std::fmt::{self, Write as _};
    use std::sync::{Arc, Mutex, Once};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::subscriber::Interest;
    use tracing::{Event, Metadata, Subscriber};

    thread_local! {
        static SINK: RefCell<Option<Captured>> = const { RefCell::new(None) };
    }

    #[derive(Clone, Default)]
    pub struct Captured(Arc<Mutex<Vec<String>>>);

    /// Stops capturing when dropped.
    pub struct Guard;

    impl Drop for Guard {
        fn drop(&mut self) {
            SINK.with(|sink| sink.borrow_mut().take());
        }
    }

    impl Captured {
        /// Captures this thread's events until the guard is dropped.
        pub fn start() -> (Self, Guard) {
            static GLOBAL: Once = Once::new();
            GLOBAL.call_once(|| {
                tracing::subscriber::set_global_default(Router)
                    .expect("no other global subscriber in this test binary");
            });
            let captured = Self::default();
            SINK.with(|sink| *sink.borrow_mut() = Some(captured.clone()));
            (captured, Guard)
        }

        pub fn lines(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }

        pub fn count(&self, level: &str, text: &str) -> usize {
            self.lines()
                .iter()
                .filter(|line| line.starts_with(level) && line.contains(text))
                .count()
        }
    }

    struct Router;

    struct Line(String);

    impl Visit for Line {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    impl Subscriber for Router {
        fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
            Interest::sometimes()
        }
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            SINK.with(|sink| sink.borrow().is_some())
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut line = Line(format!("{}", event.metadata().level()));
            event.record(&mut line);
            SINK.with(|sink| {
                if let Some(captured) = sink.borrow().as_ref() {
                    captured.0.lock().unwrap().push(line.0);
                }
            });
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }
}

fn assert_no_secret(lines: &[String], secrets: &[&str]) {
    for line in lines {
        for secret in secrets {
            assert!(!line.contains(secret), "a log line shows a token: {line}");
        }
    }
}

// ------------------------------------------------------- one-process tests

#[tokio::test]
async fn round_trip_is_encrypted_at_rest_and_a_wrong_key_is_a_miss() {
    let server = RedisServer::start();
    let (logs, _guard) = logs::Captured::start();
    let store = RedisStore::connect(config(&server, "crypt").encryption_key(fleet_key()))
        .await
        .unwrap();
    let k = key("crypt");
    let original = token("crypt-secret-token-value", Duration::from_secs(3600));
    store
        .put(&k, &original, Duration::from_secs(3600))
        .await
        .unwrap();

    let mut conn = raw(&server).await;
    let token_key = store.token_key(&k);
    assert_eq!(token_key, format!("{}{{{}}}", prefix("crypt"), k.as_str()));
    assert_eq!(k.as_str().len(), 64);
    let value = raw_get(&mut conn, &token_key).await.unwrap();
    assert!(
        !String::from_utf8_lossy(&value).contains("crypt-secret-token-value"),
        "the token is in Redis in clear text"
    );
    let value = json(&value);
    assert_eq!(value["v"], 1);
    assert_eq!(value["access_token"]["alg"], "A256GCM");
    assert_eq!(value["access_token"]["kid"], fleet_key().id());
    // Entry TTL: the token's hour less the 10-second margin.
    let pttl = raw_pttl(&mut conn, &token_key).await;
    assert!((3_580_000..=3_590_000).contains(&pttl), "PTTL {pttl}");

    // Another process with the same key reads it.
    let same_key = RedisStore::connect(config(&server, "crypt").encryption_key(fleet_key()))
        .await
        .unwrap();
    assert_eq!(same_key.peek(&k).map(|_| ()), None);
    let read = same_key.get(&k).await.unwrap().expect("token from Redis");
    assert!(read.is_sent_as(original.authorization()));
    assert!(same_key.peek(&k).is_some(), "get fills the in-process tier");

    // Another key, or no key: a miss, no panic, no error.
    let other_key = RedisStore::connect(
        config(&server, "crypt").encryption_key(CacheEncryptionKey::from_bytes(&[42; 32]).unwrap()),
    )
    .await
    .unwrap();
    assert!(other_key.get(&k).await.unwrap().is_none());
    let no_key = RedisStore::connect(config(&server, "crypt")).await.unwrap();
    assert!(no_key.get(&k).await.unwrap().is_none());

    let lines = logs.lines();
    assert_no_secret(&lines, &["crypt-secret-token-value"]);
    assert_eq!(logs.count("WARN", "CLEAR TEXT"), 1, "{lines:#?}");
    assert_eq!(logs.count("WARN", "encrypted with another key"), 1);
    assert_eq!(
        logs.count("WARN", "no cache encryption key is configured"),
        1
    );
}

#[tokio::test]
async fn clear_text_values_and_entry_ttls_follow_the_token() {
    let server = RedisServer::start();
    let store = RedisStore::connect(config(&server, "clear").expiry_margin(Duration::from_secs(5)))
        .await
        .unwrap();
    let mut conn = raw(&server).await;

    let k = key("clear");
    let t = token("clear-token", Duration::from_secs(60));
    store.put(&k, &t, Duration::from_secs(60)).await.unwrap();
    let value = json(&raw_get(&mut conn, &store.token_key(&k)).await.unwrap());
    assert_eq!(value["access_token"]["alg"], "none");
    assert_eq!(value["access_token"]["value"], "clear-token");
    assert_eq!(value["token_type"], "Bearer");
    let pttl = raw_pttl(&mut conn, &store.token_key(&k)).await;
    assert!((50_000..=55_000).contains(&pttl), "PTTL {pttl}");

    // Less left than the margin: kept in process only.
    let short = key("short");
    store
        .put(
            &short,
            &token("short", Duration::from_secs(4)),
            Duration::from_secs(4),
        )
        .await
        .unwrap();
    assert_eq!(raw_get(&mut conn, &store.token_key(&short)).await, None);
    assert!(store.peek(&short).is_some());

    store.remove(&k).await.unwrap();
    assert_eq!(raw_get(&mut conn, &store.token_key(&k)).await, None);
    assert!(store.peek(&k).is_none());
}

#[tokio::test]
async fn garbage_and_foreign_versions_are_ignored_and_overwritten() {
    let server = RedisServer::start();
    let tokens = token_server(TOKEN_PREFIX, Duration::ZERO).await;
    let store = Arc::new(
        RedisStore::connect(config(&server, "garbage").encryption_key(fleet_key()))
            .await
            .unwrap(),
    );
    let cache = cache_over(store.clone(), CacheSettings::default());
    let fetcher = HttpFetcher::new(format!("{}/oauth2/token", tokens.uri()));
    let mut conn = raw(&server).await;

    let clear = serde_json::json!({"v": 1, "token_type": "Bearer", "expires_at_ms": 4_000_000_000_000u64,
        "access_token": {"alg": "none", "value": "planted-clear-token"}});
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"garbage \x00\xff".to_vec()),
        (
            "v2",
            br#"{"v":2,"token":"from a newer m2m","expires":1}"#.to_vec(),
        ),
        (
            "wrong-types",
            br#"{"v":1,"token_type":7,"expires_at_ms":"soon"}"#.to_vec(),
        ),
        ("planted-clear", serde_json::to_vec(&clear).unwrap()),
    ];
    for (n, (name, value)) in cases.iter().enumerate() {
        let k = key(name);
        raw_set(&mut conn, &store.token_key(&k), value).await;
        assert!(store.get(&k).await.unwrap().is_none(), "{name}");
        let got = cache.source(k.clone(), fetcher.clone()).token().await;
        assert_eq!(token_number(&got.unwrap()), n + 1, "{name}");
        let overwritten = json(&raw_get(&mut conn, &store.token_key(&k)).await.unwrap());
        assert_eq!(overwritten["v"], 1, "{name}");
        assert_eq!(overwritten["access_token"]["alg"], "A256GCM", "{name}");
    }
    assert_eq!(token_requests(&tokens).await, cases.len());
    assert_eq!(cache.stats().fetches, cases.len() as u64);
    assert_eq!(cache.stats().store_errors, 0);
}

#[tokio::test]
async fn refresh_lock_is_exclusive_and_released_only_by_its_owner() {
    let server = RedisServer::start();
    let a = RedisStore::connect(config(&server, "lock")).await.unwrap();
    let b = RedisStore::connect(config(&server, "lock")).await.unwrap();
    let mut conn = raw(&server).await;
    let k = key("lock");
    let lock_key = a.lock_key(&k);
    assert_eq!(
        lock_key,
        format!("{}{{{}}}:lock", prefix("lock"), k.as_str())
    );

    let lock_a = a
        .try_lock(&k, Duration::from_secs(5))
        .await
        .unwrap()
        .expect("free lock");
    let owner_a = lock_a.owner().unwrap().to_owned();
    assert_eq!(owner_a.len(), 32);
    assert_eq!(
        raw_get(&mut conn, &lock_key).await.as_deref(),
        Some(owner_a.as_bytes())
    );
    let pttl = raw_pttl(&mut conn, &lock_key).await;
    assert!((1..=5000).contains(&pttl), "PTTL {pttl}");
    assert_eq!(b.try_lock(&k, Duration::from_secs(5)).await.unwrap(), None);

    // Someone else's release, or a local lock's, leaves it held.
    b.unlock(&k, StoreLock::owned("not-the-owner"))
        .await
        .unwrap();
    b.unlock(&k, StoreLock::local()).await.unwrap();
    assert_eq!(
        raw_get(&mut conn, &lock_key).await.as_deref(),
        Some(owner_a.as_bytes())
    );
    a.unlock(&k, lock_a.clone()).await.unwrap();
    assert_eq!(raw_get(&mut conn, &lock_key).await, None);
    let lock_b = b
        .try_lock(&k, Duration::from_secs(5))
        .await
        .unwrap()
        .expect("released");
    assert_ne!(lock_b.owner(), lock_a.owner());

    // A lock that expired passes on; its old owner cannot release the new one.
    let k2 = key("lock-expiry");
    let short = a
        .try_lock(&k2, Duration::from_millis(200))
        .await
        .unwrap()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let next = loop {
        if let Some(lock) = b.try_lock(&k2, Duration::from_secs(5)).await.unwrap() {
            break lock;
        }
        assert!(Instant::now() < deadline, "the lock never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    a.unlock(&k2, short).await.unwrap();
    assert_eq!(
        raw_get(&mut conn, &b.lock_key(&k2)).await.as_deref(),
        next.owner().map(str::as_bytes)
    );

    // The configured lock TTL overrides the one the cache asks for.
    let capped = RedisStore::connect(config(&server, "lock").lock_ttl(Duration::from_millis(700)))
        .await
        .unwrap();
    let k3 = key("lock-capped");
    capped
        .try_lock(&k3, Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let pttl = raw_pttl(&mut conn, &capped.lock_key(&k3)).await;
    assert!((1..=700).contains(&pttl), "PTTL {pttl}");
}

/// The race the double check closes: this process looked (nothing there),
/// then the last holder stored its token and released the lock, then this
/// process asks for the lock.
#[tokio::test]
async fn a_lock_granted_just_after_another_holder_stored_is_declined() {
    let server = RedisServer::start();
    let late = RedisStore::connect(config(&server, "recheck").encryption_key(fleet_key()))
        .await
        .unwrap();
    let holder = RedisStore::connect(config(&server, "recheck").encryption_key(fleet_key()))
        .await
        .unwrap();
    let k = key("recheck");
    let hour = Duration::from_secs(3600);
    assert!(late.get(&k).await.unwrap().is_none());
    let fresh = token("just-stored", hour);
    holder.put(&k, &fresh, hour).await.unwrap();

    assert_eq!(late.try_lock(&k, hour).await.unwrap(), None);
    let mut conn = raw(&server).await;
    assert_eq!(
        raw_get(&mut conn, &late.lock_key(&k)).await,
        None,
        "the declined lock is handed back"
    );
    let taken = late.get(&k).await.unwrap().unwrap();
    assert!(taken.is_sent_as(fresh.authorization()));

    // Once this process knows that token, the lock is for replacing it.
    let lock = late.try_lock(&k, hour).await.unwrap().expect("granted");
    assert_eq!(
        raw_get(&mut conn, &late.lock_key(&k)).await.as_deref(),
        lock.owner().map(str::as_bytes)
    );
}

#[tokio::test]
async fn remove_if_same_spares_a_token_another_process_stored() {
    let server = RedisServer::start();
    let a = RedisStore::connect(config(&server, "evict").encryption_key(fleet_key()))
        .await
        .unwrap();
    let b = RedisStore::connect(config(&server, "evict").encryption_key(fleet_key()))
        .await
        .unwrap();
    let k = key("evict");
    let hour = Duration::from_secs(3600);
    let old = token("old-token", hour);
    let new = token("new-token", hour + Duration::from_secs(60));
    a.put(&k, &old, hour).await.unwrap();
    b.put(&k, &new, hour).await.unwrap();

    // A's API rejected the old token: A forgets it, Redis keeps B's new one.
    assert!(a.remove_if_same(&k, old.authorization()).await.unwrap());
    assert!(a.peek(&k).is_none());
    let shared = a.get(&k).await.unwrap().unwrap();
    assert!(shared.is_sent_as(new.authorization()));
    // B's API rejects the new one: gone from Redis too.
    assert!(b.remove_if_same(&k, new.authorization()).await.unwrap());
    let mut conn = raw(&server).await;
    assert_eq!(raw_get(&mut conn, &b.token_key(&k)).await, None);
    // A third process never had it: nothing to remove anywhere.
    let c = RedisStore::connect(config(&server, "evict").encryption_key(fleet_key()))
        .await
        .unwrap();
    assert!(!c.remove_if_same(&k, new.authorization()).await.unwrap());
}

#[tokio::test]
async fn redis_down_mid_run_then_back_calls_keep_succeeding() {
    let mut server = RedisServer::start();
    let tokens = token_server(TOKEN_PREFIX, Duration::ZERO).await;
    let (logs, _guard) = logs::Captured::start();
    let store = Arc::new(
        RedisStore::connect(config(&server, "outage").encryption_key(fleet_key()))
            .await
            .unwrap(),
    );
    let cache = cache_over(store.clone(), CacheSettings::default());
    let fetcher = HttpFetcher::new(format!("{}/oauth2/token", tokens.uri()));
    let a = cache.source(key("outage-a"), fetcher.clone());
    assert_eq!(token_number(&a.token().await.unwrap()), 1);

    server.stop();
    let down = Instant::now();
    // The token in hand is served from the in-process tier: no Redis, no fetch.
    for _ in 0..100 {
        assert_eq!(token_number(&a.token().await.unwrap()), 1);
    }
    assert_eq!(cache.stats().store_errors, 0);
    // A cold key: 200 concurrent calls, one fetch (in-process single flight),
    // Redis failing underneath.
    let b = cache.source(key("outage-b"), fetcher.clone());
    let calls: Vec<_> = (0..200)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move { b.token().await })
        })
        .collect();
    // Unconstrained: 200 awaits could leave the test task's coop budget at
    // 0, and wiremock's blocking `Drop` then spins (see token_cache.rs).
    tokio::task::unconstrained(async {
        for call in calls {
            assert_eq!(token_number(&call.await.unwrap().unwrap()), 2);
        }
    })
    .await;
    let outage_calls = down.elapsed();
    assert_eq!(token_requests(&tokens).await, 2);
    let errors_while_down = cache.stats().store_errors;
    assert!(errors_while_down >= 2, "{:?}", cache.stats());
    assert!(
        outage_calls < Duration::from_secs(3),
        "300 calls took {outage_calls:?} with Redis down"
    );
    assert_eq!(
        logs.count("WARN", "Redis token store unavailable"),
        1,
        "rate-limited: one warning for {errors_while_down} failures"
    );

    server.restart();
    let back = Instant::now();
    loop {
        if store.ping().await.is_ok() {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "the store did not reconnect"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let reconnected_in = back.elapsed();
    let c = cache.source(key("outage-c"), fetcher.clone());
    assert_eq!(token_number(&c.token().await.unwrap()), 3);
    let mut conn = raw(&server).await;
    assert!(
        raw_get(&mut conn, &store.token_key(&key("outage-c")))
            .await
            .is_some(),
        "the token reached the restarted Redis"
    );
    // Another process takes it from Redis instead of fetching.
    let other = cache_over(
        Arc::new(
            RedisStore::connect(config(&server, "outage").encryption_key(fleet_key()))
                .await
                .unwrap(),
        ),
        CacheSettings::default(),
    );
    let from_redis = other
        .source(key("outage-c"), fetcher.clone())
        .token()
        .await
        .unwrap();
    assert_eq!(token_number(&from_redis), 3);
    assert_eq!(other.stats().fetches, 0);
    assert_eq!(other.stats().adopted, 1);
    assert_eq!(token_requests(&tokens).await, 3);
    assert_eq!(
        logs.count("INFO", "Redis token store answers again"),
        1,
        "{:#?}",
        logs.lines()
    );
    assert_no_secret(&logs.lines(), &["fleet-token-"]);
    eprintln!(
        "outage: 300 calls with Redis down in {outage_calls:?} ({errors_while_down} store errors); \
         reconnected {reconnected_in:?} after restart"
    );
}

#[tokio::test]
async fn a_frozen_redis_costs_only_the_operation_timeouts() {
    let server = RedisServer::start();
    let tokens = token_server(TOKEN_PREFIX, Duration::ZERO).await;
    let store = Arc::new(
        RedisStore::connect(config(&server, "frozen").encryption_key(fleet_key()))
            .await
            .unwrap(),
    );
    // A long lock TTL: a lock left behind would block other processes long.
    let cache = cache_over(
        store.clone(),
        settings(Duration::from_secs(20), Duration::from_millis(20)),
    );
    let fetcher = HttpFetcher::new(format!("{}/oauth2/token", tokens.uri()));
    let warm = cache.source(key("frozen-warm"), fetcher.clone());
    assert_eq!(token_number(&warm.token().await.unwrap()), 1);

    server.freeze();
    for _ in 0..100 {
        assert_eq!(token_number(&warm.token().await.unwrap()), 1);
    }
    assert_eq!(
        cache.stats().store_errors,
        0,
        "hot calls never wait for Redis"
    );
    let cold = cache.source(key("frozen-cold"), fetcher.clone());
    let started = Instant::now();
    assert_eq!(token_number(&cold.token().await.unwrap()), 2);
    let cold_call = started.elapsed();
    // get, try_lock and put each give up after 250 ms.
    assert!(
        cold_call < Duration::from_secs(2),
        "cold call took {cold_call:?}"
    );
    assert_eq!(cache.stats().store_errors, 3, "{:?}", cache.stats());
    server.thaw();

    // The lock request that timed out may still reach Redis after the thaw:
    // it is released, not left to block other processes for its TTL.
    let mut conn = raw(&server).await;
    let lock_key = store.lock_key(&key("frozen-cold"));
    let thawed = Instant::now();
    while raw_get(&mut conn, &lock_key).await.is_some() {
        assert!(
            thawed.elapsed() < Duration::from_secs(5),
            "an orphaned refresh lock outlives the thaw"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(store.ping().await.is_ok());
    eprintln!("frozen Redis: cold call served in {cold_call:?}");
}

#[tokio::test]
async fn connect_fails_fast_without_redis_and_connect_lazy_waits_for_it() {
    let mut server = RedisServer::reserve();
    let started = Instant::now();
    let error = RedisStore::connect(config(&server, "lazy"))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "{error}");
    assert!(error.to_string().contains("Redis PING"), "{error}");

    let tokens = token_server(TOKEN_PREFIX, Duration::ZERO).await;
    let store = Arc::new(
        RedisStore::connect_lazy(config(&server, "lazy"))
            .await
            .unwrap(),
    );
    let cache = cache_over(store.clone(), CacheSettings::default());
    let fetcher = HttpFetcher::new(format!("{}/oauth2/token", tokens.uri()));
    let source = cache.source(key("lazy"), fetcher);
    assert_eq!(token_number(&source.token().await.unwrap()), 1);
    assert!(cache.stats().store_errors >= 1);

    server.run();
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.ping().await.is_err() {
        assert!(Instant::now() < deadline, "never connected");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(token_number(&source.refresh().await.unwrap()), 2);
    let mut conn = raw(&server).await;
    assert!(
        raw_get(&mut conn, &store.token_key(&key("lazy")))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn rediss_with_a_private_ca_and_refused_without_it() {
    let server = RedisServer::start_tls();
    let tls = RedisStoreConfig::new(server.tls_url()).prefix(prefix("tls"));
    let store = RedisStore::connect(tls.clone().tls_root_certificate(server.ca_pem()))
        .await
        .unwrap();
    let k = key("tls");
    store
        .put(
            &k,
            &token("tls-token", Duration::from_secs(600)),
            Duration::from_secs(600),
        )
        .await
        .unwrap();
    let mut conn = raw(&server).await;
    assert!(raw_get(&mut conn, &store.token_key(&k)).await.is_some());

    // The operating system does not trust the test CA: no connection.
    let refused = RedisStore::connect(tls.op_timeout(Duration::from_secs(1))).await;
    assert!(refused.is_err());
}

/// Issue 11, item 11: the refresh lock lived `lock_ttl` (30 s by default)
/// while a fetch may take longer (3 attempts of up to 10 s, with backoff
/// and Retry-After waits), so a second process took the expired lock and
/// fetched beside the first. The holder now keeps its lock alive while it
/// fetches, and a waiter waits for it as long as it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_does_not_fetch_while_a_slow_first_fetch_outlives_the_lock_ttl() {
    const LOCK_TTL: Duration = Duration::from_millis(500);
    let server = RedisServer::start();
    // The fetch takes five lock lifetimes.
    let tokens = token_server(TOKEN_PREFIX, 5 * LOCK_TTL).await;
    let fetcher = HttpFetcher::new(format!("{}/oauth2/token", tokens.uri()));
    let process = || async {
        let store = RedisStore::connect(config(&server, "slow-fetch"))
            .await
            .unwrap();
        cache_over(
            Arc::new(store),
            settings(LOCK_TTL, Duration::from_millis(20)),
        )
    };
    let (first, second) = (process().await, process().await);
    let first_call = {
        let source = first.source(key("slow-fetch"), fetcher.clone());
        tokio::spawn(async move { source.token().await })
    };
    let store = RedisStore::connect(config(&server, "slow-fetch"))
        .await
        .unwrap();
    let mut conn = raw(&server).await;
    let lock_key = store.lock_key(&key("slow-fetch"));
    let started = Instant::now();
    while raw_get(&mut conn, &lock_key).await.is_none() {
        assert!(started.elapsed() < Duration::from_secs(5), "no lock taken");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let second_token = second
        .source(key("slow-fetch"), fetcher.clone())
        .token()
        .await
        .unwrap();
    let first_token = first_call.await.unwrap().unwrap();
    let waited = started.elapsed();
    assert_eq!(token_number(&first_token), 1);
    assert_eq!(token_number(&second_token), 1);
    assert_eq!(token_requests(&tokens).await, 1, "token requests in all");
    assert_eq!((second.stats().fetches, second.stats().adopted), (0, 1));
    assert!(waited >= 4 * LOCK_TTL, "the fetch took {waited:?}");
    assert_eq!(raw_get(&mut conn, &lock_key).await, None, "released");
    eprintln!("slow fetch: {waited:?} under a {LOCK_TTL:?} lock kept alive, one token request");
}

// ------------------------------------------------------ multi-process tests

const ROLE: &str = "M2M_FLEET_ROLE";

/// Starts this test binary again as a worker running `test`.
fn spawn_worker(test: &str, env: &[(&str, String)]) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            test,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (name, value) in env {
        command.env(name, value);
    }
    command.spawn().expect("re-executing the test binary")
}

/// Waits for `child` at most `within`; kills it after that.
fn wait_bounded(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("worker {} did not finish within {within:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The worker's lines that start with `marker`, read on a thread.
fn lines_with(child: &mut Child, marker: &'static str) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // libtest may have printed `test <name> ... ` on the same line.
            if let Some(at) = line.find(marker) {
                let _ = tx.send(line[at + marker.len()..].trim().to_owned());
            }
        }
    });
    rx
}

const RESULT: &str = "FLEET-RESULT";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_share_one_token_fetch() {
    let processes = env_usize("M2M_FLEET_PROCESSES", 8);
    let calls = env_usize("M2M_FLEET_CALLS", 200);
    let server = RedisServer::start();
    // A token endpoint as slow as Entra on a bad day: every process is
    // waiting while the one fetch runs.
    let latency = Duration::from_millis(env_usize("M2M_FLEET_TOKEN_LATENCY_MS", 300) as u64);
    let tokens = token_server(TOKEN_PREFIX, latency).await;
    let fleet_prefix = prefix("fleet");
    let env = vec![
        (ROLE, "fleet".to_owned()),
        ("M2M_FLEET_REDIS_URL", server.url().to_string()),
        (
            "M2M_FLEET_TOKEN_URL",
            format!("{}/oauth2/token", tokens.uri()),
        ),
        ("M2M_FLEET_PREFIX", fleet_prefix.clone()),
        ("M2M_FLEET_CALLS", calls.to_string()),
        (CacheEncryptionKey::ENV_VAR, FLEET_KEY_B64.to_owned()),
    ];
    let started = Instant::now();
    let mut workers: Vec<Child> = (0..processes)
        .map(|_| spawn_worker("fleet_worker", &env))
        .collect();
    let results: Vec<_> = workers.iter_mut().map(|w| lines_with(w, RESULT)).collect();

    // Start line: every worker is connected and waiting for the go key.
    let mut conn = raw(&server).await;
    let ready_key = format!("{fleet_prefix}ready");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready: Option<usize> = redis::cmd("GET")
            .arg(&ready_key)
            .query_async(&mut conn)
            .await
            .unwrap();
        if ready == Some(processes) {
            break;
        }
        assert!(Instant::now() < deadline, "workers not ready: {ready:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let spawned_in = started.elapsed();
    let go = Instant::now();
    raw_set(&mut conn, &format!("{fleet_prefix}go"), b"1").await;

    let mut total = WorkerResult::default();
    let mut token_numbers = Vec::new();
    for (worker, result) in workers.iter_mut().zip(results) {
        let status = wait_bounded(worker, Duration::from_secs(30));
        assert!(status.success(), "worker failed: {status}");
        let line = result
            .recv_timeout(Duration::from_secs(5))
            .expect("worker result");
        let result: WorkerResult = serde_json::from_str(&line).unwrap();
        token_numbers.push(result.token);
        total.add(&result);
    }
    let fleet_time = go.elapsed();

    assert_eq!(total.ok, processes * calls, "{total:?}");
    assert_eq!(total.failed, 0);
    assert_eq!(
        token_requests(&tokens).await,
        1,
        "token requests across the fleet"
    );
    assert_eq!(total.fetches, 1, "{total:?}");
    assert_eq!(total.adopted, processes - 1, "{total:?}");
    assert_eq!(total.store_errors, 0, "{total:?}");
    assert!(token_numbers.iter().all(|n| *n == 1), "{token_numbers:?}");
    eprintln!(
        "fleet: {processes} processes x {calls} concurrent calls = {} ok, {} token request(s); \
         spawn+connect {spawned_in:?}, cold fleet served in {fleet_time:?} \
         (token endpoint latency {latency:?}); slowest process {} ms",
        total.ok,
        token_requests(&tokens).await,
        total.slowest_ms
    );
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct WorkerResult {
    ok: usize,
    failed: usize,
    fetches: usize,
    adopted: usize,
    store_errors: usize,
    token: usize,
    #[serde(default)]
    slowest_ms: u64,
}

impl WorkerResult {
    fn add(&mut self, other: &Self) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.fetches += other.fetches;
        self.adopted += other.adopted;
        self.store_errors += other.store_errors;
        self.slowest_ms = self.slowest_ms.max(other.slowest_ms);
    }
}

/// One process of the fleet (run by `eight_processes_share_one_token_fetch`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a worker process of eight_processes_share_one_token_fetch"]
async fn fleet_worker() {
    if std::env::var(ROLE).as_deref() != Ok("fleet") {
        eprintln!("fleet_worker runs only when started by eight_processes_share_one_token_fetch");
        return;
    }
    let var = |name: &str| std::env::var(name).unwrap();
    let calls: usize = var("M2M_FLEET_CALLS").parse().unwrap();
    let fleet_prefix = var("M2M_FLEET_PREFIX");
    let config = RedisStoreConfig::new(var("M2M_FLEET_REDIS_URL").parse().unwrap())
        .prefix(fleet_prefix.clone())
        .encryption_key_from_env()
        .unwrap();
    assert!(config.encrypts(), "M2M_CACHE_KEY reaches the worker");
    let store = Arc::new(RedisStore::connect(config).await.unwrap());
    let cache = cache_over(
        store,
        settings(Duration::from_secs(10), Duration::from_millis(10)),
    );
    let source = cache.source(key("fleet"), HttpFetcher::new(var("M2M_FLEET_TOKEN_URL")));

    let mut conn = redis::Client::open(var("M2M_FLEET_REDIS_URL"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: i64 = redis::cmd("INCR")
        .arg(format!("{fleet_prefix}ready"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while raw_get(&mut conn, &format!("{fleet_prefix}go"))
        .await
        .is_none()
    {
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
    let mut seen = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(token) => {
                result.ok += 1;
                seen.push(token_number(&token));
            }
            Err(_) => result.failed += 1,
        }
    }
    result.slowest_ms = started.elapsed().as_millis() as u64;
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
    result.token = seen.first().copied().unwrap_or(0);
    let stats = cache.stats();
    result.fetches = stats.fetches as usize;
    result.adopted = stats.adopted as usize;
    result.store_errors = stats.store_errors as usize;
    println!("{RESULT} {}", serde_json::to_string(&result).unwrap());
}

/// A secret the token server refuses (it must show nowhere).
const WRONG_SECRET: &str = "wrong-secret-5e1f0c";

/// Issue 11, item 10: when the lock holder's fetch failed, the processes
/// waiting on its lock did not learn it: they watched the store for a token
/// for the whole lock TTL, then each fetched (and failed) by itself. The
/// holder now shares its failure through the store, next to the token and
/// the lock (one Redis Cluster hash slot: `{…}`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_with_a_wrong_secret_make_one_token_request_and_all_fail_at_once() {
    const PROCESSES: usize = 3;
    let server = RedisServer::start();
    let tokens = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "error": "invalid_client",
            "error_description": "client authentication failed"
        })))
        .mount(&tokens)
        .await;
    let fleet_prefix = prefix("wrong-secret");
    let env = vec![
        (ROLE, "wrong-secret".to_owned()),
        ("M2M_FLEET_REDIS_URL", server.url().to_string()),
        (
            "M2M_FLEET_TOKEN_URL",
            format!("{}/oauth2/token", tokens.uri()),
        ),
        ("M2M_FLEET_PREFIX", fleet_prefix.clone()),
    ];
    let mut workers: Vec<Child> = (0..PROCESSES)
        .map(|_| spawn_worker("wrong_secret_worker", &env))
        .collect();
    let results: Vec<_> = workers.iter_mut().map(|w| lines_with(w, RESULT)).collect();
    let mut conn = raw(&server).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready: Option<usize> = redis::cmd("GET")
            .arg(format!("{fleet_prefix}ready"))
            .query_async(&mut conn)
            .await
            .unwrap();
        if ready == Some(PROCESSES) {
            break;
        }
        assert!(Instant::now() < deadline, "workers not ready: {ready:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    raw_set(&mut conn, &format!("{fleet_prefix}go"), b"1").await;

    let mut failures = Vec::new();
    for (worker, result) in workers.iter_mut().zip(results) {
        let status = wait_bounded(worker, Duration::from_secs(20));
        assert!(status.success(), "worker failed: {status}");
        let line = result
            .recv_timeout(Duration::from_secs(5))
            .expect("worker result");
        failures.push(serde_json::from_str::<FailedWorker>(&line).unwrap());
    }
    eprintln!("wrong secret: {failures:?}");
    assert_eq!(token_requests(&tokens).await, 1, "token requests in all");
    for failure in &failures {
        assert_eq!(failure.oauth_error.as_deref(), Some("invalid_client"));
        assert!(failure.elapsed_ms < 2000, "{failure:?}");
        assert!(!failure.message.contains(WRONG_SECRET), "{failure:?}");
    }
    assert_eq!(failures.iter().map(|f| f.fetches).sum::<u64>(), 1);
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct FailedWorker {
    oauth_error: Option<String>,
    message: String,
    elapsed_ms: u64,
    fetches: u64,
}

/// One process with a wrong client secret (run by
/// `three_processes_with_a_wrong_secret_make_one_token_request_and_all_fail_at_once`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a worker process of three_processes_with_a_wrong_secret_make_one_token_request_and_all_fail_at_once"]
async fn wrong_secret_worker() {
    if std::env::var(ROLE).as_deref() != Ok("wrong-secret") {
        eprintln!("wrong_secret_worker runs only when started by its parent test");
        return;
    }
    let var = |name: &str| std::env::var(name).unwrap();
    let fleet_prefix = var("M2M_FLEET_PREFIX");
    let store = RedisStore::connect(
        RedisStoreConfig::new(var("M2M_FLEET_REDIS_URL").parse().unwrap())
            .prefix(fleet_prefix.clone()),
    )
    .await
    .unwrap();
    let cache = cache_over(Arc::new(store), CacheSettings::default());
    let endpoint = TokenEndpoint::builder(
        Provider::custom_token_url(var("M2M_FLEET_TOKEN_URL").parse().unwrap()),
        "fleet-client",
        ClientCredential::secret(WRONG_SECRET),
    )
    .build()
    .unwrap();
    let source = cache.source(
        CacheKey::for_endpoint(endpoint.identity()),
        Arc::new(endpoint),
    );

    let mut conn = redis::Client::open(var("M2M_FLEET_REDIS_URL"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: i64 = redis::cmd("INCR")
        .arg(format!("{fleet_prefix}ready"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while raw_get(&mut conn, &format!("{fleet_prefix}go"))
        .await
        .is_none()
    {
        assert!(Instant::now() < deadline, "no go signal");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let started = Instant::now();
    let error = source.token().await.unwrap_err();
    let result = FailedWorker {
        oauth_error: error.oauth_error().map(|oauth| oauth.error.clone()),
        message: format!("{error} {error:?}"),
        elapsed_ms: started.elapsed().as_millis() as u64,
        fetches: cache.stats().fetches,
    };
    println!("{RESULT} {}", serde_json::to_string(&result).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_lock_holder_is_replaced_after_the_lock_ttl() {
    const LOCK_TTL: Duration = Duration::from_millis(500);
    let server = RedisServer::start();
    let tokens = token_server(TOKEN_PREFIX, Duration::ZERO).await;
    let holder_prefix = prefix("holder");
    let mut holder = spawn_worker(
        "lock_holder_worker",
        &[
            (ROLE, "holder".to_owned()),
            ("M2M_FLEET_REDIS_URL", server.url().to_string()),
            ("M2M_FLEET_PREFIX", holder_prefix.clone()),
        ],
    );
    let holding = lines_with(&mut holder, "HOLDING-LOCK");
    holding
        .recv_timeout(Duration::from_secs(15))
        .expect("the holder took the lock");
    let store = Arc::new(
        RedisStore::connect(
            RedisStoreConfig::new(server.url())
                .prefix(holder_prefix.clone())
                .lock_ttl(LOCK_TTL),
        )
        .await
        .unwrap(),
    );
    let mut conn = raw(&server).await;
    let lock_key = store.lock_key(&key("holder"));
    assert!(
        raw_get(&mut conn, &lock_key).await.is_some(),
        "lock held by the worker"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    let killed = Instant::now();

    // Three processes need the token now: each waits for the dead holder
    // at most the lock TTL, then asks for the lock again; one gets it and
    // fetches, the others take its token from Redis.
    let fetcher = HttpFetcher::new(format!("{}/oauth2/token", tokens.uri()));
    let mut waiters = Vec::new();
    for _ in 0..3 {
        let store = RedisStore::connect(
            RedisStoreConfig::new(server.url())
                .prefix(holder_prefix.clone())
                .lock_ttl(LOCK_TTL),
        )
        .await
        .unwrap();
        waiters.push(cache_over(
            Arc::new(store),
            settings(LOCK_TTL, Duration::from_millis(20)),
        ));
    }
    let tokens_taken = futures::future::join_all(
        waiters
            .iter()
            .map(|cache| async { cache.source(key("holder"), fetcher.clone()).token().await }),
    )
    .await;
    let took_over_in = killed.elapsed();
    for token in tokens_taken {
        assert_eq!(token_number(&token.unwrap()), 1);
    }
    assert_eq!(
        token_requests(&tokens).await,
        1,
        "one fetch for the three waiters"
    );
    let fetches: u64 = waiters.iter().map(|cache| cache.stats().fetches).sum();
    assert_eq!(fetches, 1);
    assert!(
        took_over_in < 2 * LOCK_TTL + Duration::from_secs(2),
        "took over after {took_over_in:?}"
    );
    // The dead holder's lock is gone, and a third process adopts the token.
    assert_eq!(raw_get(&mut conn, &lock_key).await, None);
    let third = cache_over(
        Arc::new(
            RedisStore::connect(RedisStoreConfig::new(server.url()).prefix(holder_prefix))
                .await
                .unwrap(),
        ),
        CacheSettings::default(),
    );
    let adopted = third.source(key("holder"), fetcher).token().await.unwrap();
    assert_eq!(token_number(&adopted), 1);
    assert_eq!(third.stats().fetches, 0);
    assert_eq!(token_requests(&tokens).await, 1);
    eprintln!(
        "lock holder killed: three waiting processes had the token {took_over_in:?} later, with one fetch"
    );
}

/// Fetches nothing, ever: it says it holds the lock and hangs.
struct HangingFetcher;

impl FetchToken for HangingFetcher {
    fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>> {
        Box::pin(async {
            println!("HOLDING-LOCK");
            tokio::time::sleep(Duration::from_secs(60)).await;
            unreachable!("the parent kills this process while it holds the lock")
        })
    }
}

/// A process that takes the refresh lock and dies before writing a token
/// (run by `a_killed_lock_holder_is_replaced_after_the_lock_ttl`).
#[tokio::test]
#[ignore = "a worker process of a_killed_lock_holder_is_replaced_after_the_lock_ttl"]
async fn lock_holder_worker() {
    if std::env::var(ROLE).as_deref() != Ok("holder") {
        eprintln!("lock_holder_worker runs only when started by its parent test");
        return;
    }
    let var = |name: &str| std::env::var(name).unwrap();
    let store = RedisStore::connect(
        RedisStoreConfig::new(var("M2M_FLEET_REDIS_URL").parse().unwrap())
            .prefix(var("M2M_FLEET_PREFIX"))
            .lock_ttl(Duration::from_millis(500)),
    )
    .await
    .unwrap();
    let cache = cache_over(Arc::new(store), CacheSettings::default());
    let _ = cache
        .source(key("holder"), Arc::new(HangingFetcher))
        .token()
        .await;
    unreachable!("the parent kills this process while it holds the lock");
}
