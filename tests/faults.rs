//! Fault injection, end to end: each test makes generated-client calls
//! through the whole chain (generated client → `Auth` → token cache → token
//! endpoint → a real server on loopback) while the token side misbehaves, and
//! asserts what the caller gets (the typed `AuthError` recovered with
//! `Auth::error_of`, or a successful call) and how many token requests were
//! sent. Time is a `ManualClock` shared by every layer and by the sandbox;
//! backoff and `Retry-After` waits show up in `ManualClock::sleeps`.
//!
//! The per-layer versions of these faults are in `tests/token_endpoint.rs`
//! (one fetch) and `tests/token_cache.rs` (a stand-in fetcher).

#[path = "support/e2e.rs"]
mod e2e;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use e2e::{
    Chain, TOKEN_PATH, VALIDATION_PATH, auth_error, manual_clock, millis, refused_token_url,
    requests_to, sandbox, sandbox_endpoint, validate, wiremock_endpoint,
};
use futures::future::join_all;
use m2m::apis::nxtsoft_transactions::types::ValidationStatus;
use m2m::auth::clock::Clock;
use m2m::auth::{
    AuthError, ClientAuthMethod, ClientCredential, ConfigError, HttpSettings, RetryPolicy,
    TokenEndpoint, TransportErrorKind,
};
use m2m::provider::Provider;
use m2m::sandbox::GarbageBody;
use m2m::sandbox::demo::{COGNITO_CLIENT_ID, COGNITO_CLIENT_SECRET};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Sandbox tokens live this long unless a test says otherwise.
const LIFETIME: Duration = Duration::from_secs(3600);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn rejected(error: &AuthError) -> &m2m::auth::EndpointError {
    match error {
        AuthError::Rejected(rejected) => rejected,
        other => panic!("expected AuthError::Rejected, got {other:?}"),
    }
}

fn invalid_response(error: &AuthError) -> &m2m::auth::InvalidResponse {
    match error {
        AuthError::InvalidResponse(invalid) => invalid,
        other => panic!("expected AuthError::InvalidResponse, got {other:?}"),
    }
}

fn transport(error: &AuthError) -> &m2m::auth::TransportError {
    match error {
        AuthError::Transport(transport) => transport,
        other => panic!("expected AuthError::Transport, got {other:?}"),
    }
}

// ------------------------------------------------------------- no answer

#[tokio::test]
async fn token_server_down_fails_the_call_with_a_typed_connect_error_after_three_attempts() {
    let clock = manual_clock();
    let sandbox = sandbox(&clock, LIFETIME).await;
    let endpoint = e2e::nxtsoft_endpoint(&refused_token_url(), &clock)
        .build()
        .unwrap();
    let chain = Chain::new(endpoint, &clock);
    let client = chain.client(&sandbox.nxtsoft_api_url());

    let error = auth_error(&client, validate(&client).await);

    assert_eq!(transport(&error).kind, TransportErrorKind::Connect);
    assert!(error.is_retryable());
    assert!(
        error
            .to_string()
            .starts_with("could not connect to http://127.0.0.1:")
    );
    // Three attempts (the default policy): two backoff waits between them.
    assert_eq!(clock.sleeps(), millis(&[250, 500]));
    let stats = chain.cache.stats();
    assert_eq!((stats.fetches, stats.fetch_failures), (1, 1));

    // A second call within the cache's backoff gets the same error at once:
    // no new attempt, no new wait.
    let again = auth_error(&client, validate(&client).await);
    assert_eq!(transport(&again).kind, TransportErrorKind::Connect);
    assert_eq!(clock.sleeps(), millis(&[250, 500]));
    assert_eq!(chain.cache.stats().fetches, 1);
    assert_eq!(sandbox.stats().api_requests(), 0, "no call went out");
}

