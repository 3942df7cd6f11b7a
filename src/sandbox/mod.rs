//! An embedded sandbox: a local identity provider and API server on
//! loopback, so the whole client-credentials flow runs with no credentials
//! and no network.
//!
//! One [`Sandbox`] serves, on `127.0.0.1`:
//! - token endpoints in four dialects ([`ProviderStyle`]): Entra ID v2,
//!   Cognito, IdentityServer (under a virtual path, as Sequel's), and an
//!   OpenID provider found through discovery (as Apiture's), each with its
//!   provider's success body, error body and status codes;
//! - a JWKS with the key that signs every access token (ES256 JWTs with
//!   `iss`, `aud`, `sub`, `client_id`, `scope`, `iat`, `exp`, `jti`);
//! - the Cenda Configuration API and the NXTsoft transactions API, routed
//!   from their OpenAPI documents, with in-memory state, every request
//!   checked against the document's schemas (and nothing else), the rules
//!   the operations state, and bearer-token checks that answer as RFC 6750
//!   says (`invalid_token` 401, `insufficient_scope` 403); Cenda's
//!   organisations are validated without any DNS check, and
//!   [`Sandbox::issue_credential`] stands in for Cenda's OIDC issuance so
//!   that a credential can be revoked;
//! - the same routes again over HTTPS with mutual TLS
//!   ([`Sandbox::mtls_base_url`]): a CA, a server certificate and a client
//!   certificate made at start, a `tls_client_auth` client
//!   ([`demo::MTLS_CLIENT_ID`]) whose tokens are bound to its certificate
//!   (`cnf.x5t#S256`, RFC 8705), which the APIs check;
//! - fault knobs ([`FaultControl`]) and request counters ([`SandboxStats`]).
//!
//! "Now" comes from an injected [`Clock`], so a test with a
//! [`ManualClock`](crate::auth::clock::ManualClock) can expire tokens at will.
//!
//! ```no_run
//! # async fn run() -> Result<(), m2m::sandbox::SandboxError> {
//! use m2m::sandbox::{Sandbox, ProviderStyle};
//!
//! let sandbox = Sandbox::start().await?;
//! let client = sandbox.demo_client(ProviderStyle::Cognito);
//! println!("POST {} with client_id={}", client.token_url, client.client_id);
//! println!("then call {}/transactions/mock", sandbox.nxtsoft_api_url());
//! sandbox.shutdown().await?;
//! # Ok(()) }
//! ```

mod api_call;
mod api_routes;
mod cenda;
mod contract;
pub mod demo;
mod dpop_proof;
mod endpoints;
mod error;
mod faults;
mod federated;
mod identity;
mod json_response;
mod mutual_tls;
mod nxtsoft;
mod problem;
mod refusal;
mod router;
mod scope_grant;
mod shared;
mod stats;
mod summary;
mod token_request;
mod tokens;

use std::fmt;
use std::future::IntoFuture;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use cenda::IssuanceError;
pub use demo::{DemoClient, ProviderStyle};
pub use error::SandboxError;
pub use faults::{FaultControl, Faults, GarbageBody};
pub use mutual_tls::MtlsClientIdentity;
pub use stats::SandboxStats;
pub use summary::Summary;

use crate::auth::clock::{Clock, SystemClock};
use api_routes::Api;
use shared::Shared;

/// The lifetime of sandbox tokens unless configured (Entra's usual).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3599);

/// Configures a [`Sandbox`] before it starts.
pub struct SandboxBuilder {
    port: u16,
    token_lifetime: Duration,
    clock: Arc<dyn Clock>,
    seed: Option<u64>,
    faults: Faults,
}

impl fmt::Debug for SandboxBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxBuilder")
            .field("port", &self.port)
            .field("token_lifetime", &self.token_lifetime)
            .field("seed", &self.seed)
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

impl Default for SandboxBuilder {
    fn default() -> Self {
        Self {
            port: 0,
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            clock: Arc::new(SystemClock),
            seed: None,
            faults: Faults::default(),
        }
    }
}

