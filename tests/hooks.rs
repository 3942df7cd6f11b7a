//! What the generated clients do around each call, against a real wiremock
//! server: the `Authorization` header, one renewal and resend on 401
//! `invalid_token`, and no retry for anything else.
//!
//! A request whose body is a stream is covered by the unit tests of
//! `src/apis/hooks.rs`: no generated operation sends one.

#[path = "support/https_server.rs"]
mod https_server;
mod support;

use m2m::apis::AUTH_ERROR_PREFIX;
use m2m::apis::cenda_configuration::{Client, Error, types};
use m2m::test_util::{RecordingServer, TestTokens, authorization};
use serde_json::{Value, json};
use support::{cenda_client, nxtsoft_client};
use wiremock::matchers::{any, header, method, path};
use wiremock::{Mock, ResponseTemplate};

const ORGANISATION_ID: &str = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
const INVALID_TOKEN: &str =
    r#"Bearer realm="cenda", error="invalid_token", error_description="The access token expired""#;

fn organisation_json() -> Value {
    json!({
        "organisationId": ORGANISATION_ID,
        "name": "Acme Corporation",
        "validated": false
    })
}

/// A 401 as Cenda sends it, with `challenge` as `WWW-Authenticate` if any.
fn unauthorized(challenge: Option<&str>) -> ResponseTemplate {
    let response = ResponseTemplate::new(401).set_body_json(json!({
        "title": "Unauthorized",
        "status": 401,
        "detail": "The access token is missing or invalid."
    }));
    match challenge {
        Some(challenge) => response.insert_header("www-authenticate", challenge),
        None => response,
    }
}

async fn get_organisation(
    client: &Client,
) -> Result<types::Organisation, Error<types::ProblemDetails>> {
    client
        .get_organisation()
        .organisation_id(ORGANISATION_ID)
        .send()
        .await
        .map(|response| response.into_inner())
}

/// Status and `detail` of an error answer from the API.
fn api_error(error: Error<types::ProblemDetails>) -> (u16, Option<String>) {
    match error {
        Error::ErrorResponse(response) => {
            (response.status().as_u16(), response.into_inner().detail)
        }
        other => panic!("expected the API's error answer, got {other:?}"),
    }
}

#[tokio::test]
async fn every_call_carries_the_token_as_a_bearer_header() {
    let server = RecordingServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/api/Organisation/{ORGANISATION_ID}")))
        .and(header("authorization", "Bearer token-one"))
        .respond_with(ResponseTemplate::new(200).set_body_json(organisation_json()))
        .expect(1)
        .mount(server.server())
        .await;
    let tokens = TestTokens::new(&["token-one"]);

    let organisation = get_organisation(&cenda_client(&server, &tokens))
        .await
        .unwrap();

    assert_eq!(organisation.name, "Acme Corporation");
    assert_eq!(server.authorizations().await, ["Bearer token-one"]);
    assert_eq!(tokens.token_calls(), 1);
    assert_eq!(tokens.renew_calls(), 0);
}

#[tokio::test]
async fn invalid_token_is_renewed_and_the_call_sent_once_more_with_the_new_token() {
    let server = RecordingServer::start().await;
    Mock::given(header("authorization", "Bearer old-token"))
        .respond_with(unauthorized(Some(INVALID_TOKEN)))
        .expect(1)
        .mount(server.server())
        .await;
    Mock::given(header("authorization", "Bearer new-token"))
        .respond_with(ResponseTemplate::new(201).set_body_json(organisation_json()))
        .expect(1)
        .mount(server.server())
        .await;
    let tokens = TestTokens::new(&["old-token", "new-token"]);

    let created = cenda_client(&server, &tokens)
        .create_organisation()
        .body(
            types::CreateOrganisationRequest::builder()
                .name("Acme Corporation")
                .css_url(Some("https://www.acme.example/qr.css".to_owned())),
        )
        .send()
        .await
        .expect("the resent call succeeds")
        .into_inner();

    assert_eq!(created.organisation_id.to_string(), ORGANISATION_ID);
    let requests = server.received().await;
    assert_eq!(requests.len(), 2);
    assert_eq!(authorization(&requests[0]), "Bearer old-token");
    assert_eq!(authorization(&requests[1]), "Bearer new-token");
    // The copy is the same request: same method, path and body.
    assert_eq!(requests[1].method, requests[0].method);
    assert_eq!(requests[1].url, requests[0].url);
    assert_eq!(requests[1].body, requests[0].body);
    assert_eq!(
        requests[1].body_json::<Value>().unwrap(),
        json!({"name": "Acme Corporation", "cssUrl": "https://www.acme.example/qr.css"})
    );
    assert_eq!(tokens.token_calls(), 1);
    assert_eq!(tokens.rejected(), ["Bearer old-token"]);
}

