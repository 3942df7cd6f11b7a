//! The token endpoints, each in its provider's dialect, plus OIDC discovery
//! and the JWKS.
//!
//! Every token endpoint requires `grant_type=client_credentials`; the form
//! body and client authentication are read as [`token_request`] says. The
//! IdentityServer and OIDC endpoints take DPoP (RFC 9449): a request with a
//! valid proof gets a `token_type: DPoP` token bound to the proof's key
//! (`cnf.jkt`), and a client that requires DPoP gets nothing without one.
//!
//! [`token_request`]: super::token_request

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::demo::{self, ProviderStyle, RegisteredClient};
use super::dpop_proof::{ProofChecker, ProofTarget};
use super::endpoints::{self, issuer_url};
use super::faults::{self, Injected, Site};
use super::federated::federated_client;
use super::json_response::json_response;
use super::mutual_tls::Connection;
use super::refusal::{Refusal, RefusalContext, refusal_response};
use super::scope_grant::grant_scopes;
use super::shared::Shared;
use super::stats::Counter;
use super::token_request::{client_credentials, has_basic, parse_form};
use super::tokens::{Grant, IssuedToken};
use crate::oauth::dpop::DPOP_NONCE_HEADER;

/// `POST /{tenant}/oauth2/v2.0/token` (Entra ID v2).
pub(crate) async fn entra_token(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(connection): ConnectInfo<Connection>,
    Path(tenant): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    token_endpoint(
        &shared,
        ProviderStyle::Entra,
        Some(&tenant),
        &Request {
            uri: &uri,
            headers: &headers,
            body: &body,
            connection: &connection,
        },
    )
    .await
}

/// `POST /oauth2/token` (Cognito).
pub(crate) async fn cognito_token(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(connection): ConnectInfo<Connection>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = Request {
        uri: &uri,
        headers: &headers,
        body: &body,
        connection: &connection,
    };
    token_endpoint(&shared, ProviderStyle::Cognito, None, &request).await
}

/// `POST /Authentication/connect/token` (IdentityServer).
pub(crate) async fn identityserver_token(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(connection): ConnectInfo<Connection>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = Request {
        uri: &uri,
        headers: &headers,
        body: &body,
        connection: &connection,
    };
    token_endpoint(&shared, ProviderStyle::IdentityServer, None, &request).await
}

/// `POST /oidc/token` (the endpoint the discovery document names).
pub(crate) async fn oidc_token(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(connection): ConnectInfo<Connection>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = Request {
        uri: &uri,
        headers: &headers,
        body: &body,
        connection: &connection,
    };
    token_endpoint(&shared, ProviderStyle::Oidc, None, &request).await
}

/// `GET /oidc/.well-known/openid-configuration`.
pub(crate) async fn oidc_discovery(State(shared): State<Arc<Shared>>) -> Response {
    shared.stats.count(Counter::Discovery);
    let base = &shared.base_url;
    let oidc_scopes: Vec<&str> = demo::CLIENTS
        .iter()
        .filter(|client| client.style == ProviderStyle::Oidc)
        .flat_map(|client| client.scopes.iter().copied())
        .collect();
    let document = json!({
        "issuer": issuer_url(base, ProviderStyle::Oidc, demo::ENTRA_TENANT_ID),
        "token_endpoint": format!("{base}{}", endpoints::OIDC_TOKEN_PATH),
        "jwks_uri": format!("{base}{}", endpoints::JWKS_PATH),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "tls_client_auth", "self_signed_tls_client_auth"],
        // RFC 8705 §5: the token endpoint that asks for client certificates.
        "mtls_endpoint_aliases": {
            "token_endpoint": format!("{}{}", shared.mtls_base_url, endpoints::OIDC_TOKEN_PATH),
        },
        "tls_client_certificate_bound_access_tokens": true,
        "scopes_supported": oidc_scopes,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    });
    json_response(StatusCode::OK, &document)
}

/// `GET /.well-known/jwks.json`: the public key of every sandbox token.
pub(crate) async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    shared.stats.count(Counter::Jwks);
    match serde_json::to_value(shared.issuer.jwks()) {
        Ok(jwks) => json_response(StatusCode::OK, &jwks),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The parts of a token request the exchange reads.
struct Request<'a> {
    uri: &'a Uri,
    headers: &'a HeaderMap,
    body: &'a [u8],
    connection: &'a Connection,
}

