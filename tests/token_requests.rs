//! The exact token request of every provider and every client-auth method,
//! under insta snapshots: method, path, the headers that matter, the form
//! body. Credentials are redacted but their shape stays visible (which id a
//! Basic header carries, and how it is encoded; the claims of an assertion).
//! The body is shown as sent, still form-encoded.
//! Every provider is pointed at a loopback wiremock server through its URL
//! overrides; the manual clock makes `iat`/`exp` stable, and `jti` is redacted.

use std::fmt::Write;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use m2m::auth::clock::{FixedJitter, ManualClock};
use m2m::auth::{
    ClientAuthMethod, ClientCredential, FetchToken, KeyIdentifier, PrivateKeyJwt, SigningAlgorithm,
    TokenEndpoint,
};
use m2m::provider::{ApitureEnvironment, NxtPortEnvironment, Provider};
use secrecy::SecretString;
use serde_json::json;
use url::Url;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SECRET: &str = "p@ss:w+rd/%&=";
const RSA_PRIVATE: &str = include_str!("fixtures/rsa-private.pem");
const RSA_CERT: &str = include_str!("fixtures/rsa-cert.pem");
const EC_PRIVATE: &str = include_str!("fixtures/ec-private.pem");
/// A client id with characters that RFC 6749 §2.3.1 encodes in Basic.
const ODD_CLIENT_ID: &str = "m2m client@test";

struct Case {
    provider: Provider,
    client_id: &'static str,
    credential: ClientCredential,
    method: Option<ClientAuthMethod>,
    scopes: Option<&'static str>,
}

impl Case {
    fn secret(provider: Provider, client_id: &'static str) -> Self {
        Self {
            provider,
            client_id,
            credential: ClientCredential::secret(SECRET),
            method: None,
            scopes: None,
        }
    }

    fn scopes(mut self, scopes: &'static str) -> Self {
        self.scopes = Some(scopes);
        self
    }

    fn method(mut self, method: ClientAuthMethod) -> Self {
        self.method = Some(method);
        self
    }
}

/// Runs one token request against a fresh server and renders what it got.
async fn recorded(server: &MockServer, case: Case) -> String {
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "issued-token", "token_type": "Bearer", "expires_in": 3600
        })))
        .expect(1)
        .mount(server)
        .await;
    let mut builder = TokenEndpoint::builder(case.provider, case.client_id, case.credential)
        .clock(Arc::new(ManualClock::at_fixed_date()))
        .jitter(Arc::new(FixedJitter(0.0)));
    if let Some(method) = case.method {
        builder = builder.client_auth(method);
    }
    if let Some(scopes) = case.scopes {
        builder = builder.scopes([scopes]);
    }
    let endpoint = builder.build().unwrap();
    endpoint.fetch().await.unwrap();
    let requests = server.received_requests().await.unwrap_or_default();
    server.verify().await;
    render(&requests).replace(&server.uri(), "{server}")
}

fn render(requests: &[Request]) -> String {
    let mut out = String::new();
    for (i, request) in requests.iter().enumerate() {
        if i > 0 {
            out.push_str("\n---\n");
        }
        let target = match request.url.query() {
            Some(query) => format!("{}?{query}", request.url.path()),
            None => request.url.path().to_owned(),
        };
        writeln!(out, "{} {target}", request.method).unwrap();
        for name in ["accept", "content-type", "authorization"] {
            let value = request
                .headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned());
            let shown = match (name, value) {
                (_, None) => "-".to_owned(),
                ("authorization", Some(value)) => redact_authorization(&value),
                (_, Some(value)) => value,
            };
            writeln!(out, "{name}: {shown}").unwrap();
        }
        if !request.body.is_empty() {
            // The form body as sent (still form-encoded), one pair a line.
            out.push('\n');
            let body = std::str::from_utf8(&request.body).unwrap();
            for pair in body.split('&') {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                let shown = match key {
                    "client_secret" => "[redacted]".to_owned(),
                    "client_assertion" => describe_assertion(value),
                    _ => value.to_owned(),
                };
                writeln!(out, "{key}={shown}").unwrap();
            }
        }
    }
    out
}

/// `Basic [redacted base64 of 'client-id:…']`: the id part (as encoded on
/// the wire) stays visible, the secret does not.
fn redact_authorization(value: &str) -> String {
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return "[redacted, not Basic]".to_owned();
    };
    let pair = String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap();
    let (id, secret) = pair.split_once(':').unwrap();
    assert!(!secret.is_empty());
    format!("Basic [redacted base64 of '{id}:…']")
}

