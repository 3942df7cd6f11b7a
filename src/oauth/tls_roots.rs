//! Root certificates trusted beside the platform's: the private CA that
//! issued a token endpoint's or an API's server certificate (common where
//! clients present certificates too, RFC 8705).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use secrecy::ExposeSecret;

use super::credential_file::read_text;
use super::error::{ConfigError, CredentialKind};

/// CA certificates trusted for the token endpoint, discovery and the API
/// calls, in addition to the platform's roots. Cheap to clone; two are
/// equal when they hold the same certificates.
#[derive(Clone)]
pub struct TlsRoots(Arc<[Root]>);

struct Root {
    certificate: reqwest::Certificate,
    /// SHA-256 of the DER: what equality and `Debug` use.
    fingerprint: [u8; 32],
}

impl TlsRoots {
    /// Every `CERTIFICATE` of a PEM bundle; at least one.
    pub fn from_pem(bundle: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::InvalidKey { reason };
        let roots = pem::parse_many(bundle)
            .map_err(|e| invalid(format!("the CA certificates are not PEM: {e}")))?
            .into_iter()
            .filter(|block| block.tag() == "CERTIFICATE")
            .map(|block| {
                let der = block.contents();
                let certificate = reqwest::Certificate::from_der(der)
                    .map_err(|e| invalid(format!("a CA certificate cannot be used: {e}")))?;
                let mut fingerprint = [0; 32];
                fingerprint.copy_from_slice(
                    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref(),
                );
                Ok(Root {
                    certificate,
                    fingerprint,
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        if roots.is_empty() {
            return Err(invalid("the CA file holds no CERTIFICATE".to_owned()));
        }
        Ok(Self(roots.into()))
    }

    /// [`TlsRoots::from_pem`] of a file, read within 1 MiB; errors name it.
    pub fn from_pem_file(path: &Path) -> Result<Self, ConfigError> {
        let text = read_text(CredentialKind::Certificate, path).map_err(|error| {
            ConfigError::InvalidKey {
                reason: error.to_string(),
            }
        })?;
        Self::from_pem(text.expose_secret()).map_err(|error| match error {
            ConfigError::InvalidKey { reason } => ConfigError::InvalidKey {
                reason: format!("{}: {reason}", path.display()),
            },
            other => other,
        })
    }

    /// How many certificates.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true: a bundle holds at least one certificate.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `builder` trusting these roots too (the platform's stay).
    pub fn apply(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        builder.tls_certs_merge(self.0.iter().map(|root| root.certificate.clone()))
    }
}

impl PartialEq for TlsRoots {
    fn eq(&self, other: &Self) -> bool {
        self.0
            .iter()
            .map(|root| root.fingerprint)
            .eq(other.0.iter().map(|root| root.fingerprint))
    }
}

impl Eq for TlsRoots {}

impl fmt::Debug for TlsRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sha256: Vec<String> = self
            .0
            .iter()
            .map(|root| {
                root.fingerprint
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            })
            .collect();
        f.debug_struct("TlsRoots").field("sha256", &sha256).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = include_str!("../../tests/fixtures/loopback-server-cert.pem");

    #[test]
    fn reads_a_bundle_and_refuses_a_file_without_certificates() {
        let bundle = format!("{CERT}\n{CERT}");
        let roots = TlsRoots::from_pem(&bundle).unwrap();
        assert_eq!(roots.len(), 2);
        assert_eq!(roots, TlsRoots::from_pem(&bundle).unwrap());
        assert_ne!(roots, TlsRoots::from_pem(CERT).unwrap());
        let error = TlsRoots::from_pem("no pem here").unwrap_err().to_string();
        assert!(error.contains("no CERTIFICATE"), "{error}");
        let missing = Path::new("/nonexistent/ca.pem");
        let error = TlsRoots::from_pem_file(missing).unwrap_err().to_string();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
    }

    #[test]
    fn a_ca_file_over_a_mebibyte_is_refused_unread() {
        // A valid bundle, only too long: read whole before, it was taken.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("huge-ca.pem");
        let copies = 1024 * 1024 / CERT.len() + 1;
        std::fs::write(&file, CERT.repeat(copies)).unwrap();
        let error = TlsRoots::from_pem_file(&file).unwrap_err().to_string();
        assert!(error.contains("larger than 1048576 bytes"), "{error}");
        assert!(error.contains("huge-ca.pem"), "{error}");
        // A device that never ends is refused the same way.
        let error = TlsRoots::from_pem_file(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("larger than"), "{error}");
    }
}