#[tokio::test]
async fn a_second_invalid_token_answer_is_returned_to_the_caller() {
    let server = RecordingServer::start().await;
    Mock::given(any())
        .respond_with(unauthorized(Some(INVALID_TOKEN)))
        .expect(2)
        .mount(server.server())
        .await;
    let tokens = TestTokens::new(&["old-token", "new-token"]);

    let error = get_organisation(&cenda_client(&server, &tokens))
        .await
        .unwrap_err();

    assert_eq!(
        api_error(error),
        (
            401,
            Some("The access token is missing or invalid.".to_owned())
        )
    );
    assert_eq!(
        server.authorizations().await,
        ["Bearer old-token", "Bearer new-token"]
    );
    assert_eq!(tokens.rejected(), ["Bearer old-token"]);
}

/// Sends one call answered by `response`; checks it went out once, came back
/// as the API's error with `status`, and renewed nothing.
async fn assert_not_retried(response: ResponseTemplate, status: u16) {
    let server = RecordingServer::start().await;
    Mock::given(any())
        .respond_with(response)
        .expect(1)
        .mount(server.server())
        .await;
    let tokens = TestTokens::new(&["only-token", "unused-token"]);

    let error = get_organisation(&cenda_client(&server, &tokens))
        .await
        .unwrap_err();

    // A status the document does not declare (Cenda's 403) comes back as
    // an unexpected response, with its status all the same.
    assert_eq!(error.status().map(|s| s.as_u16()), Some(status));
    assert_eq!(server.authorizations().await, ["Bearer only-token"]);
    assert_eq!(tokens.token_calls(), 1);
    assert_eq!(tokens.renew_calls(), 0);
}

#[tokio::test]
async fn a_401_without_a_challenge_is_not_retried() {
    assert_not_retried(unauthorized(None), 401).await;
}

