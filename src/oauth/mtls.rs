//! Mutual TLS (RFC 8705): the client's certificate and key, presented on the
//! TLS connection to the token endpoint (`tls_client_auth`,
//! `self_signed_tls_client_auth`) and to the API, so certificate-bound
//! tokens (`cnf.x5t#S256`) work there too. One reqwest client per identity:
//! a connection pool never mixes two.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretSlice, SecretString};

use super::credential_file::{CredentialFile, Reloading, read_text, trimmed_text};
use super::error::{ConfigError, CredentialError, CredentialKind, CredentialProblem};

/// A client certificate with its private key. Cheap to clone; `Debug` shows
/// the certificate's thumbprint only, never the key.
#[derive(Clone)]
pub struct TlsIdentity(Arc<Inner>);

struct Inner {
    identity: reqwest::Identity,
    thumbprint: String,
}

impl TlsIdentity {
    /// From the certificate chain (PEM, the client's certificate first) and
    /// its private key (PEM: PKCS#8, SEC1 or PKCS#1). Errors never show the
    /// key.
    pub fn from_pem(certificate_pem: &str, key_pem: &SecretString) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::InvalidKey { reason };
        let first = pem::parse_many(certificate_pem)
            .map_err(|e| invalid(format!("the TLS certificate is not PEM: {e}")))?
            .into_iter()
            .find(|block| block.tag() == "CERTIFICATE")
            .ok_or_else(|| invalid("the TLS certificate file holds no CERTIFICATE".into()))?;
        let key = pem::parse(key_pem.expose_secret())
            .map_err(|e| invalid(format!("the TLS key is not PEM: {e}")))?;
        if !key.tag().ends_with("PRIVATE KEY") || key.tag().starts_with("ENCRYPTED") {
            return Err(invalid(
                "the TLS key file holds no unencrypted PRIVATE KEY".into(),
            ));
        }
        let thumbprint = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, first.contents()));
        // The key and the chain in one PEM, as reqwest reads an identity;
        // zeroed when dropped.
        let bundle = SecretString::from(format!(
            "{}\n{certificate_pem}",
            key_pem.expose_secret().trim_end()
        ));
        let identity = reqwest::Identity::from_pem(bundle.expose_secret().as_bytes())
            .map_err(|_| invalid("the TLS certificate and key cannot be used together".into()))?;
        Ok(Self(Arc::new(Inner {
            identity,
            thumbprint,
        })))
    }

    /// [`TlsIdentity::from_pem`] of two files, each read within 1 MiB;
    /// errors name them.
    pub fn from_pem_files(certificate_file: &Path, key_file: &Path) -> Result<Self, ConfigError> {
        let read = |kind, path: &Path| {
            read_text(kind, path).map_err(|error| ConfigError::InvalidKey {
                reason: error.to_string(),
            })
        };
        let certificate = read(CredentialKind::Certificate, certificate_file)?;
        let key = read(CredentialKind::PrivateKey, key_file)?;
        Self::from_pem(certificate.expose_secret(), &key).map_err(|error| match error {
            ConfigError::InvalidKey { reason } => ConfigError::InvalidKey {
                reason: format!(
                    "{} / {}: {reason}",
                    certificate_file.display(),
                    key_file.display()
                ),
            },
            other => other,
        })
    }

    /// `x5t#S256` of the client certificate (RFC 8705 §3.1): base64url
    /// SHA-256 of its DER, what a certificate-bound token's `cnf` holds.
    pub fn thumbprint(&self) -> &str {
        &self.0.thumbprint
    }

    /// `builder` presenting this identity.
    pub fn apply(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        builder.identity(self.0.identity.clone())
    }
}

impl PartialEq for TlsIdentity {
    fn eq(&self, other: &Self) -> bool {
        self.0.thumbprint == other.0.thumbprint
    }
}

impl Eq for TlsIdentity {}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("x5t#S256", &self.0.thumbprint)
            .finish_non_exhaustive()
    }
}

/// A client certificate and its key from files, read again at every token
/// request: a certificate renewed on disk (by cert-manager, say) is
/// presented from the next token request on, and on the API calls of the
/// handles over that endpoint from then on, without a restart. Cloning
/// shares it. `Debug` shows the paths and the thumbprint, never the key.
#[derive(Clone)]
pub struct TlsIdentityFiles(Arc<Reloading<TlsIdentity>>);

