//! Mutual TLS client authentication (RFC 8705) end to end against a real
//! server: panva's oidc-provider (9.x) over HTTPS, with a CA, a server
//! certificate and client certificates made here with rcgen. m2m finds the
//! token endpoint's mTLS alias in discovery (RFC 8705 §5) and uses it; a
//! `tls_client_auth` client (certificate from the CA, registered subject DN)
//! and a `self_signed_tls_client_auth` client (registered certificate in its
//! `jwks`) get certificate-bound JWT access tokens whose `cnf.x5t#S256` is
//! the identity's thumbprint; a certificate the server does not accept comes
//! back as `AuthError::Rejected` with `invalid_client`, showing no key; and
//! API calls through m2m's `Auth` present the certificate the token is bound
//! to, to an API that checks the binding (RFC 8705 §3).

#[path = "support/oidc_provider.rs"]
mod oidc_provider;

use std::sync::{Arc, Mutex};

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use m2m::auth::{
    ApiSettings, Auth, AuthError, ClientAuthMethod, ClientCredential, FetchToken, HttpSettings,
    TlsIdentity, TlsIdentityFiles, TlsRoots, TokenCache, TokenEndpoint, TokenHttpClient,
};
use m2m::provider::Provider;
use oidc_provider::{API_RESOURCE, ClientSpec, OidcProvider, ProviderOptions, ProviderTls};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::aws_lc_rs as rustls_aws_lc;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use url::Url;

const CA_CLIENT: &str = "mtls-ca-client";
const CA_CLIENT_DN: &str = "CN=m2m-mtls-client,O=m2m tests";
const SELF_SIGNED_CLIENT: &str = "mtls-self-signed-client";

fn pem(tag: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(tag, der.to_vec()))
}

fn dn(organization: &str, common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, organization);
    name.push(DnType::CommonName, common_name);
    name
}

/// A certificate and its PKCS#8 key, as PEM (what a user's files hold).
struct Leaf {
    certificate_pem: String,
    certificate_der: Vec<u8>,
    key_pem: SecretString,
    key: KeyPair,
}

impl Leaf {
    fn identity(&self) -> TlsIdentity {
        TlsIdentity::from_pem(&self.certificate_pem, &self.key_pem).expect("a usable identity")
    }

    /// The public key as an EC JWK (rcgen's default key is P-256).
    fn public_jwk(&self) -> Value {
        let raw = self.key.public_key_raw();
        assert_eq!((raw.len(), raw[0]), (65, 4), "an uncompressed P-256 point");
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&raw[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&raw[33..]),
        })
    }
}

fn leaf(
    params: CertificateParams,
    sign: impl FnOnce(&CertificateParams, &KeyPair) -> rcgen::Certificate,
) -> Leaf {
    let key = KeyPair::generate().expect("a P-256 key");
    let certificate = sign(&params, &key);
    Leaf {
        certificate_pem: pem("CERTIFICATE", certificate.der()),
        certificate_der: certificate.der().to_vec(),
        key_pem: SecretString::from(pem("PRIVATE KEY", &key.serialize_der())),
        key,
    }
}

/// A CA made for one test run.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = dn("m2m tests", name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("a P-256 key");
        Self {
            issuer: CertifiedIssuer::self_signed(params, key).expect("a CA certificate"),
        }
    }

    fn pem(&self) -> String {
        pem("CERTIFICATE", self.issuer.der())
    }

    fn issue(&self, mut params: CertificateParams) -> Leaf {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf(params, |params, key| {
            params.signed_by(key, &self.issuer).expect("a certificate")
        })
    }

    /// The server's certificate, for the IP 127.0.0.1.
    fn server(&self) -> Leaf {
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name = dn("m2m tests", "127.0.0.1");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    fn client(&self, subject: DistinguishedName) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = subject;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }
}