/// The assertion's header and claims (`jti` redacted), not the signature.
fn describe_assertion(jwt: &str) -> String {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "a signed JWT");
    let decode = |part: &str| -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    let header = decode(parts[0]);
    let mut claims = decode(parts[1]);
    assert_eq!(claims["jti"].as_str().unwrap().len(), 36);
    claims["jti"] = json!("[random]");
    format!("[signed JWT, redacted] header={header} claims={claims}")
}

fn at(server: &MockServer, path: &str) -> Url {
    Url::parse(&format!("{}{path}", server.uri())).unwrap()
}

async fn mount_discovery(server: &MockServer, discovery_path: &str, token_path: &str) {
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issuer": server.uri(),
            "token_endpoint": at(server, token_path),
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"]
        })))
        .expect(1)
        .named(discovery_path.to_owned())
        .mount(server)
        .await;
}

fn key(algorithm: SigningAlgorithm, pem: &str, key_id: KeyIdentifier) -> ClientCredential {
    PrivateKeyJwt::from_pem(&SecretString::from(pem), algorithm, key_id)
        .unwrap()
        .into()
}

// ------------------------------------------------------------------ providers

#[tokio::test]
async fn provider_nxtport_live() {
    let server = MockServer::start().await;
    let provider = Provider::nxtport(NxtPortEnvironment::Live, "nxtport-live-tenant")
        .with_authority_host(at(&server, "/"));
    let text = recorded(
        &server,
        Case::secret(provider, "0b9f6d1c-5e8a-4c1e-9d2b-7a0e3f4c5d6e"),
    )
    .await;
    insta::assert_snapshot!("provider_nxtport_live", text);
}

#[tokio::test]
async fn provider_nxtport_staging() {
    let server = MockServer::start().await;
    let provider = Provider::nxtport(NxtPortEnvironment::Staging, "nxtport-staging-tenant")
        .with_authority_host(at(&server, "/"));
    let text = recorded(
        &server,
        Case::secret(provider, "5a1c2d3e-0000-4000-8000-00000000beef"),
    )
    .await;
    insta::assert_snapshot!("provider_nxtport_staging", text);
}

#[tokio::test]
async fn provider_nxtsoft() {
    let server = MockServer::start().await;
    let provider = Provider::nxtsoft().with_token_url(at(&server, "/oauth2/token"));
    let text = recorded(
        &server,
        Case::secret(provider, "16ec4na9av8011ibj9hskf9umf"),
    )
    .await;
    insta::assert_snapshot!("provider_nxtsoft", text);
}

#[tokio::test]
async fn provider_nxtsoft_with_scope() {
    let server = MockServer::start().await;
    let provider = Provider::nxtsoft().with_token_url(at(&server, "/oauth2/token"));
    let case = Case::secret(provider, "16ec4na9av8011ibj9hskf9umf").scopes("transactions/mock");
    let text = recorded(&server, case).await;
    insta::assert_snapshot!("provider_nxtsoft_with_scope", text);
}

#[tokio::test]
async fn provider_cenda() {
    let server = MockServer::start().await;
    let provider = Provider::cenda(
        "cenda-permissions-tenant",
        "0f70ea2d-6371-4acc-9035-31a22887a8a4",
    )
    .with_authority_host(at(&server, "/"));
    let text = recorded(
        &server,
        Case::secret(provider, "c3d4e5f6-0000-4000-8000-0000000a11ce"),
    )
    .await;
    insta::assert_snapshot!("provider_cenda", text);
}

#[tokio::test]
async fn provider_cenda_with_certificate() {
    let server = MockServer::start().await;
    let provider = Provider::cenda(
        "cenda-permissions-tenant",
        "0f70ea2d-6371-4acc-9035-31a22887a8a4",
    )
    .with_authority_host(at(&server, "/"));
    let x5t = KeyIdentifier::x5t_of_certificate_pem(RSA_CERT).unwrap();
    let case = Case {
        credential: key(SigningAlgorithm::PS256, RSA_PRIVATE, x5t),
        ..Case::secret(provider, "c3d4e5f6-0000-4000-8000-0000000a11ce")
    };
    let text = recorded(&server, case).await;
    insta::assert_snapshot!("provider_cenda_with_certificate", text);
}

