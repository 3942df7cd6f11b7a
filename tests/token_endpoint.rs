//! The token endpoint against real HTTP servers on loopback (wiremock, and
//! one raw chunked server), with a manual clock: client authentication,
//! discovery, lenient responses, typed errors, retries and hold-off, and
//! proof that no secret reaches a log line or an error.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use m2m::auth::clock::{Clock, FixedJitter, ManualClock};
use m2m::auth::{
    AuthError, ClientAuthMethod, ClientCredential, ClientSecrets, ConfigError, FetchToken,
    HttpSettings, KeyIdentifier, PrivateKeyJwt, RetryPolicy, SigningAlgorithm, TlsIdentity,
    TokenEndpoint, TokenEndpointBuilder, TokenLifetimes, TransportErrorKind,
};
use m2m::provider::{NxtPortEnvironment, Provider};
use secrecy::SecretString;
use serde_json::json;
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const CLIENT_ID: &str = "m2m-client";
/// Every reserved character RFC 6749 §2.3.1 makes us encode.
const SECRET: &str = "p@ss:w+rd/%&=";
const SECRET_FORM_ENCODED: &str = "p%40ss%3Aw%2Brd%2F%25%26%3D";
const TOKEN: &str = "tok-SECRET-issued-0001";
/// A second client secret (the first of a pair, refused in the scan).
const OTHER_SECRET: &str = "other-secret-d41c9e";
/// A federated client assertion (header `{"alg":"RS256"}`, `exp` in 2100).
const FEDERATED_ASSERTION: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJrOHMiLCJzdWIiOiJ3b3JrbG9hZCIsImV4cCI6NDEwMjQ0NDgwMH0.ZmVkZXJhdGVk";
const RSA_PRIVATE: &str = include_str!("fixtures/rsa-private.pem");
const RSA_PUBLIC: &str = include_str!("fixtures/rsa-public.pem");
const RSA_CERT: &str = include_str!("fixtures/rsa-cert.pem");
/// `openssl x509 -in rsa-cert.pem -outform DER | openssl dgst -sha1 -binary | base64url`
const RSA_CERT_X5T: &str = "3XMtIKJUJs20Yd8C_jC2K1RHBuY";
const EC_PRIVATE: &str = include_str!("fixtures/ec-private.pem");
const EC_PUBLIC: &str = include_str!("fixtures/ec-public.pem");
/// The Entra sample of the Cenda seed: a secret ID sent instead of its value.
const ENTRA_INVALID_CLIENT: &str = r#"{
  "error": "invalid_client",
  "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '0f70ea2d-6371-4acc-9035-31a22887a8a4'. Trace ID: 60232ebf-feda-4e57-976b-7a74f11a7e00 Correlation ID: 08c3117b-8e36-4114-9bf0-053feb27299c Timestamp: 2023-11-13 21:15:44Z",
  "error_codes": [7000215],
  "timestamp": "2023-11-13 21:15:44Z",
  "trace_id": "60232ebf-feda-4e57-976b-7a74f11a7e00",
  "correlation_id": "08c3117b-8e36-4114-9bf0-053feb27299c",
  "error_uri": "https://login.microsoftonline.com/error?code=7000215"
}"#;

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::at_fixed_date())
}

fn token_url(server: &MockServer) -> Url {
    Url::parse(&format!("{}/token", server.uri())).unwrap()
}

fn builder(
    server: &MockServer,
    clock: &Arc<ManualClock>,
    credential: ClientCredential,
) -> TokenEndpointBuilder {
    TokenEndpoint::builder(
        Provider::custom_token_url(token_url(server)),
        CLIENT_ID,
        credential,
    )
    .scopes(["api.read api.write"])
    .clock(clock.clone())
    .jitter(Arc::new(FixedJitter(0.0)))
}

fn secret_endpoint(server: &MockServer, clock: &Arc<ManualClock>) -> TokenEndpoint {
    builder(server, clock, ClientCredential::secret(SECRET))
        .build()
        .unwrap()
}

fn token_response() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600
    }))
}

