//! Checking DPoP proofs (RFC 9449 §4.3) at the sandbox's token endpoints
//! and APIs.
//!
//! A proof is accepted when: there is exactly one `DPoP` header, at most
//! [`MAX_PROOF_BYTES`] long; its JOSE header says `typ: dpop+jwt`,
//! `alg: ES256` and carries a public P-256 `jwk` (no private member); the
//! ES256 signature verifies with that key; `htm` and `htu` are the request's
//! method and URL (without query and fragment); `iat` is within
//! [`IAT_WINDOW`] of the sandbox's clock; `nonce` is the sandbox's nonce
//! (one per sandbox, random; a proof without it, or with another, gets
//! `use_dpop_nonce`); on API calls `ath` is the token's hash; and its `jti`
//! was never seen within the window. The accepted proof yields the key's
//! RFC 7638 thumbprint, the `cnf.jkt` of the token bound to it.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::tokens::unix_seconds;
use crate::oauth::dpop::{DPOP_HEADER, ath, htu, p256_jwk_thumbprint};

/// How far a proof's `iat` may be from the sandbox's "now", either way.
pub(crate) const IAT_WINDOW: Duration = Duration::from_secs(60);
/// The longest proof read (a P-256 proof is about 600 bytes).
pub(crate) const MAX_PROOF_BYTES: usize = 4096;

/// Why a proof was refused (the `error_description`; never the proof).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProofRejection {
    /// No `DPoP` header.
    Missing,
    /// More than one `DPoP` header.
    Repeated,
    /// Not a compact JWS, too long, or members of the wrong type.
    Malformed,
    /// `typ` is not `dpop+jwt`.
    WrongType,
    /// `alg` is not `ES256`, or the `jwk` is not a public P-256 key.
    UnsupportedKey,
    /// The signature does not verify with the header's `jwk`.
    BadSignature,
    /// `htm` is not the request's method.
    WrongMethod,
    /// `htu` is not the request's URL.
    WrongUrl,
    /// `iat` is outside the window.
    Stale,
    /// The `jti` was used before.
    Replayed,
    /// No `nonce`, or not the sandbox's: answered `use_dpop_nonce`.
    NonceRequired,
    /// `ath` is missing or is not the hash of the token sent.
    WrongTokenHash,
}

impl fmt::Display for ProofRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProofRejection::Missing => "A DPoP proof is required",
            ProofRejection::Repeated => "The request carries more than one DPoP proof",
            ProofRejection::Malformed => "The DPoP proof is malformed",
            ProofRejection::WrongType => "The DPoP proof's typ is not dpop+jwt",
            ProofRejection::UnsupportedKey => {
                "The DPoP proof must be signed with ES256 by the public P-256 jwk of its header"
            }
            ProofRejection::BadSignature => "The DPoP proof's signature is invalid",
            ProofRejection::WrongMethod => "The DPoP proof's htm is not the request's method",
            ProofRejection::WrongUrl => "The DPoP proof's htu is not the request's URL",
            ProofRejection::Stale => "The DPoP proof's iat is too far from the server's time",
            ProofRejection::Replayed => "The DPoP proof's jti was used before",
            ProofRejection::NonceRequired => "Use the server's DPoP nonce",
            ProofRejection::WrongTokenHash => "The DPoP proof's ath is not the access token's hash",
        })
    }
}

impl ProofRejection {
    /// Whether the client should retry with the nonce of the `DPoP-Nonce`
    /// header (`use_dpop_nonce`) rather than give up (`invalid_dpop_proof`).
    pub(crate) fn wants_nonce(&self) -> bool {
        *self == ProofRejection::NonceRequired
    }
}

/// The request a proof must be about.
pub(crate) struct ProofTarget<'a> {
    /// The HTTP method.
    pub(crate) method: &'a str,
    /// The request URL as the client addressed it (query ignored).
    pub(crate) url: &'a str,
    /// On an API call, the access token the proof must hash (`ath`).
    pub(crate) access_token: Option<&'a str>,
}

