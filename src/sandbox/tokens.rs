//! The sandbox's access tokens: ES256 JWTs signed with a key generated at
//! start, published as a JWKS, and checked by the sandbox's APIs.

use std::collections::HashSet;
use std::fmt;
use std::time::{Duration, SystemTime};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::error::SandboxError;

/// What a token endpoint decided to grant.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    pub(crate) audiences: Vec<&'static str>,
    /// Granted scopes; empty for Entra, whose app tokens carry `roles`.
    pub(crate) scopes: Vec<String>,
    pub(crate) roles: Vec<String>,
    pub(crate) tenant: Option<String>,
    /// The thumbprint of the DPoP key the token is bound to (`cnf.jkt`).
    pub(crate) jkt: Option<String>,
    /// The thumbprint of the client certificate the token is bound to
    /// (`cnf.x5t#S256`, RFC 8705 §3).
    pub(crate) x5t: Option<String>,
}

/// The claims of a sandbox access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct AccessClaims {
    pub(crate) iss: String,
    pub(crate) sub: String,
    pub(crate) aud: Audience,
    pub(crate) client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) scope: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tid: Option<String>,
    pub(crate) token_use: String,
    pub(crate) iat: u64,
    pub(crate) nbf: u64,
    pub(crate) exp: u64,
    pub(crate) jti: String,
    /// The key a sender-constrained token is bound to (RFC 7800).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cnf: Option<Confirmation>,
}

/// `cnf`: what a sender-constrained token is bound to (RFC 7800).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Confirmation {
    /// The RFC 7638 thumbprint of the DPoP key (RFC 9449 §6.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) jkt: Option<String>,
    /// The SHA-256 thumbprint of the client certificate (RFC 8705 §3.1).
    #[serde(rename = "x5t#S256", default, skip_serializing_if = "Option::is_none")]
    pub(crate) x5t_s256: Option<String>,
}

impl AccessClaims {
    /// Whether the token was granted `scope`.
    pub(crate) fn has_scope(&self, scope: &str) -> bool {
        self.scope
            .as_deref()
            .is_some_and(|granted| granted.split(' ').any(|s| s == scope))
    }
}

/// `aud`: one string, or an array when a token is for several APIs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub(crate) enum Audience {
    One(String),
    Many(Vec<String>),
}

/// A signed token and its lifetime in whole seconds.
pub(crate) struct IssuedToken {
    pub(crate) jwt: String,
    pub(crate) expires_in: u64,
    /// Bound to a DPoP key (`cnf.jkt`): its `token_type` is `DPoP`.
    pub(crate) dpop_bound: bool,
}

/// Why an API refused a bearer token (the `error_description`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenRejection {
    Expired,
    NotYetValid,
    BadSignature,
    ForeignIssuer,
    WrongAudience,
    Malformed,
}

impl fmt::Display for TokenRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenRejection::Expired => "The access token expired",
            TokenRejection::NotYetValid => "The access token is not valid yet",
            TokenRejection::BadSignature => "The access token signature is invalid",
            TokenRejection::ForeignIssuer => "The access token was issued by an untrusted issuer",
            TokenRejection::WrongAudience => "The access token is not meant for this API",
            TokenRejection::Malformed => "The access token is malformed",
        })
    }
}

/// Signs and checks tokens with one ES256 key generated at start.
pub(crate) struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    jwks: JwkSet,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("kid", &self.kid)
            .field("private_key", &"[redacted]")
            .finish()
    }
}