async fn mount(server: &MockServer, response: ResponseTemplate, times: u64) {
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(response)
        .expect(times)
        .mount(server)
        .await;
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

async fn only_request(server: &MockServer) -> Request {
    let mut all = requests(server).await;
    assert_eq!(all.len(), 1, "expected exactly one request");
    all.remove(0)
}

fn form(request: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn header(request: &Request, name: &str) -> Option<String> {
    request
        .headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

// ---------------------------------------------------------------- client auth

#[tokio::test]
async fn client_secret_post_sends_id_and_secret_in_the_body_only() {
    let server = MockServer::start().await;
    mount(&server, token_response(), 1).await;
    let clock = clock();
    let endpoint = builder(&server, &clock, ClientCredential::secret(SECRET))
        .client_auth(ClientAuthMethod::ClientSecretPost)
        .build()
        .unwrap();
    let token = endpoint.fetch().await.unwrap();
    assert_eq!(token.authorization(), &format!("Bearer {TOKEN}"));
    assert_eq!(token.expires_at(), clock.now() + Duration::from_secs(3600));

    let request = only_request(&server).await;
    assert_eq!(
        form(&request),
        pairs(&[
            ("grant_type", "client_credentials"),
            ("scope", "api.read api.write"),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
        ])
    );
    assert_eq!(header(&request, "authorization"), None);
    assert_eq!(
        header(&request, "content-type").as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        header(&request, "accept").as_deref(),
        Some("application/json")
    );
}

#[tokio::test]
async fn client_secret_basic_form_encodes_id_and_secret_before_base64() {
    let server = MockServer::start().await;
    mount(&server, token_response(), 1).await;
    let endpoint = TokenEndpoint::builder(
        Provider::custom_token_url(token_url(&server)),
        "my client:1",
        ClientCredential::secret(SECRET),
    )
    .client_auth(ClientAuthMethod::ClientSecretBasic)
    .clock(clock())
    .build()
    .unwrap();
    endpoint.fetch().await.unwrap();

    let request = only_request(&server).await;
    let expected = STANDARD.encode(format!("my+client%3A1:{SECRET_FORM_ENCODED}"));
    assert_eq!(
        header(&request, "authorization"),
        Some(format!("Basic {expected}"))
    );
    // Exactly one mechanism: nothing about the client in the body.
    assert_eq!(
        form(&request),
        pairs(&[("grant_type", "client_credentials")])
    );
}

#[tokio::test]
async fn client_secret_basic_unencoded_sends_the_raw_pair() {
    let server = MockServer::start().await;
    mount(&server, token_response(), 1).await;
    let clock = clock();
    let endpoint = builder(&server, &clock, ClientCredential::secret(SECRET))
        .client_auth(ClientAuthMethod::ClientSecretBasicUnencoded)
        .build()
        .unwrap();
    endpoint.fetch().await.unwrap();

    let request = only_request(&server).await;
    let expected = STANDARD.encode(format!("{CLIENT_ID}:{SECRET}"));
    assert_eq!(
        header(&request, "authorization"),
        Some(format!("Basic {expected}"))
    );
    assert_eq!(
        form(&request),
        pairs(&[
            ("grant_type", "client_credentials"),
            ("scope", "api.read api.write")
        ])
    );
}

#[tokio::test]
async fn apiture_method_sends_basic_and_the_body_pair() {
    let server = MockServer::start().await;
    mount(&server, token_response(), 1).await;
    let clock = clock();
    let endpoint = builder(&server, &clock, ClientCredential::secret(SECRET))
        .client_auth(ClientAuthMethod::ClientSecretBasicAndPost)
        .build()
        .unwrap();
    endpoint.fetch().await.unwrap();

    let request = only_request(&server).await;
    let expected = STANDARD.encode(format!("{CLIENT_ID}:{SECRET}"));
    assert_eq!(
        header(&request, "authorization"),
        Some(format!("Basic {expected}"))
    );
    assert_eq!(
        form(&request),
        pairs(&[
            ("grant_type", "client_credentials"),
            ("scope", "api.read api.write"),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
        ])
    );
}

async fn private_key_jwt_case(
    algorithm: SigningAlgorithm,
    private_pem: &str,
    public_key: jsonwebtoken::DecodingKey,
    key_id: KeyIdentifier,
) -> (jsonwebtoken::Header, serde_json::Value) {
    let server = MockServer::start().await;
    mount(&server, token_response(), 1).await;
    let clock = clock();
    let key = PrivateKeyJwt::from_pem(&SecretString::from(private_pem), algorithm, key_id).unwrap();
    let endpoint = builder(&server, &clock, key.into()).build().unwrap();
    assert_eq!(endpoint.client_auth(), ClientAuthMethod::PrivateKeyJwt);
    endpoint.fetch().await.unwrap();

    let request = only_request(&server).await;
    assert_eq!(header(&request, "authorization"), None);
    let fields = form(&request);
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "grant_type",
            "scope",
            "client_id",
            "client_assertion_type",
            "client_assertion"
        ]
    );
    assert_eq!(fields[2].1, CLIENT_ID);
    assert_eq!(
        fields[3].1,
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );

    let assertion = &fields[4].1;
    let jwt_algorithm = match algorithm {
        SigningAlgorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        SigningAlgorithm::PS256 => jsonwebtoken::Algorithm::PS256,
        SigningAlgorithm::ES256 => jsonwebtoken::Algorithm::ES256,
    };
    let mut validation = jsonwebtoken::Validation::new(jwt_algorithm);
    validation.set_audience(&[token_url(&server).as_str()]);
    validation.set_issuer(&[CLIENT_ID]);
    validation.validate_exp = false; // The manual clock is not the real time.
    let verified = jsonwebtoken::decode::<serde_json::Value>(assertion, &public_key, &validation)
        .expect("the assertion verifies with the public key");
    let claims = verified.claims;
    let iat = clock
        .now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(claims["sub"], CLIENT_ID);
    assert_eq!(claims["iat"], iat);
    assert_eq!(claims["nbf"], iat);
    assert_eq!(claims["exp"], iat + 120);
    assert_eq!(claims["jti"].as_str().unwrap().len(), 36);
    (verified.header, claims)
}

#[tokio::test]
async fn private_key_jwt_rs256_with_kid_verifies() {
    let public = jsonwebtoken::DecodingKey::from_rsa_pem(RSA_PUBLIC.as_bytes()).unwrap();
    let (header, _) = private_key_jwt_case(
        SigningAlgorithm::RS256,
        RSA_PRIVATE,
        public,
        KeyIdentifier::Kid("key-1".into()),
    )
    .await;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header.kid.as_deref(), Some("key-1"));
    assert_eq!(header.x5t, None);
}

#[tokio::test]
async fn private_key_jwt_ps256_with_certificate_x5t_verifies() {
    let x5t = KeyIdentifier::x5t_of_certificate_pem(RSA_CERT).unwrap();
    assert_eq!(x5t, KeyIdentifier::X5t(RSA_CERT_X5T.into()));
    let public = jsonwebtoken::DecodingKey::from_rsa_pem(RSA_PUBLIC.as_bytes()).unwrap();
    let (header, _) = private_key_jwt_case(SigningAlgorithm::PS256, RSA_PRIVATE, public, x5t).await;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::PS256);
    assert_eq!(header.x5t.as_deref(), Some(RSA_CERT_X5T));
    assert_eq!(header.kid, None);
}

#[tokio::test]
async fn private_key_jwt_es256_with_kid_verifies() {
    let public = jsonwebtoken::DecodingKey::from_ec_pem(EC_PUBLIC.as_bytes()).unwrap();
    let (header, _) = private_key_jwt_case(
        SigningAlgorithm::ES256,
        EC_PRIVATE,
        public,
        KeyIdentifier::Kid("ec-key".into()),
    )
    .await;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
}

