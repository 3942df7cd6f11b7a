//! Interop harness: panva's `oidc-provider` (OpenID-certified) on loopback.
//!
//! Include it from a test file with
//! `#[path = "support/oidc_provider.rs"] mod oidc_provider;`.
//!
//! [`OidcProvider::start`] runs `node tests/oidc-provider/server.mjs` with the given clients,
//! waits for its ready line, and reads its discovery document. The process is killed when
//! the handle drops (and exits by itself when its standard input closes, so it never outlives
//! the test binary). Node >= 20 and `npm ci --prefix tests/oidc-provider` are required: a
//! missing prerequisite fails the test with the command to run, it is never skipped.
//!
//! One resource server is configured: [`API_RESOURCE`] with the scopes [`API_SCOPES`].
//! Client credentials tokens issued for it (sent as `resource`, or defaulted with
//! [`ClientSpec::default_resource`]) are JWTs signed with a key from the provider's JWKS.
//!
//! Over TLS ([`ProviderOptions::tls`]) the provider serves `https://127.0.0.1:PORT` with a
//! certificate the test made, asks every connection for a client certificate, and
//! authenticates mutual-TLS clients (RFC 8705: [`ClientSpec::tls_client_auth`],
//! [`ClientSpec::self_signed_tls_client_auth`]), whose tokens are certificate-bound.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use serde_json::{Value, json};

/// Resource indicator (RFC 8707) of the one API the provider issues JWT access tokens for.
pub const API_RESOURCE: &str = "https://api.m2m.test/";
/// Every scope the API knows. Clients get `api:read api:write` unless told otherwise.
pub const API_SCOPES: &str = "api:read api:write api:admin";
/// Scopes a [`ClientSpec`] is allowed by default.
pub const DEFAULT_CLIENT_SCOPES: &str = "api:read api:write";

const MINIMUM_NODE_MAJOR: u32 = 20;
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const SETUP_HINT: &str = "run `npm ci --prefix tests/oidc-provider` (Node >= 20 on PATH)";

/// How a client authenticates at the token endpoint.
#[derive(Clone, Debug)]
pub enum ClientAuth {
    /// `client_secret_basic`: id and secret in `Authorization: Basic`.
    SecretBasic(String),
    /// `client_secret_post`: id and secret in the form body.
    SecretPost(String),
    /// `private_key_jwt`: a JWT signed with the private half of this public key.
    PrivateKeyJwt(Box<Jwk>),
    /// `tls_client_auth`: a certificate chaining to [`ProviderTls::ca_pem`] whose subject
    /// is this DN (RFC 4514 string, e.g. `CN=client,O=m2m tests`).
    Tls { subject_dn: String },
    /// `self_signed_tls_client_auth`: one of the certificates of this `jwks` (each key
    /// carries its certificate in `x5c`).
    SelfSignedTls { jwks: Value },
}

/// One client registered at the provider.
#[derive(Clone, Debug)]
pub struct ClientSpec {
    pub client_id: String,
    pub auth: ClientAuth,
    /// Space-separated scopes the client may ask for.
    pub scope: String,
    /// Resource used when the token request carries no `resource` parameter.
    pub default_resource: Option<String>,
}

impl ClientSpec {
    /// A `client_secret_basic` client allowed [`DEFAULT_CLIENT_SCOPES`].
    pub fn secret_basic(client_id: &str, secret: &str) -> Self {
        Self::new(client_id, ClientAuth::SecretBasic(secret.to_owned()))
    }

    /// A `client_secret_post` client allowed [`DEFAULT_CLIENT_SCOPES`].
    pub fn secret_post(client_id: &str, secret: &str) -> Self {
        Self::new(client_id, ClientAuth::SecretPost(secret.to_owned()))
    }

    /// A `private_key_jwt` client whose assertions are signed by `key`.
    pub fn private_key_jwt(client_id: &str, key: &TestKey) -> Self {
        Self::new(
            client_id,
            ClientAuth::PrivateKeyJwt(Box::new(key.public_jwk().clone())),
        )
    }

    /// Replaces the scopes the client may ask for.
    pub fn scope(mut self, scope: &str) -> Self {
        self.scope = scope.to_owned();
        self
    }

