//! The token cache against a real token endpoint on loopback (wiremock),
//! with time injected (`ManualClock`): exact request counts, no real waiting.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::HeaderValue;
use m2m::auth::clock::{Clock, FixedJitter, ManualClock};
use m2m::auth::{
    AccessToken, Auth, AuthError, BoxFuture, CacheKey, CacheSettings, CacheStats,
    CachedTokenSource, ClientCredential, FetchToken, InvalidTokenValue, MemoryStore, RetryPolicy,
    StoreError, StoreLock, TokenCache, TokenEndpoint, TokenStore, UnfinishedFetch,
};
use m2m::provider::Provider;
use secrecy::SecretString;
use serde::Deserialize;
use tokio::sync::Semaphore;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TOKEN_PATH: &str = "/oauth2/token";

// ---------------------------------------------------------------------------
// Test scaffolding: a token server on loopback and a minimal fetcher for it.
// ---------------------------------------------------------------------------

/// Answers every token request with a new token `{prefix}-{n}`.
struct IssuesNumberedTokens {
    prefix: &'static str,
    issued: AtomicU64,
    expires_in: u64,
}

impl Respond for IssuesNumberedTokens {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": format!("{}-{n}", self.prefix),
            "token_type": "bearer",
            "expires_in": self.expires_in,
        }))
    }
}

async fn token_server(expires_in: u64) -> MockServer {
    let server = MockServer::start().await;
    serve_tokens(&server, expires_in, "loopback-token").await;
    server
}

async fn serve_tokens(server: &MockServer, expires_in: u64, prefix: &'static str) {
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .and(body_string_contains("grant_type=client_credentials"))
        .respond_with(IssuesNumberedTokens {
            prefix,
            issued: AtomicU64::new(0),
            expires_in,
        })
        .mount(server)
        .await;
}

async fn token_requests(server: &MockServer) -> usize {
    server.received_requests().await.unwrap_or_default().len()
}

/// TEST SCAFFOLDING, not m2m's token endpoint client (that lives in the
/// endpoint module): one POST of the client-credentials form, no retries;
/// the token's expiry is dated with the injected clock. Records when (on
/// that clock) each attempt was made.
struct LoopbackFetcher {
    http: reqwest::Client,
    url: Mutex<String>,
    clock: Arc<ManualClock>,
    attempts: Mutex<Vec<SystemTime>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    expires_in: u64,
}

impl LoopbackFetcher {
    fn new(server: &MockServer, clock: &Arc<ManualClock>) -> Arc<Self> {
        Arc::new(Self {
            http: reqwest::Client::new(),
            url: Mutex::new(format!("{}{TOKEN_PATH}", server.uri())),
            clock: Arc::clone(clock),
            attempts: Mutex::new(Vec::new()),
        })
    }

    fn point_at(&self, url: String) {
        *self.url.lock().unwrap() = url;
    }

    /// Seconds since `start` of every attempt so far.
    fn attempts_since(&self, start: SystemTime) -> Vec<u64> {
        let attempts = self.attempts.lock().unwrap();
        attempts
            .iter()
            .map(|at| at.duration_since(start).unwrap().as_secs())
            .collect()
    }

    async fn post(&self) -> Result<AccessToken, AuthError> {
        let url = self.url.lock().unwrap().clone();
        self.attempts.lock().unwrap().push(self.clock.now());
        let response = self
            .http
            .post(url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "loopback-client"),
            ])
            .send()
            .await
            .map_err(|_| endpoint_failed())?;
        if !response.status().is_success() {
            return Err(endpoint_failed());
        }
        let body: TokenResponse = response.json().await.map_err(|_| endpoint_failed())?;
        let expires_at = self.clock.now() + Duration::from_secs(body.expires_in);
        AccessToken::new(
            SecretString::from(body.access_token),
            &body.token_type,
            expires_at,
            None,
        )
    }
}

/// The loopback fetcher's failure when the server does not answer with a
/// token. The cache passes whatever the fetcher returned through
/// unchanged, which is what these tests check; the endpoint's own errors
/// are in `tests/token_endpoint.rs`.
fn endpoint_failed() -> AuthError {
    AuthError::from(InvalidTokenValue)
}

impl FetchToken for LoopbackFetcher {
    fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>> {
        Box::pin(self.post())
    }
}

fn cache_key(client_id: &str) -> CacheKey {
    CacheKey::new(
        "Custom",
        "http://127.0.0.1/oauth2/token",
        client_id,
        ["api.read", "api.write"],
        None,
    )
}

struct Setup {
    server: MockServer,
    clock: Arc<ManualClock>,
    fetcher: Arc<LoopbackFetcher>,
    cache: TokenCache,
    source: CachedTokenSource,
    start: SystemTime,
}

async fn setup(expires_in: u64, settings: CacheSettings) -> Setup {
    setup_with_store(expires_in, settings, Arc::new(MemoryStore::default())).await
}

async fn setup_with_store(
    expires_in: u64,
    settings: CacheSettings,
    store: Arc<dyn TokenStore>,
) -> Setup {
    let server = token_server(expires_in).await;
    let clock = Arc::new(ManualClock::at_fixed_date());
    let fetcher = LoopbackFetcher::new(&server, &clock);
    let cache = TokenCache::new(store, clock.clone(), Arc::new(FixedJitter(0.0)), settings);
    let source = cache.source(cache_key("loopback-client"), fetcher.clone());
    let start = clock.now();
    Setup {
        server,
        clock,
        fetcher,
        cache,
        source,
        start,
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn value(token: &AccessToken) -> &str {
    token.authorization().to_str().unwrap()
}

/// A port nothing listens on: connecting to it is refused.
fn refused_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}{TOKEN_PATH}")
}

// ---------------------------------------------------------------------------
// Single flight
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_cold_calls_make_one_token_request() {
    let s = setup(3600, CacheSettings::default()).await;
    let calls: Vec<_> = (0..1000)
        .map(|_| {
            let source = s.source.clone();
            tokio::spawn(async move { source.token().await })
        })
        .collect();
    // Awaiting 1000 finished tasks spends the test task's coop budget. Run
    // unconstrained, or the budget can end at exactly 0, and wiremock's
    // `Drop` (a `futures` block_on of a tokio RwLock read) then busy-loops
    // forever: tokio's budget is only refilled by its scheduler.
    let values = tokio::task::unconstrained(async {
        let mut values = Vec::new();
        for call in calls {
            values.push(value(&call.await.unwrap().unwrap()).to_owned());
        }
        values
    })
    .await;
    assert_eq!(values.len(), 1000);
    assert!(values.iter().all(|v| v == "Bearer loopback-token-1"));
    assert_eq!(token_requests(&s.server).await, 1);
    let stats = s.cache.stats();
    assert_eq!(stats.fetches, 1);
    assert_eq!(stats.hits + stats.misses, 1000);
    assert_eq!(
        stats.waited, stats.misses,
        "every miss waited for the one fetch"
    );
}