impl TokenIssuer {
    /// Generates a fresh P-256 key.
    pub(crate) fn generate() -> Result<Self, SandboxError> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| SandboxError::Key("cannot generate a P-256 key".into()))?;
        let encoding = EncodingKey::from_ec_der(pkcs8.as_ref());
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256)
            .map_err(|e| SandboxError::Key(format!("cannot describe the key as a JWK: {e}")))?;
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| SandboxError::Key(format!("cannot compute the key thumbprint: {e}")))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(KeyAlgorithm::ES256);
        let decoding = DecodingKey::from_jwk(&jwk)
            .map_err(|e| SandboxError::Key(format!("cannot use the public key: {e}")))?;
        Ok(Self {
            encoding,
            decoding,
            kid,
            jwks: JwkSet { keys: vec![jwk] },
        })
    }

    /// The public key set (`jwks_uri`).
    pub(crate) fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    /// Signs a token for `grant`, valid from `now` for `lifetime`.
    pub(crate) fn issue(
        &self,
        grant: &Grant,
        now: SystemTime,
        lifetime: Duration,
    ) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        let iat = unix_seconds(now);
        let expires_in = lifetime.as_secs().max(1);
        let aud = match grant.audiences.as_slice() {
            [one] => Audience::One((*one).to_owned()),
            many => Audience::Many(many.iter().map(|a| (*a).to_owned()).collect()),
        };
        let claims = AccessClaims {
            iss: grant.issuer.clone(),
            sub: grant.client_id.clone(),
            aud,
            client_id: grant.client_id.clone(),
            scope: (!grant.scopes.is_empty()).then(|| grant.scopes.join(" ")),
            roles: grant.roles.clone(),
            tid: grant.tenant.clone(),
            token_use: "access".to_owned(),
            iat,
            nbf: iat,
            exp: iat.saturating_add(expires_in),
            jti: uuid::Uuid::new_v4().to_string(),
            cnf: (grant.jkt.is_some() || grant.x5t.is_some()).then(|| Confirmation {
                jkt: grant.jkt.clone(),
                x5t_s256: grant.x5t.clone(),
            }),
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let jwt = jsonwebtoken::encode(&header, &claims, &self.encoding)?;
        Ok(IssuedToken {
            jwt,
            expires_in,
            dpop_bound: grant.jkt.is_some(),
        })
    }

    /// Checks a bearer token for the API known as `audience`: signature,
    /// issuer (one of `trusted_issuers`), audience, and lifetime against `now`.
    pub(crate) fn verify(
        &self,
        token: &str,
        trusted_issuers: &[String],
        audience: &str,
        now: SystemTime,
    ) -> Result<AccessClaims, TokenRejection> {
        let mut validation = Validation::new(Algorithm::ES256);
        // Lifetime is checked below against the injected clock, not the
        // system time jsonwebtoken would read.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.required_spec_claims = HashSet::from(["exp".into(), "iss".into(), "aud".into()]);
        validation.set_issuer(trusted_issuers);
        validation.set_audience(&[audience]);
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &validation)
            .map_err(|error| match error.kind() {
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidKeyFormat => TokenRejection::BadSignature,
                ErrorKind::InvalidIssuer => TokenRejection::ForeignIssuer,
                ErrorKind::InvalidAudience => TokenRejection::WrongAudience,
                _ => TokenRejection::Malformed,
            })?;
        let now = unix_seconds(now);
        if now >= data.claims.exp {
            return Err(TokenRejection::Expired);
        }
        if now < data.claims.nbf {
            return Err(TokenRejection::NotYetValid);
        }
        Ok(data.claims)
    }
}

/// A workload's token: what the Kubernetes API server projects into a pod
/// (the sandbox signs it with its own key, for the federated client).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WorkloadClaims {
    pub(crate) iss: String,
    pub(crate) sub: String,
    pub(crate) aud: String,
    pub(crate) iat: u64,
    pub(crate) nbf: u64,
    pub(crate) exp: u64,
    pub(crate) jti: String,
}

impl TokenIssuer {
    /// Signs a workload token.
    pub(crate) fn issue_workload(
        &self,
        claims: &WorkloadClaims,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }

    /// Checks a workload token presented as a client assertion: signature,
    /// audience, and lifetime against `now` (issuer and subject are the
    /// caller's to match).
    pub(crate) fn verify_workload(
        &self,
        token: &str,
        audience: &str,
        now: SystemTime,
    ) -> Result<WorkloadClaims, TokenRejection> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.required_spec_claims =
            HashSet::from(["exp".into(), "iss".into(), "aud".into(), "sub".into()]);
        validation.set_audience(&[audience]);
        let data = jsonwebtoken::decode::<WorkloadClaims>(token, &self.decoding, &validation)
            .map_err(|error| match error.kind() {
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidKeyFormat => TokenRejection::BadSignature,
                ErrorKind::InvalidAudience => TokenRejection::WrongAudience,
                _ => TokenRejection::Malformed,
            })?;
        let now = unix_seconds(now);
        if now >= data.claims.exp {
            return Err(TokenRejection::Expired);
        }
        if now < data.claims.nbf {
            return Err(TokenRejection::NotYetValid);
        }
        Ok(data.claims)
    }
}

/// Seconds since the Unix epoch (0 before it).
pub(crate) fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "http://127.0.0.1:1/oidc";

    fn grant(audiences: Vec<&'static str>) -> Grant {
        Grant {
            issuer: ISSUER.to_owned(),
            client_id: "client".to_owned(),
            audiences,
            scopes: vec!["transactions/mock".to_owned()],
            roles: Vec::new(),
            tenant: None,
            jkt: None,
            x5t: None,
        }
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn trusted() -> Vec<String> {
        vec![ISSUER.to_owned()]
    }

    #[test]
    fn issued_token_verifies_until_it_expires() {
        let issuer = TokenIssuer::generate().unwrap();
        let token = issuer
            .issue(&grant(vec!["api"]), at(1_000), Duration::from_secs(60))
            .unwrap();
        assert_eq!(token.expires_in, 60);
        let claims = issuer
            .verify(&token.jwt, &trusted(), "api", at(1_059))
            .unwrap();
        assert_eq!((claims.iat, claims.exp), (1_000, 1_060));
        assert!(claims.has_scope("transactions/mock"));
        assert!(!claims.has_scope("transactions/post"));
        assert_eq!(
            issuer.verify(&token.jwt, &trusted(), "api", at(1_060)),
            Err(TokenRejection::Expired)
        );
        assert_eq!(
            issuer.verify(&token.jwt, &trusted(), "api", at(999)),
            Err(TokenRejection::NotYetValid)
        );
    }

    #[test]
    fn wrong_audience_issuer_and_key_are_told_apart() {
        let issuer = TokenIssuer::generate().unwrap();
        let token = issuer
            .issue(&grant(vec!["a", "b"]), at(1_000), Duration::from_secs(60))
            .unwrap();
        assert!(
            issuer
                .verify(&token.jwt, &trusted(), "b", at(1_001))
                .is_ok()
        );
        assert_eq!(
            issuer.verify(&token.jwt, &trusted(), "c", at(1_001)),
            Err(TokenRejection::WrongAudience)
        );
        assert_eq!(
            issuer.verify(&token.jwt, &["http://elsewhere".to_owned()], "a", at(1_001)),
            Err(TokenRejection::ForeignIssuer)
        );
        let other = TokenIssuer::generate().unwrap();
        assert_eq!(
            other.verify(&token.jwt, &trusted(), "a", at(1_001)),
            Err(TokenRejection::BadSignature)
        );
        assert_eq!(
            issuer.verify("not.a.jwt", &trusted(), "a", at(1_001)),
            Err(TokenRejection::Malformed)
        );
    }

    #[test]
    fn jwks_holds_one_signing_key_with_its_thumbprint_as_kid() {
        let issuer = TokenIssuer::generate().unwrap();
        let jwks = serde_json::to_value(issuer.jwks()).unwrap();
        let key = &jwks["keys"][0];
        assert_eq!(key["kty"], "EC");
        assert_eq!(key["crv"], "P-256");
        assert_eq!(key["alg"], "ES256");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["kid"], issuer.kid.as_str());
        assert!(key.get("d").is_none(), "no private part: {key}");
        assert!(format!("{issuer:?}").contains("[redacted]"));
    }
}
