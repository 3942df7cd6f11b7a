//! `AuthMiddleware` (feature `middleware`): hand-written reqwest code gets
//! the same token handling as the generated clients, against a real
//! wiremock server, DPoP-bound tokens included.

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

// DPoP (RFC 9449) through the middleware: an `Auth` over an endpoint with a
// DPoP key, a wiremock token endpoint and a wiremock API on an origin of
// its own; time is a `ManualClock` shared by the endpoint, the cache and
// the handle.

mod dpop {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use aws_lc_rs::digest;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use m2m::auth::clock::{Clock, FixedJitter, ManualClock};
    use m2m::auth::{
        Auth, AuthMiddleware, CacheSettings, ClientCredential, Dpop, DpopKey, MemoryStore,
        TokenCache, TokenEndpoint,
    };
    use m2m::provider::Provider;
    use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
    use serde_json::{Value, json};
    use url::Url;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    const SECRET: &str = "dpop-mw-secret-61c2";
    const USE_NONCE: &str = r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#;
    const INVALID_TOKEN: &str = r#"DPoP algs="ES256", error="invalid_token""#;

    fn b64(bytes: impl AsRef<[u8]>) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn ath(token: &str) -> String {
        b64(digest::digest(&digest::SHA256, token.as_bytes()))
    }

    /// RFC 7638 thumbprint of a P-256 JWK, computed here (not by m2m).
    fn thumbprint(jwk: &Value) -> String {
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        b64(digest::digest(&digest::SHA256, canonical.as_bytes()))
    }