#[test]
fn keys_that_do_not_fit_the_algorithm_are_refused_without_showing_them() {
    let kid = || KeyIdentifier::Kid("k".into());
    let ec_as_rsa = PrivateKeyJwt::from_pem(
        &SecretString::from(EC_PRIVATE),
        SigningAlgorithm::RS256,
        kid(),
    );
    let rsa_as_ec = PrivateKeyJwt::from_pem(
        &SecretString::from(RSA_PRIVATE),
        SigningAlgorithm::ES256,
        kid(),
    );
    let garbage = PrivateKeyJwt::from_pem(
        &SecretString::from("not a key"),
        SigningAlgorithm::PS256,
        kid(),
    );
    for result in [ec_as_rsa, rsa_as_ec, garbage] {
        let error = result.unwrap_err();
        assert!(matches!(error, ConfigError::InvalidKey { .. }), "{error}");
        assert!(!error.to_string().contains("PRIVATE KEY"), "{error}");
    }
    assert!(KeyIdentifier::x5t_of_certificate_pem(RSA_PUBLIC).is_err());
    let key = PrivateKeyJwt::from_pem(
        &SecretString::from(RSA_PRIVATE),
        SigningAlgorithm::RS256,
        kid(),
    )
    .unwrap();
    let debug = format!("{key:?} {:?}", ClientCredential::from(key.clone()));
    assert!(
        debug.contains("[redacted]") && !debug.contains("MII"),
        "{debug}"
    );
}

// ------------------------------------------------------------------ discovery

async fn mount_discovery(server: &MockServer, document: serde_json::Value, times: u64) {
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(document)
                .set_delay(Duration::from_millis(50)),
        )
        .expect(times)
        .mount(server)
        .await;
}

fn discovery_provider(server: &MockServer) -> Provider {
    Provider::custom_discovery(
        Url::parse(&format!(
            "{}/.well-known/openid-configuration",
            server.uri()
        ))
        .unwrap(),
    )
}

#[tokio::test]
async fn discovery_is_fetched_once_under_concurrency() {
    let server = MockServer::start().await;
    mount_discovery(
        &server,
        json!({
            "issuer": server.uri(),
            "token_endpoint": format!("{}/token", server.uri()),
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
            "grant_types_supported": ["authorization_code"]
        }),
        1,
    )
    .await;
    mount(&server, token_response(), 8).await;
    let endpoint = TokenEndpoint::builder(
        discovery_provider(&server),
        CLIENT_ID,
        ClientCredential::secret(SECRET),
    )
    .clock(clock())
    .build()
    .unwrap();
    let results = futures::future::join_all((0..8).map(|_| endpoint.fetch())).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 8);
    // A later fetch still uses the discovered endpoint.
    let discovered = requests(&server).await;
    assert_eq!(
        discovered
            .iter()
            .filter(|r| r.method.as_str() == "GET")
            .count(),
        1
    );
    assert_eq!(
        discovered
            .iter()
            .filter(|r| r.url.path() == "/token")
            .count(),
        8
    );
    server.verify().await;
}

#[tokio::test]
async fn a_failed_discovery_is_retried_not_kept() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(503).set_body_string("maintenance"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_discovery(
        &server,
        json!({"issuer": server.uri(), "token_endpoint": format!("{}/token", server.uri())}),
        1,
    )
    .await;
    mount(&server, token_response(), 1).await;
    let clock = clock();
    let endpoint = TokenEndpoint::builder(
        discovery_provider(&server),
        CLIENT_ID,
        ClientCredential::secret(SECRET),
    )
    .clock(clock.clone())
    .jitter(Arc::new(FixedJitter(0.0)))
    .build()
    .unwrap();
    endpoint.fetch().await.unwrap();
    assert_eq!(clock.sleeps(), vec![Duration::from_millis(250)]);
    assert_eq!(requests(&server).await.len(), 3);
}

/// Issue 11, item 4: the `Retry-After` of a discovery answer was not
/// capped, so a `503 Retry-After: 3600` made the fetch wait an hour before
/// each retry. It is cut to the one cap of every `Retry-After` (120 s).
#[tokio::test]
async fn a_retry_after_on_discovery_is_capped_like_the_token_endpoints() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "3600"))
        .expect(3)
        .mount(&server)
        .await;
    let clock = clock();
    let error = TokenEndpoint::builder(
        discovery_provider(&server),
        CLIENT_ID,
        ClientCredential::secret(SECRET),
    )
    .clock(clock.clone())
    .jitter(Arc::new(FixedJitter(0.0)))
    .build()
    .unwrap()
    .fetch()
    .await
    .unwrap_err();
    assert!(matches!(error, AuthError::Discovery(_)), "{error:?}");
    let cap = Duration::from_secs(120);
    assert_eq!(error.retry_after(), Some(cap));
    assert_eq!(clock.sleeps(), vec![cap; 2], "two waits before the retries");
    server.verify().await;
}

/// A discovery document naming `token_endpoint` as the token URL.
fn discovery_document(server: &MockServer, token_endpoint: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "issuer": server.uri(),
        "token_endpoint": token_endpoint,
    }))
}

fn discovery_requests(all: &[Request]) -> usize {
    all.iter().filter(|r| r.method.as_str() == "GET").count()
}

/// Issue 11, item 13: the discovery document was kept for the life of the
/// endpoint. It is fetched again once it is 24 hours old.
#[tokio::test]
async fn the_discovery_document_is_fetched_again_after_24_hours() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(discovery_document(
            &server,
            &format!("{}/token", server.uri()),
        ))
        .mount(&server)
        .await;
    mount(&server, token_response(), 3).await;
    let clock = clock();
    let endpoint = TokenEndpoint::builder(
        discovery_provider(&server),
        CLIENT_ID,
        ClientCredential::secret(SECRET),
    )
    .clock(clock.clone())
    .build()
    .unwrap();
    endpoint.fetch().await.unwrap();
    clock.advance(Duration::from_secs(24 * 3600 - 1));
    endpoint.fetch().await.unwrap();
    assert_eq!(discovery_requests(&requests(&server).await), 1);
    clock.advance(Duration::from_secs(1));
    endpoint.fetch().await.unwrap();
    assert_eq!(discovery_requests(&requests(&server).await), 2, "24 h old");
    server.verify().await;
}

