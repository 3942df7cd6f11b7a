//! The token endpoints, each in its provider's dialect, plus OIDC discovery
//! and the JWKS.
//!
//! Every endpoint takes a form body only, requires `grant_type=client_credentials`,
//! and refuses a parameter sent twice. Client authentication: the secret in
//! the form body or HTTP Basic (id and secret form-urlencoded before Base64,
//! RFC 6749 §2.3.1). Sending both is refused, except at the OIDC endpoint,
//! which accepts Basic and body together when they agree (Apiture's guide
//! shows both).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::demo::{self, ProviderStyle, RegisteredClient};
use super::endpoints::{self, issuer_url};
use super::faults::{self, Injected, Site};
use super::shared::Shared;
use super::stats::Counter;
use super::tokens::{Grant, IssuedToken};

/// `POST /{tenant}/oauth2/v2.0/token` (Entra ID v2).
pub(crate) async fn entra_token(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    token_endpoint(
        &shared,
        ProviderStyle::Entra,
        Some(&tenant),
        &headers,
        &body,
    )
    .await
}

/// `POST /oauth2/token` (Cognito).
pub(crate) async fn cognito_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    token_endpoint(&shared, ProviderStyle::Cognito, None, &headers, &body).await
}

/// `POST /Authentication/connect/token` (IdentityServer).
pub(crate) async fn identityserver_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    token_endpoint(
        &shared,
        ProviderStyle::IdentityServer,
        None,
        &headers,
        &body,
    )
    .await
}

/// `POST /oidc/token` (the endpoint the discovery document names).
pub(crate) async fn oidc_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    token_endpoint(&shared, ProviderStyle::Oidc, None, &headers, &body).await
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
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
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

async fn token_endpoint(
    shared: &Shared,
    style: ProviderStyle,
    tenant: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    shared.stats.count(Counter::TokenRequest(style));
    if let Some(response) = shared
        .inject_faults(Site::TokenEndpoint, token_fault_response)
        .await
    {
        return response;
    }
    match exchange(shared, style, tenant, headers, body) {
        Ok(success) => {
            shared.stats.count(Counter::TokenIssued);
            success_response(style, &success)
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
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Success, Refusal> {
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
    let credentials = client_credentials(style, headers, &params)?;
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

/// Why a token request was refused. Descriptions never repeat a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    UnknownTenant(String),
    NotForm,
    DuplicateParameter(String),
    MissingParameter(&'static str),
    UnsupportedGrantType(String),
    DoubleClientAuth,
    CredentialsDisagree,
    MalformedBasic,
    NoClientAuth,
    MissingSecret(String),
    UnknownClient(String),
    WrongSecret(String),
    ScopeNotDefault(String),
    UnknownResource(String),
    ScopeNotAllowed(String),
    NoScopeGranted,
    Signing,
}

impl Refusal {
    /// The RFC 6749 §5.2 error code.
    fn error_code(&self) -> &'static str {
        match self {
            Refusal::UnknownTenant(_)
            | Refusal::NotForm
            | Refusal::DuplicateParameter(_)
            | Refusal::MissingParameter(_)
            | Refusal::DoubleClientAuth
            | Refusal::MalformedBasic => "invalid_request",
            Refusal::UnsupportedGrantType(_) => "unsupported_grant_type",
            Refusal::CredentialsDisagree
            | Refusal::NoClientAuth
            | Refusal::MissingSecret(_)
            | Refusal::UnknownClient(_)
            | Refusal::WrongSecret(_) => "invalid_client",
            Refusal::ScopeNotDefault(_)
            | Refusal::UnknownResource(_)
            | Refusal::ScopeNotAllowed(_)
            | Refusal::NoScopeGranted => "invalid_scope",
            Refusal::Signing => "server_error",
        }
    }

    fn description(&self) -> String {
        match self {
            Refusal::UnknownTenant(tenant) => format!("tenant '{tenant}' not found"),
            Refusal::NotForm => "the body must be application/x-www-form-urlencoded".into(),
            Refusal::DuplicateParameter(name) => format!("parameter '{name}' is repeated"),
            Refusal::MissingParameter(name) => format!("missing required parameter '{name}'"),
            Refusal::UnsupportedGrantType(grant) => {
                format!("unsupported grant_type '{grant}'")
            }
            Refusal::DoubleClientAuth => {
                "client authentication must use only one mechanism: HTTP Basic or the form body"
                    .into()
            }
            Refusal::CredentialsDisagree => {
                "the client credentials in the Authorization header and the body differ".into()
            }
            Refusal::MalformedBasic => {
                "client_id and client_secret in the authorization header are not properly encoded"
                    .into()
            }
            Refusal::NoClientAuth => "no client authentication mechanism provided".into(),
            Refusal::MissingSecret(_) => "client_secret is required".into(),
            Refusal::UnknownClient(_) | Refusal::WrongSecret(_) => {
                "client authentication failed".into()
            }
            Refusal::ScopeNotDefault(scope) => {
                format!("scope '{scope}' must be a resource followed by /.default")
            }
            Refusal::UnknownResource(resource) => format!("unknown resource '{resource}'"),
            Refusal::ScopeNotAllowed(scope) => {
                format!("scope '{scope}' is not allowed for this client")
            }
            Refusal::NoScopeGranted => "none of the requested scopes can be granted".into(),
            Refusal::Signing => "the token could not be signed".into(),
        }
    }
}

/// Facts the error dialects quote.
struct RefusalContext<'a> {
    base_url: &'a str,
    tenant: &'a str,
    now: std::time::SystemTime,
    correlation_id: Option<uuid::Uuid>,
    used_basic: bool,
}

fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<BTreeMap<String, String>, Refusal> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(Refusal::NotForm);
    }
    let mut params = BTreeMap::new();
    for (name, value) in url::form_urlencoded::parse(body) {
        // RFC 6749 §3.1: a parameter without a value is as if omitted.
        if value.is_empty() {
            continue;
        }
        if params
            .insert(name.clone().into_owned(), value.into_owned())
            .is_some()
        {
            return Err(Refusal::DuplicateParameter(name.into_owned()));
        }
    }
    Ok(params)
}