#[tokio::test]
async fn a_caller_that_gives_up_does_not_cancel_the_fetch_others_need() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_millis(200))
                .set_body_json(serde_json::json!({
                    "access_token": "slow-token", "token_type": "Bearer", "expires_in": 3600
                })),
        )
        .mount(&server)
        .await;
    let clock = Arc::new(ManualClock::at_fixed_date());
    let fetcher = LoopbackFetcher::new(&server, &clock);
    let cache = TokenCache::new(
        Arc::new(MemoryStore::default()),
        clock.clone(),
        Arc::new(FixedJitter(0.0)),
        CacheSettings::default(),
    );
    let source = cache.source(cache_key("slow"), fetcher);

    let gave_up = tokio::time::timeout(Duration::from_millis(20), source.token()).await;
    assert!(gave_up.is_err(), "the first caller timed out");
    let token = source.token().await.unwrap();
    assert_eq!(value(&token), "Bearer slow-token");
    assert_eq!(
        token_requests(&server).await,
        1,
        "the second caller joined the first fetch"
    );
    assert_eq!(cache.stats().fetches, 1);
}

// ---------------------------------------------------------------------------
// Refresh ahead of expiry
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_hour_of_five_minute_tokens_under_steady_load() {
    // Refresh 10 s (+ jitter: 0.5 of a 0.5 share = 12.5 s) before expiry.
    let mut settings = CacheSettings::default();
    settings.refresh_before = secs(10);
    settings.refresh_jitter = 0.5;
    let server = token_server(300).await;
    let clock = Arc::new(ManualClock::at_fixed_date());
    let fetcher = LoopbackFetcher::new(&server, &clock);
    let cache = TokenCache::new(
        Arc::new(MemoryStore::default()),
        clock.clone(),
        Arc::new(FixedJitter(0.5)),
        settings,
    );
    let source = cache.source(cache_key("hour"), fetcher.clone());
    let start = clock.now();

    let mut served = Vec::new();
    for _ in 0..1800 {
        let token = source.token().await.expect("every call gets a token");
        let now = clock.now();
        assert!(
            token.expires_at() > now + secs(10),
            "a usable token at {now:?}"
        );
        served.push(value(&token).to_owned());
        // Let a background refresh finish before simulated time moves on.
        source.settled().await;
        clock.advance(secs(2));
    }

    // Fetched at 0 s, then each token refreshed at the first call past
    // 287.5 s of its life: 288 s, 576 s, ..., 3456 s: 13 requests.
    let expected: Vec<u64> = (0..13).map(|n| n * 288).collect();
    assert_eq!(fetcher.attempts_since(start), expected);
    assert_eq!(token_requests(&server).await, 13);
    let CacheStats {
        hits,
        misses,
        background_refreshes,
        waited,
        fetches,
        fetch_failures,
        ..
    } = cache.stats();
    assert_eq!((hits, misses), (1799, 1));
    assert_eq!(background_refreshes, 12);
    assert_eq!(waited, 1, "no caller waited for a fetch after the first");
    assert_eq!((fetches, fetch_failures), (13, 0));
    served.dedup();
    assert_eq!(
        served.len(),
        13,
        "each token was served until its successor arrived"
    );
}

#[tokio::test]
async fn an_outage_shorter_than_the_remaining_lifetime_fails_no_call() {
    // Defaults: 5-minute tokens refresh at half their life (150 s) and are
    // served until 10 s before expiry; retries wait 1, 2, 4, ... 30 s.
    let s = setup(300, CacheSettings::default()).await;
    let first = s.source.token().await.unwrap();

    s.server.reset().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(500))
        .mount(&s.server)
        .await;

    let mut failed_calls = 0;
    let mut served_first = 0;
    for second in 1..=240 {
        s.clock.advance(secs(1));
        if second == 200 {
            // The outage ends.
            s.server.reset().await;
            serve_tokens(&s.server, 300, "after-outage").await;
        }
        match s.source.token().await {
            Ok(token) if token.is_sent_as(first.authorization()) => served_first += 1,
            Ok(_) => {}
            Err(_) => failed_calls += 1,
        }
        s.source.settled().await;
    }

    assert_eq!(failed_calls, 0);
    assert_eq!(
        s.fetcher.attempts_since(s.start),
        [0, 150, 151, 153, 157, 165, 181, 211],
        "refresh attempts are spaced 1, 2, 4, 8, 16, 30 s apart"
    );
    assert_eq!(
        served_first, 211,
        "the first token was served until the refresh succeeded"
    );
    let stats = s.cache.stats();
    assert_eq!(stats.fetches, 8);
    assert_eq!(stats.fetch_failures, 6);
    assert_eq!(stats.background_refreshes, 7);
    assert_eq!(stats.waited, 1);
}

#[tokio::test]
async fn an_expired_token_during_an_outage_gives_the_error_then_recovers() {
    let s = setup(300, CacheSettings::default()).await;
    let first = s.source.token().await.unwrap();
    s.fetcher.point_at(refused_url());
    s.clock.advance(secs(400));

    let error = s
        .source
        .token()
        .await
        .expect_err("no usable token and no endpoint");
    assert!(matches!(error, AuthError::InvalidToken(_)), "{error:?}");
    // Within the backoff, the same error comes back without a new attempt.
    let again = s.source.token().await.expect_err("still failing");
    assert_eq!(again.to_string(), error.to_string());
    assert_eq!(s.fetcher.attempts_since(s.start), [0, 400]);

    s.fetcher
        .point_at(format!("{}{TOKEN_PATH}", s.server.uri()));
    s.clock.advance(secs(1));
    let recovered = s.source.token().await.unwrap();
    assert!(!recovered.is_sent_as(first.authorization()));
    assert_eq!(s.fetcher.attempts_since(s.start), [0, 400, 401]);
    assert_eq!(token_requests(&s.server).await, 2);
    let stats = s.cache.stats();
    assert_eq!(
        (stats.fetches, stats.fetch_failures, stats.misses),
        (3, 1, 4)
    );
}

