//! DPoP (RFC 9449): tokens bound to a key the client holds, proved on every
//! request with a fresh, signed proof.
//!
//! - [`DpopKey`]: a P-256 key, fresh for the process ([`DpopKey::generate`])
//!   or read from a PEM file; its RFC 7638 thumbprint is part of the cache
//!   key, so a token bound to one key is never handed to a holder of another.
//! - [`Dpop`]: the key, the nonces the servers gave (one per origin, RFC 9449
//!   §8 and §9) and whether a Bearer answer to a DPoP request may be used.
//! - A proof (`typ: dpop+jwt`, ES256, the public key as `jwk`) carries a
//!   random `jti` (never reused), `htm`, `htu` (the URL without query,
//!   fragment or user info), `iat` from the injected clock, `ath` (base64url
//!   SHA-256 of the token) on resource requests and the server's `nonce`
//!   when it gave one. Proofs are marked sensitive and never logged; the
//!   private key never leaves this module (`Debug` shows the thumbprint).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::credential_file::read_text;
use super::error::{ConfigError, CredentialKind};

/// The `DPoP` request header that carries a proof.
pub const DPOP_HEADER: HeaderName = HeaderName::from_static("dpop");
/// The `DPoP-Nonce` answer header that carries a server's nonce.
pub const DPOP_NONCE_HEADER: HeaderName = HeaderName::from_static("dpop-nonce");
/// The OAuth error a server answers when a proof lacks its (current) nonce.
pub const USE_DPOP_NONCE: &str = "use_dpop_nonce";

/// A P-256 key that DPoP proofs are signed with. Cheap to clone; `Debug`
/// shows its thumbprint only.
#[derive(Clone)]
pub struct DpopKey(Arc<KeyInner>);

struct KeyInner {
    pair: EcdsaKeyPair,
    /// The public JWK as it goes into a proof header (`kty`, `crv`, `x`, `y`).
    jwk: serde_json::Value,
    thumbprint: String,
}

