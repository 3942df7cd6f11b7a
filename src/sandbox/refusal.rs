//! Why a token request was refused, and the refusal in each provider's
//! dialect: Entra's AADSTS body, the OIDC provider's 401 with a Basic
//! challenge, Cognito's and IdentityServer's bare 400. A refused DPoP proof
//! is the same 400 everywhere (RFC 9449 §5, §8): `invalid_dpop_proof`, or
//! `use_dpop_nonce` with the nonce in `DPoP-Nonce`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::json;

use super::demo::ProviderStyle;
use super::dpop_proof::ProofRejection;
use super::endpoints::issuer_url;
use super::json_response::json_response;
use crate::oauth::dpop::DPOP_NONCE_HEADER;

/// Why a token request was refused. Descriptions never repeat a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
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
    BadAssertion(AssertionRefusal),
    /// The mutual-TLS client sent no certificate on the connection.
    NoClientCertificate,
    /// The certificate is not the registered one, or not the sandbox CA's.
    CertificateNotAccepted,
    ScopeNotDefault(String),
    UnknownResource(String),
    ScopeNotAllowed(String),
    NoScopeGranted,
    Signing,
    /// The DPoP proof was refused; `nonce` is the one to use.
    DpopProof {
        rejection: ProofRejection,
        nonce: String,
    },
}

impl Refusal {
    /// The RFC 6749 §5.2 error code.
    pub(crate) fn error_code(&self) -> &'static str {
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
            | Refusal::WrongSecret(_)
            | Refusal::BadAssertion(_)
            | Refusal::NoClientCertificate
            | Refusal::CertificateNotAccepted => "invalid_client",
            Refusal::ScopeNotDefault(_)
            | Refusal::UnknownResource(_)
            | Refusal::ScopeNotAllowed(_)
            | Refusal::NoScopeGranted => "invalid_scope",
            Refusal::Signing => "server_error",
            Refusal::DpopProof { rejection, .. } if rejection.wants_nonce() => "use_dpop_nonce",
            Refusal::DpopProof { .. } => "invalid_dpop_proof",
        }
    }

    pub(crate) fn description(&self) -> String {
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
            Refusal::UnknownClient(_) | Refusal::WrongSecret(_) | Refusal::BadAssertion(_) => {
                "client authentication failed".into()
            }
            Refusal::NoClientCertificate => {
                "the client authenticates with a TLS client certificate (tls_client_auth): send it to the mtls_endpoint_aliases token endpoint"
                    .into()
            }
            Refusal::CertificateNotAccepted => {
                "the TLS client certificate is not the one registered for this client".into()
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
            Refusal::DpopProof { rejection, .. } => rejection.to_string(),
        }
    }
}

/// Why a client assertion was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AssertionRefusal {
    /// Not `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
    UnsupportedType,
    /// Not signed by the key of the federated credential's issuer.
    Signature,
    /// `exp` has passed (or `nbf` is to come).
    Expired,
    /// Issuer, subject or audience match no federated credential.
    NoFederatedRecord,
}

impl AssertionRefusal {
    /// Entra's AADSTS code and message.
    fn entra(self) -> (i64, &'static str) {
        match self {
            Self::UnsupportedType => (
                700023,
                "Client assertion type is not supported. Use urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
            ),
            Self::Signature => (700027, "Client assertion failed signature validation."),
            Self::Expired => (
                700024,
                "Client assertion is not within its valid time range.",
            ),
            Self::NoFederatedRecord => (
                70021,
                "No matching federated identity record found for presented assertion.",
            ),
        }
    }
}

/// Facts the error dialects quote.
pub(crate) struct RefusalContext<'a> {
    pub(crate) base_url: &'a str,
    pub(crate) tenant: &'a str,
    pub(crate) now: std::time::SystemTime,
    pub(crate) correlation_id: Option<uuid::Uuid>,
    pub(crate) used_basic: bool,
}

pub(crate) fn refusal_response(
    style: ProviderStyle,
    refusal: &Refusal,
    context: &RefusalContext,
) -> Response {
    if *refusal == Refusal::Signing {
        return json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"error": refusal.error_code(), "error_description": refusal.description()}),
        );
    }
    if let Refusal::DpopProof { nonce, .. } = refusal {
        let mut response = json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": refusal.error_code(), "error_description": refusal.description()}),
        );
        if let Ok(value) = HeaderValue::from_str(nonce) {
            response.headers_mut().insert(DPOP_NONCE_HEADER, value);
        }
        return response;
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
        // Entra has no mutual-TLS client: only the OIDC endpoint refuses these.
        Refusal::MalformedBasic
        | Refusal::MissingSecret(_)
        | Refusal::NoClientCertificate
        | Refusal::CertificateNotAccepted => (
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
        Refusal::BadAssertion(refusal) => {
            let (code, message) = refusal.entra();
            (
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                code,
                message.to_owned(),
            )
        }
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
        // Signing and DPoP refusals are answered before the dialects.
        Refusal::NoScopeGranted | Refusal::Signing | Refusal::DpopProof { .. } => (
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