/// Issue 11, item 13: a token endpoint that moved (404, or nothing listens
/// any more) was asked again and again at the discovered URL. Such a
/// failure makes the endpoint read the discovery document again, and the
/// same fetch goes on at the URL it names now.
#[tokio::test]
async fn a_token_endpoint_that_moved_is_discovered_again() {
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/token", listener.local_addr().unwrap())
    };
    for (moved_to, old_url) in [("404", "/old-token".to_owned()), ("refused", refused)] {
        let server = MockServer::start().await;
        let old_url = if old_url.starts_with('/') {
            format!("{}{old_url}", server.uri())
        } else {
            old_url
        };
        Mock::given(method("GET"))
            .and(path("/.well-known/openid-configuration"))
            .respond_with(discovery_document(&server, &old_url))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/.well-known/openid-configuration"))
            .respond_with(discovery_document(
                &server,
                &format!("{}/token", server.uri()),
            ))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/old-token"))
            .respond_with(ResponseTemplate::new(404).set_body_string("Not Found"))
            .mount(&server)
            .await;
        mount(&server, token_response(), 2).await;
        let clock = clock();
        let endpoint = TokenEndpoint::builder(
            discovery_provider(&server),
            CLIENT_ID,
            ClientCredential::secret(SECRET),
        )
        .clock(clock.clone())
        .jitter(Arc::new(FixedJitter(0.0)))
        .build()
        .unwrap();

        let token = endpoint.fetch().await;
        assert!(token.is_ok(), "{moved_to}: {token:?}");
        endpoint.fetch().await.unwrap();
        let all = requests(&server).await;
        assert_eq!(discovery_requests(&all), 2, "{moved_to}");
        let old = all.iter().filter(|r| r.url.path() == "/old-token").count();
        assert_eq!(old, usize::from(moved_to == "404"), "{moved_to}");
        server.verify().await;
    }
}

/// Issue 11, item 13: the `issuer` of a discovery document was never
/// compared. With `strict_issuer` (a client key of m2m.toml), it must be
/// the URL the document was fetched from, less
/// `/.well-known/openid-configuration` (OpenID Connect Discovery §4.3).
#[tokio::test]
async fn strict_issuer_refuses_a_document_of_another_issuer() {
    let server = MockServer::start().await;
    let config = |strict: bool| {
        let text = format!(
            "[clients.idp]\nprovider = \"custom\"\n\
             discovery_url = \"{}/.well-known/openid-configuration\"\n\
             client_id = \"{CLIENT_ID}\"\nauth = \"private-key-jwt\"\n\
             private_key_file = \"{}/tests/fixtures/rsa-private.pem\"\nkey_id = \"k1\"\n\
             strict_issuer = {strict}\n",
            server.uri(),
            env!("CARGO_MANIFEST_DIR"),
        );
        m2m::config::Config::parse(&text, "m2m.toml").unwrap()
    };
    let fetch = |strict: bool| {
        let config = config(strict);
        async move {
            config
                .token_endpoint("idp")
                .unwrap()
                .clock(clock())
                .build()
                .unwrap()
                .fetch()
                .await
        }
    };
    for (issuer, strict, accepted) in [
        ("https://elsewhere.example".to_owned(), false, true),
        ("https://elsewhere.example".to_owned(), true, false),
        (format!("{}/", server.uri()), true, false),
        (server.uri(), true, true),
    ] {
        server.reset().await;
        Mock::given(method("GET"))
            .and(path("/.well-known/openid-configuration"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "issuer": issuer,
                "token_endpoint": format!("{}/token", server.uri()),
            })))
            .mount(&server)
            .await;
        mount(&server, token_response(), u64::from(accepted)).await;
        let result = fetch(strict).await;
        assert_eq!(
            result.is_ok(),
            accepted,
            "{issuer} strict={strict}: {result:?}"
        );
        if let Err(error) = result {
            assert!(matches!(error, AuthError::Discovery(_)), "{error:?}");
            let shown = error.to_string();
            assert!(shown.contains(&format!("{issuer:?}")), "{shown}");
            assert!(shown.contains(&format!("{:?}", server.uri())), "{shown}");
            assert!(!error.is_retryable());
        }
        server.verify().await;
    }
}

#[tokio::test]
async fn discovered_plain_http_or_incomplete_documents_are_refused() {
    for (document, expected) in [
        (
            json!({"issuer": "x", "token_endpoint": "http://auth.example.com/token"}),
            "plain http",
        ),
        (
            json!({"token_endpoint": "https://auth.example.com/token"}),
            "`issuer` is missing",
        ),
        (json!({"issuer": "x"}), "`token_endpoint` is missing"),
    ] {
        let server = MockServer::start().await;
        mount_discovery(&server, document, 1).await;
        mount(&server, token_response(), 0).await;
        let error = TokenEndpoint::builder(
            discovery_provider(&server),
            CLIENT_ID,
            ClientCredential::secret(SECRET),
        )
        .clock(clock())
        .build()
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
        assert!(matches!(error, AuthError::Discovery(_)), "{error:?}");
        assert!(error.to_string().contains(expected), "{error}");
        assert!(!error.is_retryable());
        server.verify().await;
    }
}

/// An mTLS alias that cannot be used (plain http to another host) fails
/// only the clients that would use it, those with a certificate: a secret
/// client of the same provider gets its token at `token_endpoint`. (The
/// whole document was refused before, for every client.)
#[tokio::test]
async fn an_unusable_mtls_alias_fails_only_the_clients_with_a_certificate() {
    let server = MockServer::start().await;
    let document = json!({
        "issuer": server.uri(),
        "token_endpoint": token_url(&server).as_str(),
        "mtls_endpoint_aliases": {"token_endpoint": "http://mtls.example.com/token"}
    });
    mount_discovery(&server, document, 2).await;
    mount(&server, token_response(), 1).await;
    let endpoint = |credential| {
        TokenEndpoint::builder(discovery_provider(&server), CLIENT_ID, credential)
            .clock(clock())
            .build()
            .unwrap()
    };

    endpoint(ClientCredential::secret(SECRET))
        .fetch()
        .await
        .unwrap();

    let identity = TlsIdentity::from_pem(
        include_str!("fixtures/loopback-server-cert.pem"),
        &SecretString::from(include_str!("fixtures/loopback-server-key.pem")),
    )
    .unwrap();
    let error = endpoint(ClientCredential::TlsCertificate(identity))
        .fetch()
        .await
        .unwrap_err();
    assert!(matches!(error, AuthError::Discovery(_)), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("`mtls_endpoint_aliases.token_endpoint` cannot be used"),
        "{error}"
    );
    assert!(!error.is_retryable());
    server.verify().await;
}