fn self_signed_client(common_name: &str) -> Leaf {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = dn("m2m tests", common_name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    leaf(params, |params, key| {
        params.self_signed(key).expect("a certificate")
    })
}

/// The provider over HTTPS (certificate from `ca`) with the mTLS alias on,
/// knowing `clients`.
async fn start(ca: &TestCa, clients: &[ClientSpec]) -> OidcProvider {
    let server = ca.server();
    let options = ProviderOptions {
        tls: Some(ProviderTls {
            cert_pem: server.certificate_pem.clone(),
            key_pem: server.key_pem.expose_secret().to_owned(),
            ca_pem: ca.pem(),
            mtls_alias: true,
        }),
        ..ProviderOptions::default()
    };
    OidcProvider::start_with(clients, &options).await
}

/// m2m's endpoint for `client_id`, found through discovery, presenting
/// `identity` and trusting the provider's CA.
fn endpoint(
    provider: &OidcProvider,
    client_id: &str,
    identity: &TlsIdentity,
    method: ClientAuthMethod,
) -> TokenEndpoint {
    let http = TokenHttpClient::from_builder(
        identity.apply(provider.client_builder()),
        &HttpSettings::default(),
    )
    .unwrap();
    let discovery = Url::parse(&provider.discovery_url()).unwrap();
    TokenEndpoint::builder(
        Provider::custom_discovery(discovery),
        client_id,
        ClientCredential::TlsCertificate(identity.clone()),
    )
    .client_auth(method)
    .scopes(["api:read"])
    .resource(API_RESOURCE)
    .http_client(http)
    .build()
    .unwrap()
}

/// Token requests the provider saw on its mTLS alias listener.
fn alias_token_requests(provider: &OidcProvider) -> usize {
    provider
        .logs()
        .lines()
        .filter(|line| *line == "mtls-alias: POST /token")
        .count()
}

/// The two clients: `tls_client_auth` with [`CA_CLIENT_DN`], and
/// `self_signed_tls_client_auth` registering `self_signed`.
fn registered(self_signed: &Leaf) -> Vec<ClientSpec> {
    vec![
        ClientSpec::tls_client_auth(CA_CLIENT, CA_CLIENT_DN),
        ClientSpec::self_signed_tls_client_auth(
            SELF_SIGNED_CLIENT,
            &self_signed.public_jwk(),
            &self_signed.certificate_der,
        ),
    ]
}

#[tokio::test]
async fn both_mtls_methods_get_certificate_bound_tokens_at_the_alias() {
    let ca = TestCa::new("m2m test CA");
    let ca_client = ca.client(dn("m2m tests", "m2m-mtls-client"));
    let self_signed = self_signed_client("m2m-self-signed-client");
    let provider = start(&ca, &registered(&self_signed)).await;
    let alias = provider
        .mtls_token_url()
        .expect("the provider publishes mtls_endpoint_aliases.token_endpoint")
        .to_owned();
    assert_ne!(alias, provider.token_url(), "the alias is another URL");
    assert!(provider.issuer().starts_with("https://127.0.0.1:"));

    let cases = [
        (CA_CLIENT, &ca_client, ClientAuthMethod::TlsClientAuth),
        (
            SELF_SIGNED_CLIENT,
            &self_signed,
            ClientAuthMethod::SelfSignedTlsClientAuth,
        ),
    ];
    for (round, (client_id, certificate, method)) in cases.into_iter().enumerate() {
        let identity = certificate.identity();
        let endpoint = endpoint(&provider, client_id, &identity, method);
        let token = endpoint
            .fetch()
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}\n{}", provider.logs()));
        let claims = provider
            .verify_access_token(token.secret().expose_secret(), API_RESOURCE)
            .await;
        assert_eq!(claims["client_id"], client_id, "{method}");
        assert_eq!(
            claims["cnf"]["x5t#S256"],
            identity.thumbprint(),
            "{method}: the token is bound to the certificate m2m presented"
        );
        // RFC 8705 §5: the request went to the alias, not to token_endpoint.
        assert_eq!(alias_token_requests(&provider), round + 1, "{method}");
    }
}