impl DpopKey {
    /// A fresh key, for this process only (tokens bound to it are of no use
    /// to any other process, and are cached under its thumbprint).
    pub fn generate() -> Result<Self, ConfigError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(|_| {
            ConfigError::InvalidKey {
                reason: "no DPoP key could be generated".into(),
            }
        })?;
        Self::from_pair(pair)
    }

    /// The process's own key: generated on first use, the same for every
    /// later caller (what `dpop = true` in a configuration uses).
    pub fn for_process() -> Result<Self, ConfigError> {
        static PROCESS_KEY: std::sync::OnceLock<DpopKey> = std::sync::OnceLock::new();
        if let Some(key) = PROCESS_KEY.get() {
            return Ok(key.clone());
        }
        let key = Self::generate()?;
        Ok(PROCESS_KEY.get_or_init(|| key).clone())
    }

    /// A P-256 private key in PEM: PKCS#8 (`BEGIN PRIVATE KEY`) or SEC1
    /// (`BEGIN EC PRIVATE KEY`). The error never shows the key.
    pub fn from_pem(pem_text: &SecretString) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::InvalidKey { reason };
        let block = pem::parse(pem_text.expose_secret())
            .map_err(|e| invalid(format!("the DPoP key is not PEM: {e}")))?;
        if !matches!(block.tag(), "PRIVATE KEY" | "EC PRIVATE KEY") {
            return Err(invalid(format!(
                "the DPoP key's PEM block is {:?}, not a PRIVATE KEY or an EC PRIVATE KEY",
                block.tag().chars().take(40).collect::<String>()
            )));
        }
        let pair =
            EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, block.contents())
                .map_err(|_| {
                    invalid("the DPoP key is not an unencrypted P-256 (ES256) private key".into())
                })?;
        Self::from_pair(pair)
    }

    /// [`DpopKey::from_pem`] of a file, read within 1 MiB like every key
    /// file; the error names the file.
    pub fn from_pem_file(path: &Path) -> Result<Self, ConfigError> {
        let text = read_text(CredentialKind::PrivateKey, path).map_err(|error| {
            ConfigError::InvalidKey {
                reason: format!("the DPoP key: {error}"),
            }
        })?;
        Self::from_pem(&text).map_err(|error| match error {
            ConfigError::InvalidKey { reason } => ConfigError::InvalidKey {
                reason: format!("{}: {reason}", path.display()),
            },
            other => other,
        })
    }

    fn from_pair(pair: EcdsaKeyPair) -> Result<Self, ConfigError> {
        // An uncompressed P-256 point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = pair.public_key().as_ref();
        if point.len() != 65 || point[0] != 4 {
            return Err(ConfigError::InvalidKey {
                reason: "the DPoP key's public point is not an uncompressed P-256 point".into(),
            });
        }
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
        let thumbprint = p256_jwk_thumbprint(&x, &y);
        let jwk = serde_json::json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y });
        Ok(Self(Arc::new(KeyInner {
            pair,
            jwk,
            thumbprint,
        })))
    }

    /// The RFC 7638 JWK SHA-256 thumbprint, base64url: what a server puts in
    /// the token's `cnf.jkt`.
    pub fn thumbprint(&self) -> &str {
        &self.0.thumbprint
    }

    /// The public key as a JWK (`kty`, `crv`, `x`, `y`; nothing private).
    pub fn public_jwk(&self) -> &serde_json::Value {
        &self.0.jwk
    }

    /// A proof for `method` `url` at `now`; with `access_token`, its `ath`;
    /// with `nonce`, the server's nonce. Marked sensitive.
    pub(crate) fn proof(
        &self,
        method: &str,
        url: &Url,
        access_token: Option<&str>,
        nonce: Option<&str>,
        now: SystemTime,
    ) -> Result<HeaderValue, ConfigError> {
        let header = serde_json::json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": self.0.jwk });
        let iat = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut claims = serde_json::json!({
            "jti": uuid::Uuid::new_v4().simple().to_string(),
            "htm": method,
            "htu": htu(url),
            "iat": iat,
        });
        if let Some(token) = access_token {
            claims["ath"] = ath(token).into();
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .0
            .pair
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| ConfigError::InvalidKey {
                reason: "the DPoP proof could not be signed".into(),
            })?;
        let proof = format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        );
        let mut value = HeaderValue::from_str(&proof).map_err(|_| ConfigError::InvalidKey {
            reason: "the DPoP proof is not a valid header value".into(),
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("thumbprint", &self.0.thumbprint)
            .finish_non_exhaustive()
    }
}

/// `htu`: the request URL without query, fragment and user info (RFC 9449
/// §4.2). `Url` has already normalised the scheme and host to lower case and
/// dropped a default port.
pub(crate) fn htu(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// The RFC 7638 SHA-256 thumbprint (base64url) of the P-256 public JWK
/// with coordinates `x` and `y` (base64url): the `cnf.jkt` of a token bound
/// to it. The sandbox computes it for the keys of the proofs it checks.
pub(crate) fn p256_jwk_thumbprint(x: &str, y: &str) -> String {
    // RFC 7638 §3.2: the required members, in lexicographic order, no spaces.
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
}

/// `ath`: base64url(SHA-256(the access token)) (RFC 9449 §4.2).
pub(crate) fn ath(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, access_token.as_bytes()))
}

/// DPoP for one client: its key, the servers' nonces and whether a Bearer
/// answer to a DPoP token request may be used as Bearer. Cheap to clone;
/// the token endpoint and every [`Auth`](crate::auth::Auth) handle over it
/// share one.
#[derive(Clone)]
pub struct Dpop(Arc<DpopInner>);

struct DpopInner {
    key: DpopKey,
    allow_bearer: bool,
    nonces: Mutex<HashMap<String, String>>,
}

impl Dpop {
    /// Most characters of a nonce kept; a longer one is ignored.
    pub const MAX_NONCE_CHARS: usize = 1024;
    /// Most origins whose nonce is kept; past it the oldest are forgotten
    /// (all of them: the next request to each simply asks again).
    pub const MAX_ORIGINS: usize = 64;

    /// DPoP with `key`; a Bearer answer is refused.
    pub fn new(key: DpopKey) -> Self {
        Self(Arc::new(DpopInner {
            key,
            allow_bearer: false,
            nonces: Mutex::new(HashMap::new()),
        }))
    }