    /// Tokens requested without `resource` are issued for `resource` (a JWT).
    pub fn default_resource(mut self, resource: &str) -> Self {
        self.default_resource = Some(resource.to_owned());
        self
    }

    /// A `tls_client_auth` client (RFC 8705 §2.1): its certificate must chain to the
    /// provider's CA and have this subject DN. Tokens are certificate-bound.
    pub fn tls_client_auth(client_id: &str, subject_dn: &str) -> Self {
        Self::new(
            client_id,
            ClientAuth::Tls {
                subject_dn: subject_dn.to_owned(),
            },
        )
    }

    /// A `self_signed_tls_client_auth` client (RFC 8705 §2.2) registering one
    /// certificate: `public_jwk` is its key, `certificate_der` goes in the key's `x5c`.
    /// Tokens are certificate-bound.
    pub fn self_signed_tls_client_auth(
        client_id: &str,
        public_jwk: &Value,
        certificate_der: &[u8],
    ) -> Self {
        use base64::Engine;
        let mut jwk = public_jwk.clone();
        jwk["x5c"] = json!([base64::engine::general_purpose::STANDARD.encode(certificate_der)]);
        Self::new(
            client_id,
            ClientAuth::SelfSignedTls {
                jwks: json!({ "keys": [jwk] }),
            },
        )
    }

    fn new(client_id: &str, auth: ClientAuth) -> Self {
        Self {
            client_id: client_id.to_owned(),
            auth,
            scope: DEFAULT_CLIENT_SCOPES.to_owned(),
            default_resource: None,
        }
    }

    fn metadata(&self) -> Value {
        let mut metadata = json!({ "client_id": self.client_id, "scope": self.scope });
        let fields = metadata.as_object_mut().expect("metadata is an object");
        match &self.auth {
            ClientAuth::SecretBasic(secret) => {
                fields.insert(
                    "token_endpoint_auth_method".into(),
                    "client_secret_basic".into(),
                );
                fields.insert("client_secret".into(), secret.as_str().into());
            }
            ClientAuth::SecretPost(secret) => {
                fields.insert(
                    "token_endpoint_auth_method".into(),
                    "client_secret_post".into(),
                );
                fields.insert("client_secret".into(), secret.as_str().into());
            }
            ClientAuth::PrivateKeyJwt(jwk) => {
                fields.insert(
                    "token_endpoint_auth_method".into(),
                    "private_key_jwt".into(),
                );
                fields.insert("jwks".into(), json!({ "keys": [jwk] }));
            }
            ClientAuth::Tls { subject_dn } => {
                fields.insert(
                    "token_endpoint_auth_method".into(),
                    "tls_client_auth".into(),
                );
                fields.insert(
                    "tls_client_auth_subject_dn".into(),
                    subject_dn.as_str().into(),
                );
                fields.insert(
                    "tls_client_certificate_bound_access_tokens".into(),
                    true.into(),
                );
            }
            ClientAuth::SelfSignedTls { jwks } => {
                fields.insert(
                    "token_endpoint_auth_method".into(),
                    "self_signed_tls_client_auth".into(),
                );
                fields.insert("jwks".into(), jwks.clone());
                fields.insert(
                    "tls_client_certificate_bound_access_tokens".into(),
                    true.into(),
                );
            }
        }
        metadata
    }
}

/// Provider-wide settings; [`Default`] matches [`OidcProvider::start`].
#[derive(Clone, Debug)]
pub struct ProviderOptions {
    /// Lifetime of client credentials tokens (`expires_in`), whole seconds.
    pub access_token_ttl: Duration,
    /// Algorithm of the JWT access tokens for [`API_RESOURCE`]: RS256 or ES256.
    pub access_token_alg: Algorithm,
    /// DPoP proofs must carry the server's nonce (`features.dPoP.requireNonce`).
    pub dpop_nonces: bool,
    /// HTTPS and mutual TLS; plain http when `None`.
    pub tls: Option<ProviderTls>,
}

