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

use super::error::ConfigError;

/// The signature algorithms m2m signs client assertions with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[cfg_attr(feature = "clap", value(rename_all = "verbatim"))]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (an RSA key).
    RS256,
    /// RSASSA-PSS with SHA-256 (an RSA key; what Entra recommends).
    PS256,
    /// ECDSA on P-256 with SHA-256 (an EC key in PKCS#8).
    ES256,
}

/// `rsaEncryption` (RFC 8017): an RSA key.
const RSA_ENCRYPTION: &[u64] = &[1, 2, 840, 113_549, 1, 1, 1];
/// `id-ecPublicKey` (RFC 5480): an EC key; its parameter names the curve.
const EC_PUBLIC_KEY: &[u64] = &[1, 2, 840, 10_045, 2, 1];
/// `prime256v1` / `secp256r1`: P-256, the curve of ES256.
const P256: &[u64] = &[1, 2, 840, 10_045, 3, 1, 7];

impl SigningAlgorithm {
    /// The algorithm for a PEM private key when none is configured: RS256
    /// for an RSA key, ES256 for a P-256 key.
    ///
    /// Decided from the key's algorithm identifier (the OID inside a PKCS#8
    /// `PRIVATE KEY`, the form `openssl genpkey` writes for any algorithm),
    /// not from the PEM label; a PKCS#1 `RSA PRIVATE KEY` is RSA. Other
    /// forms are refused with what to do. The error never shows the key.
    pub fn for_private_key_pem(private_key_pem: &SecretString) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::InvalidKey { reason };
        let block = pem::parse(private_key_pem.expose_secret())
            .map_err(|e| invalid(format!("the private key is not PEM: {e}")))?;
        match block.tag() {
            "PRIVATE KEY" => {}
            "RSA PRIVATE KEY" => return Ok(Self::RS256),
            "EC PRIVATE KEY" => {
                return Err(invalid(
                    "the key is a SEC1 EC key (BEGIN EC PRIVATE KEY); m2m reads PKCS#8: convert it with `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8`".into(),
                ));
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err(invalid(
                    "the key is encrypted; m2m reads unencrypted PKCS#8: decrypt it with `openssl pkcs8 -in KEY -out KEY.pk8`".into(),
                ));
            }
            other => {
                return Err(invalid(format!(
                    "the PEM block is {:?}, not a PRIVATE KEY",
                    other.chars().take(40).collect::<String>()
                )));
            }
        }
        let (algorithm, parameter) = pkcs8_algorithm(block.contents()).ok_or_else(|| {
            invalid("the PRIVATE KEY is not a PKCS#8 structure m2m can read".into())
        })?;
        match (algorithm.as_slice(), parameter.as_deref()) {
            (RSA_ENCRYPTION, _) => Ok(Self::RS256),
            (EC_PUBLIC_KEY, Some(P256)) => Ok(Self::ES256),
            (EC_PUBLIC_KEY, curve) => Err(invalid(format!(
                "the EC key is on the curve {}, but ES256 needs P-256 ({})",
                curve.map_or_else(|| "that the key does not name".to_owned(), dotted),
                dotted(P256)
            ))),
            (other, _) => Err(invalid(format!(
                "the key's algorithm is {}; m2m signs with RSA ({}) or P-256 EC ({}) keys",
                dotted(other),
                dotted(RSA_ENCRYPTION),
                dotted(EC_PUBLIC_KEY)
            ))),
        }
    }

    fn jwt(self) -> Algorithm {
        match self {
            Self::RS256 => Algorithm::RS256,
            Self::PS256 => Algorithm::PS256,
            Self::ES256 => Algorithm::ES256,
        }
    }
}

/// The `AlgorithmIdentifier` of a PKCS#8 `PrivateKeyInfo` (RFC 5208 §5):
/// its OID and, when the parameter is an OID too (an EC key's curve), that.
fn pkcs8_algorithm(der: &[u8]) -> Option<(Vec<u64>, Option<Vec<u64>>)> {
    use simple_asn1::ASN1Block::{ObjectIdentifier, Sequence};
    let blocks = simple_asn1::from_der(der).ok()?;
    let [Sequence(_, info)] = blocks.as_slice() else {
        return None;
    };
    let Some(Sequence(_, identifier)) = info.get(1) else {
        return None;
    };
    let Some(ObjectIdentifier(_, algorithm)) = identifier.first() else {
        return None;
    };
    let parameter = match identifier.get(1) {
        Some(ObjectIdentifier(_, parameter)) => parameter.as_vec::<u64>().ok(),
        _ => None,
    };
    Some((algorithm.as_vec::<u64>().ok()?, parameter))
}

