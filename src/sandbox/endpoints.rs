//! Where each sandbox endpoint lives below the base URL, and the issuer
//! (`iss`) of the tokens of each dialect.

use super::demo::{self, ProviderStyle};

/// Path of the Entra v2 token endpoint (tenant in the path).
pub(crate) const ENTRA_TOKEN_PATH: &str = "/{tenant}/oauth2/v2.0/token";
/// Path of the Cognito token endpoint.
pub(crate) const COGNITO_TOKEN_PATH: &str = "/oauth2/token";
/// Path of the IdentityServer token endpoint below its virtual path.
pub(crate) const IDENTITYSERVER_TOKEN_SUFFIX: &str = "/connect/token";
/// Where the OIDC provider lives (its issuer is `{base}{OIDC_PREFIX}`).
pub(crate) const OIDC_PREFIX: &str = "/oidc";
/// Path of the OIDC discovery document.
pub(crate) const OIDC_DISCOVERY_PATH: &str = "/oidc/.well-known/openid-configuration";
/// Path of the OIDC token endpoint.
pub(crate) const OIDC_TOKEN_PATH: &str = "/oidc/token";
/// Path of the JWKS (one key for every issuer).
pub(crate) const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Issuer path of the Cognito-style tokens.
pub(crate) const COGNITO_ISSUER_PATH: &str = "/cognito";

/// The issuer (`iss`) of tokens from the endpoint of `style`.
pub(crate) fn issuer_url(base_url: &str, style: ProviderStyle, tenant: &str) -> String {
    match style {
        ProviderStyle::Entra => format!("{base_url}/{tenant}/v2.0"),
        ProviderStyle::Cognito => format!("{base_url}{COGNITO_ISSUER_PATH}"),
        ProviderStyle::IdentityServer => {
            format!("{base_url}{}", demo::IDENTITYSERVER_VIRTUAL_PATH)
        }
        ProviderStyle::Oidc => format!("{base_url}{OIDC_PREFIX}"),
    }
}