#[test]
fn non_loopback_http_is_refused_before_any_request() {
    for url in ["http://auth.example.com/token", "http://10.1.2.3/token"] {
        let error = TokenEndpoint::builder(
            Provider::custom_token_url(Url::parse(url).unwrap()),
            CLIENT_ID,
            ClientCredential::secret(SECRET),
        )
        .build()
        .unwrap_err();
        assert_eq!(error, ConfigError::InsecureUrl { url: url.into() });
    }
    let discovery = Provider::custom_discovery(
        Url::parse("http://id.example/.well-known/openid-configuration").unwrap(),
    );
    let error = TokenEndpoint::builder(discovery, CLIENT_ID, ClientCredential::secret(SECRET))
        .build()
        .unwrap_err();
    assert!(matches!(error, ConfigError::InsecureUrl { .. }));
}

// ------------------------------------------------------------------ responses

#[tokio::test]
async fn lenient_token_responses() {
    let server = MockServer::start().await;
    let json_utf8 = "application/json; charset=utf-8";
    let cases: Vec<(String, &str, &str, u64)> = vec![
        (json!({"access_token": TOKEN, "token_type": "bearer", "expires_in": "3600"}).to_string(), json_utf8, "Bearer", 3600),
        (json!({"access_token": TOKEN, "token_type": "BEARER"}).to_string(), "application/json", "Bearer", 900),
        // Never longer than the server said (issue 11, item 6).
        (json!({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 0}).to_string(), json_utf8, "Bearer", 0),
        (json!({"access_token": TOKEN, "token_type": "Bearer", "expires_in": -30}).to_string(), json_utf8, "Bearer", 0),
        (json!({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 45}).to_string(), json_utf8, "Bearer", 45),
        (json!({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 9_999_999_999u64}).to_string(), json_utf8, "Bearer", 86_400),
        (
            json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": TOKEN, "foo": {"bar": [1]}}).to_string(),
            json_utf8,
            "Bearer",
            3599,
        ),
        (
            json!({"access_token": TOKEN, "token_type": "Bearer", "not_before": "1767225600", "expires_on": "1767227400", "resource": "r"}).to_string(),
            json_utf8,
            "Bearer",
            1800,
        ),
    ];
    let clock = clock();
    for (body, content_type, scheme, lifetime) in cases {
        server.reset().await;
        mount(
            &server,
            ResponseTemplate::new(200).set_body_raw(body.clone(), content_type),
            1,
        )
        .await;
        let endpoint = builder(&server, &clock, ClientCredential::secret(SECRET))
            .lifetimes(TokenLifetimes::default().with_default(Duration::from_secs(900)))
            .build()
            .unwrap();
        let token = endpoint
            .fetch()
            .await
            .unwrap_or_else(|e| panic!("{body}: {e}"));
        assert_eq!(
            token.authorization(),
            &format!("{scheme} {TOKEN}"),
            "{body}"
        );
        assert_eq!(
            token.expires_at(),
            clock.now() + Duration::from_secs(lifetime),
            "{body}"
        );
    }
}

async fn fetch_error(
    server: &MockServer,
    response: ResponseTemplate,
    retry: RetryPolicy,
) -> AuthError {
    server.reset().await;
    mount(server, response, 1).await;
    builder(server, &clock(), ClientCredential::secret(SECRET))
        .retry(retry)
        .build()
        .unwrap()
        .fetch()
        .await
        .unwrap_err()
}

#[tokio::test]
async fn unusable_success_answers_are_typed_errors() {
    let server = MockServer::start().await;
    let once = RetryPolicy::no_retries();

    let error = fetch_error(
        &server,
        ResponseTemplate::new(200)
            .set_body_json(json!({"error": "invalid_client", "error_description": "nope"})),
        once,
    )
    .await;
    assert_eq!(error.status(), Some(http::StatusCode::OK));
    assert_eq!(error.oauth_error().unwrap().error, "invalid_client");

    let error = fetch_error(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({"token_type": "Bearer"})),
        once,
    )
    .await;
    assert!(matches!(error, AuthError::InvalidResponse(_)), "{error:?}");
    assert!(error.to_string().contains("no access_token"), "{error}");

    let error = fetch_error(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({"access_token": 42})),
        once,
    )
    .await;
    assert!(error.to_string().contains("not a string"), "{error}");

    let truncated = format!(r#"{{"access_token":"{TOKEN}","token_type":"Bea"#);
    let error = fetch_error(
        &server,
        ResponseTemplate::new(200).set_body_raw(truncated, "application/json"),
        once,
    )
    .await;
    let text = error.to_string();
    assert!(text.contains("truncated"), "{text}");
    assert!(!text.contains(TOKEN), "{text}");

    let error = fetch_error(
        &server,
        ResponseTemplate::new(200).set_body_raw("<html><body>Sign in</body></html>", "text/html"),
        once,
    )
    .await;
    let text = error.to_string();
    assert!(
        text.contains("\"text/html\", not application/json"),
        "{text}"
    );
    assert!(text.contains("Sign in"), "{text}");
    assert!(!error.is_retryable());
}

// --------------------------------------------------------------------- errors

#[tokio::test]
async fn entra_invalid_client_says_to_send_the_secret_value() {
    let server = MockServer::start().await;
    mount(
        &server,
        ResponseTemplate::new(400)
            .set_body_raw(ENTRA_INVALID_CLIENT, "application/json; charset=utf-8"),
        1,
    )
    .await;
    let clock = clock();
    let error = secret_endpoint(&server, &clock).fetch().await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("HTTP 400 Bad Request, invalid_client"),
        "{text}"
    );
    assert!(
        text.contains("send the secret's VALUE, not its secret ID"),
        "{text}"
    );
    assert!(
        text.contains("trace id 60232ebf-feda-4e57-976b-7a74f11a7e00"),
        "{text}"
    );
    assert!(
        text.contains("correlation id 08c3117b-8e36-4114-9bf0-053feb27299c"),
        "{text}"
    );
    let oauth = error.oauth_error().unwrap();
    assert_eq!(oauth.error_codes, vec![7_000_215]);
    assert_eq!(oauth.timestamp.as_deref(), Some("2023-11-13 21:15:44Z"));
    assert_eq!(
        oauth.error_uri.as_deref(),
        Some("https://login.microsoftonline.com/error?code=7000215")
    );
    assert!(!error.is_retryable());
    // Not retried: one request, no wait.
    assert_eq!(requests(&server).await.len(), 1);
    assert!(clock.sleeps().is_empty());
}

