//! Mutual TLS at the sandbox (RFC 8705): a second listener on 127.0.0.1
//! that serves every route over HTTPS and asks each client for a
//! certificate (a client without one is served too).
//!
//! At start the sandbox makes its own small PKI (P-256): a CA, a server
//! certificate for `127.0.0.1` and `localhost`, the certificate of the
//! registered `tls_client_auth` client ([`demo::MTLS_CLIENT_ID`]), and the
//! self-signed certificate registered for the `self_signed_tls_client_auth`
//! client ([`demo::MTLS_SELF_SIGNED_CLIENT_ID`]). Nothing of it is written
//! to disk; [`Sandbox::tls_root_certificate_pem`] and
//! [`Sandbox::mtls_client_identity`] hand it out.
//!
//! The handshake takes any client certificate whose handshake signature
//! checks out; whether it is the one the token endpoint accepts (issued by
//! the sandbox's CA, and the certificate registered for the client) is
//! decided by the token endpoint. A wrong certificate so gets an
//! `invalid_client` answer, as from oidc-provider or Duende, not a TLS alert.
//!
//! [`Sandbox::tls_root_certificate_pem`]: super::Sandbox::tls_root_certificate_pem
//! [`Sandbox::mtls_client_identity`]: super::Sandbox::mtls_client_identity

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lc_rs::digest;
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use secrecy::SecretString;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::client::danger::HandshakeSignatureValid;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, UnixTime};
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::server::{ServerConfig, WebPkiClientVerifier};
use tokio_rustls::rustls::{
    self, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme,
};
use tokio_rustls::server::TlsStream;

use super::demo;
use super::error::SandboxError;

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The client certificate and key of one of the sandbox's mutual-TLS
/// clients, PEM, made when the sandbox started. `Debug` never shows the key.
#[derive(Clone)]
pub struct MtlsClientIdentity {
    /// The client's certificate: issued by the sandbox's CA, or self-signed.
    pub certificate_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: SecretString,
    /// `x5t#S256` of the certificate: what the `cnf` of its tokens holds.
    pub thumbprint: String,
}

impl fmt::Debug for MtlsClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MtlsClientIdentity")
            .field("x5t#S256", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

/// The sandbox's PKI and the TLS configuration of its HTTPS listener.
pub(crate) struct Pki {
    ca_pem: String,
    client: MtlsClientIdentity,
    self_signed: MtlsClientIdentity,
    server_config: Arc<ServerConfig>,
    /// Chains a client certificate to the sandbox's CA.
    ca_verifier: Arc<dyn ClientCertVerifier>,
}

impl Pki {
    /// A new CA with a server and a client certificate.
    pub(crate) fn generate() -> Result<Self, SandboxError> {
        let failed = |what: &str, error: &dyn fmt::Display| {
            SandboxError::Key(format!("cannot make the TLS {what}: {error}"))
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());

        let mut ca_params = CertificateParams::default();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "m2m sandbox CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().map_err(|e| failed("CA key", &e))?;
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key)
            .map_err(|e| failed("CA certificate", &e))?;

        let mut server_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .map_err(|e| failed("server certificate", &e))?;
        server_params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate().map_err(|e| failed("server key", &e))?;
        let server = server_params
            .signed_by(&server_key, &ca)
            .map_err(|e| failed("server certificate", &e))?;

        let mut client_params = CertificateParams::default();
        client_params
            .distinguished_name
            .push(DnType::CommonName, demo::MTLS_CLIENT_ID);
        client_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = KeyPair::generate().map_err(|e| failed("client key", &e))?;
        let client = client_params
            .signed_by(&client_key, &ca)
            .map_err(|e| failed("client certificate", &e))?;

        let mut self_signed_params = CertificateParams::default();
        self_signed_params
            .distinguished_name
            .push(DnType::CommonName, demo::MTLS_SELF_SIGNED_CLIENT_ID);
        self_signed_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let self_signed_key = KeyPair::generate().map_err(|e| failed("client key", &e))?;
        let self_signed = self_signed_params
            .self_signed(&self_signed_key)
            .map_err(|e| failed("self-signed client certificate", &e))?;

        let mut roots = RootCertStore::empty();
        roots
            .add(ca.der().clone())
            .map_err(|e| failed("root store", &e))?;
        let ca_verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .allow_unauthenticated()
                .build()
                .map_err(|e| failed("client verifier", &e))?;
        let any_certificate = Arc::new(AnyClientCertificate {
            schemes: Arc::clone(&ca_verifier),
        });
        let mut server_config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| failed("server configuration", &e))?
            .with_client_cert_verifier(any_certificate)
            .with_single_cert(
                vec![server.der().clone()],
                PrivatePkcs8KeyDer::from(server_key.serialize_der()).into(),
            )
            .map_err(|e| failed("server configuration", &e))?;
        server_config.alpn_protocols = vec![b"http/1.1".to_vec()];

        Ok(Self {
            ca_pem: pem_of("CERTIFICATE", ca.der()),
            client: MtlsClientIdentity {
                certificate_pem: pem_of("CERTIFICATE", client.der()),
                key_pem: SecretString::from(pem_of("PRIVATE KEY", &client_key.serialize_der())),
                thumbprint: thumbprint(client.der()),
            },
            self_signed: MtlsClientIdentity {
                certificate_pem: pem_of("CERTIFICATE", self_signed.der()),
                key_pem: SecretString::from(pem_of(
                    "PRIVATE KEY",
                    &self_signed_key.serialize_der(),
                )),
                thumbprint: thumbprint(self_signed.der()),
            },
            server_config: Arc::new(server_config),
            ca_verifier,
        })
    }

    /// The CA certificate (PEM) a client trusts the HTTPS listener with.
    pub(crate) fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The registered `tls_client_auth` client's certificate and key.
    pub(crate) fn client(&self) -> &MtlsClientIdentity {
        &self.client
    }

    /// The `self_signed_tls_client_auth` client's registered certificate
    /// and its key.
    pub(crate) fn self_signed_client(&self) -> &MtlsClientIdentity {
        &self.self_signed
    }

    /// Whether `presented` is the self-signed certificate registered for
    /// the `self_signed_tls_client_auth` client (RFC 8705 §2.2: no chain,
    /// the certificate itself is the credential).
    pub(crate) fn accepts_self_signed_client(&self, presented: &ClientCertificate) -> bool {
        presented.thumbprint == self.self_signed.thumbprint
    }

    /// Whether `presented` is the registered client's certificate, issued
    /// by the sandbox's CA and valid at `now`.
    pub(crate) fn accepts_client(&self, presented: &ClientCertificate, now: SystemTime) -> bool {
        let Some((end_entity, intermediates)) = presented.chain.split_first() else {
            return false;
        };
        let now = UnixTime::since_unix_epoch(
            now.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default(),
        );
        presented.thumbprint == self.client.thumbprint
            && self
                .ca_verifier
                .verify_client_cert(end_entity, intermediates, now)
                .is_ok()
    }

    /// An HTTPS listener over `listener`: handshakes run on their own tasks,
    /// so a slow client holds up no other.
    pub(crate) fn listen(&self, listener: TcpListener) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(Arc::clone(&self.server_config));
        let (handshaken, incoming) = mpsc::channel(64);
        tokio::spawn(accept_loop(listener, acceptor, handshaken));
        Ok(TlsListener { incoming, local })
    }
}