/// The sandbox's nonce and the `jti`s seen within the window.
pub(crate) struct ProofChecker {
    nonce: String,
    seen: Mutex<HashMap<String, u64>>,
}

impl fmt::Debug for ProofChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProofChecker")
            .field("nonce", &self.nonce)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ProofHeader {
    typ: Option<String>,
    alg: Option<String>,
    jwk: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: u64,
    nonce: Option<String>,
    ath: Option<String>,
}

impl ProofChecker {
    /// A checker with a fresh random nonce.
    pub(crate) fn new() -> Self {
        Self {
            nonce: uuid::Uuid::new_v4().simple().to_string(),
            seen: Mutex::default(),
        }
    }

    /// The nonce the sandbox hands out in `DPoP-Nonce`.
    pub(crate) fn nonce(&self) -> &str {
        &self.nonce
    }

    /// Whether the request carries a `DPoP` header at all.
    pub(crate) fn is_present(headers: &HeaderMap) -> bool {
        headers.contains_key(DPOP_HEADER)
    }

    /// Checks the proof of a request for `target` at `now`; on success, the
    /// thumbprint of the key that signed it.
    pub(crate) fn check(
        &self,
        headers: &HeaderMap,
        target: &ProofTarget<'_>,
        now: SystemTime,
    ) -> Result<String, ProofRejection> {
        let mut values = headers.get_all(DPOP_HEADER).iter();
        let proof = values.next().ok_or(ProofRejection::Missing)?;
        if values.next().is_some() {
            return Err(ProofRejection::Repeated);
        }
        let proof = proof.to_str().map_err(|_| ProofRejection::Malformed)?;
        if proof.len() > MAX_PROOF_BYTES {
            return Err(ProofRejection::Malformed);
        }
        let mut parts = proof.split('.');
        let (Some(header_part), Some(claims_part), Some(signature_part), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ProofRejection::Malformed);
        };
        let header: ProofHeader = decode_json(header_part)?;
        if header.typ.as_deref() != Some("dpop+jwt") {
            return Err(ProofRejection::WrongType);
        }
        if header.alg.as_deref() != Some("ES256") {
            return Err(ProofRejection::UnsupportedKey);
        }
        let jwk = header.jwk.ok_or(ProofRejection::UnsupportedKey)?;
        let (x, y) = public_p256_coordinates(&jwk)?;
        let mut point = Vec::with_capacity(65);
        point.push(4);
        point.extend_from_slice(&x.1);
        point.extend_from_slice(&y.1);
        let signature = URL_SAFE_NO_PAD
            .decode(signature_part)
            .map_err(|_| ProofRejection::Malformed)?;
        let signing_input = &proof[..header_part.len() + 1 + claims_part.len()];
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
            .verify(signing_input.as_bytes(), &signature)
            .map_err(|_| ProofRejection::BadSignature)?;

        let claims: ProofClaims = decode_json(claims_part)?;
        if claims.htm != target.method {
            return Err(ProofRejection::WrongMethod);
        }
        if !same_htu(&claims.htu, target.url) {
            return Err(ProofRejection::WrongUrl);
        }
        let now_secs = unix_seconds(now);
        let window = IAT_WINDOW.as_secs();
        if claims.iat.abs_diff(now_secs) > window {
            return Err(ProofRejection::Stale);
        }
        if claims.nonce.as_deref() != Some(self.nonce.as_str()) {
            return Err(ProofRejection::NonceRequired);
        }
        if let Some(token) = target.access_token
            && claims.ath.as_deref() != Some(ath(token).as_str())
        {
            return Err(ProofRejection::WrongTokenHash);
        }
        if claims.jti.is_empty() {
            return Err(ProofRejection::Malformed);
        }
        self.remember(claims.jti, claims.iat, now_secs)?;
        Ok(p256_jwk_thumbprint(&x.0, &y.0))
    }

    /// Records `jti`, refusing one already seen; forgets those whose `iat`
    /// left the window (a proof that old is refused as stale anyway).
    fn remember(&self, jti: String, iat: u64, now: u64) -> Result<(), ProofRejection> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let oldest = now.saturating_sub(IAT_WINDOW.as_secs());
        seen.retain(|_, seen_iat| *seen_iat >= oldest);
        if seen.contains_key(&jti) {
            return Err(ProofRejection::Replayed);
        }
        seen.insert(jti, iat);
        Ok(())
    }
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, ProofRejection> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| ProofRejection::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| ProofRejection::Malformed)
}