#[tokio::test]
async fn a_401_with_a_bare_bearer_challenge_is_not_retried() {
    assert_not_retried(unauthorized(Some(r#"Bearer realm="x""#)), 401).await;
}

#[tokio::test]
async fn a_401_insufficient_scope_is_not_retried() {
    let challenge = r#"Bearer error="insufficient_scope", scope="{GatewayClientId}/.default""#;
    assert_not_retried(unauthorized(Some(challenge)), 401).await;
}

#[tokio::test]
async fn invalid_token_in_another_scheme_is_not_retried() {
    assert_not_retried(unauthorized(Some(r#"Basic error="invalid_token""#)), 401).await;
}

#[tokio::test]
async fn a_403_is_not_retried_even_with_an_invalid_token_challenge() {
    let forbidden = ResponseTemplate::new(403)
        .insert_header("www-authenticate", INVALID_TOKEN)
        .set_body_json(json!({"title": "Forbidden", "status": 403}));
    assert_not_retried(forbidden, 403).await;
}

#[tokio::test]
async fn a_403_insufficient_scope_from_nxtsoft_is_not_retried() {
    let server = RecordingServer::start().await;
    Mock::given(method("POST"))
        .and(path("/transactions"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header(
                    "www-authenticate",
                    r#"Bearer error="insufficient_scope", scope="transactions/post""#,
                )
                .set_body_json(json!({
                    "code": "insufficient_scope",
                    "message": "The access token does not carry the scope transactions/post."
                })),
        )
        .expect(1)
        .mount(server.server())
        .await;
    let tokens = TestTokens::new(&["mock-scope-token", "unused-token"]);

    let error = nxtsoft_client(&server, &tokens)
        .post_transaction()
        .body(
            m2m::apis::nxtsoft_transactions::types::TransactionRequest::builder()
                .account_number("000123456789")
                .routing_number("021000021")
                .amount(125.5)
                .currency("USD")
                .transaction_type(m2m::apis::nxtsoft_transactions::types::TransactionType::Credit)
                .reference("INV-2024-0042"),
        )
        .send()
        .await
        .unwrap_err();

    let m2m::apis::nxtsoft_transactions::Error::ErrorResponse(response) = error else {
        panic!("expected the API's error answer, got {error:?}");
    };
    assert_eq!(response.status(), 403);
    assert_eq!(response.into_inner().code, "insufficient_scope");
    assert_eq!(server.authorizations().await, ["Bearer mock-scope-token"]);
    assert_eq!(tokens.renew_calls(), 0);
}

#[tokio::test]
async fn a_failed_renewal_returns_the_original_401() {
    let server = RecordingServer::start().await;
    Mock::given(any())
        .respond_with(unauthorized(Some(INVALID_TOKEN)))
        .expect(1)
        .mount(server.server())
        .await;
    // The renewed token cannot go into a header: renewal fails.
    let tokens = TestTokens::new(&["old-token", "new-token\nunsendable"]);

    let error = get_organisation(&cenda_client(&server, &tokens))
        .await
        .unwrap_err();

    assert_eq!(
        api_error(error),
        (
            401,
            Some("The access token is missing or invalid.".to_owned())
        )
    );
    assert_eq!(server.authorizations().await, ["Bearer old-token"]);
    assert_eq!(tokens.rejected(), ["Bearer old-token"]);
}

#[tokio::test]
async fn no_token_fails_the_call_before_sending_with_a_secret_free_message() {
    let server = RecordingServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_json(organisation_json()))
        .expect(0)
        .mount(server.server())
        .await;
    // A token the source holds but cannot send (a newline in it).
    let tokens = TestTokens::new(&["s3cr3t-token-value\n"]);

    let error = get_organisation(&cenda_client(&server, &tokens))
        .await
        .unwrap_err();

    let Error::Custom(message) = &error else {
        panic!("expected Error::Custom, got {error:?}");
    };
    assert!(
        message.starts_with(AUTH_ERROR_PREFIX),
        "{message:?} starts with {AUTH_ERROR_PREFIX:?}"
    );
    assert!(
        message.contains("get_organisation"),
        "{message:?} names the operation"
    );
    assert!(!message.contains("s3cr3t"), "{message:?} shows no token");
    assert!(!format!("{error:?}").contains("s3cr3t"));
    assert!(server.received().await.is_empty());
    assert_eq!(tokens.token_calls(), 1);
    assert_eq!(tokens.renew_calls(), 0);
}

/// RFC 6750 §5.3: a bearer token goes over TLS only. Plain http to a host
/// that is not loopback is refused before the header is attached (before
/// the token is even asked for), with the typed error; a proxy on loopback
/// (where the request would go) receives nothing.
#[tokio::test]
async fn no_token_goes_over_plain_http_to_a_remote_host_even_through_a_proxy() {
    let proxy = RecordingServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_json(organisation_json()))
        .mount(proxy.server())
        .await;
    let tokens = TestTokens::new(&["token-one"]);
    let through_proxy = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(proxy.uri()).unwrap())
        .build()
        .unwrap();
    let client = Client::new_with_client(
        "http://api.example.invalid/cenda",
        through_proxy,
        tokens.auth(),
    );

    let error = get_organisation(&client).await.unwrap_err();

    assert_eq!(proxy.authorizations().await, Vec::<String>::new());
    let typed = progenitor_client::ClientInfo::inner(&client)
        .error_of(&error)
        .expect("the typed error");
    let m2m::auth::AuthError::Config(m2m::auth::ConfigError::InsecureUrl { url }) = &typed else {
        panic!("expected InsecureUrl, got {typed:?}");
    };
    assert_eq!(
        url.as_str(),
        format!("http://api.example.invalid/cenda/api/Organisation/{ORGANISATION_ID}")
    );
    assert!(error.to_string().contains("plain http"), "{error}");
    assert_eq!(tokens.token_calls(), 0);
}

/// The reqwest client of the generated API clients that m2m builds.
fn api_http_client(builder: reqwest::ClientBuilder) -> reqwest::Client {
    m2m::auth::ApiSettings::default()
        .http_client_from(builder)
        .unwrap()
}

fn redirect_to(location: &str) -> ResponseTemplate {
    ResponseTemplate::new(307).insert_header("location", location)
}

/// A redirect to another origin is not followed: the API's 307 comes back
/// to the caller, and the other origin receives nothing (with or without
/// the token).
#[tokio::test]
async fn a_redirect_to_another_origin_is_not_followed() {
    let (api, elsewhere) = (
        RecordingServer::start().await,
        RecordingServer::start().await,
    );
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_json(organisation_json()))
        .mount(elsewhere.server())
        .await;
    Mock::given(any())
        .respond_with(redirect_to(&format!(
            "{}/api/Organisation/{ORGANISATION_ID}",
            elsewhere.uri()
        )))
        .mount(api.server())
        .await;
    let tokens = TestTokens::new(&["token-one"]);
    let client = Client::new_with_client(
        &api.uri(),
        api_http_client(reqwest::Client::builder()),
        tokens.auth(),
    );

    let error = get_organisation(&client).await.unwrap_err();

    assert_eq!(
        elsewhere.received().await.len(),
        0,
        "the other origin received nothing"
    );
    assert_eq!(
        error.status(),
        Some(reqwest::StatusCode::TEMPORARY_REDIRECT)
    );
    assert_eq!(api.authorizations().await, ["Bearer token-one"]);
}

/// A redirect from https to plain http (here to another port of the same
/// host) is not followed either.
#[tokio::test]
async fn a_redirect_from_https_to_http_is_not_followed() {
    let plain = RecordingServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_json(organisation_json()))
        .mount(plain.server())
        .await;
    let location = format!("{}/api/Organisation/{ORGANISATION_ID}", plain.uri());
    let api = https_server::HttpsServer::answering(format!(
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    ))
    .await;
    let tokens = TestTokens::new(&["token-one"]);
    let trusting_the_test_ca =
        reqwest::Client::builder().tls_certs_only([https_server::HttpsServer::ca()]);
    let client = Client::new_with_client(
        &api.uri(),
        api_http_client(trusting_the_test_ca),
        tokens.auth(),
    );

    let error = get_organisation(&client).await.unwrap_err();

    assert_eq!(
        plain.received().await.len(),
        0,
        "the http origin received nothing"
    );
    assert_eq!(
        error.status(),
        Some(reqwest::StatusCode::TEMPORARY_REDIRECT)
    );
    assert_eq!(api.requests(), 1);
}

/// Within the origin, a redirect is followed, with the token.
#[tokio::test]
async fn a_redirect_within_the_origin_is_followed_with_the_token() {
    let api = RecordingServer::start().await;
    Mock::given(path(format!("/moved/{ORGANISATION_ID}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(organisation_json()))
        .mount(api.server())
        .await;
    Mock::given(path(format!("/api/Organisation/{ORGANISATION_ID}")))
        .respond_with(redirect_to(&format!(
            "{}/moved/{ORGANISATION_ID}",
            api.uri()
        )))
        .mount(api.server())
        .await;
    let tokens = TestTokens::new(&["token-one"]);
    let client = Client::new_with_client(
        &api.uri(),
        api_http_client(reqwest::Client::builder()),
        tokens.auth(),
    );

    let organisation = get_organisation(&client).await.unwrap();

    assert_eq!(organisation.name, "Acme Corporation");
    assert_eq!(
        api.authorizations().await,
        ["Bearer token-one", "Bearer token-one"]
    );
}

/// With the client's explicit `allow_http`, plain http to a remote host is
/// the user's choice.
#[tokio::test]
async fn allow_http_lets_the_token_go_to_a_remote_http_host() {
    let proxy = RecordingServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_json(organisation_json()))
        .mount(proxy.server())
        .await;
    let tokens = TestTokens::new(&["token-one"]);
    let through_proxy = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(proxy.uri()).unwrap())
        .build()
        .unwrap();
    let auth = tokens
        .auth()
        .with_api_settings(m2m::auth::ApiSettings::default().with_allow_http(true));
    let client = Client::new_with_client("http://api.example.invalid/cenda", through_proxy, auth);

    get_organisation(&client).await.unwrap();

    assert_eq!(proxy.authorizations().await, ["Bearer token-one"]);
}

/// Default limit of an API answer: 16 MiB.
const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// A JSON array of `len` bytes: `[0,0,0,…]`.
fn json_of_len(len: usize) -> Vec<u8> {
    let mut body = vec![b'['];
    while body.len() + 2 < len {
        body.extend_from_slice(b"0,");
    }
    body.extend_from_slice(b"0]");
    body
}

/// An answer whose Content-Length is over the limit is refused unread, with
/// an error naming the limit.
#[tokio::test]
async fn an_answer_declared_larger_than_the_limit_is_refused_unread() {
    let api = RecordingServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            json_of_len(DEFAULT_MAX_RESPONSE_BYTES + 1),
            "application/json",
        ))
        .mount(api.server())
        .await;
    let tokens = TestTokens::new(&["token-one"]);
    let client = cenda_client(&api, &tokens);

    let result = client.list_organisations().send().await;

    let error = result.map(|_| ()).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("max_response_bytes"), "{message}");
    assert!(
        message.contains(&DEFAULT_MAX_RESPONSE_BYTES.to_string()),
        "{message}"
    );
    assert!(
        message.len() < 1000,
        "the answer is not in the error: {} bytes",
        message.len()
    );
}