#[tokio::test]
async fn a_token_in_its_last_seconds_is_not_handed_out() {
    // 5-minute tokens: the expiry margin is 10 s; no call during the
    // refresh window, so the first call after it finds a token 5 s from
    // expiry and must wait for a new one instead.
    let s = setup(300, CacheSettings::default()).await;
    let first = s.source.token().await.unwrap();
    s.clock.advance(secs(295));
    let next = s.source.token().await.unwrap();
    assert!(!next.is_sent_as(first.authorization()));
    assert_eq!(token_requests(&s.server).await, 2);
    let stats = s.cache.stats();
    assert_eq!(
        (stats.misses, stats.adopted, stats.background_refreshes),
        (2, 0, 0)
    );
}

/// Issue 11, item 4: a discovery answer with `Retry-After: 2^64 - 1`
/// overflowed `SystemTime + Duration` in the cache's backoff, and the caller
/// was told (by a panic) that the token fetcher had panicked. The wait is
/// capped (120 s) and every sum with it is checked.
#[tokio::test]
async fn a_retry_after_of_u64_max_on_discovery_holds_the_key_off_for_the_cap() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(
            ResponseTemplate::new(503).insert_header("retry-after", u64::MAX.to_string().as_str()),
        )
        .mount(&server)
        .await;
    let clock = Arc::new(ManualClock::at_fixed_date());
    let discovery_url = format!("{}/.well-known/openid-configuration", server.uri());
    let endpoint = TokenEndpoint::builder(
        Provider::custom_discovery(discovery_url.parse().unwrap()),
        "loopback-client",
        ClientCredential::secret("loopback-secret"),
    )
    .clock(clock.clone())
    .jitter(Arc::new(FixedJitter(0.0)))
    .retry(RetryPolicy::no_retries())
    .build()
    .unwrap();
    let cache = TokenCache::new(
        Arc::new(MemoryStore::default()),
        clock.clone(),
        Arc::new(FixedJitter(0.0)),
        CacheSettings::default(),
    );
    let source = cache.source(
        CacheKey::for_endpoint(endpoint.identity()),
        Arc::new(endpoint),
    );

    let caller = {
        let source = source.clone();
        tokio::spawn(async move { source.token().await })
    };
    let error = caller
        .await
        .expect("the caller gets an error, not a panic")
        .unwrap_err();
    assert!(matches!(error, AuthError::Discovery(_)), "{error:?}");
    assert_eq!(error.retry_after(), Some(secs(120)));
    assert_eq!(token_requests(&server).await, 1);

    // The key is held off for the capped wait, then tried again.
    clock.advance(secs(119));
    let held = source.token().await.unwrap_err();
    assert_eq!(held.to_string(), error.to_string());
    assert_eq!(token_requests(&server).await, 1);
    clock.advance(secs(1));
    source.token().await.unwrap_err();
    assert_eq!(token_requests(&server).await, 2);
}

/// A token endpoint on `server` (m2m's own, with retries) whose waits and
/// expiry times follow `clock`.
fn loopback_endpoint(server: &MockServer, clock: &Arc<ManualClock>) -> TokenEndpoint {
    TokenEndpoint::builder(
        Provider::custom_token_url(format!("{}{TOKEN_PATH}", server.uri()).parse().unwrap()),
        "loopback-client",
        ClientCredential::secret("loopback-secret"),
    )
    .clock(clock.clone())
    .jitter(Arc::new(FixedJitter(0.0)))
    .build()
    .unwrap()
}

/// Issue 16, item 2: `Auth::new(endpoint)` made a cache of its own on every
/// call, so a client built per request never reused a token. A handle built
/// by hand now takes the cache it keeps its tokens in: two handles built
/// apart, from two endpoints built apart for the same client, share one
/// token fetch.
#[tokio::test]
async fn handles_built_by_hand_share_one_token_fetch() {
    let server = token_server(3600).await;
    let endpoint = || {
        TokenEndpoint::builder(
            Provider::custom_token_url(format!("{}{TOKEN_PATH}", server.uri()).parse().unwrap()),
            "loopback-client",
            ClientCredential::secret("loopback-secret"),
        )
        .build()
        .unwrap()
    };
    let cache = TokenCache::in_memory();

    let first = Auth::new(endpoint(), &cache).token().await.unwrap();
    let second = Auth::new(endpoint(), &cache).token().await.unwrap();

    assert_eq!(value(&first), value(&second));
    assert_eq!(token_requests(&server).await, 1);
    assert_eq!(cache.stats().fetches, 1);
}

/// Issue 11, item 6: an `expires_in` under 60 s was taken as 60 s, so the
/// token was used after the expiry the server gave. A short lifetime is
/// taken at its word (refreshed at half of it, not handed out in its last
/// quarter), and a lifetime of 0 serves only the call that fetched it.
#[tokio::test]
async fn a_token_is_never_served_past_the_expiry_the_server_gave() {
    let server = token_server(20).await;
    let clock = Arc::new(ManualClock::at_fixed_date());
    let cache = TokenCache::new(
        Arc::new(MemoryStore::default()),
        clock.clone(),
        Arc::new(FixedJitter(0.0)),
        CacheSettings::default(),
    );
    let endpoint = loopback_endpoint(&server, &clock);
    let source = cache.source(
        CacheKey::for_endpoint(endpoint.identity()),
        Arc::new(endpoint),
    );
    let start = clock.now();

    let first = source.token().await.unwrap();
    assert_eq!(first.expires_at(), start + secs(20), "the server's expiry");
    let mut issued = vec![(value(&first).to_owned(), start)];
    for _ in 0..40 {
        clock.advance(secs(1));
        let token = source.token().await.unwrap();
        let now = clock.now();
        if issued.last().is_none_or(|(v, _)| v != value(&token)) {
            issued.push((value(&token).to_owned(), now));
        }
        let since = issued.last().map(|(_, at)| *at).unwrap_or(start);
        assert!(
            token.expires_at() > now && token.expires_at() <= since + secs(20),
            "at {:?}: a token expiring at {:?}",
            now.duration_since(start),
            token.expires_at().duration_since(start)
        );
        source.settled().await;
    }
    assert_ne!(value(&source.token().await.unwrap()), value(&first));
    // Refreshed in the background at half of each 20 s life.
    assert_eq!(token_requests(&server).await, 5);

    // expires_in 0: the token serves the call that fetched it, and the next
    // call fetches again.
    let server = token_server(0).await;
    let endpoint = loopback_endpoint(&server, &clock);
    let source = cache.source(
        CacheKey::for_endpoint(endpoint.identity()),
        Arc::new(endpoint),
    );
    let a = source.token().await.unwrap();
    assert_eq!(a.expires_at(), clock.now());
    let b = source.token().await.unwrap();
    assert_ne!(value(&a), value(&b));
    assert_eq!(token_requests(&server).await, 2);
}