struct ClientCredentials {
    id: String,
    secret: Option<String>,
}

fn client_credentials(
    style: ProviderStyle,
    headers: &HeaderMap,
    params: &BTreeMap<String, String>,
) -> Result<ClientCredentials, Refusal> {
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    if let (ProviderStyle::Oidc, Some(id), Some(secret), true) =
        (style, body_id, body_secret, has_basic(headers))
    {
        // Apiture's guide: Basic `base64(client-id:client-secret)` as is,
        // and the same id and secret in the body. The body is authoritative;
        // the header must say the same, raw or RFC 6749-encoded.
        return if basic_matches(headers, id, secret) {
            Ok(ClientCredentials {
                id: id.clone(),
                secret: Some(secret.clone()),
            })
        } else {
            Err(Refusal::CredentialsDisagree)
        };
    }
    let Some((id, secret)) = basic_credentials(headers)? else {
        let id = body_id.ok_or(Refusal::NoClientAuth)?;
        return Ok(ClientCredentials {
            id: id.clone(),
            secret: body_secret.cloned(),
        });
    };
    if let Some(body_secret) = body_secret {
        if style != ProviderStyle::Oidc {
            return Err(Refusal::DoubleClientAuth);
        }
        if *body_secret != secret {
            return Err(Refusal::CredentialsDisagree);
        }
    }
    if body_id.is_some_and(|body_id| *body_id != id) {
        return Err(Refusal::CredentialsDisagree);
    }
    Ok(ClientCredentials {
        id,
        secret: Some(secret),
    })
}

fn has_basic(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
}

/// Whether the Basic header carries `id` and `secret`, either as RFC 6749
/// §2.3.1 prescribes or raw (`base64(id ":" secret)`).
fn basic_matches(headers: &HeaderMap, id: &str, secret: &str) -> bool {
    let raw = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .and_then(|(_, credentials)| STANDARD.decode(credentials.trim()).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok());
    raw.is_some_and(|raw| raw == format!("{id}:{secret}"))
        || matches!(basic_credentials(headers), Ok(Some((i, s))) if i == id && s == secret)
}