/// An endless chunked answer on loopback (no Content-Length): 64 KiB chunks
/// until the client goes away or `total` bytes are sent. Counts the bytes
/// written.
async fn endless_chunked_server(
    total: u64,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}", listener.local_addr().unwrap());
    let sent = std::sync::Arc::new(AtomicU64::new(0));
    let counted = sent.clone();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = [0u8; 4096];
        let _ = stream.read(&mut head).await;
        let start = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n1\r\n[\r\n";
        if stream.write_all(start.as_bytes()).await.is_err() {
            return;
        }
        let chunk = format!("10000\r\n{}\r\n", "0,".repeat(0x8000));
        while counted.load(Ordering::SeqCst) < total {
            if stream.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
            counted.fetch_add(0x10000, Ordering::SeqCst);
        }
        let _ = stream.write_all(b"1\r\n0\r\n1\r\n]\r\n0\r\n\r\n").await;
    });
    (uri, sent)
}

/// A 300 MB answer without Content-Length is read up to the limit only.
#[tokio::test]
async fn a_streamed_answer_is_read_up_to_the_limit_only() {
    let (uri, sent) = endless_chunked_server(300_000_000).await;
    let tokens = TestTokens::new(&["token-one"]);
    let client = Client::new_with_client(&uri, reqwest::Client::new(), tokens.auth());

    let result = client.list_organisations().send().await;

    let error = result.map(|_| ()).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("max_response_bytes"), "{message}");
    assert!(message.len() < 1000, "{} bytes", message.len());
    let sent = sent.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        sent < 64 * 1024 * 1024,
        "{sent} bytes were sent before the client stopped"
    );
}