/// Issue 11, item 5: a cold caller waited for its fetch without a
/// deadline. The fetch has a total budget, its retries and their waits
/// included (`CacheSettings::load_timeout`, 60 s by default, on the
/// injected clock): past it, every waiter gets a typed timeout error, the
/// fetch is dropped and the key's next call starts a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_that_outlasts_the_load_timeout_fails_every_waiter_and_is_abandoned() {
    let server = MockServer::start().await;
    // The first attempt is told to come back in 30 s; the second hangs.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "30"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_delay(Duration::from_secs(300)))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    serve_tokens(&server, 3600, "after-the-timeout").await;
    let clock = Arc::new(ManualClock::at_fixed_date());
    let cache = TokenCache::new(
        Arc::new(MemoryStore::default()),
        clock.clone(),
        Arc::new(FixedJitter(0.0)),
        CacheSettings::default(),
    );
    let endpoint = loopback_endpoint(&server, &clock);
    let source = cache.source(
        CacheKey::for_endpoint(endpoint.identity()),
        Arc::new(endpoint),
    );
    let start = clock.now();

    let callers: Vec<_> = (0..10)
        .map(|_| {
            let source = source.clone();
            tokio::spawn(async move { source.token().await })
        })
        .collect();
    let waiting = std::time::Instant::now();
    while token_requests(&server).await < 2 {
        assert!(waiting.elapsed() < Duration::from_secs(10), "no retry sent");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // 30 s of Retry-After went by; 29 s more stay within the budget.
    assert_eq!(clock.now(), start + secs(30));
    clock.advance(secs(29));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        callers.iter().all(|c| !c.is_finished()),
        "within the budget"
    );

    clock.advance(secs(1));
    for caller in callers {
        let result = tokio::time::timeout(Duration::from_secs(5), caller)
            .await
            .expect("every waiter is answered once the budget is spent")
            .unwrap();
        let error = result.unwrap_err();
        assert!(
            matches!(error, AuthError::LoadTimeout { budget } if budget == secs(60)),
            "{error:?}"
        );
        assert!(error.to_string().contains("60s"), "{error}");
    }
    // Abandoned cleanly: no flight left, one failure recorded, and after
    // the backoff the next call fetches afresh.
    source.settled().await;
    assert_eq!(cache.stats().fetch_failures, 1);
    clock.advance(secs(1));
    let token = source.token().await.unwrap();
    assert_eq!(value(&token), "Bearer after-the-timeout-1");
    assert_eq!(token_requests(&server).await, 3);
}

// ---------------------------------------------------------------------------
// Rejected tokens, forced refresh, invalidation
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_callers_reporting_the_same_rejected_token_cause_one_fetch() {
    let s = setup(3600, CacheSettings::default()).await;
    let rejected = s.source.token().await.unwrap();
    let header = rejected.authorization().clone();

    let (a, b) = tokio::join!(s.source.renew(&header), s.source.renew(&header));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(value(&a), "Bearer loopback-token-2");
    assert_eq!(value(&b), "Bearer loopback-token-2");
    assert_eq!(token_requests(&s.server).await, 2);

    // A caller late with the same old token gets the current one, no fetch.
    let late = s.source.renew(&header).await.unwrap();
    assert_eq!(value(&late), "Bearer loopback-token-2");
    assert_eq!(token_requests(&s.server).await, 2);
    assert_eq!(s.cache.stats().fetches, 2);
}

#[tokio::test]
async fn renewing_through_the_auth_handle_evicts_only_the_rejected_token() {
    let s = setup(3600, CacheSettings::default()).await;
    let auth = Auth::from_source(s.source.clone());
    let current = auth.token().await.unwrap();
    let unknown = HeaderValue::from_static("Bearer some-token-from-long-ago");
    let same = auth.renew(&unknown).await.unwrap();
    assert!(same.is_sent_as(current.authorization()));
    assert_eq!(token_requests(&s.server).await, 1);
    let renewed = auth.renew(current.authorization()).await.unwrap();
    assert_eq!(value(&renewed), "Bearer loopback-token-2");
    assert_eq!(token_requests(&s.server).await, 2);
}

#[tokio::test]
async fn force_refresh_fetches_exactly_once() {
    let s = setup(3600, CacheSettings::default()).await;
    let first = s.source.token().await.unwrap();
    let refreshed = s.source.refresh().await.unwrap();
    assert!(!refreshed.is_sent_as(first.authorization()));
    assert_eq!(token_requests(&s.server).await, 2);
    let after = s.source.token().await.unwrap();
    assert!(after.is_sent_as(refreshed.authorization()));
    assert_eq!(token_requests(&s.server).await, 2);
    assert_eq!(s.cache.stats().fetches, 2);
}

/// Holds every fetch at a gate until the test opens it, and tells the test
/// when a fetch has reached the gate.
struct Gated {
    reached: Semaphore,
    gate: Semaphore,
    then: Arc<LoopbackFetcher>,
}

