//! What every sandbox API route does before its handler: routes come from
//! the OpenAPI documents, faults and counters apply, the access token is
//! checked (RFC 6750 challenges; a DPoP-bound token only as
//! `Authorization: DPoP` with a proof of its key, RFC 9449 §7), and the parameters and body are read and
//! checked against the operation's declared request ([`contract`]).
//!
//! [`contract`]: super::contract

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter};

use super::api_call::ApiCall;
use super::contract::{self, RequestContract};
use super::dpop_proof::ProofTarget;
use super::error::SandboxError;
use super::faults::{self, Injected, Site};
use super::mutual_tls::Connection;
use super::problem::Problem;
use super::shared::Shared;
use super::stats::Counter;
use super::tokens::AccessClaims;
use super::{cenda, demo, nxtsoft};
use crate::oauth::dpop::DPOP_NONCE_HEADER;

/// The realm of every bearer challenge.
pub(crate) const REALM: &str = "sandbox";
/// The start of every DPoP challenge (RFC 9449 §7.1).
const DPOP_CHALLENGE: &str = "DPoP realm=\"sandbox\", algs=\"ES256\"";
/// Largest request body an API route reads.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The APIs the sandbox serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    Cenda,
    Nxtsoft,
}

impl Api {
    /// Where the API is mounted below the base URL.
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            Api::Cenda => "/cenda",
            Api::Nxtsoft => "/nxtsoft",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Api::Cenda => "cenda-configuration",
            Api::Nxtsoft => "nxtsoft-transactions",
        }
    }

    fn spec(self) -> &'static str {
        match self {
            Api::Cenda => crate::apis::cenda_configuration::OPENAPI_JSON,
            Api::Nxtsoft => crate::apis::nxtsoft_transactions::OPENAPI_JSON,
        }
    }

    fn audience(self) -> &'static str {
        match self {
            Api::Cenda => demo::CENDA_AUDIENCE,
            Api::Nxtsoft => demo::NXTSOFT_AUDIENCE,
        }
    }

    fn counter(self) -> Counter {
        match self {
            Api::Cenda => Counter::CendaApi,
            Api::Nxtsoft => Counter::NxtsoftApi,
        }
    }

    fn operation(self, operation_id: &str) -> Option<Operation> {
        match self {
            Api::Cenda => cenda::Operation::from_id(operation_id).map(Operation::Cenda),
            Api::Nxtsoft => nxtsoft::Operation::from_id(operation_id).map(Operation::Nxtsoft),
        }
    }

    /// Renders a problem in the API's own error schema.
    pub(crate) fn problem(self, problem: Problem) -> Response {
        match self {
            Api::Cenda => cenda::problem_response(problem),
            Api::Nxtsoft => nxtsoft::problem_response(problem),
        }
    }
}

/// One operation of one API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Cenda(cenda::Operation),
    Nxtsoft(nxtsoft::Operation),
}

impl Operation {
    fn api(self) -> Api {
        match self {
            Operation::Cenda(_) => Api::Cenda,
            Operation::Nxtsoft(_) => Api::Nxtsoft,
        }
    }

    fn required_scope(self) -> Option<&'static str> {
        match self {
            Operation::Cenda(_) => None,
            Operation::Nxtsoft(operation) => Some(operation.required_scope()),
        }
    }
}

/// An operation the OpenAPI document declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpecOperation {
    pub(crate) path: String,
    pub(crate) method: Method,
    pub(crate) operation_id: String,
}

const METHODS: [(&str, Method); 7] = [
    ("get", Method::GET),
    ("put", Method::PUT),
    ("post", Method::POST),
    ("delete", Method::DELETE),
    ("patch", Method::PATCH),
    ("head", Method::HEAD),
    ("options", Method::OPTIONS),
];

/// Every operation of an OpenAPI document (JSON).
pub(crate) fn spec_operations(spec: &str) -> Result<Vec<SpecOperation>, String> {
    let document: serde_json::Value =
        serde_json::from_str(spec).map_err(|e| format!("not JSON: {e}"))?;
    let paths = document["paths"].as_object().ok_or("no paths")?;
    let mut operations = Vec::new();
    for (path, item) in paths {
        for (key, method) in &METHODS {
            let Some(operation) = item.get(*key) else {
                continue;
            };
            let operation_id = operation["operationId"]
                .as_str()
                .ok_or_else(|| format!("{key} {path} has no operationId"))?;
            operations.push(SpecOperation {
                path: path.clone(),
                method: method.clone(),
                operation_id: operation_id.to_owned(),
            });
        }
    }
    Ok(operations)
}