/// Every caller of a burst that fails together can still read its typed
/// error: the calls share one fetch, hence one error, which `Auth` keeps once
/// for all of them (not once per call, which would push the first callers'
/// errors out of the `RecentFailures::CAPACITY` most recent).
#[tokio::test]
async fn every_call_of_a_failing_burst_gets_the_typed_error() {
    let clock = manual_clock();
    let sandbox = sandbox(&clock, LIFETIME).await;
    let endpoint = e2e::nxtsoft_endpoint(&refused_token_url(), &clock)
        .build()
        .unwrap();
    let chain = Chain::new(endpoint, &clock);
    let client = chain.client(&sandbox.nxtsoft_api_url());
    let burst = 4 * m2m::auth::RecentFailures::CAPACITY;

    let results = join_all((0..burst).map(|_| validate(&client))).await;

    let typed = results
        .into_iter()
        .map(|result| auth_error(&client, result))
        .filter(|error| transport(error).kind == TransportErrorKind::Connect)
        .count();
    assert_eq!(typed, burst);
    assert_eq!(clock.sleeps(), millis(&[250, 500]), "one fetch for all");
    assert_eq!(chain.cache.stats().fetches, 1);
    assert_eq!(sandbox.stats().api_requests(), 0);
}

#[tokio::test]
async fn a_slow_token_server_fails_the_call_with_a_typed_timeout() {
    let clock = manual_clock();
    let sandbox = sandbox(&clock, LIFETIME).await;
    // The sandbox answers after 5 s of real time; the client waits 200 ms.
    sandbox.faults().set_latency(secs(5));
    let endpoint = sandbox_endpoint(&sandbox, &clock)
        .http_settings(HttpSettings::default().with_timeout(Duration::from_millis(200)))
        .retry(RetryPolicy::default().with_max_attempts(2))
        .build()
        .unwrap();
    let chain = Chain::new(endpoint, &clock);
    let client = chain.client(&sandbox.nxtsoft_api_url());

    let error = auth_error(&client, validate(&client).await);

    let transport = transport(&error);
    assert_eq!(transport.kind, TransportErrorKind::Timeout);
    assert_eq!(transport.status, None);
    assert!(error.to_string().contains("no answer from"), "{error}");
    assert!(error.is_retryable());
    assert_eq!(clock.sleeps(), millis(&[250]));
    let stats = sandbox.stats();
    assert_eq!(stats.cognito_token_requests, 2);
    assert_eq!((stats.tokens_issued, stats.api_requests()), (0, 0));
}

// ------------------------------------------------------- errors, then success

#[tokio::test]
async fn server_errors_then_success_back_off_and_the_call_succeeds() {
    let clock = manual_clock();
    let sandbox = sandbox(&clock, LIFETIME).await;
    sandbox.faults().fail_next(2, 500);
    let chain = Chain::new(sandbox_endpoint(&sandbox, &clock).build().unwrap(), &clock);
    let client = chain.client(&sandbox.nxtsoft_api_url());
    let start = clock.now();

    let result = validate(&client).await.unwrap().into_inner();

    assert_eq!(result.status, ValidationStatus::Valid);
    assert_eq!(clock.sleeps(), millis(&[250, 500]));
    let stats = sandbox.stats();
    assert_eq!(stats.cognito_token_requests, 3);
    assert_eq!((stats.faults_injected, stats.tokens_issued), (2, 1));
    assert_eq!(stats.nxtsoft_api_requests, 1);
    let cache = chain.cache.stats();
    assert_eq!((cache.fetches, cache.fetch_failures), (1, 0));
    // The token's life starts when the successful request was sent.
    let token = chain.auth.token().await.unwrap();
    assert_eq!(
        token.expires_at(),
        start + Duration::from_millis(750) + LIFETIME
    );
}