impl FetchToken for Gated {
    fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>> {
        Box::pin(async move {
            self.reached.add_permits(1);
            self.gate.acquire().await.unwrap().forget();
            self.then.fetch().await
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_refresh_during_another_waits_for_that_one() {
    let s = setup(3600, CacheSettings::default()).await;
    let gated = Arc::new(Gated {
        reached: Semaphore::new(0),
        gate: Semaphore::new(0),
        then: s.fetcher.clone(),
    });
    let source = s.cache.source(cache_key("gated"), gated.clone());
    let spawn_refresh = || {
        let source = source.clone();
        tokio::spawn(async move { source.refresh().await })
    };

    let a = spawn_refresh();
    gated.reached.acquire().await.unwrap().forget();
    let b = spawn_refresh();
    while s.cache.stats().waited < 2 {
        tokio::task::yield_now().await;
    }
    gated.gate.add_permits(1);
    let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
    assert!(a.is_sent_as(b.authorization()));
    assert_eq!(token_requests(&s.server).await, 1);
    assert_eq!(s.cache.stats().fetches, 1);
}

#[tokio::test]
async fn invalidate_makes_the_next_call_fetch() {
    let s = setup(3600, CacheSettings::default()).await;
    s.source.token().await.unwrap();
    s.source.token().await.unwrap();
    assert_eq!(token_requests(&s.server).await, 1);
    s.cache.invalidate(s.source.key()).await.unwrap();
    assert_eq!(
        value(&s.source.token().await.unwrap()),
        "Bearer loopback-token-2"
    );
    s.source.invalidate().await.unwrap();
    assert_eq!(
        value(&s.source.token().await.unwrap()),
        "Bearer loopback-token-3"
    );
    assert_eq!(token_requests(&s.server).await, 3);
}

// ---------------------------------------------------------------------------
// Bound, sharing, secrets
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_store_stays_at_its_bound() {
    let store = Arc::new(MemoryStore::with_capacity(8));
    let s = setup_with_store(3600, CacheSettings::default(), store.clone()).await;
    let sources: Vec<_> = (0..20)
        .map(|n| {
            s.cache
                .source(cache_key(&format!("client-{n}")), s.fetcher.clone())
        })
        .collect();
    for source in &sources {
        source.token().await.unwrap();
    }
    assert_eq!(store.len(), 8);
    assert_eq!(token_requests(&s.server).await, 20);
    // The most recent eight are in the store; the first key was evicted
    // from it, but its source, still alive, serves the token it holds.
    sources[19].token().await.unwrap();
    assert_eq!(token_requests(&s.server).await, 20);
    sources[0].token().await.unwrap();
    assert_eq!(token_requests(&s.server).await, 20);
    assert_eq!(store.len(), 8);
    // Once that source is gone, a new one for the key fetches again.
    drop(sources);
    let again = s.cache.source(cache_key("client-0"), s.fetcher.clone());
    again.token().await.unwrap();
    assert_eq!(token_requests(&s.server).await, 21);
    assert_eq!(store.len(), 8);
}

#[tokio::test]
async fn sources_bound_to_the_same_key_share_its_token() {
    let s = setup(3600, CacheSettings::default()).await;
    let other_fetcher = LoopbackFetcher::new(&s.server, &s.clock);
    let twin = s
        .cache
        .source(cache_key("loopback-client"), other_fetcher.clone());
    let a = s.source.token().await.unwrap();
    let b = twin.token().await.unwrap();
    assert!(a.is_sent_as(b.authorization()));
    assert_eq!(token_requests(&s.server).await, 1);
    assert!(other_fetcher.attempts_since(s.start).is_empty());
}

#[tokio::test]
async fn no_token_value_appears_in_any_debug_output() {
    let s = setup(3600, CacheSettings::default()).await;
    let token = s.source.token().await.unwrap();
    let debug = [
        format!("{:?}", s.cache),
        format!("{:?}", s.source),
        format!("{:?}", s.cache.store().peek(s.source.key())),
        format!("{:?}", s.source.key()),
        format!("{:?}", s.cache.stats()),
        format!("{:?}", s.cache.settings()),
        format!("{token:?}"),
        format!("{:?}", Auth::from_source(s.source.clone())),
    ];
    for text in &debug {
        assert!(!text.contains("loopback-token"), "{text}");
    }
    assert!(
        debug[1].contains(s.source.key().client_id()),
        "{}",
        debug[1]
    );
    assert!(debug[0].contains("misses: 1"), "{}", debug[0]);
}

// ---------------------------------------------------------------------------
// The store's extension points: shared-store lock, failing store
// ---------------------------------------------------------------------------

/// A store shared with "another process" that holds the refresh lock and
/// puts its token once `delivers_after` looks have been made, or dies: its
/// lock is granted from the `grants_at`-th request on (it expired).
struct LockedByAnotherProcess {
    inner: MemoryStore,
    looks: AtomicU64,
    delivers_after: Option<u64>,
    grants_at: Option<u64>,
    foreign: AccessToken,
    lock_requests: AtomicU64,
}

impl TokenStore for LockedByAnotherProcess {
    fn get<'a>(
        &'a self,
        key: &'a CacheKey,
    ) -> BoxFuture<'a, Result<Option<AccessToken>, StoreError>> {
        Box::pin(async move {
            let looks = self.looks.fetch_add(1, Ordering::SeqCst) + 1;
            if self.delivers_after.is_some_and(|n| looks > n) {
                return Ok(Some(self.foreign.clone()));
            }
            self.inner.get(key).await
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a CacheKey,
        token: &'a AccessToken,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.put(key, token, ttl)
    }

    fn remove<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.remove(key)
    }

    fn remove_if_same<'a>(
        &'a self,
        key: &'a CacheKey,
        rejected: &'a HeaderValue,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.inner.remove_if_same(key, rejected)
    }

    fn try_lock<'a>(
        &'a self,
        _: &'a CacheKey,
        _: Duration,
    ) -> BoxFuture<'a, Result<Option<StoreLock>, StoreError>> {
        let request = self.lock_requests.fetch_add(1, Ordering::SeqCst) + 1;
        let granted = self.grants_at.is_some_and(|at| request >= at);
        Box::pin(async move { Ok(granted.then(|| StoreLock::owned("this-process"))) })
    }
}

fn locked_store(clock: &ManualClock, delivers_after: Option<u64>) -> Arc<LockedByAnotherProcess> {
    let foreign = AccessToken::new(
        SecretString::from("token-of-another-process"),
        "Bearer",
        clock.now() + secs(3600),
        None,
    )
    .unwrap();
    Arc::new(LockedByAnotherProcess {
        inner: MemoryStore::default(),
        looks: AtomicU64::new(0),
        delivers_after,
        grants_at: None,
        foreign,
        lock_requests: AtomicU64::new(0),
    })
}

#[tokio::test]
async fn while_another_process_holds_the_lock_its_token_is_taken_not_fetched() {
    let server = token_server(3600).await;
    let clock = Arc::new(ManualClock::at_fixed_date());
    // The look before locking finds nothing; the lock holder's token shows
    // up on the third poll.
    let store = locked_store(&clock, Some(3));
    let fetcher = LoopbackFetcher::new(&server, &clock);
    let cache = TokenCache::new(
        store.clone(),
        clock.clone(),
        Arc::new(FixedJitter(0.0)),
        CacheSettings::default(),
    );
    let source = cache.source(cache_key("locked"), fetcher);

    let token = source.token().await.unwrap();
    assert_eq!(value(&token), "Bearer token-of-another-process");
    assert_eq!(token_requests(&server).await, 0);
    assert_eq!(store.lock_requests.load(Ordering::SeqCst), 1);
    assert_eq!(clock.sleeps(), vec![Duration::from_millis(250); 3]);
    let stats = cache.stats();
    assert_eq!((stats.fetches, stats.adopted), (0, 1));
}