/// An API that does not answer in time: the call fails when the handle's
/// timeout runs out, with the typed error naming the limit.
#[tokio::test]
async fn a_call_longer_than_the_timeout_fails_saying_it_timed_out() {
    let api = RecordingServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(organisation_json())
                .set_delay(std::time::Duration::from_secs(10)),
        )
        .mount(api.server())
        .await;
    let tokens = TestTokens::new(&["token-one"]);
    let limit = std::time::Duration::from_millis(300);
    let auth = tokens
        .auth()
        .with_api_settings(m2m::auth::ApiSettings::default().with_timeout(limit));
    let client = Client::new_with_client(&api.uri(), reqwest::Client::new(), auth);
    let started = std::time::Instant::now();

    let error = get_organisation(&client).await.unwrap_err();

    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let message = error.to_string();
    assert!(message.contains(m2m::apis::CALL_ERROR_PREFIX), "{message}");
    assert!(
        message.contains("timed out after 0.3 s") && message.contains("(api_timeout_secs)"),
        "{message}"
    );
    assert!(!message.contains("token-one") && !format!("{error:?}").contains("token-one"));
    let typed = progenitor_client::ClientInfo::inner(&client)
        .error_of(&error)
        .expect("the typed error");
    let m2m::auth::AuthError::ApiCall(call) = &typed else {
        panic!("{typed:?}");
    };
    assert_eq!(call.kind, m2m::auth::ApiCallErrorKind::TimedOut { limit });
    assert_eq!(
        call.url,
        format!("{}/api/Organisation/{ORGANISATION_ID}", api.uri())
    );
}