/// The provider's TLS setup: PEMs the test made (e.g. with rcgen). `Debug` leaves the
/// key out.
#[derive(Clone)]
pub struct ProviderTls {
    /// The server's certificate (valid for the IP 127.0.0.1).
    pub cert_pem: String,
    /// The server certificate's private key (PKCS#8).
    pub key_pem: String,
    /// The CA that issued the server's certificate: the harness trusts it, and
    /// `tls_client_auth` certificates must chain to it.
    pub ca_pem: String,
    /// Also listen on a second port, published in discovery as
    /// `mtls_endpoint_aliases.token_endpoint` (RFC 8705 §5).
    pub mtls_alias: bool,
}

impl std::fmt::Debug for ProviderTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderTls")
            .field("mtls_alias", &self.mtls_alias)
            .finish_non_exhaustive()
    }
}

impl Default for ProviderOptions {
    fn default() -> Self {
        Self {
            access_token_ttl: Duration::from_secs(600),
            access_token_alg: Algorithm::RS256,
            dpop_nonces: false,
            tls: None,
        }
    }
}

/// A freshly generated client key pair (test-only, never written to disk).
#[derive(Clone)]
pub struct TestKey {
    algorithm: Algorithm,
    private_key_pem: String,
    encoding_key: EncodingKey,
    public_jwk: Jwk,
}

impl TestKey {
    /// RSA 2048 for RS256.
    pub fn rsa(kid: &str) -> Self {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .expect("generate an RSA key");
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)
            .expect("encode the RSA key as PKCS#8");
        Self::from_pkcs8(kid, Algorithm::RS256, pkcs8.as_ref())
    }

    /// EC P-256 for ES256.
    pub fn ec_p256(kid: &str) -> Self {
        let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        )
        .expect("generate a P-256 key");
        let pkcs8 = pair.to_pkcs8v1().expect("encode the P-256 key as PKCS#8");
        Self::from_pkcs8(kid, Algorithm::ES256, pkcs8.as_ref())
    }

    /// A key read from a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), such as
    /// a fixture that `openssl genpkey` wrote.
    pub fn from_pem(kid: &str, algorithm: Algorithm, private_key_pem: &str) -> Self {
        let block = pem::parse(private_key_pem).expect("a PEM private key");
        assert_eq!(block.tag(), "PRIVATE KEY", "a PKCS#8 key");
        Self::from_pkcs8(kid, algorithm, block.contents())
    }

    fn from_pkcs8(kid: &str, algorithm: Algorithm, pkcs8: &[u8]) -> Self {
        let private_key_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.to_vec()));
        let encoding_key = match algorithm {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(private_key_pem.as_bytes()),
            _ => EncodingKey::from_ec_pem(private_key_pem.as_bytes()),
        }
        .expect("read back the generated PEM");
        let mut public_jwk =
            Jwk::from_encoding_key(&encoding_key, algorithm).expect("public JWK of the test key");
        public_jwk.common.key_id = Some(kid.to_owned());
        public_jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Self {
            algorithm,
            private_key_pem,
            encoding_key,
            public_jwk,
        }
    }

    /// RS256 or ES256.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Key id, in the public JWK; put it in the assertion's header.
    pub fn kid(&self) -> &str {
        self.public_jwk
            .common
            .key_id
            .as_deref()
            .expect("test keys have a kid")
    }

    /// The private key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), as a user would supply it.
    pub fn private_key_pem(&self) -> &str {
        &self.private_key_pem
    }

    /// Signs client assertions.
    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding_key
    }

    /// The public half, registered in the client's `jwks`.
    pub fn public_jwk(&self) -> &Jwk {
        &self.public_jwk
    }
}

/// A running `oidc-provider`; killed on drop. Its stderr is kept and printed if the test panics.
pub struct OidcProvider {
    child: Child,
    // Held open: the server exits when it closes.
    _stdin: ChildStdin,
    issuer: String,
    discovery: Value,
    logs: Arc<Mutex<String>>,
    ca_pem: Option<String>,
}

impl OidcProvider {
    /// Starts a provider knowing exactly `clients`, with [`ProviderOptions::default`].
    pub async fn start(clients: &[ClientSpec]) -> Self {
        Self::start_with(clients, &ProviderOptions::default()).await
    }