/// Issue 11, item 11: a flight used to fetch beside a lock holder that had
/// not delivered within three lock lifetimes, though a live holder may
/// fetch longer than that. It waits for the holder as long as the lock is
/// held (a live holder keeps it alive), within its own budget.
#[tokio::test]
async fn a_lock_holder_that_never_delivers_costs_the_load_timeout_not_a_second_fetch() {
    let server = token_server(3600).await;
    let clock = Arc::new(ManualClock::at_fixed_date());
    let store = locked_store(&clock, None);
    let fetcher = LoopbackFetcher::new(&server, &clock);
    let mut settings = CacheSettings::default();
    settings.lock_ttl = secs(2);
    settings.lock_poll = Duration::from_millis(500);
    let cache = TokenCache::new(
        store.clone(),
        clock.clone(),
        Arc::new(FixedJitter(0.0)),
        settings,
    );
    let source = cache.source(cache_key("locked"), fetcher);
    let start = clock.now();

    let error = source.token().await.unwrap_err();
    assert!(
        matches!(error, AuthError::LoadTimeout { budget } if budget == secs(60)),
        "{error:?}"
    );
    assert_eq!(clock.now(), start + secs(60));
    // A lock request every lock TTL (2 s), each followed by a whole TTL of
    // polls, for the 60 s of the budget: the last request at 60 s.
    assert_eq!(store.lock_requests.load(Ordering::SeqCst), 31);
    assert_eq!(clock.sleeps(), vec![Duration::from_millis(500); 120]);
    assert_eq!(token_requests(&server).await, 0, "never beside the holder");
}

#[tokio::test]
async fn a_dead_lock_holder_is_replaced_once_its_lock_expires() {
    let server = token_server(3600).await;
    let clock = Arc::new(ManualClock::at_fixed_date());
    let store = Arc::new(LockedByAnotherProcess {
        grants_at: Some(3),
        ..Arc::into_inner(locked_store(&clock, None)).unwrap()
    });
    let fetcher = LoopbackFetcher::new(&server, &clock);
    let mut settings = CacheSettings::default();
    settings.lock_ttl = secs(2);
    settings.lock_poll = Duration::from_millis(500);
    let cache = TokenCache::new(
        store.clone(),
        clock.clone(),
        Arc::new(FixedJitter(0.0)),
        settings,
    );
    let source = cache.source(cache_key("locked"), fetcher);

    let token = source.token().await.unwrap();
    assert_eq!(value(&token), "Bearer loopback-token-1");
    // Refused twice (a whole lock TTL of polls after each), granted the
    // third time: the lock of the dead holder had expired.
    assert_eq!(store.lock_requests.load(Ordering::SeqCst), 3);
    assert_eq!(clock.sleeps(), vec![Duration::from_millis(500); 2 * 4]);
    assert_eq!(token_requests(&server).await, 1);
}

/// A store whose every operation fails (Redis down).
struct Unreachable;

fn unreachable<T>() -> BoxFuture<'static, Result<T, StoreError>> {
    Box::pin(async { Err(StoreError::new("connection refused")) })
}

impl TokenStore for Unreachable {
    fn get<'a>(
        &'a self,
        _: &'a CacheKey,
    ) -> BoxFuture<'a, Result<Option<AccessToken>, StoreError>> {
        unreachable()
    }

    fn put<'a>(
        &'a self,
        _: &'a CacheKey,
        _: &'a AccessToken,
        _: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        unreachable()
    }

    fn remove<'a>(&'a self, _: &'a CacheKey) -> BoxFuture<'a, Result<(), StoreError>> {
        unreachable()
    }

    fn remove_if_same<'a>(
        &'a self,
        _: &'a CacheKey,
        _: &'a HeaderValue,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        unreachable()
    }
}

#[tokio::test]
async fn a_failing_store_fails_no_call() {
    let s = setup_with_store(3600, CacheSettings::default(), Arc::new(Unreachable)).await;
    for _ in 0..3 {
        s.source.token().await.expect("the endpoint still works");
    }
    // The fetched token is served from the key's own state: one fetch,
    // whose get and put failed.
    assert_eq!(token_requests(&s.server).await, 1);
    assert_eq!(s.cache.stats().store_errors, 2, "one get and one put");
}

// ---------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------

/// Records every event of m2m's own targets on this thread as `LEVEL
/// message field=value…` (the test's current-thread runtime keeps its
/// tasks on it).
///
/// One global subscriber routes each event to the recorder of the thread it
/// happens on, and answers `Interest::sometimes()` for every callsite: a
/// scoped subscriber, set and dropped while tests run in parallel, raced
/// with other threads on tracing's callsite cache and lost events.
#[derive(Clone, Default)]
struct LogRecorder(Arc<Mutex<Vec<String>>>);

thread_local! {
    static RECORDER: std::cell::RefCell<Option<LogRecorder>> = const { std::cell::RefCell::new(None) };
}

/// Stops recording on this thread when dropped.
struct Recording;

impl Drop for Recording {
    fn drop(&mut self) {
        RECORDER.with(|recorder| recorder.borrow_mut().take());
    }
}

impl LogRecorder {
    /// Records this thread's events until the guard is dropped.
    fn start() -> (Self, Recording) {
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            tracing::subscriber::set_global_default(Router)
                .expect("no other global subscriber in this test binary");
        });
        let recorder = Self::default();
        RECORDER.with(|sink| *sink.borrow_mut() = Some(recorder.clone()));
        (recorder, Recording)
    }
}

struct Router;

struct FieldsToText<'a>(&'a mut String);

impl tracing::field::Visit for FieldsToText<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
}