/// The id and secret of an `Authorization: Basic` header, decoded as
/// RFC 6749 §2.3.1 says; `None` without such a header.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, Refusal> {
    if !has_basic(headers) {
        return Ok(None);
    }
    let encoded = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .map(|(_, credentials)| credentials.trim())
        .unwrap_or_default();
    let decoded = STANDARD
        .decode(encoded)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(Refusal::MalformedBasic)?;
    let (id, secret) = decoded.split_once(':').ok_or(Refusal::MalformedBasic)?;
    match (form_urldecode(id), form_urldecode(secret)) {
        (Some(id), Some(secret)) if !id.is_empty() => Ok(Some((id, secret))),
        _ => Err(Refusal::MalformedBasic),
    }
}

/// Strict `application/x-www-form-urlencoded` decoding: `+` is a space,
/// `%XX` a byte; a `%` not followed by two hex digits is an error.
fn form_urldecode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let high = hex_value(*bytes.get(i + 1)?)?;
                let low = hex_value(*bytes.get(i + 2)?)?;
                out.push(high << 4 | low);
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

struct GrantedScopes {
    scopes: Vec<String>,
    audiences: Vec<&'static str>,
    roles: Vec<String>,
}

fn grant_scopes(
    style: ProviderStyle,
    client: &RegisteredClient,
    requested: Option<&str>,
) -> Result<GrantedScopes, Refusal> {
    let requested: Vec<&str> = requested.unwrap_or("").split_whitespace().collect();
    if style == ProviderStyle::Entra {
        return entra_scope(client, &requested);
    }
    let mut scopes: Vec<String> = Vec::new();
    if requested.is_empty() {
        scopes.extend(client.scopes.iter().map(|s| (*s).to_owned()));
    }
    for scope in requested {
        if client.scopes.contains(&scope) {
            if !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_owned());
            }
        } else if style == ProviderStyle::IdentityServer {
            // IdentityServer refuses what Cognito and the OIDC provider drop.
            return Err(Refusal::ScopeNotAllowed(scope.to_owned()));
        }
    }
    if scopes.is_empty() {
        return Err(Refusal::NoScopeGranted);
    }
    let mut audiences = Vec::new();
    for audience in scopes.iter().filter_map(|scope| demo::audience_of(scope)) {
        if !audiences.contains(&audience) {
            audiences.push(audience);
        }
    }
    Ok(GrantedScopes {
        scopes,
        audiences,
        roles: Vec::new(),
    })
}

/// Entra: exactly one `{resource}/.default` scope, for a resource the
/// client may call; the token carries the app's roles, not scopes.
fn entra_scope(client: &RegisteredClient, requested: &[&str]) -> Result<GrantedScopes, Refusal> {
    let scope = match requested {
        [] => return Err(Refusal::MissingParameter("scope")),
        [scope] => *scope,
        several => return Err(Refusal::ScopeNotAllowed(several.join(" "))),
    };
    let resource = scope
        .strip_suffix("/.default")
        .ok_or_else(|| Refusal::ScopeNotDefault(scope.to_owned()))?;
    let resource_id = resource.strip_prefix("api://").unwrap_or(resource);
    let normalised = format!("{resource_id}/.default");
    if resource_id == client.id {
        // A token for the client's own app registration (NxtPort's
        // `{client_id}/.default`): Entra grants it to any client.
        return Ok(GrantedScopes {
            scopes: Vec::new(),
            audiences: vec![client.id],
            roles: Vec::new(),
        });
    }
    let audience = demo::audience_of(&normalised)
        .ok_or_else(|| Refusal::UnknownResource(resource.to_owned()))?;
    if !client.scopes.contains(&normalised.as_str()) {
        return Err(Refusal::ScopeNotAllowed(scope.to_owned()));
    }
    Ok(GrantedScopes {
        scopes: Vec::new(),
        audiences: vec![audience],
        roles: vec![demo::CENDA_APP_ROLE.to_owned()],
    })
}