#[tokio::test]
async fn invalid_scope_names_the_providers_scope_format() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/live-tenant/oauth2/v2.0/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_scope",
            "error_description": "AADSTS1002012: The provided value for scope api is not valid."
        })))
        .expect(1)
        .mount(&server)
        .await;
    let provider = Provider::nxtport(NxtPortEnvironment::Live, "live-tenant")
        .with_authority_host(Url::parse(&server.uri()).unwrap());
    let error = TokenEndpoint::builder(provider, CLIENT_ID, ClientCredential::secret(SECRET))
        .scopes(["api"])
        .clock(clock())
        .build()
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains(
            "Check the scope: this provider expects exactly one scope, `{client_id}/.default`"
        ),
        "{text}"
    );
    server.verify().await;
}

#[tokio::test]
async fn plain_text_429_and_html_502_keep_status_retry_after_and_an_excerpt() {
    let server = MockServer::start().await;
    let error = fetch_error(
        &server,
        ResponseTemplate::new(429)
            .insert_header("retry-after", "60")
            .set_body_raw("Too many requests. Slow down.", "text/plain"),
        RetryPolicy::no_retries(),
    )
    .await;
    assert_eq!(error.status(), Some(http::StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(error.retry_after(), Some(Duration::from_secs(60)));
    assert!(error.is_retryable());
    let text = error.to_string();
    assert!(text.contains("Throttled: retry after 60 s"), "{text}");
    assert!(text.contains("Too many requests. Slow down."), "{text}");

    let page = format!(
        "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>{}</body></html>",
        "upstream failed ".repeat(100)
    );
    let error = fetch_error(
        &server,
        ResponseTemplate::new(502).set_body_raw(page, "text/html"),
        RetryPolicy::no_retries(),
    )
    .await;
    let AuthError::Rejected(rejected) = &error else {
        panic!("{error:?}")
    };
    let excerpt = rejected.excerpt.as_deref().unwrap();
    assert!(
        excerpt.starts_with("<html> <head><title>502 Bad Gateway</title>"),
        "{excerpt}"
    );
    assert_eq!(excerpt.chars().count(), 201);
    assert!(error.is_retryable());
}

#[tokio::test]
async fn oversized_bodies_are_cut_off() {
    let server = MockServer::start().await;
    let body = format!(r#"{{"access_token":"{}"}}"#, "a".repeat(100_000));
    let error = fetch_error(
        &server,
        ResponseTemplate::new(200).set_body_raw(body, "application/json"),
        RetryPolicy::default(),
    )
    .await;
    let AuthError::Transport(transport) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(
        transport.kind,
        TransportErrorKind::BodyTooLarge { limit: 65_536 }
    );
    assert!(!error.is_retryable());
    assert_eq!(requests(&server).await.len(), 1);
}

/// A chunked answer without `Content-Length` that would go on for 64 MiB
/// (more than loopback socket buffers hold): reading stops at the limit.
#[tokio::test]
async fn streamed_bodies_stop_at_the_limit() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let sent = Arc::new(Mutex::new(0usize));
    let sent_by_server = sent.clone();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = vec![0u8; 4096];
        let _ = socket.read(&mut request).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        if socket.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = format!("2000\r\n{}\r\n", "x".repeat(0x2000));
        for _ in 0..8192 {
            if socket.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
            *sent_by_server.lock().unwrap() += 0x2000;
        }
    });
    let provider =
        Provider::custom_token_url(Url::parse(&format!("http://{address}/token")).unwrap());
    let error = TokenEndpoint::builder(provider, CLIENT_ID, ClientCredential::secret(SECRET))
        .http_settings(HttpSettings::default().with_max_body_bytes(16 * 1024))
        .retry(RetryPolicy::no_retries())
        .clock(clock())
        .build()
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    let AuthError::Transport(transport) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(
        transport.kind,
        TransportErrorKind::BodyTooLarge { limit: 16 * 1024 }
    );
    assert_eq!(transport.status, Some(http::StatusCode::OK));
    assert!(
        *sent.lock().unwrap() < 64 * 1024 * 1024,
        "the whole body was read"
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/elsewhere"))
        .respond_with(token_response())
        .expect(0)
        .mount(&server)
        .await;
    let error = fetch_error(
        &server,
        ResponseTemplate::new(302).insert_header("location", format!("{}/elsewhere", server.uri())),
        RetryPolicy::default(),
    )
    .await;
    assert_eq!(error.status(), Some(http::StatusCode::FOUND));
    assert!(
        error
            .to_string()
            .contains("redirect, which is not followed"),
        "{error}"
    );
    assert!(!error.is_retryable());
    assert_eq!(requests(&server).await.len(), 1);
    server.verify().await;
}

#[tokio::test]
async fn transport_failures_are_typed_and_retried() {
    // Connection refused: a port nobody listens on any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let clock = clock();
    let error = TokenEndpoint::builder(
        Provider::custom_token_url(Url::parse(&format!("http://127.0.0.1:{port}/token")).unwrap()),
        CLIENT_ID,
        ClientCredential::secret(SECRET),
    )
    .clock(clock.clone())
    .jitter(Arc::new(FixedJitter(0.0)))
    .build()
    .unwrap()
    .fetch()
    .await
    .unwrap_err();
    let AuthError::Transport(transport) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(transport.kind, TransportErrorKind::Connect);
    assert_eq!(
        clock.sleeps(),
        vec![Duration::from_millis(250), Duration::from_millis(500)]
    );

    // Timeout: the server answers after 2 s, the client waits 150 ms.
    let server = MockServer::start().await;
    mount(
        &server,
        token_response().set_delay(Duration::from_secs(2)),
        2,
    )
    .await;
    let error = builder(&server, &clock, ClientCredential::secret(SECRET))
        .http_settings(HttpSettings::default().with_timeout(Duration::from_millis(150)))
        .retry(RetryPolicy::default().with_max_attempts(2))
        .build()
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    let AuthError::Transport(transport) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(transport.kind, TransportErrorKind::Timeout);
    assert!(error.is_retryable());
    assert_eq!(requests(&server).await.len(), 2);
}

// -------------------------------------------------------------------- retries

#[tokio::test]
async fn server_errors_are_retried_with_exponential_backoff() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    mount(&server, token_response(), 1).await;
    let clock = clock();
    let token = secret_endpoint(&server, &clock).fetch().await.unwrap();
    assert_eq!(token.authorization(), &format!("Bearer {TOKEN}"));
    assert_eq!(requests(&server).await.len(), 3);
    assert_eq!(
        clock.sleeps(),
        vec![Duration::from_millis(250), Duration::from_millis(500)]
    );
    // The token's lifetime starts when the successful request was sent.
    assert_eq!(token.expires_at(), clock.now() + Duration::from_secs(3600));
}