/// An API that sends its head in time but stalls in the middle of the
/// body: reading the answer is part of the call, so the call fails when
/// the handle's timeout runs out, with the same typed error.
#[tokio::test]
async fn an_answer_whose_body_stalls_fails_saying_it_timed_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = [0u8; 4096];
        let _ = stream.read(&mut head).await;
        let start = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"organisationId\":";
        let _ = stream.write_all(start.as_bytes()).await;
        // The rest never comes (the test is over long before).
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    });
    let tokens = TestTokens::new(&["token-one"]);
    let limit = std::time::Duration::from_millis(300);
    let auth = tokens
        .auth()
        .with_api_settings(m2m::auth::ApiSettings::default().with_timeout(limit));
    let client = Client::new_with_client(&uri, reqwest::Client::new(), auth);
    let started = std::time::Instant::now();

    let error = get_organisation(&client).await.unwrap_err();

    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let message = error.to_string();
    assert!(message.contains(m2m::apis::CALL_ERROR_PREFIX), "{message}");
    assert!(message.contains("timed out after 0.3 s"), "{message}");
    let typed = progenitor_client::ClientInfo::inner(&client)
        .error_of(&error)
        .expect("the typed error");
    let m2m::auth::AuthError::ApiCall(call) = &typed else {
        panic!("{typed:?}");
    };
    assert_eq!(call.kind, m2m::auth::ApiCallErrorKind::TimedOut { limit });
    assert_eq!(
        call.url,
        format!("{uri}/api/Organisation/{ORGANISATION_ID}")
    );
}

/// The limit is the handle's: a smaller one refuses a smaller answer, and
/// an answer within it is read and decoded as before.
#[tokio::test]
async fn max_response_bytes_is_the_handles_setting() {
    let api = RecordingServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_json(organisation_json()))
        .mount(api.server())
        .await;
    let length = serde_json::to_vec(&organisation_json()).unwrap().len() as u64;
    let tokens = TestTokens::new(&["token-one"]);
    let with_limit = |limit: u64| {
        let auth = tokens
            .auth()
            .with_api_settings(m2m::auth::ApiSettings::default().with_max_response_bytes(limit));
        Client::new_with_client(&api.uri(), reqwest::Client::new(), auth)
    };

    let within = get_organisation(&with_limit(length)).await.unwrap();
    let client = with_limit(length - 1);
    let over = get_organisation(&client).await.unwrap_err();

    assert_eq!(within.name, "Acme Corporation");
    let typed = progenitor_client::ClientInfo::inner(&client)
        .error_of(&over)
        .expect("the typed error");
    let m2m::auth::AuthError::ApiCall(call) = &typed else {
        panic!("{typed:?}");
    };
    assert_eq!(
        call.kind,
        m2m::auth::ApiCallErrorKind::TooLarge {
            limit: length - 1,
            content_length: Some(length)
        }
    );
}