    /// Whether a token endpoint that answers a DPoP request with a Bearer
    /// token (it does not support DPoP) may be used that way. Off: such an
    /// answer is [`AuthError::NotSenderConstrained`](crate::auth::AuthError::NotSenderConstrained).
    pub fn allow_bearer(self, allow: bool) -> Self {
        Self(Arc::new(DpopInner {
            key: self.0.key.clone(),
            allow_bearer: allow,
            nonces: Mutex::new(HashMap::new()),
        }))
    }

    /// Whether a Bearer answer may be used.
    pub fn allows_bearer(&self) -> bool {
        self.0.allow_bearer
    }

    /// The key.
    pub fn key(&self) -> &DpopKey {
        &self.0.key
    }

    /// A proof for `method` `url` with the nonce kept for its origin.
    pub(crate) fn proof(
        &self,
        method: &str,
        url: &Url,
        access_token: Option<&str>,
        now: SystemTime,
    ) -> Result<HeaderValue, ConfigError> {
        let nonce = self.nonce_for(url);
        self.0
            .key
            .proof(method, url, access_token, nonce.as_deref(), now)
    }

    /// The nonce kept for `url`'s origin.
    pub(crate) fn nonce_for(&self, url: &Url) -> Option<String> {
        let nonces = self.0.nonces.lock().unwrap_or_else(|e| e.into_inner());
        nonces.get(&origin(url)).cloned()
    }

    /// Keeps the `DPoP-Nonce` of an answer from `url`, if it has a valid
    /// one, and returns it.
    pub(crate) fn note_nonce<'h>(&self, url: &Url, headers: &'h HeaderMap) -> Option<&'h str> {
        let nonce = headers
            .get(DPOP_NONCE_HEADER)
            .and_then(|value| value.to_str().ok())
            .filter(|nonce| is_valid_nonce(nonce))?;
        let mut nonces = self.0.nonces.lock().unwrap_or_else(|e| e.into_inner());
        let origin = origin(url);
        if nonces.get(&origin).is_some_and(|kept| kept == nonce) {
            return Some(nonce);
        }
        if nonces.len() >= Self::MAX_ORIGINS && !nonces.contains_key(&origin) {
            nonces.clear();
        }
        nonces.insert(origin, nonce.to_owned());
        Some(nonce)
    }
}

impl fmt::Debug for Dpop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dpop")
            .field("key", &self.0.key)
            .field("allow_bearer", &self.0.allow_bearer)
            .finish_non_exhaustive()
    }
}

fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// RFC 9449 §8.1: `nonce = 1*NQCHAR`, NQCHAR = %x21 / %x23-5B / %x5D-7E
/// (printable ASCII but `"` and `\`); at most [`Dpop::MAX_NONCE_CHARS`].
fn is_valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce.len() <= Dpop::MAX_NONCE_CHARS
        && nonce
            .bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn decode(proof: &HeaderValue) -> (serde_json::Value, serde_json::Value, Vec<u8>) {
        let text = proof.to_str().unwrap();
        let parts: Vec<&str> = text.split('.').collect();
        assert_eq!(parts.len(), 3);
        let json = |part: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap());
        (
            json(parts[0]).unwrap(),
            json(parts[1]).unwrap(),
            URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
        )
    }

    #[test]
    fn proof_has_the_rfc_9449_shape_and_verifies_with_its_jwk() {
        let key = DpopKey::generate().unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let url = Url::parse("HTTPS://user:pw@API.Example:443/a/b?q=secret#frag").unwrap();
        let proof = key
            .proof("GET", &url, Some("token-1"), Some("n-1"), now)
            .unwrap();
        assert!(proof.is_sensitive());
        let (header, claims, signature) = decode(&proof);
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["jwk"], *key.public_jwk());
        assert!(header["jwk"].get("d").is_none(), "no private part");
        assert_eq!(claims["htm"], "GET");
        assert_eq!(claims["htu"], "https://api.example/a/b");
        assert_eq!(claims["iat"], 1_700_000_000);
        assert_eq!(claims["nonce"], "n-1");
        assert_eq!(
            claims["ath"],
            // base64url(sha256("token-1"))
            URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, b"token-1"))
        );
        assert_eq!(signature.len(), 64);
        // The signature verifies with the public key of the header.
        let text = proof.to_str().unwrap();
        let input = &text[..text.rfind('.').unwrap()];
        let point = key.0.pair.public_key().as_ref().to_vec();
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
            point,
        )
        .verify(input.as_bytes(), &signature)
        .unwrap();
    }

    #[test]
    fn every_proof_has_a_fresh_jti_and_token_requests_have_no_ath() {
        let key = DpopKey::generate().unwrap();
        let url = Url::parse("https://as.example/token").unwrap();
        let jtis: std::collections::HashSet<String> = (0..50)
            .map(|_| {
                let (_, claims, _) = decode(
                    &key.proof("POST", &url, None, None, SystemTime::now())
                        .unwrap(),
                );
                assert!(claims.get("ath").is_none() && claims.get("nonce").is_none());
                claims["jti"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(jtis.len(), 50);
    }

    #[test]
    fn thumbprint_is_rfc_7638() {
        // RFC 7638 §3.1 is an RSA example; this checks the EC member order
        // by recomputing it from the JWK.
        let key = DpopKey::generate().unwrap();
        let jwk = key.public_jwk();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        assert_eq!(
            key.thumbprint(),
            URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
        );
        assert!(!format!("{key:?}").contains(jwk["x"].as_str().unwrap()));
    }

    #[test]
    fn nonces_are_kept_per_origin_and_odd_ones_ignored() {
        let dpop = Dpop::new(DpopKey::generate().unwrap());
        let a = Url::parse("https://a.example/token").unwrap();
        let a_api = Url::parse("https://a.example/api/x").unwrap();
        let b = Url::parse("https://b.example/").unwrap();
        let with = |nonce: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(DPOP_NONCE_HEADER, HeaderValue::from_str(nonce).unwrap());
            headers
        };
        let first = with("n1!#$[]^~");
        assert_eq!(dpop.note_nonce(&a, &first), Some("n1!#$[]^~"));
        assert_eq!(
            dpop.note_nonce(&a, &first),
            Some("n1!#$[]^~"),
            "same nonce again"
        );
        assert_eq!(dpop.nonce_for(&a_api).as_deref(), Some("n1!#$[]^~"));
        assert_eq!(dpop.nonce_for(&b), None);
        for odd in [r#"a"b"#, r"a\b", "a b", ""] {
            assert_eq!(dpop.note_nonce(&b, &with(odd)), None, "{odd:?}");
        }
        let long = with(&"x".repeat(Dpop::MAX_NONCE_CHARS + 1));
        assert_eq!(dpop.note_nonce(&b, &long), None);
        assert_eq!(dpop.nonce_for(&b), None);
        let (_, claims, _) = decode(&dpop.proof("GET", &a_api, None, SystemTime::now()).unwrap());
        assert_eq!(claims["nonce"], "n1!#$[]^~");
    }

    #[test]
    fn pem_keys_are_read_and_others_refused_without_showing_them() {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let der = key.to_pkcs8v1().unwrap();
        let text = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
        let read = DpopKey::from_pem(&SecretString::from(text)).unwrap();
        assert_eq!(
            read.public_jwk()["x"],
            URL_SAFE_NO_PAD.encode(&key.public_key().as_ref()[1..33])
        );
        let rsa = include_str!("../../tests/fixtures/rsa-private.pem");
        let error = DpopKey::from_pem(&SecretString::from(rsa.to_owned())).unwrap_err();
        assert!(error.to_string().contains("P-256"), "{error}");
        assert!(!error.to_string().contains("MII"), "{error}");
    }

    #[test]
    fn a_key_file_over_a_mebibyte_is_refused_unread() {
        // Read whole before: /dev/zero never ended.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dpop.pem");
        std::fs::write(&file, vec![b'#'; 2 * 1024 * 1024]).unwrap();
        let error = DpopKey::from_pem_file(&file).unwrap_err().to_string();
        assert!(error.contains("larger than 1048576 bytes"), "{error}");
        assert!(error.contains("dpop.pem"), "{error}");
        assert!(
            error.contains("the DPoP key: the private key file"),
            "{error}"
        );
    }
}