impl TlsIdentityFiles {
    /// Reads the certificate chain and the key now (each within 1 MiB): a
    /// file that cannot be read or used fails here, naming it.
    pub fn load(
        certificate_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Result<Self, CredentialError> {
        let certificate = CredentialFile::new(CredentialKind::Certificate, certificate_file);
        let key = CredentialFile::new(CredentialKind::PrivateKey, key_file);
        let files = vec![certificate.clone(), key.clone()];
        let parse = move |contents: &[SecretSlice<u8>]| {
            let certificate_pem = trimmed_text(&certificate, &contents[0])?;
            let key_pem = trimmed_text(&key, &contents[1])?;
            TlsIdentity::from_pem(certificate_pem.expose_secret(), &key_pem).map_err(|error| {
                // The reason names the certificate or the key, never the key's text.
                certificate.error(CredentialProblem::Invalid {
                    reason: format!("with the key in {}: {error}", key.path.display()),
                })
            })
        };
        Ok(Self(Arc::new(Reloading::load(files, parse)?)))
    }

    /// The identity as the files hold it now: read again, parsed again only
    /// when they changed.
    pub(crate) async fn current(&self) -> Result<Arc<TlsIdentity>, CredentialError> {
        self.0.current().await
    }

    /// The identity read last (at the last token request), without reading
    /// the files.
    pub fn last(&self) -> TlsIdentity {
        (*self.0.last()).clone()
    }

    /// How many times the files changed since they were loaded.
    pub(crate) fn changes(&self) -> u64 {
        self.0.changes()
    }
}

impl PartialEq for TlsIdentityFiles {
    /// The same files, loaded once (clones of one another).
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for TlsIdentityFiles {}

impl fmt::Debug for TlsIdentityFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let paths: Vec<_> = self.0.files().iter().map(|file| &file.path).collect();
        f.debug_struct("TlsIdentityFiles")
            .field("files", &paths)
            .field("x5t#S256", &self.0.last().thumbprint())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = include_str!("../../tests/fixtures/loopback-server-cert.pem");
    const KEY: &str = include_str!("../../tests/fixtures/loopback-server-key.pem");

    #[test]
    fn reads_a_certificate_and_key_and_shows_only_the_thumbprint() {
        let identity = TlsIdentity::from_pem(CERT, &SecretString::from(KEY)).unwrap();
        let der = pem::parse(CERT).unwrap();
        assert_eq!(
            identity.thumbprint(),
            URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, der.contents()))
        );
        let shown = format!("{identity:?}");
        assert!(shown.contains(identity.thumbprint()) && !shown.contains("PRIVATE"));
    }

    #[test]
    fn refuses_what_is_not_a_certificate_and_a_key_without_showing_the_key() {
        let error = TlsIdentity::from_pem(KEY, &SecretString::from(KEY)).unwrap_err();
        assert!(error.to_string().contains("no CERTIFICATE"), "{error}");
        let error = TlsIdentity::from_pem(CERT, &SecretString::from(CERT)).unwrap_err();
        assert!(error.to_string().contains("PRIVATE KEY"), "{error}");
        assert!(!error.to_string().contains("MII"), "{error}");
    }

    #[test]
    fn a_certificate_or_key_file_over_a_mebibyte_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let (certificate, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&certificate, CERT).unwrap();
        std::fs::write(&key, KEY).unwrap();
        assert!(TlsIdentity::from_pem_files(&certificate, &key).is_ok());
        // The same certificate, then a long PEM comment (text outside the
        // blocks, which PEM parsers skip): read whole before, it was taken.
        let padded = format!("{CERT}\n{}", "# padding\n".repeat(110_000));
        std::fs::write(&certificate, padded).unwrap();
        let error = TlsIdentity::from_pem_files(&certificate, &key)
            .unwrap_err()
            .to_string();
        assert!(error.contains("larger than 1048576 bytes"), "{error}");
        assert!(error.contains("cert.pem"), "{error}");
        std::fs::write(&certificate, CERT).unwrap();
        let error = TlsIdentity::from_pem_files(&certificate, Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("private key file /dev/zero is larger than"),
            "{error}"
        );
        assert!(!error.contains("PRIVATE KEY"), "{error}");
    }
}