/// `x5t#S256` (RFC 8705 §3.1): base64url SHA-256 of a certificate's DER.
pub(crate) fn thumbprint(certificate: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, certificate))
}

fn pem_of(tag: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(tag, der.to_vec()))
}

/// Accepts TCP connections and hands on those whose handshake completes,
/// until the listener is dropped.
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handshaken: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            () = handshaken.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, or a connection reset before it
                    // was accepted: wait a little, as axum's own loop does.
                    tracing::debug!(%error, "sandbox TLS listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let handshaken = handshaken.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let _ = handshaken.send((stream, peer)).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "sandbox TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "sandbox TLS handshake timed out"),
            }
        });
    }
}

/// The HTTPS listener axum serves: connections whose handshake completed.
pub(crate) struct TlsListener {
    incoming: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(connection) => connection,
            // The accept loop ends only when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The connection a request came on, as the handlers see it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Connection {
    /// Whether it is the HTTPS listener's.
    pub(crate) tls: bool,
    /// The client's certificate, when it sent one.
    pub(crate) client_certificate: Option<Arc<ClientCertificate>>,
}

/// The certificate a client presented on its connection, its thumbprint
/// taken once for all the connection's requests.
#[derive(Debug)]
pub(crate) struct ClientCertificate {
    /// The chain, the client's own certificate first (never empty).
    chain: Vec<CertificateDer<'static>>,
    /// `x5t#S256` of the client's own certificate.
    pub(crate) thumbprint: String,
}

impl ClientCertificate {
    /// The client's chain; `None` when it sent no certificate.
    fn of(chain: &[CertificateDer<'static>]) -> Option<Self> {
        let first = chain.first()?;
        Some(Self {
            thumbprint: thumbprint(first),
            chain: chain.to_vec(),
        })
    }
}

impl Connected<IncomingStream<'_, TcpListener>> for Connection {
    fn connect_info(_: IncomingStream<'_, TcpListener>) -> Self {
        Self::default()
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Connection {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        let (_, session) = stream.io().get_ref();
        Self {
            tls: true,
            client_certificate: session
                .peer_certificates()
                .and_then(ClientCertificate::of)
                .map(Arc::new),
        }
    }
}

/// Takes any client certificate (or none) whose handshake signature checks
/// out; the token endpoint decides whether it is the registered one.
#[derive(Debug)]
struct AnyClientCertificate {
    /// For the handshake signatures only.
    schemes: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // None: a client sends whatever certificate it has.
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.schemes.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.schemes.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.supported_verify_schemes()
    }
}