    /// Starts a provider knowing exactly `clients`.
    pub async fn start_with(clients: &[ClientSpec], options: &ProviderOptions) -> Self {
        let dir = server_dir();
        check_prerequisites(&dir);
        let config = server_config(clients, options);
        let mut child = Command::new("node")
            .arg("server.mjs")
            .current_dir(&dir)
            .env("M2M_OIDC_CONFIG", config.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot run `node server.mjs` in {}: {error}", dir.display())
            });
        let stdin = child.stdin.take().expect("piped stdin");
        let (logs, stderr_reader) = collect_stderr(child.stderr.take().expect("piped stderr"));
        let ready = match wait_for_ready_line(child.stdout.take().expect("piped stdout")).await {
            Ok(ready) => ready,
            Err(reason) => {
                let _ = child.kill();
                let status = child.wait();
                let _ = stderr_reader.join();
                let logs = logs.lock().expect("log buffer").clone();
                panic!("oidc-provider did not start ({reason}; exit: {status:?}); stderr:\n{logs}");
            }
        };
        let issuer = ready["issuer"]
            .as_str()
            .expect("ready line has an issuer")
            .to_owned();
        let mut provider = Self {
            child,
            _stdin: stdin,
            issuer,
            discovery: Value::Null,
            logs,
            ca_pem: options.tls.as_ref().map(|tls| tls.ca_pem.clone()),
        };
        provider.discovery = provider.get_json(&provider.discovery_url()).await;
        provider
    }

    /// The CA the server's certificate chains to, when it serves HTTPS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// A reqwest builder that trusts the server: only its CA over HTTPS.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let builder = reqwest::Client::builder();
        match &self.ca_pem {
            Some(ca) => builder.tls_certs_only([
                reqwest::Certificate::from_pem(ca.as_bytes()).expect("the CA PEM parses")
            ]),
            None => builder,
        }
    }

    /// `mtls_endpoint_aliases.token_endpoint` from discovery, when published.
    pub fn mtls_token_url(&self) -> Option<&str> {
        self.discovery["mtls_endpoint_aliases"]["token_endpoint"].as_str()
    }

    /// `http://127.0.0.1:PORT` (`https://` over TLS), no trailing slash.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `{issuer}/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    /// The discovery document read at start.
    pub fn discovery(&self) -> &Value {
        &self.discovery
    }

    /// `token_endpoint` from discovery.
    pub fn token_url(&self) -> &str {
        self.discovery_str("token_endpoint")
    }

    /// `jwks_uri` from discovery.
    pub fn jwks_url(&self) -> &str {
        self.discovery_str("jwks_uri")
    }

    /// `introspection_endpoint` from discovery.
    pub fn introspection_url(&self) -> &str {
        self.discovery_str("introspection_endpoint")
    }

    /// The provider's signing keys, fetched from [`Self::jwks_url`].
    pub async fn jwks(&self) -> JwkSet {
        serde_json::from_value(self.get_json(self.jwks_url()).await).expect("the JWKS parses")
    }

    /// Verifies a JWT access token against the provider's JWKS (signature, `iss`, `aud`,
    /// `exp`) and returns its claims.
    pub async fn verify_access_token(&self, token: &str, audience: &str) -> Value {
        let header = jsonwebtoken::decode_header(token).expect("the access token is a JWT");
        let kid = header
            .kid
            .as_deref()
            .expect("the access token names its key");
        let jwks = self.jwks().await;
        let jwk = jwks
            .find(kid)
            .unwrap_or_else(|| panic!("kid {kid} is not in the JWKS"));
        let key = DecodingKey::from_jwk(jwk).expect("usable JWK");
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[audience]);
        jsonwebtoken::decode::<Value>(token, &key, &validation)
            .unwrap_or_else(|error| panic!("access token does not verify: {error}"))
            .claims
    }

    /// Everything the server wrote to stderr so far (warnings, one line per failed request).
    pub fn logs(&self) -> String {
        self.logs.lock().expect("log buffer").clone()
    }

    fn discovery_str(&self, field: &str) -> &str {
        self.discovery[field]
            .as_str()
            .unwrap_or_else(|| panic!("discovery has no {field}: {}", self.discovery))
    }

    /// A client per call: the handle holds no connection pool tied to one tokio runtime.
    async fn get_json(&self, url: &str) -> Value {
        let response = self
            .client_builder()
            .build()
            .expect("an HTTP client")
            .get(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert_eq!(response.status(), 200, "GET {url}");
        response
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- oidc-provider stderr ({}) ---\n{}",
                self.issuer,
                self.logs()
            );
        }
    }
}

