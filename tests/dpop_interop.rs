//! DPoP (RFC 9449) end to end against a real server: panva's oidc-provider
//! (9.x) with DPoP nonces required issues DPoP-bound JWT access tokens to
//! m2m (`cnf.jkt` = the key's thumbprint), and an API that checks the
//! proofs as RFC 9449 §7 says accepts m2m's calls, and refuses a proof made
//! with another key (401).

#[path = "support/oidc_provider.rs"]
mod oidc_provider;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use m2m::apis::cenda_configuration::Client;
use m2m::auth::{Auth, ClientCredential, Dpop, DpopKey, TokenCache, TokenEndpoint, TokenType};
use m2m::provider::Provider;
use oidc_provider::{API_RESOURCE, ClientSpec, OidcProvider, ProviderOptions};
use serde_json::{Value, json};
use url::Url;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const CLIENT_ID: &str = "dpop-client";
const SECRET: &str = "dpop-client-secret";

fn b64_json(part: &str) -> Option<Value> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

fn thumbprint(jwk: &Value) -> Option<String> {
    let canonical = format!(
        r#"{{"crv":"{}","kty":"{}","x":"{}","y":"{}"}}"#,
        jwk["crv"].as_str()?,
        jwk["kty"].as_str()?,
        jwk["x"].as_str()?,
        jwk["y"].as_str()?
    );
    Some(URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes())))
}

/// RFC 9449 §7.1 and §4.3 as an API checks them: the `DPoP` scheme, a proof
/// signed by its `jwk`, that key's thumbprint the token's `cnf.jkt`, `ath`
/// the token's hash, `htm` and `htu` the request's. (The token's own
/// signature is checked by the test against the provider's JWKS.)
fn check_dpop_call(request: &Request, api_uri: &str) -> Result<(), &'static str> {
    let authorization = request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Authorization")?;
    let token = authorization
        .strip_prefix("DPoP ")
        .ok_or("not the DPoP scheme")?;
    let claims = token
        .split('.')
        .nth(1)
        .and_then(b64_json)
        .ok_or("not a JWT")?;
    let jkt = claims["cnf"]["jkt"].as_str().ok_or("no cnf.jkt")?;
    let proof = request
        .headers
        .get("dpop")
        .and_then(|v| v.to_str().ok())
        .ok_or("no proof")?;
    let parts: Vec<&str> = proof.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Err("not a JWS");
    };
    let (header_json, proof_claims) = (
        b64_json(header).ok_or("header")?,
        b64_json(payload).ok_or("claims")?,
    );
    let jwk = &header_json["jwk"];
    let mut point = vec![4u8];
    for coordinate in ["x", "y"] {
        point.extend(
            URL_SAFE_NO_PAD
                .decode(jwk[coordinate].as_str().ok_or("jwk")?)
                .map_err(|_| "jwk")?,
        );
    }
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
        point,
    )
    .verify(
        format!("{header}.{payload}").as_bytes(),
        &URL_SAFE_NO_PAD.decode(signature).map_err(|_| "signature")?,
    )
    .map_err(|_| "bad signature")?;
    if thumbprint(jwk).as_deref() != Some(jkt) {
        return Err("the proof's key is not the token's");
    }
    let ath = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, token.as_bytes()));
    if proof_claims["ath"] != ath.as_str() {
        return Err("ath");
    }
    if proof_claims["htm"] != request.method.as_str()
        || proof_claims["htu"] != format!("{api_uri}{}", request.url.path()).as_str()
    {
        return Err("htm/htu");
    }
    Ok(())
}

async fn checking_api() -> MockServer {
    let api = MockServer::start().await;
    let uri = api.uri();
    Mock::given(method("GET"))
        .respond_with(
            move |request: &Request| {
                match check_dpop_call(request, &uri) {
            Ok(()) => ResponseTemplate::new(200).set_body_json(json!([])),
            Err(reason) => ResponseTemplate::new(401)
                .set_body_json(json!({ "title": "Unauthorized", "status": 401, "detail": reason }))
                .insert_header(
                "WWW-Authenticate",
                format!(r#"DPoP algs="ES256", error="invalid_token", error_description="{reason}""#)
                    .as_str(),
            ),
        }
            },
        )
        .mount(&api)
        .await;
    api
}

async fn provider() -> OidcProvider {
    let options = ProviderOptions {
        dpop_nonces: true,
        ..ProviderOptions::default()
    };
    let clients = [ClientSpec::secret_post(CLIENT_ID, SECRET).default_resource(API_RESOURCE)];
    OidcProvider::start_with(&clients, &options).await
}

fn endpoint(provider: &OidcProvider, key: &DpopKey) -> TokenEndpoint {
    TokenEndpoint::builder(
        Provider::custom_token_url(Url::parse(provider.token_url()).unwrap()),
        CLIENT_ID,
        ClientCredential::secret(SECRET),
    )
    .dpop(Dpop::new(key.clone()))
    .build()
    .unwrap()
}

#[tokio::test]
async fn oidc_provider_issues_a_key_bound_token_with_nonces_and_the_api_accepts_the_proofs() {
    let provider = provider().await;
    let api = checking_api().await;
    let key = DpopKey::generate().unwrap();
    let auth = Auth::new(endpoint(&provider, &key), &TokenCache::in_memory());

    let token = auth.token().await.unwrap_or_else(|error| {
        panic!("{error}\noidc-provider:\n{}", provider.logs());
    });

    assert_eq!(token.kind(), TokenType::DPoP);
    let claims = provider
        .verify_access_token(
            secrecy::ExposeSecret::expose_secret(token.secret()),
            API_RESOURCE,
        )
        .await;
    assert_eq!(claims["cnf"]["jkt"], key.thumbprint());
    let client = Client::new_with_client(&api.uri(), reqwest::Client::new(), auth);
    client.list_organisations().send().await.unwrap();
    client.list_organisations().send().await.unwrap();
    assert_eq!(api.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_proof_made_with_another_key_is_refused_by_the_api() {
    let provider = provider().await;
    let api = checking_api().await;
    let bound_to = DpopKey::generate().unwrap();
    let other = DpopKey::generate().unwrap();
    // Tokens bound to one key, proofs signed with another.
    let auth = Auth::new(endpoint(&provider, &bound_to), &TokenCache::in_memory())
        .with_dpop(Dpop::new(other));
    let client = Client::new_with_client(&api.uri(), reqwest::Client::new(), auth);

    let error = client.list_organisations().send().await.unwrap_err();

    assert_eq!(error.status().map(|s| s.as_u16()), Some(401), "{error}");
    // Renewed once (a new token, bound to the same key), refused again.
    assert_eq!(api.received_requests().await.unwrap().len(), 2);
}
