//! The metrics (feature `metrics`) of a scripted run, read from a recorder
//! of the test's own: a cold call, warm hits, a background refresh, a 429
//! with `Retry-After` and a call held off by it, and a 401 renewal through
//! [`AuthMiddleware`]; exact counts, time injected (`ManualClock`), the
//! token endpoint and the API on loopback (wiremock). Its own test binary:
//! the recorder is the process's.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use m2m::auth::clock::{FixedJitter, ManualClock};
use m2m::auth::{
    Auth, AuthError, AuthMiddleware, CacheKey, CacheSettings, ClientCredential, MemoryStore,
    RetryPolicy, TokenCache, TokenEndpoint,
};
use m2m::provider::Provider;
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use wiremock::matchers::{any, header, method};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const SECRET: &str = "metrics-test-client-secret";
const TOKEN_PREFIX: &str = "metrics-test-token";

// ---------------------------------------------------------------------------
// A recorder that keeps every value, by name and labels.
// ---------------------------------------------------------------------------

/// `name{label="value",…}` (labels in order of name).
type Series = String;

#[derive(Default)]
struct Recorded {
    counters: Mutex<BTreeMap<Series, Arc<AtomicU64>>>,
    gauges: Mutex<BTreeMap<Series, Arc<AtomicU64>>>,
    histograms: Mutex<BTreeMap<Series, Arc<Samples>>>,
    /// Every label (key, value) registered.
    labels: Mutex<Vec<(String, String)>>,
}

#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

struct Value(Arc<AtomicU64>);

impl CounterFn for Value {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::SeqCst);
    }

    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::SeqCst);
    }
}

impl GaugeFn for Value {
    fn increment(&self, value: f64) {
        GaugeFn::set(self, f64::from_bits(self.0.load(Ordering::SeqCst)) + value);
    }

    fn decrement(&self, value: f64) {
        GaugeFn::increment(self, -value);
    }

    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::SeqCst);
    }
}

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

struct TestRecorder(Arc<Recorded>);

impl Recorded {
    fn series(&self, key: &Key) -> Series {
        let mut labels: Vec<(String, String)> = key
            .labels()
            .map(|label| (label.key().to_owned(), label.value().to_owned()))
            .collect();
        self.labels.lock().unwrap().extend(labels.iter().cloned());
        labels.sort();
        let labels: Vec<String> = labels
            .iter()
            .map(|(key, value)| format!("{key}=\"{value}\""))
            .collect();
        format!("{}{{{}}}", key.name(), labels.join(","))
    }

    fn counter(&self, series: &str) -> u64 {
        let counters = self.counters.lock().unwrap();
        counters
            .get(series)
            .map_or(0, |value| value.load(Ordering::SeqCst))
    }

    fn gauge(&self, series: &str) -> Option<f64> {
        let gauges = self.gauges.lock().unwrap();
        gauges
            .get(series)
            .map(|value| f64::from_bits(value.load(Ordering::SeqCst)))
    }

    fn samples(&self, series: &str) -> Vec<f64> {
        let histograms = self.histograms.lock().unwrap();
        histograms
            .get(series)
            .map(|samples| samples.0.lock().unwrap().clone())
            .unwrap_or_default()
    }

    /// Every counter with a non-zero value.
    fn counted(&self) -> BTreeMap<Series, u64> {
        let counters = self.counters.lock().unwrap();
        counters
            .iter()
            .map(|(series, value)| (series.clone(), value.load(Ordering::SeqCst)))
            .filter(|(_, value)| *value != 0)
            .collect()
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let series = self.0.series(key);
        let mut counters = self.0.counters.lock().unwrap();
        let value = counters.entry(series).or_default();
        Counter::from_arc(Arc::new(Value(Arc::clone(value))))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let series = self.0.series(key);
        let mut gauges = self.0.gauges.lock().unwrap();
        let value = gauges.entry(series).or_default();
        Gauge::from_arc(Arc::new(Value(Arc::clone(value))))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let series = self.0.series(key);
        let mut histograms = self.0.histograms.lock().unwrap();
        let samples = histograms.entry(series).or_default();
        Histogram::from_arc(Arc::clone(samples))
    }
}

// ---------------------------------------------------------------------------
// The token endpoint: numbered tokens valid an hour.
// ---------------------------------------------------------------------------

struct IssuesNumberedTokens(AtomicU64);

impl Respond for IssuesNumberedTokens {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": format!("{TOKEN_PREFIX}-{n}"),
            "token_type": "Bearer",
            "expires_in": 3600,
        }))
    }
}

const CLIENT: &str = r#"client="billing""#;
const PROVIDER: &str = r#"provider="custom""#;

fn series(name: &str) -> String {
    format!("{name}{{{CLIENT},{PROVIDER}}}")
}

fn fetches(outcome: &str, status: &str) -> String {
    format!(
        "m2m_token_fetches_total{{{CLIENT},outcome=\"{outcome}\",{PROVIDER},status=\"{status}\"}}"
    )
}

fn fetch_durations(outcome: &str) -> String {
    format!("m2m_token_fetch_duration_seconds{{{CLIENT},outcome=\"{outcome}\",{PROVIDER}}}")
}