impl tracing::Subscriber for Router {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target().starts_with("m2m")
            && RECORDER.with(|recorder| recorder.borrow().is_some())
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = event.metadata().level().to_string();
        event.record(&mut FieldsToText(&mut text));
        RECORDER.with(|recorder| {
            if let Some(recorder) = recorder.borrow().as_ref() {
                recorder.0.lock().unwrap().push(text);
            }
        });
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

impl LogRecorder {
    fn count(&self, level_and_message: &str) -> usize {
        let lines = self.0.lock().unwrap();
        lines
            .iter()
            .filter(|l| l.starts_with(level_and_message))
            .count()
    }
}

#[tokio::test]
async fn logs_tell_hits_misses_and_failed_refreshes_without_the_token() {
    let (recorder, _recording) = LogRecorder::start();
    let s = setup(300, CacheSettings::default()).await;

    s.source.token().await.unwrap();
    s.source.token().await.unwrap();
    s.server.reset().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(503))
        .mount(&s.server)
        .await;
    s.clock.advance(secs(150));
    s.source.token().await.unwrap();
    s.source.settled().await;

    assert_eq!(recorder.count("DEBUG message=token cache miss"), 1);
    assert_eq!(recorder.count("TRACE message=token cache hit"), 2);
    assert_eq!(
        recorder.count("DEBUG message=token refresh scheduled in the background"),
        1
    );
    assert_eq!(recorder.count("DEBUG message=fetching a token"), 2);
    assert_eq!(
        recorder.count("WARN message=token refresh failed; the current token is still served"),
        1
    );
    let lines = recorder.0.lock().unwrap();
    assert!(
        lines
            .iter()
            .all(|l| l.contains(&format!("key=\"{}\"", &s.source.key().as_str()[..12])))
    );
    for line in lines.iter() {
        assert!(!line.contains("loopback-token"), "{line}");
    }
}

// ---------------------------------------------------------------------------
// A runtime that is shutting down
// ---------------------------------------------------------------------------

/// Issue 11, item 7: a cold call spawned its fetch while holding the key's
/// lock; on a runtime that is shutting down, `spawn` drops the task at
/// once, the task's guard took the same lock, and the thread (and every
/// later caller of the key) hung. Now the call fails with a typed error.
#[test]
fn a_cold_call_on_a_runtime_that_is_shutting_down_fails_instead_of_hanging() {
    let servers = tokio::runtime::Runtime::new().unwrap();
    let server = servers.block_on(token_server(3600));
    let clock = Arc::new(ManualClock::at_fixed_date());
    let fetcher = LoopbackFetcher::new(&server, &clock);
    let cache = TokenCache::new(
        Arc::new(MemoryStore::default()),
        clock.clone(),
        Arc::new(FixedJitter(0.0)),
        CacheSettings::default(),
    );
    let source = cache.source(cache_key("shutting-down"), fetcher.clone());
    let dying = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let handle = dying.handle().clone();
    drop(dying);

    let (sender, receiver) = std::sync::mpsc::channel();
    let caller = source.clone();
    std::thread::spawn(move || {
        let _inside = handle.enter();
        let _ = sender.send(futures::executor::block_on(caller.token()));
    });
    let result = receiver
        .recv_timeout(Duration::from_secs(10))
        .expect("the call returns within 10 s (it used to hang for ever)");
    let error = result.expect_err("no token without a runtime to fetch it");
    assert!(
        matches!(
            error,
            AuthError::Unfinished(UnfinishedFetch::RuntimeShutDown)
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("shutting down"), "{error}");
    assert!(fetcher.attempts_since(clock.now()).is_empty());
    // The key is not wedged: on a live runtime the next call fetches.
    let token = servers.block_on(source.token()).unwrap();
    assert_eq!(value(&token), "Bearer loopback-token-1");
}

// ---------------------------------------------------------------------------
// A fetcher that panics
// ---------------------------------------------------------------------------

struct PanicsOnce {
    panicked: AtomicBool,
    then: Arc<LoopbackFetcher>,
}

impl FetchToken for PanicsOnce {
    fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>> {
        Box::pin(async move {
            if !self.panicked.swap(true, Ordering::SeqCst) {
                panic!("fetcher bug (expected by the test)");
            }
            self.then.fetch().await
        })
    }
}

/// Issue 11, item 8: the callers waiting for a fetch whose fetcher
/// panicked used to panic too. They get a typed error; the failure backs
/// the key off like any other, and the key works again after it.
#[tokio::test]
async fn a_panicking_fetcher_gives_its_waiters_a_typed_error_and_does_not_wedge_the_key() {
    let s = setup(3600, CacheSettings::default()).await;
    let panicky = Arc::new(PanicsOnce {
        panicked: AtomicBool::new(false),
        then: s.fetcher.clone(),
    });
    let source = s.cache.source(cache_key("panicky"), panicky);

    let caller = {
        let source = source.clone();
        tokio::spawn(async move { source.token().await })
    };
    let error = caller
        .await
        .expect("the waiting caller does not panic")
        .unwrap_err();
    assert!(
        matches!(
            error,
            AuthError::Unfinished(UnfinishedFetch::FetcherPanicked)
        ),
        "{error:?}"
    );
    assert_eq!(s.cache.stats().fetch_failures, 1);
    // Within the backoff, the same error, without calling the fetcher.
    let again = source.token().await.unwrap_err();
    assert_eq!(again.to_string(), error.to_string());

    // After the backoff, the key works again.
    s.clock.advance(secs(1));
    let token = source.token().await.unwrap();
    assert_eq!(value(&token), "Bearer loopback-token-1");
    assert_eq!(token_requests(&s.server).await, 1);
}

/// Answers nothing to its first `hangs` calls (they never end); later
/// calls go to the loopback server. Tells the test when a call came.
struct HangsAtFirst {
    hangs: u64,
    calls: AtomicU64,
    reached: std::sync::mpsc::SyncSender<()>,
    then: Arc<LoopbackFetcher>,
}

impl HangsAtFirst {
    fn new(hangs: u64, then: Arc<LoopbackFetcher>) -> (Arc<Self>, std::sync::mpsc::Receiver<()>) {
        let (reached, calls) = std::sync::mpsc::sync_channel(64);
        let fetcher = Arc::new(Self {
            hangs,
            calls: AtomicU64::new(0),
            reached,
            then,
        });
        (fetcher, calls)
    }
}

impl FetchToken for HangsAtFirst {
    fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = self.reached.try_send(());
        Box::pin(async move {
            if call <= self.hangs {
                std::future::pending::<()>().await;
            }
            self.then.fetch().await
        })
    }
}

/// Polls `future` once with a waker that does nothing.
fn poll_once<F: std::future::Future>(future: std::pin::Pin<&mut F>) -> std::task::Poll<F::Output> {
    future.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
}

