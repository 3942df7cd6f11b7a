//! Mutual TLS against the embedded sandbox (RFC 8705): its HTTPS listener,
//! its CA (trusted through `TokenEndpointBuilder::tls_roots`), its
//! `tls_client_auth` and `self_signed_tls_client_auth` clients,
//! certificate-bound tokens at the mTLS alias of its discovery document,
//! and APIs that accept such a token only with its certificate.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use m2m::apis::nxtsoft_transactions as nxtsoft;
use m2m::auth::{
    Auth, AuthError, ClientAuthMethod, ClientCredential, FetchToken, TlsIdentity, TlsRoots,
    TokenCache, TokenEndpoint,
};
use m2m::provider::Provider;
use m2m::sandbox::Sandbox;
use m2m::sandbox::demo::{self, accepted_transaction};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// The sandbox's mutual-TLS clients: `tls_client_auth` with the
/// certificate its CA issued, `self_signed_tls_client_auth` with the
/// registered self-signed one.
const CLIENTS: [(&str, ClientAuthMethod); 2] = [
    (demo::MTLS_CLIENT_ID, ClientAuthMethod::TlsClientAuth),
    (
        demo::MTLS_SELF_SIGNED_CLIENT_ID,
        ClientAuthMethod::SelfSignedTlsClientAuth,
    ),
];

/// The sandbox's mTLS client `client_id`, found through discovery,
/// presenting `identity` with `method` and trusting the sandbox's CA.
fn endpoint(
    sandbox: &Sandbox,
    (client_id, method): (&str, ClientAuthMethod),
    identity: TlsIdentity,
) -> TokenEndpoint {
    let discovery = Url::parse(&sandbox.oidc_discovery_url()).unwrap();
    TokenEndpoint::builder(
        Provider::custom_discovery(discovery),
        client_id,
        ClientCredential::TlsCertificate(identity),
    )
    .client_auth(method)
    .scopes([demo::SCOPE_TRANSACTIONS_MOCK])
    .tls_roots(TlsRoots::from_pem(sandbox.tls_root_certificate_pem()).unwrap())
    .build()
    .unwrap()
}

/// The certificate and key the sandbox made for `client_id`.
fn sandbox_identity(sandbox: &Sandbox, client_id: &str) -> TlsIdentity {
    let client = if client_id == demo::MTLS_CLIENT_ID {
        sandbox.mtls_client_identity()
    } else {
        sandbox.mtls_self_signed_client_identity()
    };
    TlsIdentity::from_pem(&client.certificate_pem, &client.key_pem).unwrap()
}

/// The claims of a JWT, unverified.
fn claims(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// A reqwest client trusting the sandbox's CA, presenting no certificate.
fn plain_https_client(sandbox: &Sandbox) -> reqwest::Client {
    TlsRoots::from_pem(sandbox.tls_root_certificate_pem())
        .unwrap()
        .apply(reqwest::Client::builder())
        .build()
        .unwrap()
}

#[tokio::test]
async fn both_mtls_clients_get_certificate_bound_tokens_and_call_the_api_over_mtls() {
    let sandbox = Sandbox::start().await.unwrap();
    assert!(sandbox.mtls_base_url().starts_with("https://127.0.0.1:"));
    assert_eq!(
        sandbox_identity(&sandbox, demo::MTLS_CLIENT_ID).thumbprint(),
        sandbox.mtls_client_identity().thumbprint
    );
    for (round, client) in CLIENTS.into_iter().enumerate() {
        let (client_id, method) = client;
        let identity = sandbox_identity(&sandbox, client_id);
        let auth = Auth::new(
            endpoint(&sandbox, client, identity.clone()),
            &TokenCache::in_memory(),
        );
        let token = auth
            .token()
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        let claims = claims(token.secret().expose_secret());
        assert_eq!(claims["client_id"], client_id, "{method}");
        assert_eq!(claims["cnf"]["x5t#S256"], identity.thumbprint(), "{method}");
        assert_eq!(token.token_type().to_string(), "Bearer");

        // The generated client presents the certificate and trusts the
        // sandbox's CA, made by `from_auth` or by `new` (which presented
        // no certificate and knew no CA before): the API accepts the bound
        // token over mutual TLS.
        let url = sandbox.mtls_nxtsoft_api_url();
        let made_by_new = nxtsoft::Client::new(&url, auth.clone());
        let made_by_from_auth = nxtsoft::Client::from_auth(&url, auth).unwrap();
        for api in [made_by_new, made_by_from_auth] {
            let answer = api
                .post_validation_message()
                .body(accepted_transaction())
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method}: {e}"));
            assert_eq!(answer.status(), 200);
        }
        let stats = sandbox.stats();
        assert_eq!(stats.token_requests(), round as u64 + 1, "{method}");
        assert_eq!(stats.tokens_issued, round as u64 + 1, "{method}");
    }
}