/// `tests/oidc-provider` of the root crate, also when a workspace member's tests (`cli/`)
/// include this file: the nearest one up from the including crate.
fn server_dir() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .map(|dir| dir.join("tests").join("oidc-provider"))
        .find(|dir| dir.join("server.mjs").is_file())
        .unwrap_or_else(|| manifest_dir.join("tests").join("oidc-provider"))
}

fn check_prerequisites(dir: &Path) {
    let output = Command::new("node")
        .arg("--version")
        .output()
        .unwrap_or_else(|error| panic!("`node --version` failed ({error}): {SETUP_HINT}"));
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .unwrap_or_else(|| panic!("cannot read `node --version` output {version:?}: {SETUP_HINT}"));
    assert!(
        major >= MINIMUM_NODE_MAJOR,
        "node {version} is too old (need >= {MINIMUM_NODE_MAJOR}): {SETUP_HINT}"
    );
    assert!(
        dir.join("node_modules")
            .join("oidc-provider")
            .join("package.json")
            .is_file(),
        "{} has no node_modules/oidc-provider: {SETUP_HINT}",
        dir.display()
    );
}

fn server_config(clients: &[ClientSpec], options: &ProviderOptions) -> Value {
    let alg = match options.access_token_alg {
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        other => panic!("the provider signs access tokens with RS256 or ES256, not {other:?}"),
    };
    let ttl = options.access_token_ttl.as_secs();
    assert!(ttl > 0, "access_token_ttl must be at least one second");
    let default_resources: serde_json::Map<String, Value> = clients
        .iter()
        .filter_map(|client| {
            let resource = client.default_resource.as_ref()?;
            Some((client.client_id.clone(), Value::from(resource.as_str())))
        })
        .collect();
    json!({
        "clients": clients.iter().map(ClientSpec::metadata).collect::<Vec<_>>(),
        "resource_servers": [{
            "identifier": API_RESOURCE,
            "scope": API_SCOPES,
            "access_token_ttl": ttl,
            "signing_alg": alg,
        }],
        "default_resources": default_resources,
        "access_token_ttl": ttl,
        "dpop_nonces": options.dpop_nonces,
        "tls": options.tls.as_ref().map(|tls| json!({
            "cert_pem": tls.cert_pem,
            "key_pem": tls.key_pem,
            "ca_pem": tls.ca_pem,
            "mtls_alias": tls.mtls_alias,
        })),
    })
}

fn collect_stderr(
    stderr: impl Read + Send + 'static,
) -> (Arc<Mutex<String>>, std::thread::JoinHandle<()>) {
    let logs = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&logs);
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let mut logs = sink.lock().expect("log buffer");
            logs.push_str(&line);
            logs.push('\n');
        }
    });
    (logs, reader)
}

/// Reads stdout on a plain thread (no tokio timer, so paused test time cannot fire the
/// deadline early) until the JSON ready line arrives.
async fn wait_for_ready_line(stdout: impl Read + Send + 'static) -> Result<Value, String> {
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut ready_tx = Some(ready_tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<Value>(&line) {
                Ok(value) if value.get("port").is_some() => {
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(value);
                    }
                }
                _ => eprintln!("oidc-provider stdout: {line}"),
            }
        }
    });
    tokio::task::spawn_blocking(move || ready_rx.recv_timeout(READY_TIMEOUT))
        .await
        .expect("the ready-line waiter does not panic")
        .map_err(|error| match error {
            mpsc::RecvTimeoutError::Timeout => format!("no ready line within {READY_TIMEOUT:?}"),
            mpsc::RecvTimeoutError::Disconnected => "stdout closed before the ready line".into(),
        })
}