#[tokio::test]
async fn a_certificate_the_server_does_not_accept_is_invalid_client_without_key_material() {
    let ca = TestCa::new("m2m test CA");
    let self_signed = self_signed_client("m2m-self-signed-client");
    let provider = start(&ca, &registered(&self_signed)).await;
    // Right subject DN, wrong CA; and a self-signed certificate other than
    // the registered one.
    let other_ca = TestCa::new("another CA");
    let foreign = other_ca.client(dn("m2m tests", "m2m-mtls-client"));
    let unregistered = self_signed_client("m2m-self-signed-client");
    let cases = [
        (CA_CLIENT, &foreign, ClientAuthMethod::TlsClientAuth),
        (
            SELF_SIGNED_CLIENT,
            &unregistered,
            ClientAuthMethod::SelfSignedTlsClientAuth,
        ),
    ];
    for (client_id, certificate, method) in cases {
        let identity = certificate.identity();
        let error = endpoint(&provider, client_id, &identity, method)
            .fetch()
            .await
            .expect_err("the server refuses this certificate");
        let AuthError::Rejected(rejected) = &error else {
            panic!("{method}: expected AuthError::Rejected, got {error:?}");
        };
        assert_eq!(rejected.status, 401, "{method}: {error}");
        assert_eq!(
            error.oauth_error().map(|oauth| oauth.error.as_str()),
            Some("invalid_client"),
            "{method}: {error}"
        );
        assert!(!error.is_retryable(), "{method}");
        let key_body: String = certificate
            .key_pem
            .expose_secret()
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        for shown in [
            error.to_string(),
            format!("{error:?}"),
            format!("{identity:?}"),
        ] {
            assert!(!shown.contains("PRIVATE KEY"), "{method}: {shown}");
            for chunk in key_body.as_bytes().chunks(16) {
                let chunk = std::str::from_utf8(chunk).unwrap();
                assert!(!shown.contains(chunk), "{method}: key material in {shown}");
            }
        }
    }
    assert!(
        provider
            .logs()
            .contains("client certificate was not verified"),
        "the CA check refused the foreign certificate:\n{}",
        provider.logs()
    );
    assert!(
        provider
            .logs()
            .contains("unregistered client certificate provided"),
        "{}",
        provider.logs()
    );
}

/// An HTTPS API on 127.0.0.1 (certificate from `ca`) that asks for a client
/// certificate chaining to `ca` and checks RFC 8705 §3: the bearer token's
/// `cnf.x5t#S256` is the SHA-256 of the certificate on the connection (200),
/// or not (401). Records the thumbprint of each certificate presented.
struct BoundTokenApi {
    port: u16,
    presented: Arc<Mutex<Vec<String>>>,
}

impl BoundTokenApi {
    async fn start(ca: &TestCa) -> Self {
        let server = ca.server();
        let crypto = Arc::new(rustls_aws_lc::default_provider());
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(ca.issuer.der().to_vec()))
            .expect("the CA");
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crypto.clone())
            .allow_unauthenticated()
            .build()
            .expect("a client verifier");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server.key.serialize_der()));
        let config = ServerConfig::builder_with_provider(crypto)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![CertificateDer::from(server.certificate_der)], key)
            .expect("the server certificate and key");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let port = listener.local_addr().expect("an address").port();
        let presented = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&presented);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, record) = (acceptor.clone(), Arc::clone(&record));
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let presented = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|certificate| {
                            URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, certificate))
                        });
                    let mut stream = BufReader::new(stream);
                    let (mut line, mut bound_to) = (String::new(), None);
                    loop {
                        line.clear();
                        match stream.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => {
                                let lower = line.to_ascii_lowercase();
                                if let Some(token) = lower
                                    .starts_with("authorization: bearer ")
                                    .then(|| line["authorization: bearer ".len()..].trim())
                                {
                                    bound_to = token
                                        .split('.')
                                        .nth(1)
                                        .and_then(|claims| URL_SAFE_NO_PAD.decode(claims).ok())
                                        .and_then(|claims| {
                                            serde_json::from_slice::<Value>(&claims).ok()
                                        })
                                        .and_then(|claims| {
                                            claims["cnf"]["x5t#S256"].as_str().map(str::to_owned)
                                        });
                                }
                            }
                        }
                    }
                    if let Some(thumbprint) = &presented {
                        record.lock().unwrap().push(thumbprint.clone());
                    }
                    let status = if bound_to.is_some() && bound_to == presented {
                        "200 OK"
                    } else {
                        "401 Unauthorized"
                    };
                    let mut stream = stream.into_inner();
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self { port, presented }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/things", self.port)
    }
}

