//! Workload identity federation, as Entra does it: a client registered with
//! a federated credential (an issuer, a subject, the audience
//! `api://AzureADTokenExchange`) sends, instead of a secret, a JWT that
//! issuer gave the workload, as `client_assertion` with
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
//!
//! The sandbox plays both parts: [`Sandbox::federated_token`] signs the
//! workload's token as the Kubernetes API server would (with the sandbox's
//! key, issuer `{base}/workload`), and the Entra token endpoint checks its
//! signature against that key, its issuer and subject against the federated
//! credential, its audience, and its `exp` against the sandbox's clock.
//!
//! [`Sandbox::federated_token`]: super::Sandbox::federated_token

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::demo::{self, RegisteredClient};
use super::refusal::{AssertionRefusal, Refusal};
use super::tokens::{TokenIssuer, TokenRejection};

/// The `client_assertion_type` of a JWT assertion (RFC 7523 §2.2).
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The issuer of the workloads' tokens: `{base_url}/workload`.
pub(crate) fn workload_issuer(base_url: &str) -> String {
    format!("{base_url}{}", demo::WORKLOAD_ISSUER_PATH)
}

/// The federated client a request authenticates as with a client
/// assertion; `Ok(None)` when it carries none (a secret, then).
pub(crate) fn federated_client(
    issuer: &TokenIssuer,
    base_url: &str,
    params: &BTreeMap<String, String>,
    now: SystemTime,
) -> Result<Option<&'static RegisteredClient>, Refusal> {
    let (kind, assertion) = match (
        params.get("client_assertion_type"),
        params.get("client_assertion"),
    ) {
        (None, None) => return Ok(None),
        (Some(kind), Some(assertion)) => (kind, assertion),
        (None, Some(_)) => return Err(Refusal::MissingParameter("client_assertion_type")),
        (Some(_), None) => return Err(Refusal::MissingParameter("client_assertion")),
    };
    if kind != JWT_BEARER {
        return Err(Refusal::BadAssertion(AssertionRefusal::UnsupportedType));
    }
    if params.contains_key("client_secret") {
        return Err(Refusal::DoubleClientAuth);
    }
    let id = params
        .get("client_id")
        .ok_or(Refusal::MissingParameter("client_id"))?;
    let client =
        demo::find_federated_client(id).ok_or_else(|| Refusal::UnknownClient(id.clone()))?;
    let claims = issuer
        .verify_workload(assertion, demo::FEDERATED_AUDIENCE, now)
        .map_err(|rejection| {
            Refusal::BadAssertion(match rejection {
                TokenRejection::Expired | TokenRejection::NotYetValid => AssertionRefusal::Expired,
                TokenRejection::BadSignature => AssertionRefusal::Signature,
                _ => AssertionRefusal::NoFederatedRecord,
            })
        })?;
    if claims.iss != workload_issuer(base_url) || claims.sub != demo::FEDERATED_SUBJECT {
        return Err(Refusal::BadAssertion(AssertionRefusal::NoFederatedRecord));
    }
    Ok(Some(client))
}
