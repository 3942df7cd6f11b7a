//! A `private_key_jwt` key read from files (the PEM key, and the
//! certificate whose thumbprint names it), read again when they change on
//! disk: a key rotated by replacing its files is used from the next token
//! request on, without a restart.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use super::assertion::{KeyIdentifier, PrivateKeyJwt, SigningAlgorithm};
use super::credential_file::{CredentialFile, Reloading};
use super::error::{CredentialError, CredentialKind, CredentialProblem};

/// How the key files' key is named in the assertion's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyName {
    /// `kid`: the key id the server knows.
    Kid(String),
    /// `x5t` of the certificate in this PEM file (read again with the key).
    CertificateFile(PathBuf),
}

/// [`KeyName`] with the certificate file to read.
enum Named {
    Kid(String),
    Certificate(CredentialFile),
}

/// A private key from files, read again when they change. Cloning shares
/// it. `Debug` shows the paths, never the key.
#[derive(Clone)]
pub struct PrivateKeyFiles {
    key: Arc<Reloading<PrivateKeyJwt>>,
}

impl PrivateKeyFiles {
    /// Reads the PEM key in `key_file` (and the certificate, when the key is
    /// named by it) now: a file that cannot be read or used fails here,
    /// naming it. The algorithm, when not given, comes from the key
    /// ([`SigningAlgorithm::for_private_key_pem`]).
    pub fn load(
        key_file: impl Into<PathBuf>,
        algorithm: Option<SigningAlgorithm>,
        name: KeyName,
    ) -> Result<Self, CredentialError> {
        let key = CredentialFile::new(CredentialKind::PrivateKey, key_file);
        let mut files = vec![key.clone()];
        let named = match name {
            KeyName::Kid(kid) => Named::Kid(kid),
            KeyName::CertificateFile(path) => {
                let file = CredentialFile::new(CredentialKind::Certificate, path);
                files.push(file.clone());
                Named::Certificate(file)
            }
        };
        let parse = move |contents: &[secrecy::SecretSlice<u8>]| {
            let invalid = |file: &CredentialFile, reason: String| {
                file.error(CredentialProblem::Invalid { reason })
            };
            let pem = std::str::from_utf8(contents[0].expose_secret())
                .map(|text| SecretString::from(text.to_owned()))
                .map_err(|_| invalid(&key, "it is not PEM text".into()))?;
            let algorithm = match algorithm {
                Some(algorithm) => algorithm,
                None => SigningAlgorithm::for_private_key_pem(&pem)
                    .map_err(|e| invalid(&key, e.to_string()))?,
            };
            let key_id = match &named {
                Named::Kid(kid) => KeyIdentifier::Kid(kid.clone()),
                Named::Certificate(file) => {
                    let text = std::str::from_utf8(contents[1].expose_secret())
                        .map_err(|_| invalid(file, "it is not PEM text".into()))?;
                    KeyIdentifier::x5t_of_certificate_pem(text)
                        .map_err(|e| invalid(file, e.to_string()))?
                }
            };
            PrivateKeyJwt::from_pem(&pem, algorithm, key_id)
                .map_err(|e| invalid(&key, e.to_string()))
        };
        Ok(Self {
            key: Arc::new(Reloading::load(files, parse)?),
        })
    }

    /// The key as the files hold it now.
    pub(crate) async fn current(&self) -> Result<Arc<PrivateKeyJwt>, CredentialError> {
        self.key.current().await
    }
}

impl fmt::Debug for PrivateKeyFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let paths: Vec<_> = self.key.files().iter().map(|file| &file.path).collect();
        f.debug_struct("PrivateKeyFiles")
            .field("files", &paths)
            .finish_non_exhaustive()
    }
}