impl SandboxBuilder {
    /// Listens on this port of 127.0.0.1 (default 0: a free port).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Issues tokens valid this long (default [`DEFAULT_TOKEN_LIFETIME`];
    /// rounded down to whole seconds, at least 1).
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// Reads "now" from this clock (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Seeds the random-failure generator (default: a random seed).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Starts with these faults (default: none).
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Binds 127.0.0.1 (plain HTTP on the port asked for, HTTPS with
    /// mutual TLS on a free one), generates the signing key and the TLS
    /// certificates, and starts serving on a task of the current Tokio
    /// runtime (call it from within one).
    pub async fn start(self) -> Result<Sandbox, SandboxError> {
        let bind = |port: u16| async move {
            let listener =
                tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
                    .await
                    .map_err(|source| SandboxError::Bind { port, source })?;
            let address = listener
                .local_addr()
                .map_err(|source| SandboxError::Bind { port, source })?;
            Ok::<_, SandboxError>((listener, address))
        };
        let (listener, address) = bind(self.port).await?;
        let (tls_listener, tls_address) = bind(0).await?;
        let pki = mutual_tls::Pki::generate()?;
        let tls_listener = pki
            .listen(tls_listener)
            .map_err(|source| SandboxError::Bind { port: 0, source })?;
        let faults = FaultControl::new(self.faults, self.seed.unwrap_or_else(|| fastrand::u64(..)));
        let shared = Arc::new(Shared::new(
            format!("http://{address}"),
            format!("https://{tls_address}"),
            pki,
            self.clock,
            self.token_lifetime,
            faults,
        )?);
        let router = router::router(Arc::clone(&shared))?;
        let (stop, stopped) = watch::channel(());
        let until_stopped = |mut stopped: watch::Receiver<()>| async move {
            // A dropped sender stops the servers too.
            let _ = stopped.changed().await;
        };
        let plain = axum::serve(
            listener,
            router
                .clone()
                .into_make_service_with_connect_info::<mutual_tls::Connection>(),
        )
        .with_graceful_shutdown(until_stopped(stopped.clone()));
        let tls = axum::serve(
            tls_listener,
            router.into_make_service_with_connect_info::<mutual_tls::Connection>(),
        )
        .with_graceful_shutdown(until_stopped(stopped));
        let task = tokio::spawn(async move {
            let (plain, tls) = tokio::join!(plain.into_future(), tls.into_future());
            plain.and(tls)
        });
        tracing::debug!(%address, %tls_address, "sandbox listening");
        Ok(Sandbox {
            shared,
            address,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// A running sandbox. Dropping it stops the server (in the background);
/// [`Sandbox::shutdown`] stops it and waits.
pub struct Sandbox {
    shared: Arc<Shared>,
    address: SocketAddr,
    stop: Option<watch::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("base_url", &self.shared.base_url)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Starts a sandbox with the defaults on a free port (from within a
    /// Tokio runtime).
    pub async fn start() -> Result<Sandbox, SandboxError> {
        Self::builder().start().await
    }

    /// A builder for port, token lifetime, clock, seed and initial faults.
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder::default()
    }

    /// `http://127.0.0.1:{port}`, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// The address the sandbox listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Entra v2 token endpoint: `{base}/{tenant}/oauth2/v2.0/token`. Only
    /// [`demo::ENTRA_TENANT_ID`] is a known tenant; others get AADSTS90002.
    pub fn entra_token_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.base_url())
    }

    /// Cognito token endpoint: `{base}/oauth2/token`.
    pub fn cognito_token_url(&self) -> String {
        format!("{}{}", self.base_url(), endpoints::COGNITO_TOKEN_PATH)
    }

    /// Sequel's `AuthenticationServerUrl`: `{base}/Authentication`.
    pub fn sequel_authentication_server_url(&self) -> String {
        format!("{}{}", self.base_url(), demo::IDENTITYSERVER_VIRTUAL_PATH)
    }

    /// IdentityServer token endpoint: `{base}/Authentication/connect/token`.
    pub fn identityserver_token_url(&self) -> String {
        format!(
            "{}{}",
            self.sequel_authentication_server_url(),
            endpoints::IDENTITYSERVER_TOKEN_SUFFIX
        )
    }

    /// OIDC discovery document: `{base}/oidc/.well-known/openid-configuration`.
    pub fn oidc_discovery_url(&self) -> String {
        format!("{}{}", self.base_url(), endpoints::OIDC_DISCOVERY_PATH)
    }

    /// The OIDC token endpoint the discovery document names: `{base}/oidc/token`.
    pub fn oidc_token_url(&self) -> String {
        format!("{}{}", self.base_url(), endpoints::OIDC_TOKEN_PATH)
    }

    /// The JWKS of every sandbox token: `{base}/.well-known/jwks.json`.
    pub fn jwks_url(&self) -> String {
        format!("{}{}", self.base_url(), endpoints::JWKS_PATH)
    }

    /// The token endpoint of `style` (Entra with the demo tenant).
    pub fn token_url(&self, style: ProviderStyle) -> String {
        match style {
            ProviderStyle::Entra => self.entra_token_url(demo::ENTRA_TENANT_ID),
            ProviderStyle::Cognito => self.cognito_token_url(),
            ProviderStyle::IdentityServer => self.identityserver_token_url(),
            ProviderStyle::Oidc => self.oidc_token_url(),
        }
    }

    /// The `iss` of tokens from the endpoint of `style` (Entra: the demo
    /// tenant's `{base}/{tenant}/v2.0`).
    pub fn issuer(&self, style: ProviderStyle) -> String {
        endpoints::issuer_url(self.base_url(), style, demo::ENTRA_TENANT_ID)
    }

    /// Base URL of the Cenda Configuration API (`{base}/cenda`), as the
    /// generated client takes it.
    pub fn cenda_api_url(&self) -> String {
        format!("{}{}", self.base_url(), Api::Cenda.prefix())
    }

    /// Base URL of the NXTsoft API (`{base}/nxtsoft`), as the generated
    /// client takes it.
    pub fn nxtsoft_api_url(&self) -> String {
        format!("{}{}", self.base_url(), Api::Nxtsoft.prefix())
    }

    /// `https://127.0.0.1:{port}`: every route again, over TLS with a
    /// certificate of the sandbox's own CA
    /// ([`Sandbox::tls_root_certificate_pem`]), asking each client for its
    /// certificate (mutual TLS, RFC 8705). A certificate-bound token works
    /// only here, with its certificate.
    pub fn mtls_base_url(&self) -> &str {
        &self.shared.mtls_base_url
    }

    /// The OIDC token endpoint over mutual TLS
    /// (`{mtls_base}/oidc/token`), which the discovery document names as
    /// `mtls_endpoint_aliases.token_endpoint`.
    pub fn mtls_token_url(&self) -> String {
        format!("{}{}", self.mtls_base_url(), endpoints::OIDC_TOKEN_PATH)
    }

    /// The Cenda Configuration API over mutual TLS (`{mtls_base}/cenda`).
    pub fn mtls_cenda_api_url(&self) -> String {
        format!("{}{}", self.mtls_base_url(), Api::Cenda.prefix())
    }

    /// The NXTsoft API over mutual TLS (`{mtls_base}/nxtsoft`).
    pub fn mtls_nxtsoft_api_url(&self) -> String {
        format!("{}{}", self.mtls_base_url(), Api::Nxtsoft.prefix())
    }

    /// The certificate (PEM) of the CA that issued the HTTPS listener's
    /// certificate and the mutual-TLS client's: trust it to call
    /// [`Sandbox::mtls_base_url`] (`tls_ca_file`, or
    /// `reqwest::ClientBuilder::add_root_certificate`). Made at start.
    pub fn tls_root_certificate_pem(&self) -> &str {
        self.shared.pki.ca_pem()
    }

    /// The certificate and key of the mutual-TLS client
    /// ([`demo::MTLS_CLIENT_ID`]), made at start.
    pub fn mtls_client_identity(&self) -> &MtlsClientIdentity {
        self.shared.pki.client()
    }

    /// The registered self-signed certificate and key of the
    /// `self_signed_tls_client_auth` client
    /// ([`demo::MTLS_SELF_SIGNED_CLIENT_ID`]), made at start.
    pub fn mtls_self_signed_client_identity(&self) -> &MtlsClientIdentity {
        self.shared.pki.self_signed_client()
    }

    /// Every registered demo client with its token endpoint.
    pub fn demo_clients(&self) -> Vec<DemoClient> {
        demo::CLIENTS
            .iter()
            .map(|client| DemoClient {
                style: client.style,
                client_id: client.id,
                client_secret: client.secret,
                scopes: client.scopes,
                token_url: self.token_url(client.style),
                description: client.description,
            })
            .collect()
    }

    /// The main demo client of `style` (for Cognito: the one allowed both
    /// transaction scopes).
    pub fn demo_client(&self, style: ProviderStyle) -> DemoClient {
        let registered = demo::CLIENTS
            .iter()
            .find(|client| client.style == style)
            .unwrap_or(&demo::CLIENTS[0]);
        DemoClient {
            style: registered.style,
            client_id: registered.id,
            client_secret: registered.secret,
            scopes: registered.scopes,
            token_url: self.token_url(registered.style),
            description: registered.description,
        }
    }

    /// Issues a credential from the Cenda issuance template named
    /// `credential_template_name` of organisation `organisation_id`, as
    /// Cenda's OIDC issuance interface would (it is not part of the
    /// Configuration API the sandbox serves): with `serial_number`, as an
    /// issuer gives it in the `idTokenHint`, or a new GUID. Returns the
    /// serial number, which `revokeCredential` then finds.
    pub fn issue_credential(
        &self,
        organisation_id: &str,
        credential_template_name: &str,
        serial_number: Option<&str>,
    ) -> Result<String, IssuanceError> {
        self.shared
            .cenda()
            .issue(organisation_id, credential_template_name, serial_number)
    }

    /// The issuer of the workloads' tokens (`{base}/workload`): the issuer
    /// of the federated credential of [`demo::FEDERATED_CLIENT_ID`].
    pub fn workload_issuer(&self) -> String {
        federated::workload_issuer(self.base_url())
    }

    /// A workload token for the federated client
    /// ([`demo::FEDERATED_CLIENT_ID`]), valid for `lifetime` on the
    /// sandbox's clock, as the Kubernetes API server projects one into a
    /// pod (issuer [`Self::workload_issuer`], subject
    /// [`demo::FEDERATED_SUBJECT`], audience [`demo::FEDERATED_AUDIENCE`]).
    /// Write it where `client_assertion_file` points; the Entra token
    /// endpoint accepts it as the client assertion of that client.
    pub fn federated_token(&self, lifetime: Duration) -> Result<String, SandboxError> {
        let now = tokens::unix_seconds(self.shared.now());
        let claims = tokens::WorkloadClaims {
            iss: self.workload_issuer(),
            sub: demo::FEDERATED_SUBJECT.to_owned(),
            aud: demo::FEDERATED_AUDIENCE.to_owned(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(lifetime.as_secs().max(1)),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        self.shared
            .issuer
            .issue_workload(&claims)
            .map_err(|e| SandboxError::Key(format!("cannot sign the workload token: {e}")))
    }

    /// The request counters so far.
    pub fn stats(&self) -> SandboxStats {
        self.shared.stats.snapshot(self.shared.faults.injected())
    }

    /// Sets every counter back to zero.
    pub fn reset_stats(&self) {
        self.shared.stats.reset();
        self.shared.faults.reset_injected();
    }

    /// The fault knobs; changes apply to the next request.
    pub fn faults(&self) -> FaultControl {
        self.shared.faults.clone()
    }

    /// The clock the sandbox reads "now" from.
    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.shared.clock)
    }

    /// What `m2m sandbox` prints: URLs and demo credentials.
    pub fn summary(&self) -> Summary {
        Summary {
            base_url: self.base_url().to_owned(),
            oidc_discovery_url: self.oidc_discovery_url(),
            jwks_url: self.jwks_url(),
            mtls_base_url: self.mtls_base_url().to_owned(),
            mtls_token_url: self.mtls_token_url(),
            sequel_authentication_server_url: self.sequel_authentication_server_url(),
            cenda_api_url: self.cenda_api_url(),
            nxtsoft_api_url: self.nxtsoft_api_url(),
            entra_tenant_id: demo::ENTRA_TENANT_ID,
            clients: self.demo_clients(),
        }
    }

    /// Stops accepting connections, lets requests in flight finish, and
    /// waits for the server to end.
    pub async fn shutdown(mut self) -> Result<(), SandboxError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => match task.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(SandboxError::Server(error)),
                Err(_) => Err(SandboxError::Task),
            },
            None => Ok(()),
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl fmt::Display for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.summary().fmt(f)
    }
}
