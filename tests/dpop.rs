//! DPoP (RFC 9449) on the wire, against wiremock servers: the proofs of the
//! token request and of API calls through the generated clients (claims,
//! header names), the server nonces of both, renewal on a DPoP
//! `invalid_token`, the Bearer answer to a DPoP request, the cache key, and
//! no token, proof or key in any log line or error.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use m2m::apis::cenda_configuration::Client;
use m2m::auth::{
    Auth, AuthError, CacheKey, ClientCredential, Dpop, DpopKey, FetchToken, TokenCache,
    TokenEndpoint,
};
use m2m::provider::Provider;
use serde_json::{Value, json};
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TOKEN: &str = "dpop-bound-token-4f1c";
const OTHER_TOKEN: &str = "dpop-bound-token-9a2e";
const SECRET: &str = "client-secret-7d3b";

fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

/// The header and claims of the request's `DPoP` proof (checked to be a
/// signed ES256 JWT whose signature verifies with its own `jwk`).
fn proof_of(request: &Request) -> Option<(Value, Value)> {
    let proof = request.headers.get("dpop")?.to_str().unwrap();
    let parts: Vec<&str> = proof.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS");
    let json = |part: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    let (header, claims) = (json(parts[0]), json(parts[1]));
    let jwk = &header["jwk"];
    let mut point = vec![4u8];
    for coordinate in ["x", "y"] {
        point.extend(
            URL_SAFE_NO_PAD
                .decode(jwk[coordinate].as_str().unwrap())
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
    Some((header, claims))
}

fn nonce_of(request: &Request) -> Option<String> {
    proof_of(request).and_then(|(_, claims)| claims["nonce"].as_str().map(str::to_owned))
}

fn token_answer(token: &str, token_type: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": token, "token_type": token_type, "expires_in": 3600
    }))
}

fn endpoint(server: &MockServer, dpop: Option<Dpop>) -> TokenEndpoint {
    let url = Url::parse(&format!("{}/token", server.uri())).unwrap();
    let builder = TokenEndpoint::builder(
        Provider::custom_token_url(url),
        "dpop-client",
        ClientCredential::secret(SECRET),
    );
    match dpop {
        Some(dpop) => builder.dpop(dpop),
        None => builder,
    }
    .build()
    .unwrap()
}

fn cenda(api: &MockServer, auth: Auth) -> Client {
    Client::new_with_client(&api.uri(), reqwest::Client::new(), auth)
}

/// A token endpoint that answers every request with `TOKEN` as a DPoP
/// token.
async fn dpop_token_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(token_answer(TOKEN, "DPoP"))
        .mount(&server)
        .await;
    server
}

/// A handle over `server`'s token endpoint with a new DPoP key, its own
/// cache.
fn dpop_auth(server: &MockServer) -> Auth {
    let dpop = Dpop::new(DpopKey::generate().unwrap());
    Auth::new(endpoint(server, Some(dpop)), &TokenCache::in_memory())
}

async fn requests_to(server: &MockServer, wanted: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|request| request.url.path() == wanted)
        .collect()
}

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