fn success_response(style: ProviderStyle, success: &Success) -> Response {
    let token = &success.token;
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
            "token_type": "Bearer",
            "scope": success.scope,
        }),
    };
    let mut response = json_response(StatusCode::OK, &body);
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn refusal_response(style: ProviderStyle, refusal: &Refusal, context: &RefusalContext) -> Response {
    if *refusal == Refusal::Signing {
        return json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"error": refusal.error_code(), "error_description": refusal.description()}),
        );
    }
    match style {
        ProviderStyle::Entra => entra_refusal(refusal, context),
        // Cognito and IdentityServer answer every refusal 400 with the bare code.
        ProviderStyle::Cognito | ProviderStyle::IdentityServer => json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": refusal.error_code()}),
        ),
        ProviderStyle::Oidc => oidc_refusal(refusal, context),
    }
}

/// Like panva's oidc-provider: `invalid_client` is 401, with a Basic
/// challenge when Basic was used; everything else 400.
fn oidc_refusal(refusal: &Refusal, context: &RefusalContext) -> Response {
    let code = refusal.error_code();
    let body = json!({"error": code, "error_description": refusal.description()});
    if code != "invalid_client" {
        return json_response(StatusCode::BAD_REQUEST, &body);
    }
    let mut response = json_response(StatusCode::UNAUTHORIZED, &body);
    if context.used_basic {
        let realm = issuer_url(context.base_url, ProviderStyle::Oidc, context.tenant);
        let challenge = format!(
            "Basic realm=\"{realm}\", error=\"invalid_client\", error_description=\"{}\"",
            refusal.description()
        );
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
    }
    response
}