// ------------------------------------------------------------------ throttled

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_once_for_every_waiting_caller() {
    let clock = manual_clock();
    let sandbox = sandbox(&clock, LIFETIME).await;
    sandbox.faults().throttle_next(1, secs(30));
    let chain = Chain::new(sandbox_endpoint(&sandbox, &clock).build().unwrap(), &clock);
    let client = chain.client(&sandbox.nxtsoft_api_url());
    let start = clock.now();

    let results = join_all((0..20).map(|_| validate(&client))).await;

    let succeeded = results.iter().filter(|result| result.is_ok()).count();
    assert_eq!(succeeded, 20);
    // One wait of exactly Retry-After, not one per caller, not the backoff.
    assert_eq!(clock.sleeps(), vec![secs(30)]);
    let stats = sandbox.stats();
    assert_eq!(stats.cognito_token_requests, 2, "the 429, then the token");
    assert_eq!(stats.nxtsoft_api_requests, 20);
    let token = chain.auth.token().await.unwrap();
    assert_eq!(token.expires_at(), start + secs(30) + LIFETIME);
}

#[tokio::test]
async fn after_a_final_429_other_callers_are_held_off_without_a_request() {
    let clock = manual_clock();
    let sandbox = sandbox(&clock, LIFETIME).await;
    sandbox.faults().throttle_next(1, secs(30));
    let endpoint = sandbox_endpoint(&sandbox, &clock)
        .retry(RetryPolicy::no_retries())
        .build()
        .unwrap();
    let chain = Chain::new(endpoint, &clock);
    let client = chain.client(&sandbox.nxtsoft_api_url());
    let wave = || join_all((0..20).map(|_| validate(&client)));

    // t = 0: twenty callers, one request, one 429 for all of them.
    let throttled: Vec<AuthError> = wave()
        .await
        .into_iter()
        .map(|result| auth_error(&client, result))
        .collect();
    for error in &throttled {
        assert_eq!(error.status(), Some(http::StatusCode::TOO_MANY_REQUESTS));
        assert_eq!(error.retry_after(), Some(secs(30)));
    }
    assert_eq!(sandbox.stats().cognito_token_requests, 1);

    // t = 5 s: Retry-After holds the key off for 25 s more: twenty
    // failures, no request.
    clock.advance(secs(5));
    let held: Vec<AuthError> = wave()
        .await
        .into_iter()
        .map(|result| auth_error(&client, result))
        .collect();
    for error in &held {
        assert!(matches!(error, AuthError::HeldOff { .. }), "{error:?}");
        assert_eq!(error.retry_after(), Some(secs(25)));
    }
    assert_eq!(sandbox.stats().cognito_token_requests, 1);

    // t = 30 s: Retry-After has passed; one request serves everybody.
    clock.advance(secs(25));
    let results = wave().await;
    assert_eq!(results.iter().filter(|result| result.is_ok()).count(), 20);
    let stats = sandbox.stats();
    assert_eq!(stats.cognito_token_requests, 2);
    assert_eq!(stats.nxtsoft_api_requests, 20);
    assert!(clock.sleeps().is_empty(), "nobody slept through a hold-off");
    let cache = chain.cache.stats();
    assert_eq!(
        (cache.fetches, cache.fetch_failures),
        (2, 1),
        "no fetch was even started while held off"
    );
}