/// A token endpoint on `server` at `/token` that issues a new token
/// (`issued-1`, `issued-2`, …) on every request.
async fn token_endpoint_issuing_new_tokens(server: &RecordingServer) -> m2m::auth::TokenEndpoint {
    let issued = std::sync::atomic::AtomicUsize::new(0);
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(move |_: &wiremock::Request| {
            let n = issued.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            ResponseTemplate::new(200).set_body_json(json!({
                "access_token": format!("issued-{n}"), "token_type": "Bearer", "expires_in": 3600
            }))
        })
        .mount(server.server())
        .await;
    let url = url::Url::parse(&format!("{}/token", server.uri())).unwrap();
    m2m::auth::TokenEndpoint::builder(
        m2m::provider::Provider::custom_token_url(url),
        "client-id",
        m2m::auth::ClientCredential::secret("client-secret"),
    )
    .build()
    .unwrap()
}

/// An API that rejects every token (wrong audience, API-side clock skew)
/// must not turn each call into a token request: 1,000 calls through one
/// client make 3 token requests (the first token and two renewals), and the
/// calls fail saying the API keeps rejecting fresh tokens.
#[tokio::test]
async fn an_api_that_rejects_every_token_gets_three_token_requests_for_a_thousand_calls() {
    let (identity, api) = (
        RecordingServer::start().await,
        RecordingServer::start().await,
    );
    // Time stands still: the thousand calls take no time at all.
    let clock = std::sync::Arc::new(m2m::auth::clock::ManualClock::at_fixed_date());
    let auth = m2m::auth::Auth::new(
        token_endpoint_issuing_new_tokens(&identity).await,
        &m2m::auth::TokenCache::in_memory(),
    )
    .with_clock(clock);
    Mock::given(any())
        .respond_with(unauthorized(Some(INVALID_TOKEN)))
        .mount(api.server())
        .await;
    let client = Client::new_with_client(&api.uri(), reqwest::Client::new(), auth);

    let mut errors = Vec::new();
    for _ in 0..1000 {
        errors.push(get_organisation(&client).await.unwrap_err());
    }

    let token_requests = identity.received().await.len();
    assert_eq!(token_requests, 3, "token requests for 1,000 calls");
    // The first two calls each renewed once and got the API's answer to
    // the fresh token; every later call is stopped with the explanation.
    let (renewed, stopped) = errors.split_at(2);
    for error in renewed {
        assert_eq!(error.status().map(|s| s.as_u16()), Some(401), "{error}");
    }
    for error in stopped {
        let message = error.to_string();
        assert!(
            message.contains("keeps rejecting fresh tokens"),
            "{message}"
        );
        assert!(
            message.contains("audience") && message.contains("scope"),
            "{message}"
        );
        assert!(!message.contains("issued-"), "no token in {message}");
        assert!(!format!("{error:?}").contains("issued-"));
    }
    let typed = progenitor_client::ClientInfo::inner(&client)
        .error_of(&stopped[0])
        .expect("the typed error");
    let m2m::auth::AuthError::ApiCall(call) = &typed else {
        panic!("{typed:?}");
    };
    assert_eq!(
        call.kind,
        m2m::auth::ApiCallErrorKind::TokensRejected { renewals: 2 }
    );
    assert_eq!(
        call.url,
        format!("{}/api/Organisation/{ORGANISATION_ID}", api.uri())
    );
    assert_eq!(api.received().await.len(), 2 * 2 + 998);
}