/// An OID as text: `1.2.840.10045.2.1`.
fn dotted(oid: &[u64]) -> String {
    let parts: Vec<String> = oid.iter().map(u64::to_string).collect();
    parts.join(".")
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

    /// Throwaway keys `openssl genpkey` wrote (they protect nothing).
    const ED25519_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIAQB7vjLJHwSkgv+M4k+UMNtBkftS0giW5qt30fs8hRS
-----END PRIVATE KEY-----";
    const P384_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDBrA98KucnEf8OqyJtz
4d0pemlVtW+Lf8s2pJHdTyuB5GBXMhpoULL/LDZlOPAgHQChZANiAAR4wV8F6K2I
TfI20NOuaq+/u29V45rs3iU+ikyIXap0JT/qhH1V0FvZEY39d40enWniFvczbtG+
vcj3t9f7mi4ewdWvg+RbmvMGxn+To0LK9hT0mIeA5DbYMcK5xEfBJUM=
-----END PRIVATE KEY-----";
    /// `openssl ec -in tests/fixtures/ec-private.pem`: the fixture as SEC1.
    const P256_SEC1: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIB2l6mxTCi6JujO3rv+rB2IZfXWDENtfYf6i1xL01c7doAoGCCqGSM49
AwEHoUQDQgAE9nY/MMZ7Ze6CKfi1JpjDsfNRao2KboX6CjzSoufv0ml9YKPnom/G
+FkCYUlQBNcLgPqYRmZSsJdk+G2pygr1jA==
-----END EC PRIVATE KEY-----";

    fn algorithm_of(pem: &str) -> Result<SigningAlgorithm, String> {
        SigningAlgorithm::for_private_key_pem(&SecretString::from(pem)).map_err(|error| {
            let text = error.to_string();
            for line in pem.lines().filter(|line| line.len() >= 20) {
                assert!(!text.contains(&line[..20]), "the key shows: {text}");
            }
            text
        })
    }

    #[test]
    fn the_algorithm_comes_from_the_keys_oid() {
        // PKCS#8, as `openssl genpkey` writes any key: same label, the OID
        // inside tells EC from RSA.
        let ec = include_str!("../../tests/fixtures/ec-private.pem");
        let rsa = include_str!("../../tests/fixtures/rsa-private.pem");
        assert!(ec.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(rsa.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(algorithm_of(ec), Ok(SigningAlgorithm::ES256));
        assert_eq!(algorithm_of(rsa), Ok(SigningAlgorithm::RS256));
        let pkcs1 = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----";
        assert_eq!(algorithm_of(pkcs1), Ok(SigningAlgorithm::RS256));
    }

    #[test]
    fn keys_m2m_cannot_sign_with_are_refused_with_what_to_do() {
        let error = algorithm_of(ED25519_PKCS8).unwrap_err();
        assert!(error.contains("algorithm is 1.3.101.112"), "{error}");
        let error = algorithm_of(P384_PKCS8).unwrap_err();
        assert!(
            error.contains("curve 1.3.132.0.34, but ES256 needs P-256"),
            "{error}"
        );
        let error = algorithm_of(P256_SEC1).unwrap_err();
        assert!(error.contains("openssl pkcs8 -topk8 -nocrypt"), "{error}");
        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----";
        assert!(algorithm_of(encrypted).unwrap_err().contains("encrypted"));
        let certificate = include_str!("../../tests/fixtures/rsa-cert.pem");
        assert!(
            algorithm_of(certificate)
                .unwrap_err()
                .contains("\"CERTIFICATE\", not a PRIVATE KEY")
        );
        let not_der =
            "-----BEGIN PRIVATE KEY-----\nAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n-----END PRIVATE KEY-----";
        assert!(algorithm_of(not_der).unwrap_err().contains("not a PKCS#8"));
        assert!(algorithm_of("just text").unwrap_err().contains("not PEM"));
    }
}