/// The routes of `api`, one per operation of its OpenAPI document.
pub(crate) fn routes(api: Api) -> Result<Router<Arc<Shared>>, SandboxError> {
    let spec_error = |problem: String| SandboxError::Spec {
        api: api.name(),
        problem,
    };
    let operations = spec_operations(api.spec()).map_err(spec_error)?;
    let mut contracts = contract::request_contracts(api.spec()).map_err(spec_error)?;
    let mut by_path: BTreeMap<String, MethodRouter<Arc<Shared>>> = BTreeMap::new();
    for spec_operation in operations {
        let operation = api.operation(&spec_operation.operation_id).ok_or_else(|| {
            spec_error(format!(
                "no sandbox handler for operation {}",
                spec_operation.operation_id
            ))
        })?;
        let contract = Arc::new(contracts.remove(&spec_operation.operation_id).ok_or_else(
            || {
                spec_error(format!(
                    "no request contract for {}",
                    spec_operation.operation_id
                ))
            },
        )?);
        let filter = MethodFilter::try_from(spec_operation.method.clone())
            .map_err(|e| spec_error(e.to_string()))?;
        let handler = move |State(shared): State<Arc<Shared>>,
                            Path(params): Path<HashMap<String, String>>,
                            request: Request| {
            let contract = Arc::clone(&contract);
            async move { handle(shared, operation, &contract, params, request).await }
        };
        let path = format!("{}{}", api.prefix(), spec_operation.path);
        let entry = by_path.remove(&path).unwrap_or_default();
        by_path.insert(path, entry.on(filter, handler));
    }
    Ok(by_path
        .into_iter()
        .fold(Router::new(), |router, (path, methods)| {
            router.route(&path, methods)
        }))
}

async fn handle(
    shared: Arc<Shared>,
    operation: Operation,
    contract: &RequestContract,
    params: HashMap<String, String>,
    request: Request,
) -> Response {
    let api = operation.api();
    shared.stats.count(api.counter());
    if let Some(response) = shared
        .inject_faults(Site::Api, |injected| api_fault_response(api, injected))
        .await
    {
        return response;
    }
    let (parts, body) = request.into_parts();
    let claims = match authenticate(&shared, api, &parts) {
        Ok(claims) => claims,
        Err(problem) => return api.problem(problem),
    };
    if let Some(scope) = operation.required_scope()
        && !claims.has_scope(scope)
    {
        return api.problem(insufficient_scope(scope));
    }
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            return api.problem(Problem::invalid_field(
                "body",
                "unreadable",
                format!("The request body could not be read (the sandbox reads at most {MAX_BODY_BYTES} bytes)."),
            ));
        }
    };
    if let Err(problem) = contract.check(&params, parts.uri.query(), &parts.headers, &body) {
        return api.problem(problem);
    }
    let call = ApiCall {
        params,
        headers: parts.headers,
        body,
        now: shared.now(),
    };
    let outcome = match operation {
        Operation::Cenda(operation) => cenda::handle(&mut shared.cenda(), operation, &call),
        Operation::Nxtsoft(operation) => nxtsoft::handle(&mut shared.nxtsoft(), operation, &call),
    };
    outcome.unwrap_or_else(|problem| api.problem(problem))
}

