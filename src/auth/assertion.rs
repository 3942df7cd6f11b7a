//! `private_key_jwt` (RFC 7523 §2.2, OpenID Connect Core §9): the client
//! proves who it is with a short-lived JWT signed by its private key.
//!
//! Claims: `iss` = `sub` = the client id, `aud` = the token endpoint, a random
//! `jti`, and `iat` = `nbf` = now, `exp` = now + a short lifetime (2 minutes
//! unless changed). The header names the key by `kid`, or by `x5t` (the
//! base64url SHA-1 thumbprint of the certificate), which is what Microsoft
//! Entra expects for certificate credentials.

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The signature algorithms m2m signs client assertions with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[cfg_attr(feature = "cli", value(rename_all = "verbatim"))]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (an RSA key).
    RS256,
    /// RSASSA-PSS with SHA-256 (an RSA key; what Entra recommends).
    PS256,
    /// ECDSA on P-256 with SHA-256 (an EC key in PKCS#8).
    ES256,
}

impl SigningAlgorithm {
    fn jwt(self) -> Algorithm {
        match self {
            Self::RS256 => Algorithm::RS256,
            Self::PS256 => Algorithm::PS256,
            Self::ES256 => Algorithm::ES256,
        }
    }
}

/// How the assertion's header names the key the server should verify with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyIdentifier {
    /// `kid`: the key id registered with the server (a JWKS entry).
    Kid(String),
    /// `x5t`: the base64url SHA-1 thumbprint of the certificate.
    X5t(String),
}

impl KeyIdentifier {
    /// `x5t` computed from a PEM certificate (the first `CERTIFICATE` block).
    pub fn x5t_of_certificate_pem(certificate_pem: &str) -> Result<Self, ConfigError> {
        let blocks = pem::parse_many(certificate_pem).map_err(|e| ConfigError::InvalidKey {
            reason: format!("the certificate is not PEM: {e}"),
        })?;
        let der = blocks
            .iter()
            .find(|block| block.tag() == "CERTIFICATE")
            .ok_or_else(|| ConfigError::InvalidKey {
                reason: "no CERTIFICATE block in the certificate PEM".into(),
            })?;
        Ok(Self::x5t_of_certificate_der(der.contents()))
    }

    /// `x5t` computed from a DER certificate.
    pub fn x5t_of_certificate_der(certificate_der: &[u8]) -> Self {
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            certificate_der,
        );
        Self::X5t(URL_SAFE_NO_PAD.encode(digest.as_ref()))
    }
}

/// A private key that signs client assertions.
///
/// `Debug` shows the algorithm and key identifier, never the key.
#[derive(Clone)]
pub struct PrivateKeyJwt {
    key: EncodingKey,
    algorithm: SigningAlgorithm,
    key_id: KeyIdentifier,
    lifetime: Duration,
}

/// The JWT claims of a client assertion.
#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    jti: String,
    iat: u64,
    nbf: u64,
    exp: u64,
}

impl PrivateKeyJwt {
    /// How long an assertion is valid unless changed.
    pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(120);

    /// Loads a PEM private key (PKCS#1 or PKCS#8 RSA for RS256/PS256,
    /// PKCS#8 P-256 for ES256). The key is checked by signing a test JWT, so
    /// a key that does not fit the algorithm fails here, not at the first
    /// token request.
    pub fn from_pem(
        private_key_pem: &SecretString,
        algorithm: SigningAlgorithm,
        key_id: KeyIdentifier,
    ) -> Result<Self, ConfigError> {
        let pem = private_key_pem.expose_secret().as_bytes();
        let key = match algorithm {
            SigningAlgorithm::RS256 | SigningAlgorithm::PS256 => EncodingKey::from_rsa_pem(pem),
            SigningAlgorithm::ES256 => EncodingKey::from_ec_pem(pem),
        }
        .map_err(|e| ConfigError::InvalidKey {
            reason: format!("not a {algorithm:?} private key in PEM: {e}"),
        })?;
        let signer = Self {
            key,
            algorithm,
            key_id,
            lifetime: Self::DEFAULT_LIFETIME,
        };
        signer
            .sign(
                "check",
                "https://check.invalid/token",
                SystemTime::UNIX_EPOCH,
            )
            .map_err(|e| ConfigError::InvalidKey {
                reason: format!("the key cannot sign {algorithm:?}: {e}"),
            })?;
        Ok(signer)
    }

    /// With another assertion lifetime (keep it short: a few minutes).
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// The algorithm.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// How the header names the key.
    pub fn key_id(&self) -> &KeyIdentifier {
        &self.key_id
    }

    /// A signed assertion for `client_id` at the token endpoint `audience`.
    pub(crate) fn assertion(
        &self,
        client_id: &str,
        audience: &str,
        now: SystemTime,
    ) -> Result<SecretString, ConfigError> {
        self.sign(client_id, audience, now)
            .map(SecretString::from)
            .map_err(|e| ConfigError::InvalidKey {
                reason: format!("signing the client assertion failed: {e}"),
            })
    }

    fn sign(
        &self,
        client_id: &str,
        audience: &str,
        now: SystemTime,
    ) -> jsonwebtoken::errors::Result<String> {
        let mut header = Header::new(self.algorithm.jwt());
        match &self.key_id {
            KeyIdentifier::Kid(kid) => header.kid = Some(kid.clone()),
            KeyIdentifier::X5t(x5t) => header.x5t = Some(x5t.clone()),
        }
        let iat = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = AssertionClaims {
            iss: client_id,
            sub: client_id,
            aud: audience,
            jti: uuid::Uuid::new_v4().to_string(),
            iat,
            nbf: iat,
            exp: iat.saturating_add(self.lifetime.as_secs().max(1)),
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
    }
}

impl fmt::Debug for PrivateKeyJwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKeyJwt")
            .field("algorithm", &self.algorithm)
            .field("key_id", &self.key_id)
            .field("key", &"[redacted]")
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_lifetime_saturates_the_expiry_instead_of_overflowing() {
        let pem = SecretString::from(include_str!("../../tests/fixtures/rsa-private.pem"));
        let signer = PrivateKeyJwt::from_pem(
            &pem,
            SigningAlgorithm::RS256,
            KeyIdentifier::Kid("k1".into()),
        )
        .unwrap()
        .with_lifetime(Duration::MAX);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let jwt = signer
            .assertion("client", "https://idp.example/token", now)
            .unwrap();
        let payload = jwt.expose_secret().split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["iat"], 1_767_225_600u64);
        assert_eq!(claims["exp"], u64::MAX);
    }
}