#[tokio::test]
async fn a_certificate_bound_token_is_refused_without_its_certificate() {
    let sandbox = Sandbox::start().await.unwrap();
    let identity = sandbox_identity(&sandbox, demo::MTLS_CLIENT_ID);
    let auth = Auth::new(
        endpoint(&sandbox, CLIENTS[0], identity),
        &TokenCache::in_memory(),
    );
    let token = auth.token().await.unwrap();
    let bearer = format!("Bearer {}", token.secret().expose_secret());
    let body = serde_json::to_value(
        nxtsoft::types::TransactionRequest::try_from(accepted_transaction()).unwrap(),
    )
    .unwrap();
    // Over plain HTTP (no TLS at all) and over TLS without a certificate.
    let cases = [
        (reqwest::Client::new(), sandbox.nxtsoft_api_url()),
        (plain_https_client(&sandbox), sandbox.mtls_nxtsoft_api_url()),
    ];
    for (http, base) in cases {
        let answer = http
            .post(format!("{base}/transactions/mock"))
            .header("Authorization", &bearer)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 401, "{base}");
        let challenge = answer.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        assert!(challenge.contains("client certificate"), "{challenge}");
    }
}

#[tokio::test]
async fn a_certificate_the_sandbox_did_not_issue_is_invalid_client_without_key_material() {
    let sandbox = Sandbox::start().await.unwrap();
    // The client's own name, but self-signed: not the sandbox CA's.
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, demo::MTLS_CLIENT_ID);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let certificate = params.self_signed(&key).unwrap();
    let certificate_pem = pem::encode(&pem::Pem::new("CERTIFICATE", certificate.der().to_vec()));
    let key_pem = SecretString::from(pem::encode(&pem::Pem::new(
        "PRIVATE KEY",
        key.serialize_der(),
    )));
    let identity = TlsIdentity::from_pem(&certificate_pem, &key_pem).unwrap();
    let key_body: String = key_pem
        .expose_secret()
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();

    // For both clients: not the sandbox CA's, and not the registered
    // self-signed certificate either.
    for client in CLIENTS {
        let method = client.1;
        let error = endpoint(&sandbox, client, identity.clone())
            .fetch()
            .await
            .expect_err("the sandbox refuses a certificate it did not make");
        let AuthError::Rejected(rejected) = &error else {
            panic!("{method}: expected AuthError::Rejected, got {error:?}");
        };
        assert_eq!(rejected.status, 401, "{method}: {error}");
        assert_eq!(
            error.oauth_error().map(|oauth| oauth.error.as_str()),
            Some("invalid_client"),
            "{method}: {error}"
        );
        for shown in [error.to_string(), format!("{error:?}")] {
            assert!(!shown.contains(&key_body), "the key leaked: {shown}");
        }
    }
    // The CA-issued certificate is not the self-signed client's credential.
    let ca_issued = sandbox_identity(&sandbox, demo::MTLS_CLIENT_ID);
    let error = endpoint(&sandbox, CLIENTS[1], ca_issued)
        .fetch()
        .await
        .expect_err("the CA-issued certificate is not the self-signed client's");
    assert_eq!(
        error.oauth_error().map(|oauth| oauth.error.as_str()),
        Some("invalid_client")
    );
}

#[tokio::test]
async fn the_mtls_token_endpoint_refuses_a_request_without_a_certificate() {
    let sandbox = Sandbox::start().await.unwrap();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", demo::MTLS_CLIENT_ID),
        ("scope", demo::SCOPE_TRANSACTIONS_MOCK),
    ];
    // At the alias without a certificate, and at the plain endpoint.
    let cases = [
        (plain_https_client(&sandbox), sandbox.mtls_token_url()),
        (reqwest::Client::new(), sandbox.oidc_token_url()),
    ];
    for (http, url) in cases {
        let answer = http.post(&url).form(&form).send().await.unwrap();
        assert_eq!(answer.status(), 401, "{url}");
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "{url}: {body}");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("mtls_endpoint_aliases"),
            "{url}: {body}"
        );
    }
}

#[tokio::test]
async fn the_discovery_document_names_the_mtls_alias() {
    let sandbox = Sandbox::start().await.unwrap();
    let document: serde_json::Value = reqwest::get(sandbox.oidc_discovery_url())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        document["mtls_endpoint_aliases"]["token_endpoint"],
        sandbox.mtls_token_url()
    );
    assert_eq!(document["tls_client_certificate_bound_access_tokens"], true);
    for wanted in ["tls_client_auth", "self_signed_tls_client_auth"] {
        assert!(
            document["token_endpoint_auth_methods_supported"]
                .as_array()
                .unwrap()
                .iter()
                .any(|method| method == wanted),
            "{wanted}"
        );
    }
}