#[tokio::test]
async fn a_scripted_run_reports_exact_counts() {
    let recorded = Arc::new(Recorded::default());
    metrics::set_global_recorder(TestRecorder(Arc::clone(&recorded))).unwrap();

    let token_server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(IssuesNumberedTokens(AtomicU64::new(0)))
        .mount(&token_server)
        .await;
    let clock = Arc::new(ManualClock::at_fixed_date());
    let token_url = url::Url::parse(&format!("{}/oauth2/token", token_server.uri())).unwrap();
    let endpoint = TokenEndpoint::builder(
        Provider::custom_token_url(token_url),
        "billing-client-id",
        ClientCredential::secret(SECRET),
    )
    .retry(RetryPolicy::no_retries())
    .clock(clock.clone())
    .build()
    .unwrap();
    let cache = TokenCache::new(
        Arc::new(MemoryStore::default()),
        clock.clone(),
        Arc::new(FixedJitter(0.0)),
        CacheSettings::default(),
    );
    let key = CacheKey::for_endpoint(endpoint.identity());
    let source = cache.source(key, Arc::new(endpoint)).with_name("billing");
    let auth = Auth::from_source(source.clone());

    // A cold call, then three warm hits.
    auth.token().await.unwrap();
    for _ in 0..3 {
        auth.token().await.unwrap();
    }

    // The refresh is due (5 minutes before expiry): the current token is
    // served, stale, and a refresh runs in the background.
    clock.advance(Duration::from_secs(3600 - 299));
    auth.token().await.unwrap();
    source.settled().await;

    // A refresh answered 429 with `Retry-After: 30`; the token is then
    // forgotten, and the next call is held off without a request.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "30"))
        .with_priority(1)
        .up_to_n_times(1)
        .mount(&token_server)
        .await;
    let throttled = source.refresh().await.unwrap_err();
    assert_eq!(throttled.retry_after(), Some(Duration::from_secs(30)));
    source.invalidate().await.unwrap();
    let held_off = auth.token().await.unwrap_err();
    assert!(
        matches!(held_off, AuthError::HeldOff { .. }),
        "{held_off:?}"
    );
    clock.advance(Duration::from_secs(31));
    auth.token().await.unwrap();

    // The API rejects the current token once (401 invalid_token): the
    // middleware renews it and sends the request once more.
    let api = MockServer::start().await;
    Mock::given(header("authorization", format!("Bearer {TOKEN_PREFIX}-3")))
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header("www-authenticate", r#"Bearer error="invalid_token""#),
        )
        .mount(&api)
        .await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&api)
        .await;
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(AuthMiddleware::new(auth.clone()))
        .build();
    let response = http
        .get(format!("{}/invoices", api.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(token_server.received_requests().await.unwrap().len(), 5);

    // Hits: 3 warm, 1 stale, 1 by the middleware's first send.
    let expected: BTreeMap<String, u64> = [
        (series("m2m_token_cache_hits_total"), 5),
        (series("m2m_token_cache_stale_served_total"), 1),
        // Cold, forgotten (held off), after the hold-off, after the 401.
        (series("m2m_token_cache_misses_total"), 4),
        (series("m2m_token_background_refreshes_total"), 1),
        // Cold, the explicit refresh, after the hold-off, after the 401.
        (series("m2m_token_fetch_waits_total"), 4),
        (series("m2m_token_held_off_calls_total"), 1),
        (series("m2m_token_hold_offs_total"), 1),
        (fetches("ok", "2xx"), 4),
        (fetches("throttled", "429"), 1),
        (series("m2m_token_renewals_total"), 1),
        (series("m2m_api_resends_total"), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(recorded.counted(), expected);
    // Registered, never counted: no fleet lock in a memory store, no call
    // stopped.
    for name in [
        "m2m_token_lock_waits_total",
        "m2m_token_lock_takeovers_total",
        "m2m_api_renewals_stopped_total",
    ] {
        assert_eq!(recorded.counter(&series(name)), 0, "{name}");
    }
    assert_eq!(
        recorded.samples(&series("m2m_token_retry_after_seconds")),
        [30.0]
    );
    assert_eq!(recorded.samples(&fetch_durations("ok")).len(), 4);
    assert_eq!(recorded.samples(&fetch_durations("throttled")).len(), 1);
    // The token served last (to the middleware's first send) was fetched
    // just before: its whole hour left.
    assert_eq!(
        recorded.gauge(&series("m2m_token_remaining_seconds")),
        Some(3600.0)
    );

    // Labels: the client's name and provider, and a fetch's outcome and
    // status; never the secret, a token, or the cache key.
    let labels = recorded.labels.lock().unwrap();
    let cache_key = source.key().as_str();
    for (key, value) in labels.iter() {
        assert!(
            ["client", "provider", "outcome", "status"].contains(&key.as_str()),
            "label {key}"
        );
        for secret in [SECRET, TOKEN_PREFIX, cache_key, "billing-client-id"] {
            assert!(!value.contains(secret), "label {key}={value}");
        }
    }
}

#[test]
fn a_hand_built_handle_is_named_after_its_token_url_host() {
    let endpoint = TokenEndpoint::builder(
        Provider::custom_token_url(
            url::Url::parse("https://login.example.com/oauth2/token").unwrap(),
        ),
        "client-id",
        ClientCredential::secret(SECRET),
    )
    .build()
    .unwrap();
    let key = CacheKey::for_endpoint(endpoint.identity());
    let source = TokenCache::in_memory().source(key, Arc::new(endpoint));
    assert_eq!(source.metric_labels().client(), "login.example.com");
    assert_eq!(source.metric_labels().provider(), "custom");
    let named = source.with_name("billing");
    assert_eq!(named.metric_labels().client(), "billing");
}
