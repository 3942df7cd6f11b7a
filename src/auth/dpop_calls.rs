//! DPoP on API calls (RFC 9449 §7): a request carrying a DPoP token gets a
//! fresh proof (`htm`, `htu`, `ath`, the origin's nonce) every time it is
//! sent, resent included; an API's `DPoP-Nonce` is kept for its origin, and
//! a 401 `DPoP error="use_dpop_nonce"` sends the request once more with it.
//!
//! A DPoP token is never sent without its proof, and never as Bearer: its
//! `Authorization` scheme is `DPoP` by construction, and a handle without
//! the key refuses to send it.
//!
//! A redirect (followed within the origin only, see
//! [`ApiSettings::http_client`](super::ApiSettings::http_client)) carries
//! the proof of the first URL, which the server refuses (`htu` differs):
//! the 401 comes back to the caller; the proof is of no use elsewhere.

use std::time::SystemTime;

use http::header::AUTHORIZATION;
use reqwest::{Request, Response};

use super::challenge::asks_for_dpop_nonce;
use crate::oauth::dpop::{DPOP_HEADER, Dpop};
use crate::oauth::error::{AuthError, ConfigError};

/// The scheme of a DPoP token's `Authorization` value, with its space.
const DPOP_SCHEME: &str = "DPoP ";

/// Gives `request` a fresh proof when its `Authorization` is a DPoP token
/// (and drops a stale proof otherwise). A DPoP token without `dpop` (a
/// handle without the key) is refused: it would be of no use, and m2m never
/// sends such a token as something else.
pub(crate) fn prove(
    dpop: Option<&Dpop>,
    request: &mut Request,
    now: SystemTime,
) -> Result<(), AuthError> {
    // The scheme is looked at first: a bearer token (every call without
    // DPoP) is not scanned whole as text.
    let token = request
        .headers()
        .get(AUTHORIZATION)
        .filter(|value| value.as_bytes().starts_with(DPOP_SCHEME.as_bytes()))
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix(DPOP_SCHEME));
    let Some(token) = token else {
        request.headers_mut().remove(DPOP_HEADER);
        return Ok(());
    };
    let Some(dpop) = dpop else {
        return Err(AuthError::Config(ConfigError::Invalid(
            "the token is a DPoP token and this handle has no DPoP key to prove it with".into(),
        )));
    };
    let proof = dpop.proof(request.method().as_str(), request.url(), Some(token), now)?;
    request.headers_mut().insert(DPOP_HEADER, proof);
    Ok(())
}

/// Keeps the `DPoP-Nonce` of `response`, and says whether the request
/// should be sent once more with it: the answer is a 401 `DPoP
/// error="use_dpop_nonce"`, the request carried a DPoP proof, and a nonce
/// is now kept for the origin.
pub(crate) fn wants_nonce_retry(
    dpop: Option<&Dpop>,
    sent_proof: bool,
    response: &Response,
) -> bool {
    let Some(dpop) = dpop else { return false };
    dpop.note_nonce(response.url(), response.headers());
    sent_proof
        && asks_for_dpop_nonce(response.status(), response.headers())
        && dpop.nonce_for(response.url()).is_some()
}

/// Whether `request` carries a DPoP proof.
pub(crate) fn has_proof(request: &Request) -> bool {
    request.headers().contains_key(DPOP_HEADER)
}
