//! DPoP (RFC 9449) in the embedded sandbox: the DPoP demo client's token
//! request needs a proof with the sandbox's nonce, its token is
//! `token_type: DPoP` with `cnf.jkt`, and the APIs take it only as
//! `Authorization: DPoP` with a proof by that key.
#![cfg(feature = "sandbox")]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use m2m::apis::nxtsoft_transactions as nxtsoft;
use m2m::auth::{Auth, ClientCredential, Dpop, DpopKey, TokenCache, TokenEndpoint, TokenType};
use m2m::provider::Provider;
use m2m::sandbox::demo::{self, accepted_transaction};
use m2m::sandbox::{ProviderStyle, Sandbox};
use secrecy::ExposeSecret;
use serde_json::Value;
use url::Url;

fn endpoint(sandbox: &Sandbox, client_id: &str, secret: &str, key: &DpopKey) -> TokenEndpoint {
    TokenEndpoint::builder(
        Provider::custom_token_url(Url::parse(&sandbox.identityserver_token_url()).unwrap()),
        client_id,
        ClientCredential::secret(secret),
    )
    .scopes([demo::SCOPE_TRANSACTIONS_MOCK])
    .dpop(Dpop::new(key.clone()))
    .build()
    .unwrap()
}

fn dpop_auth(sandbox: &Sandbox, key: &DpopKey) -> Auth {
    Auth::new(
        endpoint(sandbox, demo::DPOP_CLIENT_ID, demo::DPOP_CLIENT_SECRET, key),
        &TokenCache::in_memory(),
    )
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

#[tokio::test]
async fn the_dpop_client_gets_a_key_bound_token_through_the_nonce_and_calls_the_api() {
    let sandbox = Sandbox::start().await.unwrap();
    let key = DpopKey::generate().unwrap();
    let auth = dpop_auth(&sandbox, &key);

    let token = auth.token().await.unwrap();

    assert_eq!(token.kind(), TokenType::DPoP);
    let claims = claims_of(token.secret().expose_secret());
    assert_eq!(claims["cnf"]["jkt"], key.thumbprint());
    // The first request had no nonce: 400 use_dpop_nonce, then the retry.
    let stats = sandbox.stats();
    assert_eq!(
        (stats.identityserver_token_requests, stats.tokens_issued),
        (2, 1)
    );

    let api = nxtsoft::Client::new(&sandbox.nxtsoft_api_url(), auth);
    for _ in 0..2 {
        api.post_validation_message()
            .body(accepted_transaction())
            .send()
            .await
            .unwrap();
    }
    let stats = sandbox.stats();
    assert_eq!(stats.nxtsoft_api_requests, 2);
    assert_eq!(
        stats.tokens_issued, 1,
        "the API calls reuse the bound token"
    );
}

#[tokio::test]
async fn the_token_endpoint_refuses_the_dpop_client_without_a_proof_and_names_the_nonce() {
    let sandbox = Sandbox::start().await.unwrap();
    let response = reqwest::Client::new()
        .post(sandbox.identityserver_token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", demo::DPOP_CLIENT_ID),
            ("client_secret", demo::DPOP_CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert!(header(&response, "dpop-nonce").is_some_and(|nonce| !nonce.is_empty()));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_dpop_proof");
    assert_eq!(sandbox.stats().tokens_issued, 0);

    // A wrong secret is still invalid_client, before any proof is looked at.
    let key = DpopKey::generate().unwrap();
    let refused = Auth::new(
        endpoint(&sandbox, demo::DPOP_CLIENT_ID, "not-the-secret", &key),
        &TokenCache::in_memory(),
    )
    .token()
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("invalid_client"), "{refused}");
}

#[tokio::test]
async fn a_proof_on_the_ordinary_sequel_client_binds_its_token_too() {
    let sandbox = Sandbox::start().await.unwrap();
    let key = DpopKey::generate().unwrap();
    let sequel = sandbox.demo_client(ProviderStyle::IdentityServer);
    let auth = Auth::new(
        endpoint(&sandbox, sequel.client_id, sequel.client_secret, &key),
        &TokenCache::in_memory(),
    );
    let token = auth.token().await.unwrap();
    assert_eq!(token.kind(), TokenType::DPoP);
    assert_eq!(
        claims_of(token.secret().expose_secret())["cnf"]["jkt"],
        key.thumbprint()
    );
}

#[tokio::test]
async fn the_api_refuses_a_bound_token_as_bearer_without_a_proof_or_with_another_key() {
    let sandbox = Sandbox::start().await.unwrap();
    let key = DpopKey::generate().unwrap();
    let token = dpop_auth(&sandbox, &key).token().await.unwrap();
    let token = token.secret().expose_secret().to_owned();
    let url = format!("{}/transactions/mock", sandbox.nxtsoft_api_url());
    let body = serde_json::to_value(
        nxtsoft::types::TransactionRequest::try_from(accepted_transaction()).unwrap(),
    )
    .unwrap();
    let http = reqwest::Client::new();

    for (scheme, what) in [("Bearer", "as Bearer"), ("DPoP", "without a proof")] {
        let response = http
            .post(&url)
            .header("authorization", format!("{scheme} {token}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401, "{what}");
        let challenge = header(&response, "www-authenticate").unwrap();
        assert!(
            challenge.starts_with("DPoP ") && challenge.contains(r#"error="invalid_token""#),
            "{what}: {challenge}"
        );
        assert!(!challenge.contains(&token), "{challenge}");
    }

    // Proofs signed by another key (whose `Dpop` has no nonce yet): the
    // first call is answered use_dpop_nonce and sent again with it, refused
    // (invalid_token), the token renewed once (a new one bound to the first
    // key), refused again.
    let other = DpopKey::generate().unwrap();
    let auth = dpop_auth(&sandbox, &key).with_dpop(Dpop::new(other));
    let api = nxtsoft::Client::new(&sandbox.nxtsoft_api_url(), auth);
    sandbox.reset_stats();
    let error = api
        .post_validation_message()
        .body(accepted_transaction())
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.status().map(|s| s.as_u16()), Some(401), "{error}");
    let stats = sandbox.stats();
    assert_eq!(stats.nxtsoft_api_requests, 3);
    assert_eq!(stats.tokens_issued, 2);
}

#[tokio::test]
async fn the_no_token_challenge_offers_bearer_and_dpop() {
    let sandbox = Sandbox::start().await.unwrap();
    let response = reqwest::Client::new()
        .post(format!("{}/transactions/mock", sandbox.nxtsoft_api_url()))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(
        header(&response, "www-authenticate").unwrap(),
        r#"Bearer realm="sandbox", DPoP realm="sandbox", algs="ES256""#
    );
}
