//! `AuthMiddleware` (feature `middleware`): hand-written reqwest code gets
//! the same token handling as the generated clients, against a real
//! wiremock server.

use futures::stream;
use m2m::auth::{AuthError, AuthMiddleware};
use m2m::test_util::{RecordingServer, TestTokens};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use wiremock::matchers::{any, header};
use wiremock::{Mock, ResponseTemplate};

const INVALID_TOKEN: &str = r#"Bearer error="invalid_token", error_description="expired""#;

fn client(tokens: &TestTokens) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(AuthMiddleware::new(tokens.auth()))
        .build()
}

/// A server that answers `status` (with `challenge` when given) to
/// `Bearer one`, and 200 to anything else.
async fn server_rejecting_token_one(status: u16, challenge: Option<&str>) -> RecordingServer {
    let server = RecordingServer::start().await;
    let rejection = match challenge {
        Some(challenge) => {
            ResponseTemplate::new(status).insert_header("www-authenticate", challenge)
        }
        None => ResponseTemplate::new(status),
    };
    Mock::given(header("authorization", "Bearer one"))
        .respond_with(rejection)
        .mount(server.server())
        .await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(server.server())
        .await;
    server
}

#[tokio::test]
async fn every_request_carries_the_token() {
    let server = server_rejecting_token_one(401, Some(INVALID_TOKEN)).await;
    let tokens = TestTokens::new(&["zero"]);
    let http = client(&tokens);

    for _ in 0..3 {
        let response = http
            .get(format!("{}/things", server.uri()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    assert_eq!(server.authorizations().await, ["Bearer zero"; 3]);
    assert_eq!(tokens.token_calls(), 3);
    assert_eq!(tokens.renew_calls(), 0);
}

#[tokio::test]
async fn an_invalid_token_is_renewed_and_the_request_sent_once_more() {
    let server = server_rejecting_token_one(401, Some(INVALID_TOKEN)).await;
    let tokens = TestTokens::new(&["one", "two"]);

    let response = client(&tokens)
        .post(format!("{}/things", server.uri()))
        .body("payload")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(server.authorizations().await, ["Bearer one", "Bearer two"]);
    assert_eq!(server.received().await[1].body, b"payload");
    assert_eq!(tokens.rejected(), ["Bearer one"]);
}

#[tokio::test]
async fn a_plain_401_and_a_403_are_returned_as_they_are() {
    for (status, challenge) in [
        (401, None),
        (401, Some(r#"Bearer realm="api""#)),
        (403, Some(r#"Bearer error="insufficient_scope""#)),
    ] {
        let server = server_rejecting_token_one(status, challenge).await;
        let tokens = TestTokens::new(&["one", "two"]);

        let response = client(&tokens)
            .get(format!("{}/things", server.uri()))
            .send()
            .await
            .unwrap();

        assert_eq!(response.status(), status, "{challenge:?}");
        assert_eq!(
            server.authorizations().await,
            ["Bearer one"],
            "{challenge:?}"
        );
        assert_eq!(tokens.renew_calls(), 0, "{challenge:?}");
    }
}

#[tokio::test]
async fn a_streamed_body_is_not_sent_again_but_the_token_is_renewed() {
    let server = server_rejecting_token_one(401, Some(INVALID_TOKEN)).await;
    let tokens = TestTokens::new(&["one", "two"]);
    let chunks = stream::iter([Ok::<_, std::io::Error>("part-1 "), Ok("part-2")]);

    let response = client(&tokens)
        .post(format!("{}/things", server.uri()))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 401);
    assert_eq!(server.authorizations().await, ["Bearer one"]);
    assert_eq!(tokens.renew_calls(), 1);
}

#[tokio::test]
async fn no_token_fails_the_request_with_the_typed_error_and_sends_nothing() {
    let server = server_rejecting_token_one(401, Some(INVALID_TOKEN)).await;
    // A value that cannot go into a header: the source fails as a token
    // endpoint that returned such a token would.
    let tokens = TestTokens::new(&["not\na header"]);

    let error = client(&tokens)
        .get(format!("{}/things", server.uri()))
        .send()
        .await
        .unwrap_err();

    let auth_error = AuthMiddleware::auth_error(&error).expect("the typed AuthError");
    assert!(
        matches!(auth_error, AuthError::InvalidToken(_)),
        "{auth_error:?}"
    );
    assert!(server.received().await.is_empty());
}

/// RFC 6750 §5.3: plain http to a host that is not loopback is refused
/// before the header is attached; the proxy that would carry the request
/// receives nothing.
#[tokio::test]
async fn no_token_goes_over_plain_http_to_a_remote_host_even_through_a_proxy() {
    let proxy = RecordingServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .mount(proxy.server())
        .await;
    let tokens = TestTokens::new(&["one"]);
    let through_proxy = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(proxy.uri()).unwrap())
        .build()
        .unwrap();
    let http = ClientBuilder::new(through_proxy)
        .with(AuthMiddleware::new(tokens.auth()))
        .build();

    let result = http
        .get("http://api.example.invalid/things?page=2")
        .send()
        .await;

    assert_eq!(proxy.authorizations().await, Vec::<String>::new());
    let error = result.unwrap_err();
    let typed = AuthMiddleware::auth_error(&error).expect("the typed AuthError");
    assert!(
        matches!(typed, AuthError::Config(m2m::auth::ConfigError::InsecureUrl { url }) if url == "http://api.example.invalid/things"),
        "{typed:?}"
    );
    assert_eq!(tokens.token_calls(), 0);
}

fn client_with(tokens: &TestTokens, settings: m2m::auth::ApiSettings) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(AuthMiddleware::new(
            tokens.auth().with_api_settings(settings),
        ))
        .build()
}

#[tokio::test]
async fn an_answer_over_max_response_bytes_fails_with_the_typed_error() {
    let server = RecordingServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(1000)))
        .mount(server.server())
        .await;
    let tokens = TestTokens::new(&["one"]);
    let settings = m2m::auth::ApiSettings::default().with_max_response_bytes(999);

    let error = client_with(&tokens, settings)
        .get(format!("{}/things?page=2", server.uri()))
        .send()
        .await
        .unwrap_err();

    let Some(AuthError::ApiCall(call)) = AuthMiddleware::auth_error(&error) else {
        panic!("{error:?}");
    };
    assert_eq!(
        call.kind,
        m2m::auth::ApiCallErrorKind::TooLarge {
            limit: 999,
            content_length: Some(1000)
        }
    );
    assert_eq!(call.url, format!("{}/things", server.uri()));
    assert!(error.to_string().contains("max_response_bytes"), "{error}");
}

#[tokio::test]
async fn a_call_longer_than_the_timeout_fails_with_the_typed_error_and_an_answer_in_time_is_read() {
    let server = RecordingServer::start().await;
    Mock::given(wiremock::matchers::path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(10)))
        .mount(server.server())
        .await;
    Mock::given(wiremock::matchers::path("/quick"))
        .respond_with(ResponseTemplate::new(200).set_body_string("quick answer"))
        .mount(server.server())
        .await;
    let tokens = TestTokens::new(&["one"]);
    let limit = std::time::Duration::from_millis(300);
    let http = client_with(
        &tokens,
        m2m::auth::ApiSettings::default().with_timeout(limit),
    );

    let error = http
        .get(format!("{}/slow", server.uri()))
        .send()
        .await
        .unwrap_err();
    let quick = http
        .get(format!("{}/quick", server.uri()))
        .send()
        .await
        .unwrap();

    let Some(AuthError::ApiCall(call)) = AuthMiddleware::auth_error(&error) else {
        panic!("{error:?}");
    };
    assert_eq!(call.kind, m2m::auth::ApiCallErrorKind::TimedOut { limit });
    assert!(error.to_string().contains("timed out"), "{error}");
    assert_eq!(quick.text().await.unwrap(), "quick answer");
}

/// A server that rejects every token: after two renewals the requests fail
/// with the typed error instead of asking for more tokens.
#[tokio::test]
async fn a_server_that_rejects_every_token_stops_the_renewals() {
    let server = RecordingServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(401).insert_header("www-authenticate", INVALID_TOKEN))
        .mount(server.server())
        .await;
    let tokens = TestTokens::new(&["one", "two", "three", "four"]);
    let http = client(&tokens);

    let mut outcomes = Vec::new();
    for _ in 0..10 {
        match http.get(format!("{}/things", server.uri())).send().await {
            Ok(response) => outcomes.push(response.status().as_u16().to_string()),
            Err(error) => {
                let Some(AuthError::ApiCall(call)) = AuthMiddleware::auth_error(&error) else {
                    panic!("{error:?}");
                };
                assert_eq!(
                    call.kind,
                    m2m::auth::ApiCallErrorKind::TokensRejected { renewals: 2 }
                );
                assert!(
                    error.to_string().contains("keeps rejecting fresh tokens"),
                    "{error}"
                );
                outcomes.push("stopped".to_owned());
            }
        }
    }

    assert_eq!(outcomes[..2], ["401", "401"]);
    assert!(outcomes[2..].iter().all(|s| s == "stopped"), "{outcomes:?}");
    assert_eq!(tokens.rejected(), ["Bearer one", "Bearer two"]);
}