/// `Config::auth` builds a token endpoint per call: two clients of one
/// configured client share the cache key, each with its own endpoint. A
/// `Retry-After` one of them was given holds the other off too.
#[tokio::test]
async fn a_retry_after_holds_off_every_client_sharing_the_cache_key() {
    let clock = manual_clock();
    let sandbox = sandbox(&clock, LIFETIME).await;
    sandbox.faults().throttle_next(1, secs(30));
    let cache = e2e::cache(&clock);
    let chain = || {
        let endpoint = sandbox_endpoint(&sandbox, &clock)
            .retry(RetryPolicy::no_retries())
            .build()
            .unwrap();
        Chain::with_cache(endpoint, cache.clone())
    };
    let (first, second) = (chain(), chain());
    let first_client = first.client(&sandbox.nxtsoft_api_url());
    let second_client = second.client(&sandbox.nxtsoft_api_url());

    let throttled = auth_error(&first_client, validate(&first_client).await);
    assert_eq!(throttled.retry_after(), Some(secs(30)));
    assert_eq!(sandbox.stats().cognito_token_requests, 1);

    // 5 s later the other client asks: no request before Retry-After.
    clock.advance(secs(5));
    let held = auth_error(&second_client, validate(&second_client).await);
    assert_eq!(held.status(), None, "{held:?}");
    assert!(matches!(held, AuthError::HeldOff { .. }), "{held:?}");
    assert_eq!(held.retry_after(), Some(secs(25)));
    clock.advance(secs(20));
    let held = auth_error(&second_client, validate(&second_client).await);
    assert_eq!(held.retry_after(), Some(secs(5)));
    assert_eq!(sandbox.stats().cognito_token_requests, 1);

    // Once it has passed, one request serves both clients.
    clock.advance(secs(5));
    assert!(validate(&second_client).await.is_ok());
    assert!(validate(&first_client).await.is_ok());
    let stats = sandbox.stats();
    assert_eq!(stats.cognito_token_requests, 2);
    assert_eq!(stats.nxtsoft_api_requests, 2);
}

// ---------------------------------------------------------- bodies that fail

#[tokio::test]
async fn html_pages_from_a_gateway_or_a_sign_in_proxy_give_typed_errors_with_an_excerpt() {
    let clock = manual_clock();
    let sandbox = sandbox(&clock, LIFETIME).await;
    let chain = Chain::new(sandbox_endpoint(&sandbox, &clock).build().unwrap(), &clock);
    let client = chain.client(&sandbox.nxtsoft_api_url());

    // A gateway's 502 page, three times: retried, then given up.
    sandbox.faults().fail_next(3, 502);
    let error = auth_error(&client, validate(&client).await);
    let gateway = rejected(&error);
    assert_eq!(gateway.status, http::StatusCode::BAD_GATEWAY);
    assert_eq!(gateway.oauth, None);
    let excerpt = gateway.excerpt.as_deref().unwrap();
    assert!(
        excerpt.starts_with("<html><head><title>502 Bad Gateway</title>"),
        "{excerpt}"
    );
    assert!(excerpt.chars().count() <= 201, "{excerpt}");
    assert!(error.to_string().contains("body starts with"), "{error}");
    assert_eq!(clock.sleeps(), millis(&[250, 500]));
    assert_eq!(sandbox.stats().cognito_token_requests, 3);

    // A sign-in page with status 200 (a captive proxy): not retried.
    clock.advance(secs(1));
    sandbox.faults().garble_next(1, GarbageBody::Html);
    let error = auth_error(&client, validate(&client).await);
    let page = invalid_response(&error);
    assert_eq!(page.status, http::StatusCode::OK);
    assert!(
        page.problem.contains("\"text/html; charset=utf-8\""),
        "{}",
        page.problem
    );
    let excerpt = page.excerpt.as_deref().unwrap();
    assert!(excerpt.contains("Sign in to continue"), "{excerpt}");
    assert!(!error.is_retryable());
    assert_eq!(sandbox.stats().cognito_token_requests, 4);

    // Once the faults are gone (and the cache's 2 s backoff has passed),
    // the next call gets a token and goes through.
    clock.advance(secs(2));
    assert!(validate(&client).await.is_ok());
    let stats = sandbox.stats();
    assert_eq!((stats.cognito_token_requests, stats.tokens_issued), (5, 1));
    assert_eq!(stats.nxtsoft_api_requests, 1);
}