/// Entra's error body: AADSTS code and message, trace and correlation ids,
/// timestamp, error URI; 401 for a client that failed to authenticate.
fn entra_refusal(refusal: &Refusal, context: &RefusalContext) -> Response {
    let tenant = context.tenant;
    let (status, error, code, message) = match refusal {
        Refusal::UnknownTenant(tenant) => (
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        ),
        Refusal::NotForm => (
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.".to_owned(),
        ),
        Refusal::DuplicateParameter(name) => (
            StatusCode::BAD_REQUEST,
            "invalid_request",
            9000411,
            format!("The request is not properly formatted. The parameter '{name}' is duplicated."),
        ),
        Refusal::MissingParameter(name) => (
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{name}'."),
        ),
        Refusal::NoClientAuth => (
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.".to_owned(),
        ),
        Refusal::UnsupportedGrantType(grant) => (
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{grant}'."),
        ),
        Refusal::DoubleClientAuth | Refusal::CredentialsDisagree => (
            StatusCode::BAD_REQUEST,
            "invalid_request",
            9000411,
            "The request is not properly formatted. The client credentials are sent both in the Authorization header and in the request body.".to_owned(),
        ),
        Refusal::MalformedBasic | Refusal::MissingSecret(_) => (
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.".to_owned(),
        ),
        Refusal::UnknownClient(id) => (
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        ),
        Refusal::WrongSecret(id) => (
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{id}'."
            ),
        ),
        Refusal::ScopeNotDefault(scope) => (
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ),
        Refusal::UnknownResource(resource) => (
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            format!(
                "The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
            ),
        ),
        Refusal::ScopeNotAllowed(scope) => (
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            format!(
                "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
            ),
        ),
        Refusal::NoScopeGranted | Refusal::Signing => (
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            "The provided value for the input parameter 'scope' is not valid.".to_owned(),
        ),
    };
    let timestamp = chrono::DateTime::<chrono::Utc>::from(context.now)
        .format("%Y-%m-%d %H:%M:%SZ")
        .to_string();
    let trace_id = uuid::Uuid::new_v4();
    let correlation_id = context.correlation_id.unwrap_or_else(uuid::Uuid::new_v4);
    let body = json!({
        "error": error,
        "error_description": format!(
            "AADSTS{code}: {message} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}"
        ),
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id.to_string(),
        "correlation_id": correlation_id.to_string(),
        "error_uri": format!("{}/error?code={code}", context.base_url),
    });
    json_response(status, &body)
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

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        )],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(raw: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode(raw));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&value).unwrap(),
        );
        headers
    }

    #[test]
    fn basic_credentials_are_form_urldecoded() {
        let decoded = basic_credentials(&basic(
            "my%20id:s3cret%3Awith%2Freserved%2Bchars%25%26%3D%3F+x",
        ));
        assert_eq!(
            decoded,
            Ok(Some((
                "my id".to_owned(),
                "s3cret:with/reserved+chars%&=? x".to_owned()
            )))
        );
    }

    #[test]
    fn raw_percent_and_missing_colon_are_malformed() {
        assert_eq!(
            basic_credentials(&basic("id:50%off")),
            Err(Refusal::MalformedBasic)
        );
        assert_eq!(
            basic_credentials(&basic("id:%+1")),
            Err(Refusal::MalformedBasic)
        );
        assert_eq!(
            basic_credentials(&basic("no-colon")),
            Err(Refusal::MalformedBasic)
        );
        assert_eq!(basic_credentials(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn form_refuses_repeats_and_other_media_types() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=UTF-8"),
        );
        assert_eq!(
            parse_form(&headers, b"scope=a&scope=b"),
            Err(Refusal::DuplicateParameter("scope".into()))
        );
        let params = parse_form(&headers, b"grant_type=client_credentials&scope=").unwrap();
        assert_eq!(params.len(), 1, "an empty value counts as omitted");
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert_eq!(parse_form(&headers, b"{}"), Err(Refusal::NotForm));
    }

    #[test]
    fn scope_rules_differ_by_dialect() {
        let cognito = demo::find_client(ProviderStyle::Cognito, demo::COGNITO_CLIENT_ID).unwrap();
        let all = grant_scopes(ProviderStyle::Cognito, cognito, None).unwrap();
        assert_eq!(all.scopes, vec!["transactions/mock", "transactions/post"]);
        assert_eq!(all.audiences, vec![demo::NXTSOFT_AUDIENCE]);
        let dropped = grant_scopes(
            ProviderStyle::Cognito,
            cognito,
            Some("unknown transactions/mock"),
        )
        .unwrap();
        assert_eq!(dropped.scopes, vec!["transactions/mock"]);
        assert!(matches!(
            grant_scopes(ProviderStyle::Cognito, cognito, Some("unknown")),
            Err(Refusal::NoScopeGranted)
        ));

        let is = demo::find_client(
            ProviderStyle::IdentityServer,
            demo::IDENTITYSERVER_CLIENT_ID,
        )
        .unwrap();
        assert!(matches!(
            grant_scopes(ProviderStyle::IdentityServer, is, Some("transactions/mock unknown")),
            Err(Refusal::ScopeNotAllowed(scope)) if scope == "unknown"
        ));
        let both = grant_scopes(
            ProviderStyle::IdentityServer,
            is,
            Some("cenda/configuration transactions/mock"),
        )
        .unwrap();
        assert_eq!(
            both.audiences,
            vec![demo::CENDA_AUDIENCE, demo::NXTSOFT_AUDIENCE]
        );

        let entra = demo::find_client(ProviderStyle::Entra, demo::ENTRA_CLIENT_ID).unwrap();
        let api_uri = format!("api://{}", demo::CENDA_ENTRA_SCOPE);
        assert_eq!(
            grant_scopes(ProviderStyle::Entra, entra, Some(&api_uri))
                .unwrap()
                .audiences,
            vec![demo::CENDA_AUDIENCE]
        );
        assert!(matches!(
            grant_scopes(
                ProviderStyle::Entra,
                entra,
                Some(demo::CENDA_GATEWAY_CLIENT_ID)
            ),
            Err(Refusal::ScopeNotDefault(_))
        ));
        assert!(matches!(
            grant_scopes(ProviderStyle::Entra, entra, Some("other/.default")),
            Err(Refusal::UnknownResource(resource)) if resource == "other"
        ));
    }
}