    /// The header and claims of the request's `DPoP` proof, checked to be
    /// a compact ES256 JWS whose signature verifies with its own `jwk`.
    fn proof_of(request: &Request) -> (Value, Value) {
        let proof = request.headers["dpop"].to_str().unwrap();
        let parts: Vec<&str> = proof.split('.').collect();
        assert_eq!(parts.len(), 3, "a compact JWS");
        let json = |part: &str| -> Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
        };
        let (header, claims) = (json(parts[0]), json(parts[1]));
        let mut point = vec![4u8];
        for coordinate in ["x", "y"] {
            point.extend(
                URL_SAFE_NO_PAD
                    .decode(header["jwk"][coordinate].as_str().unwrap())
                    .unwrap(),
            );
        }
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
            point,
        )
        .verify(
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
        )
        .expect("the proof verifies with its jwk");
        (header, claims)
    }

    /// A JWT-shaped DPoP access token bound (`cnf.jkt`) to `jkt`.
    fn bound_token(serial: usize, jkt: &str) -> String {
        format!(
            "{}.{}.{}",
            b64(r#"{"alg":"RS256","typ":"at+jwt"}"#),
            b64(json!({ "sub": "dpop-mw-client", "n": serial, "cnf": { "jkt": jkt } }).to_string()),
            b64("not-checked-signature")
        )
    }

    /// The `cnf.jkt` of a token made by [`bound_token`].
    fn jkt_of(token: &str) -> String {
        let claims: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        claims["cnf"]["jkt"].as_str().unwrap().to_owned()
    }

    /// A token endpoint that issues a new DPoP token, bound to the key of
    /// the request's proof, at each request; the tokens are kept in order.
    struct TokenServer {
        server: MockServer,
        issued: Arc<Mutex<Vec<String>>>,
    }

    impl TokenServer {
        async fn start() -> Self {
            let server = MockServer::start().await;
            let issued = Arc::new(Mutex::new(Vec::new()));
            let record = issued.clone();
            let serial = AtomicUsize::new(0);
            Mock::given(method("POST"))
                .and(path("/token"))
                .respond_with(move |request: &Request| {
                    let (header, _) = proof_of(request);
                    let token = bound_token(
                        serial.fetch_add(1, Ordering::SeqCst),
                        &thumbprint(&header["jwk"]),
                    );
                    record.lock().unwrap().push(token.clone());
                    ResponseTemplate::new(200).set_body_json(json!({
                        "access_token": token, "token_type": "DPoP", "expires_in": 3600
                    }))
                })
                .mount(&server)
                .await;
            Self { server, issued }
        }

        fn issued(&self) -> Vec<String> {
            self.issued.lock().unwrap().clone()
        }

        async fn requests(&self) -> Vec<Request> {
            self.server.received_requests().await.unwrap()
        }
    }

    /// The middleware over an `Auth` whose endpoint has `key`, every layer
    /// on `clock`.
    fn client(
        tokens: &TokenServer,
        key: &DpopKey,
        clock: &Arc<ManualClock>,
    ) -> ClientWithMiddleware {
        let url = Url::parse(&format!("{}/token", tokens.server.uri())).unwrap();
        let endpoint = TokenEndpoint::builder(
            Provider::custom_token_url(url),
            "dpop-mw-client",
            ClientCredential::secret(SECRET),
        )
        .dpop(Dpop::new(key.clone()))
        .clock(clock.clone())
        .build()
        .unwrap();
        let cache = TokenCache::new(
            Arc::new(MemoryStore::default()),
            clock.clone(),
            Arc::new(FixedJitter(0.0)),
            CacheSettings::default(),
        );
        let auth = Auth::new(endpoint, &cache).with_clock(clock.clone());
        ClientBuilder::new(reqwest::Client::new())
            .with(AuthMiddleware::new(auth))
            .build()
    }

    fn iat_of(clock: &ManualClock) -> u64 {
        clock
            .now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    /// Every call goes out as `Authorization: DPoP <token>` with a proof of
    /// its own: `typ`, `alg`, the key of the token request as `jwk` (the
    /// token's `cnf.jkt`), `htm`, `htu` without the query, `ath` of the
    /// token, `iat` from the injected clock and a fresh `jti`.
    #[tokio::test]
    async fn dpop_calls_carry_the_dpop_scheme_and_a_fresh_proof_each() {
        let tokens = TokenServer::start().await;
        let api = MockServer::start().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
            .mount(&api)
            .await;
        let key = DpopKey::generate().unwrap();
        let clock = Arc::new(ManualClock::at_fixed_date());
        let http = client(&tokens, &key, &clock);

        let calls = [
            ("GET", format!("{}/things/a?page=2&q=x", api.uri())),
            ("GET", format!("{}/things/a?page=3", api.uri())),
            ("POST", format!("{}/things", api.uri())),
        ];
        let mut iats = Vec::new();
        for (verb, url) in &calls {
            let request = match *verb {
                "GET" => http.get(url),
                _ => http.post(url).body("payload"),
            };
            assert_eq!(request.send().await.unwrap().status(), 200);
            iats.push(iat_of(&clock));
            clock.advance(std::time::Duration::from_secs(7));
        }

        let token_requests = tokens.requests().await;
        assert_eq!(token_requests.len(), 1, "one token for every call");
        let (token_header, token_claims) = proof_of(&token_requests[0]);
        assert!(token_claims.get("ath").is_none());
        let token_jkt = thumbprint(&token_header["jwk"]);
        assert_eq!(token_jkt, key.thumbprint());
        let token = tokens.issued().remove(0);
        assert_eq!(jkt_of(&token), token_jkt);

        let sent = api.received_requests().await.unwrap();
        assert_eq!(sent.len(), calls.len());
        let mut jtis = HashSet::new();
        jtis.insert(token_claims["jti"].as_str().unwrap().to_owned());
        for ((request, (verb, url)), iat) in sent.iter().zip(&calls).zip(&iats) {
            assert_eq!(
                request.headers["authorization"].to_str().unwrap(),
                format!("DPoP {token}"),
                "{verb} {url}"
            );
            let (header, claims) = proof_of(request);
            assert_eq!(header["typ"], "dpop+jwt");
            assert_eq!(header["alg"], "ES256");
            assert!(header["jwk"].get("d").is_none(), "no private part");
            assert_eq!(thumbprint(&header["jwk"]), token_jkt, "the token's key");
            assert_eq!(claims["htm"], *verb);
            let mut htu = Url::parse(url).unwrap();
            htu.set_query(None);
            assert_eq!(claims["htu"], htu.as_str(), "{url}");
            assert!(!claims["htu"].as_str().unwrap().contains('?'));
            assert_eq!(claims["ath"], ath(&token));
            assert_eq!(claims["iat"], *iat);
            assert!(claims.get("nonce").is_none());
            let jti = claims["jti"].as_str().unwrap();
            assert!(jti.len() >= 16, "{jti}");
            assert!(jtis.insert(jti.to_owned()), "jti {jti} used twice");
        }
        assert_eq!(sent[2].body, b"payload");
    }

    /// An API that answers 401 `DPoP error="use_dpop_nonce"` with a
    /// `DPoP-Nonce` gets the request once more, its proof carrying the
    /// nonce (same token, no new token request); one that keeps asking gets
    /// it exactly once more and its 401 is returned.
    #[tokio::test]
    async fn a_use_dpop_nonce_401_is_retried_once_with_the_nonce() {
        let tokens = TokenServer::start().await;
        let api = MockServer::start().await;
        Mock::given(path("/wants-nonce"))
            .respond_with(|request: &Request| {
                let (_, claims) = proof_of(request);
                if claims["nonce"] == "n1" {
                    ResponseTemplate::new(200).set_body_string("ok")
                } else {
                    ResponseTemplate::new(401)
                        .insert_header("WWW-Authenticate", USE_NONCE)
                        .insert_header("DPoP-Nonce", "n1")
                }
            })
            .mount(&api)
            .await;
        let key = DpopKey::generate().unwrap();
        let clock = Arc::new(ManualClock::at_fixed_date());
        let http = client(&tokens, &key, &clock);

        let response = http
            .post(format!("{}/wants-nonce?x=1", api.uri()))
            .body("payload")
            .send()
            .await
            .unwrap();

        assert_eq!(response.status(), 200);
        assert_eq!(tokens.requests().await.len(), 1);
        let token = tokens.issued().remove(0);
        let sent = api.received_requests().await.unwrap();
        assert_eq!(sent.len(), 2, "sent once more, exactly");
        let proofs: Vec<Value> = sent.iter().map(|request| proof_of(request).1).collect();
        assert!(proofs[0].get("nonce").is_none());
        assert_eq!(proofs[1]["nonce"], "n1");
        assert_ne!(proofs[0]["jti"], proofs[1]["jti"]);
        for (request, claims) in sent.iter().zip(&proofs) {
            assert_eq!(
                request.headers["authorization"].to_str().unwrap(),
                format!("DPoP {token}")
            );
            assert_eq!(claims["htm"], "POST");
            assert_eq!(claims["htu"], format!("{}/wants-nonce", api.uri()).as_str());
            assert_eq!(claims["ath"], ath(&token));
            assert_eq!(request.body, b"payload");
        }

        // An API that asks for a new nonce every time: one retry, then its
        // 401 is the answer (no loop, no new token).
        let nagging = MockServer::start().await;
        let next = AtomicUsize::new(2);
        Mock::given(wiremock::matchers::any())
            .respond_with(move |_: &Request| {
                ResponseTemplate::new(401)
                    .insert_header("WWW-Authenticate", USE_NONCE)
                    .insert_header(
                        "DPoP-Nonce",
                        format!("n{}", next.fetch_add(1, Ordering::SeqCst)).as_str(),
                    )
            })
            .mount(&nagging)
            .await;
        let response = http
            .get(format!("{}/always", nagging.uri()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let sent = nagging.received_requests().await.unwrap();
        assert_eq!(sent.len(), 2);
        assert_eq!(proof_of(&sent[1]).1["nonce"], "n2");
        assert_eq!(tokens.requests().await.len(), 1);
    }

    /// An API that gives the next nonce with every answer, a success
    /// included (one-time nonces): each call carries the nonce of the
    /// answer before, so of three calls only the first is sent twice.
    #[tokio::test]
    async fn the_nonce_an_api_gives_with_a_success_is_used_on_the_next_call() {
        let tokens = TokenServer::start().await;
        let api = MockServer::start().await;
        let current = AtomicUsize::new(1);
        Mock::given(path("/one-time-nonces"))
            .respond_with(move |request: &Request| {
                let now = current.load(Ordering::SeqCst);
                if proof_of(request).1["nonce"] == format!("n{now}").as_str() {
                    current.store(now + 1, Ordering::SeqCst);
                    ResponseTemplate::new(200)
                        .insert_header("DPoP-Nonce", format!("n{}", now + 1).as_str())
                } else {
                    ResponseTemplate::new(401)
                        .insert_header("WWW-Authenticate", USE_NONCE)
                        .insert_header("DPoP-Nonce", format!("n{now}").as_str())
                }
            })
            .mount(&api)
            .await;
        let key = DpopKey::generate().unwrap();
        let clock = Arc::new(ManualClock::at_fixed_date());
        let http = client(&tokens, &key, &clock);

        for _ in 0..3 {
            let response = http
                .get(format!("{}/one-time-nonces", api.uri()))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }

        let nonces: Vec<Value> = api
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(|request| proof_of(request).1["nonce"].clone())
            .collect();
        assert_eq!(nonces, [Value::Null, json!("n1"), json!("n2"), json!("n3")]);
    }

    /// 401 `DPoP error="invalid_token"`: the token is renewed once (a
    /// second token request) and the request sent again with the DPoP
    /// scheme, the new token and a proof of its own (`ath` of the new
    /// token, a new `jti`).
    #[tokio::test]
    async fn a_dpop_invalid_token_renews_once_and_resends_with_the_dpop_scheme() {
        let tokens = TokenServer::start().await;
        let api = MockServer::start().await;
        let first_token = Arc::new(Mutex::new(None::<String>));
        let seen = first_token.clone();
        Mock::given(wiremock::matchers::any())
            .respond_with(move |request: &Request| {
                let authorization = request.headers["authorization"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                let mut first = seen.lock().unwrap();
                let first = first.get_or_insert(authorization.clone());
                if *first == authorization {
                    ResponseTemplate::new(401).insert_header("WWW-Authenticate", INVALID_TOKEN)
                } else {
                    ResponseTemplate::new(200).set_body_string("ok")
                }
            })
            .mount(&api)
            .await;
        let key = DpopKey::generate().unwrap();
        let clock = Arc::new(ManualClock::at_fixed_date());
        let http = client(&tokens, &key, &clock);

        let response = http
            .put(format!("{}/things/7?v=2", api.uri()))
            .body("payload")
            .send()
            .await
            .unwrap();

        assert_eq!(response.status(), 200);
        assert_eq!(tokens.requests().await.len(), 2, "renewed once");
        let issued = tokens.issued();
        assert_ne!(issued[0], issued[1]);
        let sent = api.received_requests().await.unwrap();
        assert_eq!(sent.len(), 2);
        let mut jtis = HashSet::new();
        for (request, token) in sent.iter().zip(&issued) {
            assert_eq!(
                request.headers["authorization"].to_str().unwrap(),
                format!("DPoP {token}")
            );
            let (header, claims) = proof_of(request);
            assert_eq!(thumbprint(&header["jwk"]), key.thumbprint());
            assert_eq!(jkt_of(token), key.thumbprint());
            assert_eq!(claims["htm"], "PUT");
            assert_eq!(claims["htu"], format!("{}/things/7", api.uri()).as_str());
            assert_eq!(claims["ath"], ath(token));
            assert!(jtis.insert(claims["jti"].as_str().unwrap().to_owned()));
            assert_eq!(request.body, b"payload");
        }
    }
}