async fn token_endpoint(
    shared: &Shared,
    style: ProviderStyle,
    tenant: Option<&str>,
    request: &Request<'_>,
) -> Response {
    let headers = request.headers;
    shared.stats.count(Counter::TokenRequest(style));
    if let Some(response) = shared
        .inject_faults(Site::TokenEndpoint, token_fault_response)
        .await
    {
        return response;
    }
    match exchange(shared, style, tenant, request) {
        Ok(success) => {
            shared.stats.count(Counter::TokenIssued);
            success_response(style, &success, shared.dpop.nonce())
        }
        Err(refusal) => {
            let context = RefusalContext {
                base_url: &shared.base_url,
                tenant: tenant.unwrap_or(demo::ENTRA_TENANT_ID),
                now: shared.now(),
                correlation_id: headers
                    .get("client-request-id")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| uuid::Uuid::parse_str(v).ok()),
                used_basic: has_basic(headers),
            };
            refusal_response(style, &refusal, &context)
        }
    }
}

/// What the exchange produced.
struct Success {
    token: IssuedToken,
    scope: String,
}

fn exchange(
    shared: &Shared,
    style: ProviderStyle,
    tenant: Option<&str>,
    request: &Request<'_>,
) -> Result<Success, Refusal> {
    let (headers, body) = (request.headers, request.body);
    if let Some(tenant) = tenant
        && !tenant.eq_ignore_ascii_case(demo::ENTRA_TENANT_ID)
    {
        return Err(Refusal::UnknownTenant(tenant.to_owned()));
    }
    let params = parse_form(headers, body)?;
    match params.get("grant_type") {
        None => return Err(Refusal::MissingParameter("grant_type")),
        Some(grant) if grant != "client_credentials" => {
            return Err(Refusal::UnsupportedGrantType(grant.clone()));
        }
        Some(_) => {}
    }
    let federated = match style {
        ProviderStyle::Entra => {
            federated_client(&shared.issuer, &shared.base_url, &params, shared.now())?
        }
        _ => None,
    };
    let mutual_tls = mutual_tls_client(shared, style, request, &params)?;
    let (client, certificate) = match (federated, mutual_tls) {
        (Some(client), _) => (client, None),
        (None, Some((client, certificate))) => (client, Some(certificate)),
        (None, None) => (client_with_secret(style, headers, &params)?, None),
    };
    let jkt = dpop_binding(shared, style, client, request)?;
    let granted = grant_scopes(style, client, params.get("scope").map(String::as_str))?;
    // The one known tenant, as the issuer spells it (the path may differ in case).
    let tenant = demo::ENTRA_TENANT_ID;
    let grant = Grant {
        issuer: issuer_url(&shared.base_url, style, tenant),
        client_id: client.id.to_owned(),
        audiences: granted.audiences,
        scopes: granted.scopes.clone(),
        roles: granted.roles,
        tenant: (style == ProviderStyle::Entra).then(|| tenant.to_owned()),
        jkt,
        x5t: certificate,
    };
    let token = shared
        .issuer
        .issue(&grant, shared.now(), shared.token_lifetime())
        .map_err(|_| Refusal::Signing)?;
    Ok(Success {
        token,
        scope: granted.scopes.join(" "),
    })
}

/// The client a request authenticates as with its secret.
fn client_with_secret(
    style: ProviderStyle,
    headers: &HeaderMap,
    params: &std::collections::BTreeMap<String, String>,
) -> Result<&'static demo::RegisteredClient, Refusal> {
    let credentials = client_credentials(style, headers, params)?;
    let client = demo::find_client(style, &credentials.id)
        .ok_or_else(|| Refusal::UnknownClient(credentials.id.clone()))?;
    let secret = credentials
        .secret
        .ok_or_else(|| Refusal::MissingSecret(client.id.to_owned()))?;
    if aws_lc_rs::constant_time::verify_slices_are_equal(
        secret.as_bytes(),
        client.secret.as_bytes(),
    )
    .is_err()
    {
        return Err(Refusal::WrongSecret(client.id.to_owned()));
    }
    Ok(client)
}