#[tokio::test]
async fn a_plain_text_error_gives_a_typed_error_with_a_short_excerpt() {
    let server = MockServer::start().await;
    let text = "Service temporarily unavailable, try again later. ".repeat(20);
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(503).set_body_raw(text, "text/plain"))
        .mount(&server)
        .await;
    let clock = manual_clock();
    let chain = Chain::new(wiremock_endpoint(&server, &clock).build().unwrap(), &clock);
    let client = chain.client(&server.uri());

    let error = auth_error(&client, validate(&client).await);

    let unavailable = rejected(&error);
    assert_eq!(unavailable.status, http::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(unavailable.retry_after, None);
    let excerpt = unavailable.excerpt.as_deref().unwrap();
    assert!(
        excerpt.starts_with("Service temporarily unavailable, try again later. Service"),
        "{excerpt}"
    );
    // 200 characters and an ellipsis, of a body of 1,000.
    assert_eq!(excerpt.chars().count(), 201);
    assert!(excerpt.ends_with('…'));
    assert!(error.to_string().contains("failed: retry later"), "{error}");
    assert_eq!(clock.sleeps(), millis(&[250, 500]));
    assert_eq!(requests_to(&server, TOKEN_PATH).await, 3);
    assert_eq!(requests_to(&server, VALIDATION_PATH).await, 0);
}

#[tokio::test]
async fn truncated_json_is_a_typed_error_that_shows_no_part_of_the_token() {
    let clock = manual_clock();
    let sandbox = sandbox(&clock, LIFETIME).await;
    sandbox.faults().garble_next(1, GarbageBody::TruncatedJson);
    let chain = Chain::new(sandbox_endpoint(&sandbox, &clock).build().unwrap(), &clock);
    let client = chain.client(&sandbox.nxtsoft_api_url());

    let error = auth_error(&client, validate(&client).await);

    let truncated = invalid_response(&error);
    assert_eq!(truncated.status, http::StatusCode::OK);
    assert!(
        truncated.problem.starts_with("the JSON is truncated"),
        "{}",
        truncated.problem
    );
    assert_eq!(truncated.excerpt, None, "the body holds (part of) a token");
    for shown in [error.to_string(), format!("{error:?}")] {
        assert!(!shown.contains("eyJ0eXAi"), "{shown}");
    }
    assert!(!error.is_retryable());
    assert!(clock.sleeps().is_empty());
    let stats = sandbox.stats();
    assert_eq!((stats.cognito_token_requests, stats.tokens_issued), (1, 0));
    assert_eq!(stats.nxtsoft_api_requests, 0);
}

/// How a [`RawTokenServer`] answers.
#[derive(Clone, Copy)]
enum RawAnswer {
    /// Status 200 and a chunked body that never ends.
    EndlessBody,
    /// Status 200, `Content-Length: 1000`, ten bytes of it, then silence
    /// with the connection held open.
    StallMidBody,
}

/// A token server on a raw socket, for answers no HTTP server library
/// would send; counts connections and body bytes sent.
struct RawTokenServer {
    url: String,
    connections: Arc<AtomicUsize>,
    bytes_sent: Arc<AtomicU64>,
    hung_up: tokio::sync::mpsc::UnboundedReceiver<()>,
}