/// The token endpoint and the API both want their nonce (odd characters
/// included); the token request and each API call carry a fresh proof with
/// the claims of RFC 9449 §4.2, and no log line shows a token or a proof.
#[tokio::test]
async fn token_requests_and_api_calls_carry_proofs_and_take_the_servers_nonces() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();

    const TOKEN_NONCE: &str = "tn-1!#$%&'()*+,-./:;<=>?@[]^_`{|}~";
    const API_NONCE: &str = "an-1";
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(move |request: &Request| {
            if nonce_of(request).as_deref() == Some(TOKEN_NONCE) {
                token_answer(TOKEN, "DPoP").insert_header("DPoP-Nonce", TOKEN_NONCE)
            } else {
                ResponseTemplate::new(400)
                    .insert_header("DPoP-Nonce", TOKEN_NONCE)
                    .set_body_json(json!({
                        "error": "use_dpop_nonce",
                        "error_description": "Authorization server requires nonce in DPoP proof"
                    }))
            }
        })
        .mount(&server)
        .await;
    // The API on an origin of its own: nonces are kept per origin.
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(move |request: &Request| {
            if nonce_of(request).as_deref() == Some(API_NONCE) {
                ResponseTemplate::new(200).set_body_json(json!([]))
            } else {
                ResponseTemplate::new(401)
                    .insert_header("WWW-Authenticate", r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#)
                    .insert_header("DPoP-Nonce", API_NONCE)
            }
        })
        .mount(&api)
        .await;
    let key = DpopKey::generate().unwrap();
    let auth = Auth::new(
        endpoint(&server, Some(Dpop::new(key.clone()))),
        &TokenCache::in_memory(),
    );
    let client = cenda(&api, auth.clone());

    client.list_organisations().send().await.unwrap();
    client.list_organisations().send().await.unwrap();

    // The token request: sent without a nonce, then once more with it.
    let token_requests = requests_to(&server, "/token").await;
    assert_eq!(token_requests.len(), 2);
    let token_url = format!("{}/token", server.uri());
    let mut jtis = Vec::new();
    for (request, nonce) in token_requests.iter().zip([None, Some(TOKEN_NONCE)]) {
        let (header, claims) = proof_of(request).expect("a DPoP proof");
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["jwk"], *key.public_jwk());
        assert!(header["jwk"].get("d").is_none());
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], token_url.as_str());
        assert!(claims.get("ath").is_none(), "no token yet");
        assert_eq!(claims["nonce"].as_str(), nonce);
        assert!(claims["iat"].as_u64().is_some());
        jtis.push(claims["jti"].as_str().unwrap().to_owned());
    }
    // The API calls: DPoP scheme, `ath`, `htu` without the query; the first
    // is sent again with the API's nonce, the second has it at once.
    let api_requests: Vec<Request> = api
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|request| request.method.as_str() == "GET")
        .collect();
    assert_eq!(api_requests.len(), 3);
    for (request, nonce) in api_requests
        .iter()
        .zip([None, Some(API_NONCE), Some(API_NONCE)])
    {
        assert_eq!(
            request.headers["authorization"],
            format!("DPoP {TOKEN}").as_str()
        );
        let (_, claims) = proof_of(request).expect("a DPoP proof");
        assert_eq!(claims["htm"], "GET");
        // The URL less its query (wiremock names the host `localhost`).
        assert_eq!(
            claims["htu"],
            format!("{}{}", api.uri(), request.url.path()).as_str()
        );
        assert_eq!(claims["ath"], ath(TOKEN));
        assert_eq!(claims["nonce"].as_str(), nonce);
        jtis.push(claims["jti"].as_str().unwrap().to_owned());
    }
    let unique: std::collections::HashSet<&String> = jtis.iter().collect();
    assert_eq!(unique.len(), jtis.len(), "a fresh jti on every proof");

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(!logs.contains(TOKEN), "{logs}");
    assert!(!logs.contains(SECRET), "{logs}");
    assert!(!logs.contains("eyJ"), "a proof or JWT in the logs:\n{logs}");
    assert!(!format!("{auth:?} {key:?}").contains(key.public_jwk()["x"].as_str().unwrap()));
}

/// Two token requests sent together without a nonce both get the server's
/// nonce, and each is sent once more with it, though the other kept it
/// first. (Before, only the request that kept it first was sent again: the
/// other failed with `use_dpop_nonce`.)
#[tokio::test]
async fn concurrent_token_requests_each_retry_with_the_nonce_another_kept_first() {
    const NONCE: &str = "tn-shared";
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(|request: &Request| {
            if nonce_of(request).as_deref() == Some(NONCE) {
                token_answer(TOKEN, "DPoP")
            } else {
                // Late, so that both requests are sent before either answer.
                ResponseTemplate::new(400)
                    .insert_header("DPoP-Nonce", NONCE)
                    .set_body_json(json!({"error": "use_dpop_nonce"}))
                    .set_delay(std::time::Duration::from_millis(300))
            }
        })
        .mount(&server)
        .await;
    let endpoint = endpoint(&server, Some(Dpop::new(DpopKey::generate().unwrap())));

    let (first, second) = tokio::join!(endpoint.fetch(), endpoint.fetch());

    first.unwrap();
    second.unwrap();
    let mut nonces: Vec<Option<String>> = requests_to(&server, "/token")
        .await
        .iter()
        .map(nonce_of)
        .collect();
    nonces.sort();
    assert_eq!(nonces, [None, None, Some(NONCE.into()), Some(NONCE.into())]);
}