/// A coordinate as the JWK spells it (base64url) and its 32 bytes.
type Coordinate = (String, Vec<u8>);

/// `x` and `y` of a public P-256 JWK; a private member (`d`) or another key
/// type is refused.
fn public_p256_coordinates(
    jwk: &serde_json::Map<String, serde_json::Value>,
) -> Result<(Coordinate, Coordinate), ProofRejection> {
    let member = |name: &str| jwk.get(name).and_then(serde_json::Value::as_str);
    if member("kty") != Some("EC") || member("crv") != Some("P-256") || jwk.contains_key("d") {
        return Err(ProofRejection::UnsupportedKey);
    }
    let coordinate = |name: &str| -> Result<Coordinate, ProofRejection> {
        let text = member(name).ok_or(ProofRejection::UnsupportedKey)?;
        match URL_SAFE_NO_PAD.decode(text) {
            Ok(bytes) if bytes.len() == 32 => Ok((text.to_owned(), bytes)),
            _ => Err(ProofRejection::UnsupportedKey),
        }
    };
    Ok((coordinate("x")?, coordinate("y")?))
}

/// Whether `claimed` names the request URL `actual` (RFC 9449 §4.3 check
/// 9: compared without query and fragment, after normalisation).
fn same_htu(claimed: &str, actual: &str) -> bool {
    match (url::Url::parse(claimed), url::Url::parse(actual)) {
        (Ok(claimed), Ok(actual)) => {
            claimed.query().is_none()
                && claimed.fragment().is_none()
                && htu(&claimed) == htu(&actual)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::http::HeaderValue;

    use crate::oauth::dpop::DpopKey;

    const URL: &str = "http://127.0.0.1:1/Authentication/connect/token";

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn headers(proof: HeaderValue) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(DPOP_HEADER, proof);
        headers
    }

    fn proof(
        key: &DpopKey,
        url: &str,
        token: Option<&str>,
        nonce: Option<&str>,
        iat: u64,
    ) -> HeaderMap {
        let url = url::Url::parse(url).unwrap();
        headers(key.proof("POST", &url, token, nonce, at(iat)).unwrap())
    }

    fn target(token: Option<&str>) -> ProofTarget<'_> {
        ProofTarget {
            method: "POST",
            url: URL,
            access_token: token,
        }
    }

    #[test]
    fn a_good_proof_yields_its_thumbprint_once() {
        let checker = ProofChecker::new();
        let key = DpopKey::generate().unwrap();
        let request = proof(&key, URL, None, Some(checker.nonce()), 1_000);
        assert_eq!(
            checker.check(&request, &target(None), at(1_030)),
            Ok(key.thumbprint().to_owned())
        );
        assert_eq!(
            checker.check(&request, &target(None), at(1_030)),
            Err(ProofRejection::Replayed)
        );
    }

    #[test]
    fn each_broken_piece_is_told_apart() {
        let checker = ProofChecker::new();
        let key = DpopKey::generate().unwrap();
        let nonce = Some(checker.nonce());
        let check = |request: &HeaderMap, token| checker.check(request, &target(token), at(1_000));
        assert_eq!(check(&HeaderMap::new(), None), Err(ProofRejection::Missing));
        assert_eq!(
            check(&proof(&key, URL, None, None, 1_000), None),
            Err(ProofRejection::NonceRequired)
        );
        assert_eq!(
            check(&proof(&key, URL, None, Some("other"), 1_000), None),
            Err(ProofRejection::NonceRequired)
        );
        assert_eq!(
            check(
                &proof(&key, "http://127.0.0.1:1/elsewhere", None, nonce, 1_000),
                None
            ),
            Err(ProofRejection::WrongUrl)
        );
        assert_eq!(
            check(&proof(&key, URL, None, nonce, 1_061), None),
            Err(ProofRejection::Stale)
        );
        assert_eq!(
            check(&proof(&key, URL, None, nonce, 939), None),
            Err(ProofRejection::Stale)
        );
        assert_eq!(
            check(
                &proof(&key, URL, Some("token-a"), nonce, 1_000),
                Some("token-b")
            ),
            Err(ProofRejection::WrongTokenHash)
        );
        assert_eq!(
            check(&proof(&key, URL, None, nonce, 1_000), Some("token-b")),
            Err(ProofRejection::WrongTokenHash)
        );
        let get = {
            let url = url::Url::parse(URL).unwrap();
            headers(key.proof("GET", &url, None, nonce, at(1_000)).unwrap())
        };
        assert_eq!(check(&get, None), Err(ProofRejection::WrongMethod));

        // Another key's signature over this key's header and claims.
        let good = proof(&key, URL, None, nonce, 1_000);
        let other = proof(&DpopKey::generate().unwrap(), URL, None, nonce, 1_000);
        let good = good[DPOP_HEADER].to_str().unwrap();
        let other = other[DPOP_HEADER].to_str().unwrap();
        let forged = format!(
            "{}{}",
            &good[..good.rfind('.').unwrap()],
            &other[other.rfind('.').unwrap()..]
        );
        assert_eq!(
            check(&headers(HeaderValue::from_str(&forged).unwrap()), None),
            Err(ProofRejection::BadSignature)
        );

        // A header of another type or algorithm, or with a private key.
        let reheaded = |header: serde_json::Value| {
            let rest = &good[good.find('.').unwrap()..];
            let text = format!("{}{rest}", URL_SAFE_NO_PAD.encode(header.to_string()));
            headers(HeaderValue::from_str(&text).unwrap())
        };
        let jwk = key.public_jwk().clone();
        assert_eq!(
            check(
                &reheaded(serde_json::json!({"typ": "JWT", "alg": "ES256", "jwk": jwk})),
                None
            ),
            Err(ProofRejection::WrongType)
        );
        assert_eq!(
            check(
                &reheaded(serde_json::json!({"typ": "dpop+jwt", "alg": "none", "jwk": jwk})),
                None
            ),
            Err(ProofRejection::UnsupportedKey)
        );
        let mut private = jwk.clone();
        private["d"] = "AAAA".into();
        assert_eq!(
            check(
                &reheaded(serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private})),
                None
            ),
            Err(ProofRejection::UnsupportedKey)
        );
        assert_eq!(
            check(&headers(HeaderValue::from_static("a.b")), None),
            Err(ProofRejection::Malformed)
        );
        let mut twice = proof(&key, URL, None, nonce, 1_000);
        twice.append(DPOP_HEADER, HeaderValue::from_static("x.y.z"));
        assert_eq!(check(&twice, None), Err(ProofRejection::Repeated));
    }

    #[test]
    fn jtis_older_than_the_window_are_forgotten() {
        let checker = ProofChecker::new();
        let key = DpopKey::generate().unwrap();
        let request = proof(&key, URL, None, Some(checker.nonce()), 1_000);
        checker.check(&request, &target(None), at(1_000)).unwrap();
        let later = proof(&key, URL, None, Some(checker.nonce()), 1_200);
        checker.check(&later, &target(None), at(1_200)).unwrap();
        assert_eq!(checker.seen.lock().unwrap().len(), 1);
    }
}