#[tokio::test]
async fn api_calls_through_auth_present_the_certificate_the_token_is_bound_to() {
    let ca = TestCa::new("m2m test CA");
    let ca_client = ca.client(dn("m2m tests", "m2m-mtls-client"));
    let self_signed = self_signed_client("m2m-self-signed-client");
    let provider = start(&ca, &registered(&self_signed)).await;
    let api = BoundTokenApi::start(&ca).await;
    let identity = ca_client.identity();
    let auth = Auth::new(
        endpoint(
            &provider,
            CA_CLIENT,
            &identity,
            ClientAuthMethod::TlsClientAuth,
        ),
        &TokenCache::in_memory(),
    );
    assert_eq!(auth.api_settings().tls_identity.as_ref(), Some(&identity));
    let url = Url::parse(&api.url()).unwrap();
    // m2m's API client (the token endpoint's certificate added), trusting the CA.
    let client = auth
        .api_settings()
        .http_client_from(provider.client_builder())
        .unwrap();
    let mut request = reqwest::Request::new(reqwest::Method::GET, url.clone());
    auth.authorize(&mut request).await.unwrap();
    let response = client.execute(request).await.unwrap();
    assert_eq!(response.status(), 200, "{}", provider.logs());
    assert_eq!(*api.presented.lock().unwrap(), [identity.thumbprint()]);

    // The same token over a connection without the certificate: refused,
    // so the 200 above is the certificate binding at work.
    let bare = ApiSettings::default()
        .http_client_from(provider.client_builder())
        .unwrap();
    let mut request = reqwest::Request::new(reqwest::Method::GET, url);
    auth.authorize(&mut request).await.unwrap();
    assert_eq!(bare.execute(request).await.unwrap().status(), 401);
}

/// Certificate files renewed on disk, as cert-manager does (a new key and
/// certificate, the same subject): the next token request presents the new
/// certificate and gets a token bound to it, and the generated client's API
/// calls present the new one from then on. (The files were read once: the
/// old certificate went on being presented, and the token bound to it.)
#[tokio::test]
async fn a_certificate_renewed_on_disk_is_presented_from_the_next_token_request_on() {
    let ca = TestCa::new("m2m test CA");
    let self_signed = self_signed_client("m2m-self-signed-client");
    let provider = start(&ca, &registered(&self_signed)).await;
    let api = BoundTokenApi::start(&ca).await;
    let dir = tempfile::tempdir().unwrap();
    let (certificate_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let install = |leaf: &Leaf| {
        std::fs::write(&certificate_file, &leaf.certificate_pem).unwrap();
        std::fs::write(&key_file, leaf.key_pem.expose_secret()).unwrap();
    };
    let first = ca.client(dn("m2m tests", "m2m-mtls-client"));
    install(&first);
    let files = TlsIdentityFiles::load(&certificate_file, &key_file).unwrap();
    let endpoint = TokenEndpoint::builder(
        Provider::custom_discovery(Url::parse(&provider.discovery_url()).unwrap()),
        CA_CLIENT,
        files.into(),
    )
    .client_auth(ClientAuthMethod::TlsClientAuth)
    .scopes(["api:read"])
    .resource(API_RESOURCE)
    .tls_roots(TlsRoots::from_pem(&ca.pem()).unwrap())
    .build()
    .unwrap();
    let auth = Auth::new(endpoint, &TokenCache::in_memory());
    let base_url = api.url().trim_end_matches("/things").to_owned();
    let cenda = m2m::apis::cenda_configuration::Client::new(&base_url, auth.clone());
    let bound_to = |token: &m2m::auth::AccessToken| {
        let claims = token.secret().expose_secret().split('.').nth(1).unwrap();
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
        claims["cnf"]["x5t#S256"].as_str().unwrap().to_owned()
    };
    // The API answers 200 with no body when the binding holds (which the
    // generated code then fails to parse), 401 when it does not.
    let call_status = || async {
        let (_, tap) = m2m::apis::exchange::tapped(cenda.list_organisations().send()).await;
        tap.exchange.expect("an answer").status
    };

    let token = auth.token().await.unwrap();
    assert_eq!(bound_to(&token), first.identity().thumbprint());
    assert_eq!(call_status().await, 200, "{}", provider.logs());

    let second = ca.client(dn("m2m tests", "m2m-mtls-client"));
    install(&second);
    let renewed = auth.renew(token.authorization()).await.unwrap();
    assert_eq!(bound_to(&renewed), second.identity().thumbprint());
    assert_eq!(call_status().await, 200, "{}", provider.logs());
    assert_eq!(
        *api.presented.lock().unwrap(),
        [
            first.identity().thumbprint(),
            second.identity().thumbprint()
        ]
    );
}