#[tokio::test]
async fn jitter_shortens_the_backoff() {
    let server = MockServer::start().await;
    mount(&server, ResponseTemplate::new(503), 3).await;
    let clock = clock();
    let error = builder(&server, &clock, ClientCredential::secret(SECRET))
        .jitter(Arc::new(FixedJitter(0.5)))
        .retry(RetryPolicy::default().with_backoff(Duration::from_secs(1), Duration::from_secs(30)))
        .build()
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(
        clock.sleeps(),
        vec![Duration::from_millis(750), Duration::from_millis(1500)]
    );
}

#[tokio::test]
async fn invalid_client_is_not_retried() {
    let server = MockServer::start().await;
    mount(
        &server,
        ResponseTemplate::new(401)
            .insert_header("www-authenticate", "Basic realm=\"token\"")
            .set_body_json(json!({"error": "invalid_client"})),
        1,
    )
    .await;
    let clock = clock();
    let error = secret_endpoint(&server, &clock).fetch().await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("Check the client id and the client secret"),
        "{error}"
    );
    assert_eq!(requests(&server).await.len(), 1);
    assert!(clock.sleeps().is_empty());
    server.verify().await;
}

#[tokio::test]
async fn retry_after_is_honoured_in_seconds_dates_and_capped() {
    let server = MockServer::start().await;
    let clock = clock();
    let in_30_s = httpdate::fmt_http_date(clock.now() + Duration::from_secs(30));
    for (status, retry_after, expected_wait) in [
        (429, "60".to_owned(), 60),
        (503, in_30_s, 30),
        (429, "3600".to_owned(), 120),
    ] {
        server.reset().await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(
                ResponseTemplate::new(status).insert_header("retry-after", retry_after.as_str()),
            )
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        mount(&server, token_response(), 1).await;
        let clock = Arc::new(ManualClock::new(clock.now()));
        secret_endpoint(&server, &clock).fetch().await.unwrap();
        assert_eq!(
            clock.sleeps(),
            vec![Duration::from_secs(expected_wait)],
            "{retry_after}"
        );
        assert_eq!(requests(&server).await.len(), 2);
    }
}

#[tokio::test]
async fn after_a_429_later_fetches_are_held_off_without_a_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "60")
                .set_body_string("throttled"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount(&server, token_response(), 1).await;
    let clock = clock();
    let endpoint = builder(&server, &clock, ClientCredential::secret(SECRET))
        .retry(RetryPolicy::no_retries())
        .build()
        .unwrap();

    let first = endpoint.fetch().await.unwrap_err();
    assert_eq!(first.retry_after(), Some(Duration::from_secs(60)));

    clock.advance(Duration::from_secs(20));
    let held = endpoint.fetch().await.unwrap_err();
    assert!(matches!(held, AuthError::HeldOff { .. }), "{held:?}");
    assert_eq!(held.retry_after(), Some(Duration::from_secs(40)));
    assert!(held.to_string().contains("held off for 40s"), "{held}");
    assert_eq!(requests(&server).await.len(), 1);

    clock.advance(Duration::from_secs(40));
    endpoint.fetch().await.unwrap();
    assert_eq!(requests(&server).await.len(), 2);
    assert!(clock.sleeps().is_empty());
}