/// A request from a mutual-TLS client (at the OIDC endpoint), with the
/// thumbprint of its certificate: `Ok(None)` for any other client. The
/// certificate must be on the connection and the registered one: for
/// `tls_client_auth`, issued by the sandbox's CA; for
/// `self_signed_tls_client_auth`, the registered self-signed certificate.
/// No secret may come along.
fn mutual_tls_client(
    shared: &Shared,
    style: ProviderStyle,
    request: &Request<'_>,
    params: &std::collections::BTreeMap<String, String>,
) -> Result<Option<(&'static RegisteredClient, String)>, Refusal> {
    let client = match params.get("client_id").map(String::as_str) {
        _ if style != ProviderStyle::Oidc => return Ok(None),
        Some(demo::MTLS_CLIENT_ID) => &demo::MTLS_CLIENT,
        Some(demo::MTLS_SELF_SIGNED_CLIENT_ID) => &demo::MTLS_SELF_SIGNED_CLIENT,
        _ => return Ok(None),
    };
    if has_basic(request.headers)
        || params.contains_key("client_secret")
        || params.contains_key("client_assertion")
    {
        return Err(Refusal::DoubleClientAuth);
    }
    let Some(presented) = request.connection.client_certificate.as_deref() else {
        return Err(Refusal::NoClientCertificate);
    };
    let accepted = if client.id == demo::MTLS_CLIENT_ID {
        shared.pki.accepts_client(presented, shared.now())
    } else {
        shared.pki.accepts_self_signed_client(presented)
    };
    if !accepted {
        return Err(Refusal::CertificateNotAccepted);
    }
    Ok(Some((client, presented.thumbprint.clone())))
}

/// The thumbprint a token for `client` is bound to: the key of the
/// request's DPoP proof, checked, at the endpoints that speak DPoP; `None`
/// without a proof, unless the client requires one.
fn dpop_binding(
    shared: &Shared,
    style: ProviderStyle,
    client: &RegisteredClient,
    request: &Request<'_>,
) -> Result<Option<String>, Refusal> {
    let speaks_dpop = matches!(style, ProviderStyle::IdentityServer | ProviderStyle::Oidc);
    if !speaks_dpop || !(client.requires_dpop || ProofChecker::is_present(request.headers)) {
        return Ok(None);
    }
    let url = format!(
        "{}{}",
        shared.base_url_of(request.connection),
        request.uri.path()
    );
    let target = ProofTarget {
        method: "POST",
        url: &url,
        access_token: None,
    };
    shared
        .dpop
        .check(request.headers, &target, shared.now())
        .map(Some)
        .map_err(|rejection| Refusal::DpopProof {
            rejection,
            nonce: shared.dpop.nonce().to_owned(),
        })
}

fn success_response(style: ProviderStyle, success: &Success, dpop_nonce: &str) -> Response {
    let token = &success.token;
    let token_type = if token.dpop_bound { "DPoP" } else { "Bearer" };
    let body = match style {
        ProviderStyle::Entra => json!({
            "token_type": "Bearer",
            "expires_in": token.expires_in,
            "ext_expires_in": token.expires_in,
            "access_token": token.jwt,
        }),
        ProviderStyle::Cognito => json!({
            "access_token": token.jwt,
            "expires_in": token.expires_in,
            "token_type": "Bearer",
        }),
        ProviderStyle::IdentityServer | ProviderStyle::Oidc => json!({
            "access_token": token.jwt,
            "expires_in": token.expires_in,
            "token_type": token_type,
            "scope": success.scope,
        }),
    };
    let mut response = json_response(StatusCode::OK, &body);
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if token.dpop_bound
        && let Ok(nonce) = HeaderValue::from_str(dpop_nonce)
    {
        // RFC 9449 §8.2: the nonce to use next.
        headers.insert(DPOP_NONCE_HEADER, nonce);
    }
    response
}

/// Injected faults at a token endpoint: 429 with a plain-text body (Entra's
/// throttling answer may not be JSON), an HTML gateway page for 5xx, the
/// garbage body, or a JSON `server_error` for random failures.
fn token_fault_response(injected: Injected) -> Response {
    match injected {
        Injected::Throttle { retry_after_secs } => (
            StatusCode::TOO_MANY_REQUESTS,
            [
                (header::RETRY_AFTER, HeaderValue::from(retry_after_secs)),
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                ),
            ],
            "Too many requests. Try again later.",
        )
            .into_response(),
        Injected::ServerError { status } => faults::gateway_error_response(status),
        Injected::Garbage(garbage) => faults::garbage_response(garbage),
        Injected::RandomFailure => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"error": "server_error", "error_description": "sandbox: injected failure"}),
        ),
    }
}