/// Issue 11, item 8: a caller whose flight was dropped unfinished started
/// or joined another, without a bound (`Waited::Abandoned => continue`).
/// Here every flight it joins is run by another caller that goes away
/// (outside a Tokio runtime, the caller that starts a flight runs it): after
/// three abandoned flights in a row it gets a typed error.
#[test]
fn a_waiter_gives_up_after_three_abandoned_flights() {
    let servers = tokio::runtime::Runtime::new().unwrap();
    let server = servers.block_on(token_server(3600));
    let clock = Arc::new(ManualClock::at_fixed_date());
    let (hangs, _calls) = HangsAtFirst::new(u64::MAX, LoopbackFetcher::new(&server, &clock));
    let cache = TokenCache::new(
        Arc::new(MemoryStore::default()),
        clock.clone(),
        Arc::new(FixedJitter(0.0)),
        CacheSettings::default(),
    );
    let source = cache.source(cache_key("abandoned"), hangs.clone());

    let mut runner = Box::pin(source.token());
    assert!(poll_once(runner.as_mut()).is_pending(), "runs the fetch");
    let mut waiter = Box::pin(source.token());
    assert!(poll_once(waiter.as_mut()).is_pending(), "waits for it");
    let mut answered = None;
    for round in 1..=10 {
        // The caller running the flight goes away; another starts the
        // next flight before the waiter looks again.
        runner = Box::pin(source.token());
        assert!(poll_once(runner.as_mut()).is_pending());
        if let std::task::Poll::Ready(result) = poll_once(waiter.as_mut()) {
            answered = Some((round, result));
            break;
        }
    }
    let (round, result) = answered.expect("the waiter answered within 10 abandoned flights");
    assert_eq!(round, 3);
    let error = result.unwrap_err();
    assert!(
        matches!(
            error,
            AuthError::Unfinished(UnfinishedFetch::Abandoned { times: 3 })
        ),
        "{error:?}"
    );
    assert_eq!(hangs.calls.load(Ordering::SeqCst), 4, "four flights ran");
}

/// Issue 11, item 8: a flight's guard read `std::thread::panicking()`, so a
/// flight dropped while its thread unwound from an unrelated panic (here: a
/// thread that panics with a runtime holding the flight's task) was reported
/// to its waiters as a fetcher panic, and they panicked. The waiter now
/// sees an abandoned flight and starts another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flight_dropped_by_an_unrelated_panic_is_retried_not_reported_as_a_fetcher_panic() {
    let s = setup(3600, CacheSettings::default()).await;
    let (hangs, calls) = HangsAtFirst::new(1, s.fetcher.clone());
    let source = s.cache.source(cache_key("unwound"), hangs.clone());

    let (go, panic_now) = std::sync::mpsc::channel::<()>();
    let elsewhere = {
        let (source, hangs) = (source.clone(), hangs.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                drop(tokio::spawn(async move { source.token().await }));
                while hangs.calls.load(Ordering::SeqCst) == 0 {
                    tokio::task::yield_now().await;
                }
            });
            panic_now.recv().unwrap();
            // Unwinding drops `runtime` and, with it, the flight's task.
            let _runtime = runtime;
            panic!("unrelated failure on another thread (expected by the test)");
        })
    };
    calls
        .recv_timeout(Duration::from_secs(10))
        .expect("the flight on the other thread called the fetcher");
    let waiter = {
        let source = source.clone();
        tokio::spawn(async move { source.token().await })
    };
    while s.cache.stats().waited < 2 {
        tokio::task::yield_now().await;
    }
    go.send(()).unwrap();
    assert!(elsewhere.join().is_err(), "the other thread panicked");

    let token = waiter
        .await
        .expect("the waiter does not panic")
        .expect("the waiter's own flight got a token");
    assert_eq!(value(&token), "Bearer loopback-token-1");
    assert_eq!(hangs.calls.load(Ordering::SeqCst), 2);
    assert_eq!(s.cache.stats().fetch_failures, 0, "no failure was recorded");
}

/// A memory store that counts the cache's looks at it on the call path.
#[derive(Default)]
struct CountingPeeks {
    inner: MemoryStore,
    peeks: AtomicU64,
}

impl TokenStore for CountingPeeks {
    fn peek(&self, key: &CacheKey) -> Option<AccessToken> {
        self.peeks.fetch_add(1, Ordering::SeqCst);
        self.inner.peek(key)
    }

    fn get<'a>(
        &'a self,
        key: &'a CacheKey,
    ) -> BoxFuture<'a, Result<Option<AccessToken>, StoreError>> {
        self.inner.get(key)
    }

    fn put<'a>(
        &'a self,
        key: &'a CacheKey,
        token: &'a AccessToken,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.put(key, token, ttl)
    }

    fn remove<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.remove(key)
    }

    fn remove_if_same<'a>(
        &'a self,
        key: &'a CacheKey,
        rejected: &'a HeaderValue,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.inner.remove_if_same(key, rejected)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_during_a_background_refresh_take_the_lock_free_path() {
    let store = Arc::new(CountingPeeks::default());
    let s = setup_with_store(3600, CacheSettings::default(), store.clone()).await;
    let gated = Arc::new(Gated {
        reached: Semaphore::new(0),
        gate: Semaphore::new(1),
        then: s.fetcher.clone(),
    });
    let source = s.cache.source(cache_key("gated"), gated.clone());
    let first = source.token().await.unwrap();
    gated.reached.acquire().await.unwrap().forget();

    // The refresh is due (5 min before expiry): the call that sees it starts
    // the background refresh, held at the gate.
    s.clock.advance(secs(3400));
    assert!(
        source
            .token()
            .await
            .unwrap()
            .is_sent_as(first.authorization())
    );
    gated.reached.acquire().await.unwrap().forget();
    let peeks_before = store.peeks.load(Ordering::SeqCst);
    let hits_before = s.cache.stats().hits;

    for _ in 0..100 {
        let token = source.token().await.unwrap();
        assert!(token.is_sent_as(first.authorization()));
    }
    assert_eq!(
        store.peeks.load(Ordering::SeqCst) - peeks_before,
        0,
        "no call looked past the lock-free token while the refresh ran"
    );
    assert_eq!(s.cache.stats().hits - hits_before, 100);

    gated.gate.add_permits(1);
    source.settled().await;
    let second = source.token().await.unwrap();
    assert!(!second.is_sent_as(first.authorization()));
    assert_eq!(s.cache.stats().fetches, 2);
}