/// The access token's claims, or the 401 to answer: a Bearer token that is
/// not DPoP-bound, or a DPoP-bound one sent as `DPoP` with a proof of this
/// request by the key of its `cnf.jkt`.
fn authenticate(shared: &Shared, api: Api, parts: &Parts) -> Result<AccessClaims, Problem> {
    let credentials = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .map(|(scheme, token)| (scheme, token.trim()))
        .filter(|(_, token)| !token.is_empty());
    let Some((scheme, token)) = credentials else {
        // RFC 6750 §3.1: no error code when the request has no token.
        return Err(unauthorized(
            format!("Bearer realm=\"{REALM}\", {DPOP_CHALLENGE}"),
            "The request has no access token.",
        ));
    };
    let dpop = if scheme.eq_ignore_ascii_case("dpop") {
        true
    } else if scheme.eq_ignore_ascii_case("bearer") {
        false
    } else {
        return Err(unauthorized(
            format!("Bearer realm=\"{REALM}\", {DPOP_CHALLENGE}"),
            "The request has no access token.",
        ));
    };
    let invalid = |description: &str| {
        let challenge = if dpop {
            format!(
                "{DPOP_CHALLENGE}, error=\"invalid_token\", error_description=\"{description}\""
            )
        } else {
            format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{description}\""
            )
        };
        unauthorized(challenge, description)
    };
    let claims = shared
        .issuer
        .verify(
            token,
            shared.trusted_issuers(),
            api.audience(),
            shared.now(),
        )
        .map_err(|rejection| invalid(&rejection.to_string()))?;
    let connection = parts
        .extensions
        .get::<ConnectInfo<Connection>>()
        .map(|info| &info.0);
    if let Some(certificate) = claims.cnf.as_ref().and_then(|cnf| cnf.x5t_s256.as_ref())
        && connection
            .and_then(|c| c.client_certificate.as_deref())
            .map(|presented| &presented.thumbprint)
            != Some(certificate)
    {
        // RFC 8705 §3: a certificate-bound token, without its certificate.
        return Err(invalid(
            "The access token is bound to a client certificate: call over mutual TLS with that certificate",
        ));
    }
    let base_url = connection.map_or(shared.base_url.as_str(), |c| shared.base_url_of(c));
    let bound_to = claims.cnf.as_ref().and_then(|cnf| cnf.jkt.as_deref());
    match (dpop, bound_to) {
        (false, None) => Ok(claims),
        // RFC 9449 §7.2: a DPoP-bound token is no bearer token.
        (false, Some(_)) => {
            let description =
                "The access token is DPoP-bound: send it as Authorization: DPoP with a proof";
            Err(unauthorized(
                format!(
                    "{DPOP_CHALLENGE}, error=\"invalid_token\", error_description=\"{description}\""
                ),
                description,
            ))
        }
        (true, None) => Err(invalid(
            "The access token is not DPoP-bound: send it as Authorization: Bearer",
        )),
        (true, Some(jkt)) => {
            let url = format!("{base_url}{}", parts.uri.path());
            let target = ProofTarget {
                method: parts.method.as_str(),
                url: &url,
                access_token: Some(token),
            };
            match shared.dpop.check(&parts.headers, &target, shared.now()) {
                Ok(thumbprint) if thumbprint == jkt => Ok(claims),
                Ok(_) => Err(invalid(
                    "The DPoP proof is signed by another key than the token is bound to",
                )),
                Err(rejection) if rejection.wants_nonce() => {
                    let description = rejection.to_string();
                    let challenge = format!(
                        "{DPOP_CHALLENGE}, error=\"use_dpop_nonce\", error_description=\"{description}\""
                    );
                    let problem = unauthorized(challenge, description);
                    Err(match HeaderValue::from_str(shared.dpop.nonce()) {
                        Ok(nonce) => problem.with_header(DPOP_NONCE_HEADER, nonce),
                        Err(_) => problem,
                    })
                }
                Err(rejection) => Err(invalid(&rejection.to_string())),
            }
        }
    }
}

fn unauthorized(challenge: String, message: impl Into<String>) -> Problem {
    let problem = Problem::new(StatusCode::UNAUTHORIZED, "invalid_token", message);
    match HeaderValue::from_str(&challenge) {
        Ok(value) => problem.with_header(header::WWW_AUTHENTICATE, value),
        Err(_) => problem,
    }
}

fn insufficient_scope(scope: &str) -> Problem {
    let message = format!("The access token does not carry the scope {scope}.");
    let challenge = format!(
        "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", error_description=\"{message}\", scope=\"{scope}\""
    );
    let problem = Problem::new(StatusCode::FORBIDDEN, "insufficient_scope", message);
    match HeaderValue::from_str(&challenge) {
        Ok(value) => problem.with_header(header::WWW_AUTHENTICATE, value),
        Err(_) => problem,
    }
}

/// Injected faults on an API route, in the API's error schema (garbage and
/// gateway pages excepted).
fn api_fault_response(api: Api, injected: Injected) -> Response {
    match injected {
        Injected::Throttle { retry_after_secs } => api.problem(
            Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("Too many requests. Try again in {retry_after_secs} seconds."),
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from(retry_after_secs)),
        ),
        Injected::ServerError { status } => faults::gateway_error_response(status),
        Injected::Garbage(garbage) => faults::garbage_response(garbage),
        Injected::RandomFailure => api.problem(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "An unexpected error occurred (sandbox: injected failure).",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_of_both_specs_has_a_handler() {
        for api in [Api::Cenda, Api::Nxtsoft] {
            let operations = spec_operations(api.spec()).unwrap();
            assert!(!operations.is_empty());
            let missing: Vec<_> = operations
                .iter()
                .filter(|op| api.operation(&op.operation_id).is_none())
                .map(|op| op.operation_id.clone())
                .collect();
            assert_eq!(missing, Vec::<String>::new(), "{api:?}");
        }
    }
}