#[tokio::test]
async fn provider_sequel() {
    let server = MockServer::start().await;
    let provider = Provider::sequel(at(&server, "/Authentication"));
    let case = Case::secret(provider, "app.client").scopes("app.scope1 app.scope2");
    let text = recorded(&server, case).await;
    insta::assert_snapshot!("provider_sequel", text);
}

#[tokio::test]
async fn provider_apiture() {
    let server = MockServer::start().await;
    mount_discovery(
        &server,
        "/oidc/.well-known/openid-configuration",
        "/oidc/token",
    )
    .await;
    let provider = Provider::apiture(ApitureEnvironment::Production)
        .with_discovery_url(at(&server, "/oidc/.well-known/openid-configuration"));
    let case = Case::secret(provider, "apiture-client").scopes("banking/read banking/write");
    let text = recorded(&server, case).await;
    insta::assert_snapshot!("provider_apiture", text);
}

#[tokio::test]
async fn provider_custom_token_url() {
    let server = MockServer::start().await;
    let provider =
        Provider::custom_token_url(at(&server, "/realms/m2m/protocol/openid-connect/token"));
    let case = Case::secret(provider, "custom-client").scopes("read write");
    let text = recorded(&server, case).await;
    insta::assert_snapshot!("provider_custom_token_url", text);
}

#[tokio::test]
async fn provider_custom_discovery() {
    let server = MockServer::start().await;
    mount_discovery(&server, "/.well-known/openid-configuration", "/oauth/token").await;
    let provider = Provider::custom_discovery(at(&server, "/.well-known/openid-configuration"));
    let case = Case::secret(provider, "custom-client").scopes("read");
    let text = recorded(&server, case).await;
    insta::assert_snapshot!("provider_custom_discovery", text);
}

// --------------------------------------------------------------------- methods

async fn method_case(credential: ClientCredential, method: ClientAuthMethod) -> String {
    let server = MockServer::start().await;
    let case = Case {
        credential,
        ..Case::secret(
            Provider::custom_token_url(at(&server, "/token")),
            ODD_CLIENT_ID,
        )
        .method(method)
        .scopes("api.read")
    };
    recorded(&server, case).await
}

#[tokio::test]
async fn method_client_secret_post() {
    let text = method_case(
        ClientCredential::secret(SECRET),
        ClientAuthMethod::ClientSecretPost,
    )
    .await;
    insta::assert_snapshot!("method_client_secret_post", text);
}

#[tokio::test]
async fn method_client_secret_basic() {
    let text = method_case(
        ClientCredential::secret(SECRET),
        ClientAuthMethod::ClientSecretBasic,
    )
    .await;
    insta::assert_snapshot!("method_client_secret_basic", text);
}

#[tokio::test]
async fn method_client_secret_basic_unencoded() {
    let text = method_case(
        ClientCredential::secret(SECRET),
        ClientAuthMethod::ClientSecretBasicUnencoded,
    )
    .await;
    insta::assert_snapshot!("method_client_secret_basic_unencoded", text);
}

#[tokio::test]
async fn method_client_secret_basic_and_post() {
    let text = method_case(
        ClientCredential::secret(SECRET),
        ClientAuthMethod::ClientSecretBasicAndPost,
    )
    .await;
    insta::assert_snapshot!("method_client_secret_basic_and_post", text);
}

#[tokio::test]
async fn method_private_key_jwt_rs256_kid() {
    let credential = key(
        SigningAlgorithm::RS256,
        RSA_PRIVATE,
        KeyIdentifier::Kid("rsa-key-1".into()),
    );
    let text = method_case(credential, ClientAuthMethod::PrivateKeyJwt).await;
    insta::assert_snapshot!("method_private_key_jwt_rs256_kid", text);
}

#[tokio::test]
async fn method_private_key_jwt_ps256_x5t() {
    let x5t = KeyIdentifier::x5t_of_certificate_pem(RSA_CERT).unwrap();
    let credential = key(SigningAlgorithm::PS256, RSA_PRIVATE, x5t);
    let text = method_case(credential, ClientAuthMethod::PrivateKeyJwt).await;
    insta::assert_snapshot!("method_private_key_jwt_ps256_x5t", text);
}

#[tokio::test]
async fn method_private_key_jwt_es256_kid() {
    let credential = key(
        SigningAlgorithm::ES256,
        EC_PRIVATE,
        KeyIdentifier::Kid("ec-key-1".into()),
    );
    let text = method_case(credential, ClientAuthMethod::PrivateKeyJwt).await;
    insta::assert_snapshot!("method_private_key_jwt_es256_kid", text);
}
