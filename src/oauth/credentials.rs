//! How the client proves who it is at the token endpoint: exactly one
//! mechanism per request (RFC 6749 §2.3: strict servers reject two), except
//! the Apiture method, which sends Basic *and* the body parameters because
//! Apiture's guide says so.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

use super::assertion::PrivateKeyJwt;
use super::assertion_source::ClientAssertion;
use super::error::{AuthError, ConfigError, CredentialError};
use super::key_file::PrivateKeyFiles;
use super::mtls::{TlsIdentity, TlsIdentityFiles};
use super::secret_rotation::ClientSecrets;
use crate::redaction::Scrubber;

/// `client_assertion_type` for JWT client assertions (RFC 7523 §2.2).
pub const JWT_BEARER_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How client credentials are sent to the token endpoint.
///
/// The names are those of the OAuth token endpoint authentication method
/// registry where one exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientAuthMethod {
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))`,
    /// the RFC 6749 §2.3.1 encoding.
    ClientSecretBasic,
    /// `Authorization: Basic base64(id ":" secret)` without the form
    /// encoding, for servers that do not decode it. Use only when a secret
    /// with reserved characters (`+`, `%`, `:`, …) is refused with Basic.
    ClientSecretBasicUnencoded,
    /// Apiture's way: Basic (`base64(id ":" secret)`, as its guide shows)
    /// *and* `client_id` and `client_secret` in the form body. Strict
    /// servers reject this; no other provider uses it unless configured.
    ClientSecretBasicAndPost,
    /// A JWT signed with the client's private key (RFC 7523), in the body as
    /// `client_assertion`, with `client_id`.
    PrivateKeyJwt,
    /// Mutual TLS with a certificate from a CA (RFC 8705 §2.1): the client
    /// certificate on the connection, `client_id` in the body.
    TlsClientAuth,
    /// Mutual TLS with a self-signed certificate the server knows (RFC 8705
    /// §2.2): the client certificate on the connection, `client_id` in the
    /// body.
    SelfSignedTlsClientAuth,
    /// A JWT made elsewhere (workload identity federation: a Kubernetes
    /// service-account token, a CI job's OIDC token), in the body as
    /// `client_assertion`, with `client_id`. The same request as
    /// `private_key_jwt`; the assertion is read at every request.
    ClientAssertion,
}

impl ClientAuthMethod {
    /// The registry name a discovery document would list for this method.
    pub fn registry_name(self) -> &'static str {
        match self {
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretBasic
            | Self::ClientSecretBasicUnencoded
            | Self::ClientSecretBasicAndPost => "client_secret_basic",
            Self::PrivateKeyJwt | Self::ClientAssertion => "private_key_jwt",
            Self::TlsClientAuth => "tls_client_auth",
            Self::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
        }
    }

    fn needs_secret(self) -> bool {
        !matches!(self, Self::PrivateKeyJwt | Self::ClientAssertion) && !self.is_mutual_tls()
    }

    /// Whether the client authenticates with its TLS certificate.
    pub fn is_mutual_tls(self) -> bool {
        matches!(self, Self::TlsClientAuth | Self::SelfSignedTlsClientAuth)
    }
}

impl fmt::Display for ClientAuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretBasicUnencoded => "client_secret_basic_unencoded",
            Self::ClientSecretBasicAndPost => "client_secret_basic_and_post",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::TlsClientAuth => "tls_client_auth",
            Self::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
            Self::ClientAssertion => "client_assertion",
        })
    }
}

/// What the client authenticates with. `Debug` never shows it.
#[derive(Clone)]
pub enum ClientCredential {
    /// A client secret (send its value, not its id).
    Secret(SecretString),
    /// A private key for `private_key_jwt`.
    PrivateKey(PrivateKeyJwt),
    /// A client certificate and key for mutual TLS (RFC 8705).
    TlsCertificate(TlsIdentity),
    /// A client certificate and key for mutual TLS from files read again at
    /// every token request: a renewed certificate is presented from then
    /// on.
    TlsCertificateFiles(TlsIdentityFiles),
    /// A client assertion made elsewhere, asked for at every token request
    /// (workload identity federation).
    Assertion(ClientAssertion),
    /// Client secrets that may change under the process: a secret file
    /// read again when it changes, a second secret to fail over to.
    Secrets(ClientSecrets),
    /// A private key from files read again when they change.
    PrivateKeyFiles(PrivateKeyFiles),
}

/// What a credential is, for the methods it fits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CredentialShape {
    Secret,
    Key,
    Assertion,
    /// A TLS client certificate: no secret, the connection authenticates.
    Certificate,
}

impl ClientCredential {
    /// A client secret.
    pub fn secret(secret: impl Into<String>) -> Self {
        Self::Secret(SecretString::from(secret.into()))
    }

    /// The client assertion in `path`, read at every token request
    /// ([`ClientAssertion::from_file`]).
    pub fn assertion_file(path: impl Into<PathBuf>) -> Self {
        Self::Assertion(ClientAssertion::from_file(path))
    }

    /// The client assertion `callback` returns, called at every token
    /// request ([`ClientAssertion::from_fn`]).
    pub fn assertion_from<F>(callback: F) -> Self
    where
        F: Fn() -> crate::future::BoxFuture<'static, Result<SecretString, CredentialError>>
            + Send
            + Sync
            + 'static,
    {
        Self::Assertion(ClientAssertion::from_fn(callback))
    }

    fn shape(&self) -> CredentialShape {
        match self {
            Self::Secret(_) | Self::Secrets(_) => CredentialShape::Secret,
            Self::PrivateKey(_) | Self::PrivateKeyFiles(_) => CredentialShape::Key,
            Self::Assertion(_) => CredentialShape::Assertion,
            Self::TlsCertificate(_) | Self::TlsCertificateFiles(_) => CredentialShape::Certificate,
        }
    }

    /// The method this credential uses unless told otherwise: a key means
    /// `private_key_jwt`, an assertion `client_assertion` (`private_key_jwt`
    /// configured is taken as that), a TLS certificate `tls_client_auth`, a
    /// secret the provider's default.
    pub(crate) fn method(
        &self,
        configured: Option<ClientAuthMethod>,
        provider_default: ClientAuthMethod,
    ) -> Result<ClientAuthMethod, ConfigError> {
        let shape = self.shape();
        let method = match (shape, configured) {
            (_, Some(method)) => method,
            (CredentialShape::Key, None) => ClientAuthMethod::PrivateKeyJwt,
            (CredentialShape::Assertion, None) => ClientAuthMethod::ClientAssertion,
            (CredentialShape::Certificate, None) => ClientAuthMethod::TlsClientAuth,
            (CredentialShape::Secret, None) if !provider_default.needs_secret() => {
                return Err(ConfigError::Invalid(format!(
                    "the provider is set to {provider_default}, but the credential is a client secret"
                )));
            }
            (CredentialShape::Secret, None) => provider_default,
        };
        match (shape, method) {
            (CredentialShape::Certificate, method) if method.is_mutual_tls() => Ok(method),
            (CredentialShape::Certificate, _) => Err(ConfigError::Invalid(format!(
                "{method} does not fit a TLS client certificate (tls_client_auth or self_signed_tls_client_auth does)"
            ))),
            (_, method) if method.is_mutual_tls() => Err(ConfigError::Invalid(format!(
                "{method} needs a TLS client certificate and key (tls_certificate_file, tls_key_file)"
            ))),
            (CredentialShape::Secret, method) if method.needs_secret() => Ok(method),
            (CredentialShape::Key, ClientAuthMethod::PrivateKeyJwt) => Ok(method),
            (
                CredentialShape::Assertion,
                ClientAuthMethod::ClientAssertion | ClientAuthMethod::PrivateKeyJwt,
            ) => Ok(ClientAuthMethod::ClientAssertion),
            (CredentialShape::Secret, ClientAuthMethod::PrivateKeyJwt) => Err(
                ConfigError::Invalid("private_key_jwt needs a private key, not a client secret".into()),
            ),
            (CredentialShape::Secret, _) => Err(ConfigError::Invalid(format!(
                "{method} needs a client assertion (a file or a callback), not a client secret"
            ))),
            (CredentialShape::Key, ClientAuthMethod::ClientAssertion) => Err(ConfigError::Invalid(
                "client_assertion sends an assertion made elsewhere; a private key signs its own: use private_key_jwt".into(),
            )),
            (CredentialShape::Key, _) => Err(ConfigError::Invalid(format!(
                "{method} needs a client secret, not a private key"
            ))),
            (CredentialShape::Assertion, _) => Err(ConfigError::Invalid(format!(
                "{method} needs a client secret, not a client assertion"
            ))),
        }
    }

    /// How many times the credential changed in a way that makes the
    /// tokens obtained before unwelcome: a refused secret replaced by the
    /// other ([`ClientSecrets::epoch`]), a client certificate renewed on
    /// disk (the tokens are bound to the old one). 0 for the others.
    pub(crate) fn epoch(&self) -> u64 {
        match self {
            Self::Secrets(secrets) => secrets.epoch(),
            Self::TlsCertificateFiles(files) => files.changes(),
            _ => 0,
        }
    }

    /// Sends one token request with this credential as it is now: the
    /// assertion read, the files read again if they changed, a refused
    /// secret failed over to the other.
    pub(crate) async fn send_with<T, F, Fut>(
        &self,
        client_id: &str,
        method: ClientAuthMethod,
        token_url: &str,
        now: SystemTime,
        send: F,
    ) -> Result<T, AuthError>
    where
        F: Fn(RequestAuth) -> Fut,
        Fut: Future<Output = Result<T, AuthError>>,
    {
        let prepare = |credential: &ClientCredential| {
            RequestAuth::prepare(client_id, credential, method, token_url, now)
        };
        match self {
            Self::Assertion(assertion) => {
                let assertion = assertion.current(now).await?;
                send(RequestAuth::client_assertion(&assertion)).await
            }
            Self::Secrets(secrets) => {
                secrets
                    .send_with_fail_over(|secret| {
                        let auth = prepare(&Self::Secret(secret));
                        let send = &send;
                        async move { send(auth?).await }
                    })
                    .await
            }
            Self::PrivateKeyFiles(files) => {
                let key = files.current().await?;
                send(prepare(&Self::PrivateKey((*key).clone()))?).await
            }
            Self::Secret(_)
            | Self::PrivateKey(_)
            | Self::TlsCertificate(_)
            | Self::TlsCertificateFiles(_) => send(prepare(self)?).await,
        }
    }
}

impl fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("ClientCredential::Secret([redacted])"),
            Self::PrivateKey(key) => f
                .debug_tuple("ClientCredential::PrivateKey")
                .field(key)
                .finish(),
            Self::TlsCertificate(identity) => f
                .debug_tuple("ClientCredential::TlsCertificate")
                .field(identity)
                .finish(),
            Self::TlsCertificateFiles(files) => f
                .debug_tuple("ClientCredential::TlsCertificateFiles")
                .field(files)
                .finish(),
            Self::Assertion(assertion) => f
                .debug_tuple("ClientCredential::Assertion")
                .field(assertion)
                .finish(),
            Self::Secrets(secrets) => f
                .debug_tuple("ClientCredential::Secrets")
                .field(secrets)
                .finish(),
            Self::PrivateKeyFiles(files) => f
                .debug_tuple("ClientCredential::PrivateKeyFiles")
                .field(files)
                .finish(),
        }
    }
}

impl From<PrivateKeyJwt> for ClientCredential {
    fn from(key: PrivateKeyJwt) -> Self {
        Self::PrivateKey(key)
    }
}

impl From<ClientAssertion> for ClientCredential {
    fn from(assertion: ClientAssertion) -> Self {
        Self::Assertion(assertion)
    }
}

impl From<ClientSecrets> for ClientCredential {
    fn from(secrets: ClientSecrets) -> Self {
        Self::Secrets(secrets)
    }
}

impl From<PrivateKeyFiles> for ClientCredential {
    fn from(files: PrivateKeyFiles) -> Self {
        Self::PrivateKeyFiles(files)
    }
}

impl From<TlsIdentity> for ClientCredential {
    fn from(identity: TlsIdentity) -> Self {
        Self::TlsCertificate(identity)
    }
}

impl From<TlsIdentityFiles> for ClientCredential {
    fn from(files: TlsIdentityFiles) -> Self {
        Self::TlsCertificateFiles(files)
    }
}

/// The credentials of one request, ready for oauth2: what oauth2 should do,
/// what to add to the body, an `Authorization` value to set ourselves, and
/// every secret text to scrub from anything the server says back.
pub(crate) struct RequestAuth {
    pub(crate) auth_type: oauth2::AuthType,
    pub(crate) client_secret: Option<oauth2::ClientSecret>,
    pub(crate) extra_params: Vec<(&'static str, String)>,
    pub(crate) authorization: Option<HeaderValue>,
    pub(crate) scrubber: Scrubber,
}

impl RequestAuth {
    /// Prepares `method` for a request to `token_url` at `now`.
    pub(crate) fn prepare(
        client_id: &str,
        credential: &ClientCredential,
        method: ClientAuthMethod,
        token_url: &str,
        now: SystemTime,
    ) -> Result<Self, ConfigError> {
        let mut scrubber = Scrubber::default();
        let mut auth = Self {
            auth_type: oauth2::AuthType::RequestBody,
            client_secret: None,
            extra_params: Vec::new(),
            authorization: None,
            scrubber: Scrubber::default(),
        };
        match (credential, method) {
            (ClientCredential::PrivateKey(key), ClientAuthMethod::PrivateKeyJwt) => {
                // oauth2 puts client_id in the body (no secret, RequestBody).
                let assertion = key.assertion(client_id, token_url, now)?;
                scrubber.add(assertion.expose_secret());
                auth.extra_params
                    .push(("client_assertion_type", JWT_BEARER_ASSERTION_TYPE.into()));
                auth.extra_params
                    .push(("client_assertion", assertion.expose_secret().to_owned()));
            }
            // RFC 8705 §2: the certificate is on the connection; oauth2
            // puts client_id in the body (no secret, RequestBody).
            (
                ClientCredential::TlsCertificate(_) | ClientCredential::TlsCertificateFiles(_),
                method,
            ) if method.is_mutual_tls() => {}
            (ClientCredential::Secret(secret), method) if method.needs_secret() => {
                let secret = secret.expose_secret();
                scrubber.add(secret);
                scrubber.add(form_urlencode(secret));
                let rfc = basic_credentials(&form_urlencode(client_id), &form_urlencode(secret));
                let raw = basic_credentials(client_id, secret);
                scrubber.add(rfc.clone());
                scrubber.add(raw.clone());
                match method {
                    ClientAuthMethod::ClientSecretPost => {
                        auth.client_secret = Some(oauth2::ClientSecret::new(secret.to_owned()));
                    }
                    ClientAuthMethod::ClientSecretBasic => {
                        // oauth2 applies the RFC 6749 §2.3.1 encoding itself.
                        auth.auth_type = oauth2::AuthType::BasicAuth;
                        auth.client_secret = Some(oauth2::ClientSecret::new(secret.to_owned()));
                    }
                    ClientAuthMethod::ClientSecretBasicUnencoded => {
                        // oauth2 builds an encoded Basic header (and keeps
                        // client_id out of the body); the adapter replaces
                        // its value with the raw one.
                        auth.auth_type = oauth2::AuthType::BasicAuth;
                        auth.client_secret = Some(oauth2::ClientSecret::new(secret.to_owned()));
                        auth.authorization = Some(basic_header(&raw)?);
                    }
                    ClientAuthMethod::ClientSecretBasicAndPost => {
                        auth.auth_type = oauth2::AuthType::BasicAuth;
                        auth.client_secret = Some(oauth2::ClientSecret::new(secret.to_owned()));
                        auth.authorization = Some(basic_header(&raw)?);
                        auth.extra_params.push(("client_id", client_id.to_owned()));
                        auth.extra_params.push(("client_secret", secret.to_owned()));
                    }
                    ClientAuthMethod::PrivateKeyJwt
                    | ClientAuthMethod::ClientAssertion
                    | ClientAuthMethod::TlsClientAuth
                    | ClientAuthMethod::SelfSignedTlsClientAuth => {
                        unreachable!("needs_secret() is false")
                    }
                }
            }
            (_, method) => {
                return Err(ConfigError::Invalid(format!(
                    "{method} does not fit the credential given"
                )));
            }
        }
        auth.scrubber = scrubber;
        Ok(auth)
    }
}

impl RequestAuth {
    /// A client assertion made elsewhere, in the body (oauth2 adds
    /// `client_id`).
    pub(crate) fn client_assertion(assertion: &SecretString) -> Self {
        let mut scrubber = Scrubber::default();
        scrubber.add(assertion.expose_secret());
        Self {
            auth_type: oauth2::AuthType::RequestBody,
            client_secret: None,
            extra_params: vec![
                ("client_assertion_type", JWT_BEARER_ASSERTION_TYPE.into()),
                ("client_assertion", assertion.expose_secret().to_owned()),
            ],
            authorization: None,
            scrubber,
        }
    }
}

fn form_urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn basic_credentials(user: &str, password: &str) -> String {
    STANDARD.encode(format!("{user}:{password}"))
}

fn basic_header(credentials: &str) -> Result<HeaderValue, ConfigError> {
    let mut value = HeaderValue::from_str(&format!("Basic {credentials}")).map_err(|_| {
        ConfigError::Invalid("the Basic credentials are not a valid header value".into())
    })?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_follows_credential_and_configuration() {
        let secret = ClientCredential::secret("s");
        assert_eq!(
            secret
                .method(None, ClientAuthMethod::ClientSecretPost)
                .unwrap(),
            ClientAuthMethod::ClientSecretPost
        );
        assert_eq!(
            secret
                .method(
                    Some(ClientAuthMethod::ClientSecretBasic),
                    ClientAuthMethod::ClientSecretPost
                )
                .unwrap(),
            ClientAuthMethod::ClientSecretBasic
        );
        assert!(
            secret
                .method(
                    Some(ClientAuthMethod::PrivateKeyJwt),
                    ClientAuthMethod::ClientSecretPost
                )
                .is_err()
        );
        assert!(
            secret
                .method(None, ClientAuthMethod::PrivateKeyJwt)
                .is_err()
        );
    }

    #[test]
    fn a_tls_certificate_needs_no_secret_and_fits_only_mutual_tls() {
        let certificate = ClientCredential::TlsCertificate(
            TlsIdentity::from_pem(
                include_str!("../../tests/fixtures/loopback-server-cert.pem"),
                &SecretString::from(include_str!("../../tests/fixtures/loopback-server-key.pem")),
            )
            .unwrap(),
        );
        let post = ClientAuthMethod::ClientSecretPost;
        assert_eq!(
            certificate.method(None, post).unwrap(),
            ClientAuthMethod::TlsClientAuth
        );
        let self_signed = Some(ClientAuthMethod::SelfSignedTlsClientAuth);
        assert_eq!(
            certificate.method(self_signed, post).unwrap(),
            ClientAuthMethod::SelfSignedTlsClientAuth
        );
        assert!(!ClientAuthMethod::TlsClientAuth.needs_secret());
        for other in [
            ClientAuthMethod::ClientSecretBasic,
            ClientAuthMethod::PrivateKeyJwt,
            ClientAuthMethod::ClientAssertion,
        ] {
            let error = certificate.method(Some(other), post).unwrap_err();
            assert!(
                error.to_string().contains("TLS client certificate"),
                "{error}"
            );
        }
        let assertion = ClientCredential::assertion_file("/nonexistent/token");
        for credential in [ClientCredential::secret("s"), assertion] {
            let error = credential
                .method(Some(ClientAuthMethod::TlsClientAuth), post)
                .unwrap_err();
            assert!(
                error.to_string().contains("tls_certificate_file"),
                "{error}"
            );
        }
    }

    #[test]
    fn debug_is_redacted() {
        let text = format!("{:?}", ClientCredential::secret("hunter2"));
        assert_eq!(text, "ClientCredential::Secret([redacted])");
    }

    #[test]
    fn scrubber_knows_every_form_of_the_secret() {
        let auth = RequestAuth::prepare(
            "id",
            &ClientCredential::secret("p@ss:w+rd"),
            ClientAuthMethod::ClientSecretBasicUnencoded,
            "https://t.example/token",
            SystemTime::UNIX_EPOCH,
        )
        .unwrap();
        let raw = basic_credentials("id", "p@ss:w+rd");
        let encoded = form_urlencode("p@ss:w+rd");
        let echoed = format!("got p@ss:w+rd / {encoded} / {raw}");
        assert_eq!(
            auth.scrubber.scrub(&echoed),
            "got [redacted] / [redacted] / [redacted]"
        );
        assert_eq!(
            auth.authorization.as_ref().unwrap(),
            &format!("Basic {raw}")
        );
        assert!(auth.authorization.unwrap().is_sensitive());
    }
}