// -------------------------------------------------------------------- secrets

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line (TRACE, every target, span events included) and every
/// error text of succeeding and failing runs, with each client-auth
/// method, while servers echo the credentials back: no secret, assertion,
/// Basic credential or token appears.
#[tokio::test]
async fn no_secret_reaches_logs_or_errors() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Tests run in parallel threads without a subscriber; a callsite they
    // register while this one starts can be cached as "never interested".
    // Re-evaluating before each run makes every m2m log line reach us.
    let listen_to_everything = tracing::callsite::rebuild_interest_cache;

    let server = MockServer::start().await;
    let clock = clock();
    let mut texts: Vec<String> = Vec::new();
    let mut assertions: Vec<String> = Vec::new();
    let assertion_file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("no-secret-assertion-{}", std::process::id()));
    std::fs::write(&assertion_file, FEDERATED_ASSERTION).unwrap();
    let key = PrivateKeyJwt::from_pem(
        &SecretString::from(RSA_PRIVATE),
        SigningAlgorithm::PS256,
        KeyIdentifier::x5t_of_certificate_pem(RSA_CERT).unwrap(),
    )
    .unwrap();
    let credentials = [
        (
            ClientCredential::secret(SECRET),
            ClientAuthMethod::ClientSecretPost,
        ),
        (
            ClientCredential::secret(SECRET),
            ClientAuthMethod::ClientSecretBasic,
        ),
        (
            ClientCredential::secret(SECRET),
            ClientAuthMethod::ClientSecretBasicUnencoded,
        ),
        (
            ClientCredential::secret(SECRET),
            ClientAuthMethod::ClientSecretBasicAndPost,
        ),
        (ClientCredential::from(key), ClientAuthMethod::PrivateKeyJwt),
        // A federated assertion read from a file, and a second secret the
        // refused first one fails over to (both sent, both echoed back).
        (
            ClientCredential::assertion_file(&assertion_file),
            ClientAuthMethod::ClientAssertion,
        ),
        (
            ClientSecrets::new(SecretString::from(OTHER_SECRET))
                .second(SecretString::from(SECRET))
                .into(),
            ClientAuthMethod::ClientSecretPost,
        ),
    ];
    for (credential, method_used) in credentials {
        // Success.
        listen_to_everything();
        server.reset().await;
        mount(&server, token_response(), 1).await;
        let endpoint = builder(&server, &clock, credential.clone())
            .client_auth(method_used)
            .build()
            .unwrap();
        let token = endpoint.fetch().await.unwrap();
        texts.push(format!("{token:?} {endpoint:?} {credential:?}"));
        let request = only_request(&server).await;
        if let Some((_, assertion)) = form(&request)
            .into_iter()
            .find(|(k, _)| k == "client_assertion")
        {
            assertions.push(assertion);
        }

        // Failures whose bodies echo everything the client sent.
        let echo = |request: &Request| {
            let body = String::from_utf8_lossy(&request.body).into_owned();
            let decoded: String = form(request)
                .iter()
                .map(|(k, v)| format!("{k}={v} "))
                .collect();
            let authorization = header(request, "authorization").unwrap_or_default();
            let basic = authorization
                .strip_prefix("Basic ")
                .and_then(|b64| STANDARD.decode(b64).ok())
                .map(|pair| String::from_utf8_lossy(&pair).into_owned())
                .unwrap_or_default();
            format!("{body} {decoded} {authorization} {basic}")
        };
        for failure in ["oauth", "html", "ok-html"] {
            listen_to_everything();
            server.reset().await;
            let kind = failure.to_owned();
            let respond = move |request: &Request| {
                let echoed = echo(request);
                match kind.as_str() {
                    "oauth" => ResponseTemplate::new(400).set_body_json(json!({
                        "error": "invalid_client",
                        "error_description": format!("bad credentials: {echoed}"),
                        "trace_id": echoed,
                    })),
                    "html" => ResponseTemplate::new(503)
                        .set_body_raw(format!("<html>{echoed}</html>"), "text/html"),
                    _ => ResponseTemplate::new(200)
                        .set_body_raw(format!("<p>{echoed}</p>"), "text/html"),
                }
            };
            Mock::given(method("POST"))
                .and(path("/token"))
                .respond_with(respond)
                .mount(&server)
                .await;
            let error = builder(&server, &clock, credential.clone())
                .client_auth(method_used)
                .retry(RetryPolicy::default().with_max_attempts(2))
                .build()
                .unwrap()
                .fetch()
                .await
                .unwrap_err();
            texts.push(format!("{error} {error:?}"));
            for request in requests(&server).await {
                if let Some((_, assertion)) = form(&request)
                    .into_iter()
                    .find(|(k, _)| k == "client_assertion")
                {
                    assertions.push(assertion);
                }
            }
        }
    }

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("m2m_token_fetch"),
        "the capture works: {logs}"
    );
    assert!(
        logs.contains("token received") && logs.contains("retrying"),
        "{logs}"
    );
    assert!(logs.contains(CLIENT_ID), "non-secret context is logged");
    assert_eq!(
        assertions.len(),
        10,
        "for each assertion: success, invalid_client, 503 twice, HTML 200"
    );
    assert!(assertions.iter().any(|a| a == FEDERATED_ASSERTION));
    let raw_basic = STANDARD.encode(format!("{CLIENT_ID}:{SECRET}"));
    let rfc_basic = STANDARD.encode(format!("{CLIENT_ID}:{SECRET_FORM_ENCODED}"));
    let mut forbidden = vec![
        SECRET.to_owned(),
        SECRET_FORM_ENCODED.to_owned(),
        TOKEN.to_owned(),
        raw_basic,
        rfc_basic,
        OTHER_SECRET.to_owned(),
        STANDARD.encode(format!("{CLIENT_ID}:{OTHER_SECRET}")),
    ];
    forbidden.extend(assertions);
    let errors = texts.join("\n");
    assert!(
        errors.contains("[redacted]"),
        "echoed secrets were scrubbed: {errors}"
    );
    for secret in &forbidden {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret reached the logs: {secret}\n{logs}"
        );
        assert!(
            !errors.contains(secret.as_str()),
            "a secret reached an error: {secret}\n{errors}"
        );
    }
}

/// RFC 6749 §7.1: a client must not use a token whose type it does not
/// understand. m2m sends Bearer tokens only: any other `token_type` is
/// refused with a typed error naming it, and the token never reaches an API.
#[tokio::test]
async fn a_token_type_other_than_bearer_is_refused_and_never_sent() {
    let server = MockServer::start().await;
    let api = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&api)
        .await;
    for token_type in ["DPoP", "MAC", "N_A", "pop", "Bearer2"] {
        server.reset().await;
        mount(
            &server,
            ResponseTemplate::new(200).set_body_json(json!({
                "access_token": TOKEN, "token_type": token_type, "expires_in": 3600
            })),
            1,
        )
        .await;
        let auth = m2m::auth::Auth::new(
            secret_endpoint(&server, &clock()),
            &m2m::auth::TokenCache::in_memory(),
        );
        let cenda = m2m::apis::cenda_configuration::Client::new(&api.uri(), auth.clone());

        let error = cenda.list_organisations().send().await.unwrap_err();

        let typed = auth.error_of(&error).expect("the typed error");
        assert!(
            matches!(&typed, AuthError::UnsupportedTokenType { token_type: shown } if shown == token_type),
            "{token_type}: {typed:?}"
        );
        let text = typed.to_string();
        assert!(text.contains(&format!("{token_type:?}")), "{text}");
        assert!(text.contains("RFC 6749"), "{text}");
        assert!(!text.contains(TOKEN) && !format!("{typed:?}").contains(TOKEN));
        assert!(!typed.is_retryable());
    }
    let sent: Vec<String> = requests(&api)
        .await
        .iter()
        .filter_map(|request| header(request, "authorization"))
        .collect();
    assert_eq!(
        sent,
        Vec::<String>::new(),
        "no token of another type is sent"
    );
}