impl RawTokenServer {
    async fn start(answer: RawAnswer) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}{TOKEN_PATH}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let bytes_sent = Arc::new(AtomicU64::new(0));
        let (hang_up, hung_up) = tokio::sync::mpsc::unbounded_channel();
        let (count, sent) = (connections.clone(), bytes_sent.clone());
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let (sent, hang_up) = (sent.clone(), hang_up.clone());
                tokio::spawn(async move {
                    Self::answer(socket, answer, &sent).await;
                    let _ = hang_up.send(());
                });
            }
        });
        Self {
            url,
            connections,
            bytes_sent,
            hung_up,
        }
    }

    /// Answers one connection; returns when the client has hung up.
    async fn answer(mut socket: tokio::net::TcpStream, answer: RawAnswer, sent: &AtomicU64) {
        let mut request = vec![0u8; 8192];
        let _ = socket.read(&mut request).await;
        match answer {
            RawAnswer::EndlessBody => {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                            transfer-encoding: chunked\r\n\r\n";
                let chunk = format!("1000\r\n{}\r\n", "a".repeat(0x1000));
                let mut result = socket.write_all(head.as_bytes()).await;
                while result.is_ok() {
                    result = socket.write_all(chunk.as_bytes()).await;
                    if result.is_ok() {
                        sent.fetch_add(0x1000, Ordering::SeqCst);
                    }
                }
            }
            RawAnswer::StallMidBody => {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                            content-length: 1000\r\n\r\n{\"access_";
                if socket.write_all(head.as_bytes()).await.is_ok() {
                    sent.fetch_add(10, Ordering::SeqCst);
                    // Nothing more is sent; reading ends when the client
                    // hangs up.
                    while matches!(socket.read(&mut request).await, Ok(n) if n > 0) {}
                }
            }
        }
    }
}

#[tokio::test]
async fn a_server_that_stalls_mid_body_fails_the_call_with_a_typed_timeout() {
    let mut server = RawTokenServer::start(RawAnswer::StallMidBody).await;
    let clock = manual_clock();
    let sandbox = sandbox(&clock, LIFETIME).await;
    let endpoint = e2e::nxtsoft_endpoint(&server.url, &clock)
        .http_settings(HttpSettings::default().with_timeout(Duration::from_millis(200)))
        .retry(RetryPolicy::default().with_max_attempts(2))
        .build()
        .unwrap();
    let chain = Chain::new(endpoint, &clock);
    let client = chain.client(&sandbox.nxtsoft_api_url());

    let error = auth_error(&client, validate(&client).await);

    let stalled = transport(&error);
    assert_eq!(stalled.kind, TransportErrorKind::Timeout);
    assert_eq!(
        stalled.status,
        Some(http::StatusCode::OK),
        "headers had arrived"
    );
    assert!(error.is_retryable());
    assert_eq!(clock.sleeps(), millis(&[250]));
    for _ in 0..2 {
        tokio::time::timeout(secs(30), server.hung_up.recv())
            .await
            .expect("the client hung up")
            .expect("the server reports it");
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 2);
    assert_eq!(server.bytes_sent.load(Ordering::SeqCst), 20);
    assert_eq!(sandbox.stats().api_requests(), 0);
}

#[tokio::test]
async fn an_endless_body_is_cut_off_at_64_kib_and_the_server_is_hung_up_on() {
    let mut server = RawTokenServer::start(RawAnswer::EndlessBody).await;
    let clock = manual_clock();
    let sandbox = sandbox(&clock, LIFETIME).await;
    let endpoint = e2e::nxtsoft_endpoint(&server.url, &clock).build().unwrap();
    let chain = Chain::new(endpoint, &clock);
    let client = chain.client(&sandbox.nxtsoft_api_url());

    let error = auth_error(&client, validate(&client).await);

    let too_large = transport(&error);
    assert_eq!(
        too_large.kind,
        TransportErrorKind::BodyTooLarge { limit: 64 * 1024 }
    );
    assert_eq!(too_large.status, Some(http::StatusCode::OK));
    assert!(!error.is_retryable());
    // The server sees the connection closed and stops: the test does not
    // hang on a body without end. (The limit guards a hang, it is no timing.)
    tokio::time::timeout(secs(30), server.hung_up.recv())
        .await
        .expect("the client hung up")
        .expect("the server reports the end of its stream");
    assert!(server.bytes_sent.load(Ordering::SeqCst) > 64 * 1024);
    assert_eq!(server.connections.load(Ordering::SeqCst), 1, "not retried");
    assert!(clock.sleeps().is_empty());
    assert_eq!(sandbox.stats().api_requests(), 0);
}