/// An API that echoes the request's headers: the answer recorded for
/// output (what `m2m call` prints) shows neither the token nor any of the
/// proofs, the nonce retry's included. (The proofs were shown before.)
#[tokio::test]
async fn a_recorded_answer_shows_no_proof_an_api_echoed() {
    let server = dpop_token_server().await;
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(|request: &Request| {
            let echo = json!({
                "authorization": request.headers["authorization"].to_str().unwrap(),
                "dpop": request.headers["dpop"].to_str().unwrap(),
            });
            if nonce_of(request).is_some() {
                ResponseTemplate::new(200).set_body_json(echo)
            } else {
                ResponseTemplate::new(401)
                    .insert_header("WWW-Authenticate", r#"DPoP error="use_dpop_nonce""#)
                    .insert_header("DPoP-Nonce", "an-1")
                    .set_body_json(echo)
            }
        })
        .mount(&api)
        .await;
    let auth = dpop_auth(&server);

    let (_, tap) = m2m::apis::exchange::tapped(cenda(&api, auth).list_organisations().send()).await;

    let body = String::from_utf8(tap.exchange.expect("the answer").body).unwrap();
    assert!(body.contains("[redacted]"), "{body}");
    assert!(!body.contains(TOKEN), "{body}");
    assert!(!body.contains("eyJ"), "a proof in {body}");
    let sent = api.received_requests().await.unwrap();
    assert_eq!(sent.len(), 2, "sent once more with the nonce");
    for request in &sent {
        let proof = request.headers["dpop"].to_str().unwrap();
        assert!(!body.contains(proof), "{body}");
    }
}

/// An API that gives the next nonce with every answer, a success included
/// (RFC 9449 §8.2: one-time nonces): a proof with the current nonce gets 200
/// and the next one, any other proof 401 `use_dpop_nonce` with the current.
fn rotating_nonce_api(body: Value) -> impl Fn(&Request) -> ResponseTemplate + Send + Sync {
    let current = AtomicUsize::new(1);
    move |request: &Request| {
        let now = current.load(Ordering::SeqCst);
        if nonce_of(request) == Some(format!("n{now}")) {
            current.store(now + 1, Ordering::SeqCst);
            ResponseTemplate::new(200)
                .insert_header("DPoP-Nonce", format!("n{}", now + 1).as_str())
                .set_body_json(body.clone())
        } else {
            ResponseTemplate::new(401)
                .insert_header("WWW-Authenticate", r#"DPoP error="use_dpop_nonce""#)
                .insert_header("DPoP-Nonce", format!("n{now}").as_str())
        }
    }
}

/// The nonce an API gives with a success is the one the next call carries:
/// of three calls, only the first is sent twice. (The answer to the nonce
/// retry was not read for its nonce: every call after the first was sent
/// twice, the stale nonce refused each time.)
#[tokio::test]
async fn the_nonce_an_api_gives_with_a_success_is_used_on_the_next_call() {
    let server = dpop_token_server().await;
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(rotating_nonce_api(json!([])))
        .mount(&api)
        .await;
    let auth = dpop_auth(&server);
    let client = cenda(&api, auth);

    for _ in 0..3 {
        client.list_organisations().send().await.unwrap();
    }

    let nonces: Vec<Option<String>> = api
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(nonce_of)
        .collect();
    let expected = [None, Some("n1"), Some("n2"), Some("n3")].map(|n| n.map(str::to_owned));
    assert_eq!(nonces, expected);
}

/// 401 `DPoP error="invalid_token"`: the token is renewed and the call sent
/// once more, with a new proof whose `ath` is the new token's.
#[tokio::test]
async fn a_dpop_invalid_token_renews_and_resends_with_a_new_proof() {
    let server = MockServer::start().await;
    let issued = Arc::new(AtomicUsize::new(0));
    let counter = issued.clone();
    Mock::given(path("/token"))
        .respond_with(move |_: &Request| {
            let token = [TOKEN, OTHER_TOKEN][counter.fetch_add(1, Ordering::SeqCst).min(1)];
            token_answer(token, "DPoP")
        })
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(|request: &Request| {
            if request.headers["authorization"] == format!("DPoP {OTHER_TOKEN}").as_str() {
                ResponseTemplate::new(200).set_body_json(json!([]))
            } else {
                ResponseTemplate::new(401).insert_header(
                    "WWW-Authenticate",
                    r#"DPoP algs="ES256", error="invalid_token""#,
                )
            }
        })
        .mount(&server)
        .await;
    let dpop = Dpop::new(DpopKey::generate().unwrap());
    let client = cenda(
        &server,
        Auth::new(endpoint(&server, Some(dpop)), &TokenCache::in_memory()),
    );

    client.list_organisations().send().await.unwrap();

    let api_requests: Vec<Request> = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|request| request.method.as_str() == "GET")
        .collect();
    assert_eq!(api_requests.len(), 2);
    let aths: Vec<Value> = api_requests
        .iter()
        .map(|request| proof_of(request).unwrap().1["ath"].clone())
        .collect();
    assert_eq!(aths, [json!(ath(TOKEN)), json!(ath(OTHER_TOKEN))]);
    assert_eq!(issued.load(Ordering::SeqCst), 2);
}

/// A Bearer answer to a DPoP token request is refused with a typed error
/// (and nothing reaches the API) unless the configuration allows it; then
/// it goes out as Bearer, without a proof.
#[tokio::test]
async fn a_bearer_answer_to_a_dpop_request_is_used_only_when_allowed() {
    let server = MockServer::start().await;
    Mock::given(path("/token"))
        .respond_with(token_answer(TOKEN, "Bearer"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    let key = DpopKey::generate().unwrap();

    let strict = Auth::new(
        endpoint(&server, Some(Dpop::new(key.clone()))),
        &TokenCache::in_memory(),
    );
    let error = cenda(&server, strict.clone())
        .list_organisations()
        .send()
        .await
        .unwrap_err();
    let typed = strict.error_of(&error).expect("the typed error");
    assert!(
        matches!(&typed, AuthError::NotSenderConstrained { token_type } if token_type == "Bearer"),
        "{typed:?}"
    );
    assert!(typed.to_string().contains("dpop_allow_bearer"), "{typed}");
    assert!(!typed.to_string().contains(TOKEN));
    assert!(requests_to(&server, "/api/Organisation").await.is_empty());
    let gets = |requests: Vec<Request>| {
        requests
            .into_iter()
            .filter(|r| r.method.as_str() == "GET")
            .collect::<Vec<_>>()
    };
    assert!(gets(server.received_requests().await.unwrap()).is_empty());

    let lenient = Auth::new(
        endpoint(&server, Some(Dpop::new(key).allow_bearer(true))),
        &TokenCache::in_memory(),
    );
    cenda(&server, lenient)
        .list_organisations()
        .send()
        .await
        .unwrap();
    let sent = gets(server.received_requests().await.unwrap());
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].headers["authorization"],
        format!("Bearer {TOKEN}").as_str()
    );
    assert!(!sent[0].headers.contains_key("dpop"));
}

/// Tokens bound to one key are filed apart from another key's and from
/// unbound ones: a cache never hands a token to a holder of another key.
#[tokio::test]
async fn the_keys_thumbprint_is_part_of_the_cache_key() {
    let server = MockServer::start().await;
    let first = DpopKey::generate().unwrap();
    let second = DpopKey::generate().unwrap();
    let key_of = |dpop: Option<Dpop>| CacheKey::for_endpoint(endpoint(&server, dpop).identity());
    let unbound = key_of(None);
    let one = key_of(Some(Dpop::new(first.clone())));
    let again = key_of(Some(Dpop::new(first.clone())));
    let two = key_of(Some(Dpop::new(second)));
    assert_eq!(one, again);
    assert_ne!(one, unbound);
    assert_ne!(one, two);
    assert_eq!(
        one.key_binding(),
        Some(format!("dpop-jkt:{}", first.thumbprint()).as_str())
    );
}