/// The same with the calls concurrent (a rejection of a token that was
/// renewed since waits for that renewal instead of renewing again), and
/// with a token endpoint that hands out the same token again.
#[tokio::test]
async fn concurrent_calls_and_a_reissued_token_stay_within_three_token_requests() {
    use futures::StreamExt;
    let (identity, api) = (
        RecordingServer::start().await,
        RecordingServer::start().await,
    );
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "always-the-same", "token_type": "Bearer", "expires_in": 3600
        })))
        .mount(identity.server())
        .await;
    Mock::given(any())
        .respond_with(unauthorized(Some(INVALID_TOKEN)))
        .mount(api.server())
        .await;
    let url = url::Url::parse(&format!("{}/token", identity.uri())).unwrap();
    let endpoint = m2m::auth::TokenEndpoint::builder(
        m2m::provider::Provider::custom_token_url(url),
        "client-id",
        m2m::auth::ClientCredential::secret("client-secret"),
    )
    .build()
    .unwrap();
    let client = Client::new_with_client(
        &api.uri(),
        reqwest::Client::new(),
        m2m::auth::Auth::new(endpoint, &m2m::auth::TokenCache::in_memory()),
    );

    // Unconstrained: 900 calls in the test task could leave its coop budget
    // at 0, and wiremock's blocking `Drop` then spins (see token_cache.rs).
    tokio::task::unconstrained(async {
        for round in 0..3 {
            let failed = futures::stream::iter(0..300)
                .map(|_| get_organisation(&client))
                .buffer_unordered(100)
                .filter(|result| std::future::ready(result.is_err()))
                .count()
                .await;
            assert_eq!(failed, 300, "round {round}");
        }
    })
    .await;

    assert!(
        identity.received().await.len() <= 3,
        "{}",
        identity.received().await.len()
    );
}

/// Once stopped, one renewal is tried again a minute after the last one:
/// when the identity provider was fixed meanwhile, the new token works and
/// the calls go through again.
#[tokio::test]
async fn a_minute_after_the_last_renewal_one_more_is_tried() {
    use m2m::auth::clock::ManualClock;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let (identity, api) = (
        RecordingServer::start().await,
        RecordingServer::start().await,
    );
    let clock = Arc::new(ManualClock::new(std::time::SystemTime::now()));
    let auth = m2m::auth::Auth::new(
        token_endpoint_issuing_new_tokens(&identity).await,
        &m2m::auth::TokenCache::in_memory(),
    )
    .with_clock(clock.clone());
    let rejecting = Arc::new(AtomicBool::new(true));
    let switch = rejecting.clone();
    Mock::given(any())
        .respond_with(move |request: &wiremock::Request| {
            let token = authorization(request);
            let bad = ["Bearer issued-3", "Bearer issued-4"];
            if switch.load(Ordering::SeqCst) || bad.contains(&token) {
                unauthorized(Some(INVALID_TOKEN))
            } else {
                ResponseTemplate::new(200).set_body_json(organisation_json())
            }
        })
        .mount(api.server())
        .await;
    let client = Client::new_with_client(&api.uri(), reqwest::Client::new(), auth);
    for _ in 0..5 {
        get_organisation(&client).await.unwrap_err();
    }
    assert_eq!(identity.received().await.len(), 3);

    // The tokens issued from now on are good, but issued-3, the current
    // one, is still rejected: within the minute, the stop holds.
    rejecting.store(false, Ordering::SeqCst);
    clock.advance(std::time::Duration::from_secs(59));
    get_organisation(&client).await.unwrap_err();
    assert_eq!(identity.received().await.len(), 3);

    // A minute after the last renewal, one more is tried: issued-4 is
    // rejected too (stopped again), then a minute later issued-5 works.
    clock.advance(std::time::Duration::from_secs(1));
    get_organisation(&client).await.unwrap_err();
    assert_eq!(identity.received().await.len(), 4);
    get_organisation(&client).await.unwrap_err();
    assert_eq!(identity.received().await.len(), 4);
    clock.advance(std::time::Duration::from_secs(60));
    let organisation = get_organisation(&client).await.unwrap();

    assert_eq!(organisation.name, "Acme Corporation");
    assert_eq!(identity.received().await.len(), 5);
    assert_eq!(
        api.authorizations().await.last().map(String::as_str),
        Some("Bearer issued-5")
    );
    // Accepted: the count starts again, and the token works from now on.
    get_organisation(&client).await.unwrap();
    assert_eq!(identity.received().await.len(), 5);
}