#[tokio::test]
async fn a_token_sent_with_a_wrong_content_type_is_refused_without_showing_it() {
    const VALUE: &str = "wrong-type-token-7f3a";
    let server = MockServer::start().await;
    let body = json!({"access_token": VALUE, "token_type": "Bearer", "expires_in": 3600});
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body.to_string(), "text/plain"))
        .mount(&server)
        .await;
    let clock = manual_clock();
    let chain = Chain::new(wiremock_endpoint(&server, &clock).build().unwrap(), &clock);
    let client = chain.client(&server.uri());

    let error = auth_error(&client, validate(&client).await);

    let wrong = invalid_response(&error);
    assert_eq!(
        wrong.problem,
        "the content type is \"text/plain\", not application/json"
    );
    assert_eq!(wrong.excerpt, None);
    for shown in [error.to_string(), format!("{error:?}")] {
        assert!(!shown.contains(VALUE), "{shown}");
    }
    assert!(clock.sleeps().is_empty());
    assert_eq!(requests_to(&server, TOKEN_PATH).await, 1);
    assert_eq!(requests_to(&server, VALIDATION_PATH).await, 0);
}

// ------------------------------------------------- where credentials may go

#[tokio::test]
async fn a_redirect_is_not_followed_and_its_target_gets_no_request() {
    let target = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "stolen", "token_type": "Bearer", "expires_in": 3600}),
        ))
        .expect(0)
        .mount(&target)
        .await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(
            ResponseTemplate::new(307)
                .insert_header("location", format!("{}{TOKEN_PATH}", target.uri()).as_str()),
        )
        .mount(&server)
        .await;
    let clock = manual_clock();
    let chain = Chain::new(wiremock_endpoint(&server, &clock).build().unwrap(), &clock);
    let client = chain.client(&server.uri());

    let error = auth_error(&client, validate(&client).await);

    assert_eq!(
        rejected(&error).status,
        http::StatusCode::TEMPORARY_REDIRECT
    );
    assert!(
        error
            .to_string()
            .contains("redirect, which is not followed"),
        "{error}"
    );
    assert!(!error.is_retryable());
    assert!(clock.sleeps().is_empty());
    assert_eq!(requests_to(&server, TOKEN_PATH).await, 1);
    assert_eq!(requests_to(&target, TOKEN_PATH).await, 0);
    assert_eq!(requests_to(&server, VALIDATION_PATH).await, 0);
    target.verify().await;
}

/// A Custom provider found through a discovery document (served by
/// wiremock on loopback) that names `token_endpoint`.
async fn discovered(discovery: &MockServer, token_endpoint: &str) -> Provider {
    discovery.reset().await;
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issuer": discovery.uri(),
            "token_endpoint": token_endpoint,
        })))
        .mount(discovery)
        .await;
    let url = format!("{}/.well-known/openid-configuration", discovery.uri());
    Provider::custom_discovery(Url::parse(&url).unwrap())
}

#[tokio::test]
async fn a_non_loopback_http_token_url_is_refused_before_any_request() {
    let clock = manual_clock();
    let sandbox = sandbox(&clock, LIFETIME).await;
    let endpoint = |provider: Provider, allow_http: bool| {
        TokenEndpoint::builder(
            provider,
            COGNITO_CLIENT_ID,
            ClientCredential::secret(COGNITO_CLIENT_SECRET),
        )
        .client_auth(ClientAuthMethod::ClientSecretPost)
        .allow_http(allow_http)
        .clock(clock.clone())
        .build()
    };

    // Configured directly: refused when the endpoint is built.
    let configured = Provider::nxtsoft()
        .with_token_url(Url::parse("http://auth.example.test/oauth2/token").unwrap());
    let refused = endpoint(configured, false).unwrap_err();
    assert_eq!(
        refused,
        ConfigError::InsecureUrl {
            url: "http://auth.example.test/oauth2/token".into()
        }
    );

    // Discovered: refused on the first call. `0.0.0.0` is not a loopback
    // address, yet on Linux connecting to it reaches the sandbox here, so
    // the control below proves a request would have arrived.
    let address = sandbox.address();
    let token_url = format!("http://0.0.0.0:{}{TOKEN_PATH}", address.port());
    let discovery = MockServer::start().await;
    let chain = Chain::new(
        endpoint(discovered(&discovery, &token_url).await, false).unwrap(),
        &clock,
    );
    let client = chain.client(&sandbox.nxtsoft_api_url());

    let error = auth_error(&client, validate(&client).await);

    let AuthError::Discovery(discovery_error) = &error else {
        panic!("expected AuthError::Discovery, got {error:?}");
    };
    assert!(
        discovery_error
            .problem
            .contains("refusing to send credentials over plain http to http://0.0.0.0:"),
        "{}",
        discovery_error.problem
    );
    assert!(!error.is_retryable());
    assert_eq!(sandbox.stats().token_requests(), 0);
    assert_eq!(sandbox.stats().api_requests(), 0);

    // Control: with the explicit opt-in, the same document leads to the
    // sandbox, and the call goes through.
    let chain = Chain::new(
        endpoint(discovered(&discovery, &token_url).await, true).unwrap(),
        &clock,
    );
    let client = chain.client(&sandbox.nxtsoft_api_url());
    assert!(validate(&client).await.is_ok());
    let stats = sandbox.stats();
    assert_eq!(
        (stats.cognito_token_requests, stats.nxtsoft_api_requests),
        (1, 1)
    );
}

// ------------------------------------------------------------------- outages

#[tokio::test]
async fn an_outage_shorter_than_the_remaining_lifetime_fails_no_api_call() {
    // Five-minute tokens: refreshed in the background from 150 s on, handed
    // out until 290 s. The token endpoint fails from 1 s to 199 s; the API
    // keeps answering. One attempt per fetch, so each cache retry is one
    // token request.
    let clock = manual_clock();
    let sandbox = sandbox(&clock, secs(300)).await;
    let endpoint = sandbox_endpoint(&sandbox, &clock)
        .retry(RetryPolicy::no_retries())
        .build()
        .unwrap();
    let chain = Chain::new(endpoint, &clock);
    let client = chain.client(&sandbox.nxtsoft_api_url());
    validate(&client).await.unwrap();
    let first = chain.auth.token().await.unwrap();

    sandbox.faults().set_failure_rate(1.0);
    let mut failed_calls = 0;
    for second in 1..=240 {
        clock.advance(secs(1));
        if second == 200 {
            sandbox.faults().clear();
        }
        if validate(&client).await.is_err() {
            failed_calls += 1;
        }
        // Let a background refresh end before time moves on.
        chain.source.settled().await;
        if second == 210 {
            let token = chain.auth.token().await.unwrap();
            assert!(
                token.is_sent_as(first.authorization()),
                "still the first token at 210 s"
            );
        }
    }

    assert_eq!(failed_calls, 0);
    let stats = sandbox.stats();
    assert_eq!(
        stats.nxtsoft_api_requests, 241,
        "every call reached the API"
    );
    // 0 s: the first token. 150, 151, 153, 157, 165, 181 s: refreshes that
    // failed (the cache's backoff doubles: 1, 2, 4, 8, 16 s). 211 s: the
    // first attempt after the outage succeeds.
    assert_eq!(stats.cognito_token_requests, 8);
    assert_eq!((stats.faults_injected, stats.tokens_issued), (6, 2));
    let cache = chain.cache.stats();
    assert_eq!((cache.fetches, cache.fetch_failures), (8, 6));
    assert_eq!((cache.background_refreshes, cache.misses), (7, 1));
    let token = chain.auth.token().await.unwrap();
    assert!(!token.is_sent_as(first.authorization()));
    assert_eq!(token.expires_at(), first.expires_at() + secs(211));
}
