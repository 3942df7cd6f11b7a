//! The identity providers m2m knows, and what each one needs.
//!
//! A [`Provider`] says where tokens come from (a token URL, or a discovery
//! document that names it), which scopes to ask for when the caller gives
//! none, how the client authenticates by default, and where the API lives
//! when that is known. Every URL can be overridden through [`Endpoints`]
//! (a sovereign-cloud Entra host, a test server, a proxy).
//!
//! A provider is built in code, or by [`crate::config`] from a client of
//! `m2m.toml` (`provider = "cenda"` and the fields it needs): the file has
//! one model of a client, and this is what it is turned into.

use std::fmt;

use url::Url;

use crate::oauth::credentials::ClientAuthMethod;
use crate::oauth::error::ConfigError;

/// The public Microsoft Entra ID host, used unless `authority_host` says otherwise.
pub const ENTRA_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";
/// NXTsoft's token URL (an AWS Cognito domain).
pub const NXTSOFT_TOKEN_URL: &str = "https://auth.nxtsoft.com/oauth2/token";
/// NXTsoft's API base URL.
pub const NXTSOFT_API_BASE_URL: &str = "https://api.nxtsoft.com";
/// The Cenda Configuration API gateway (the `servers` entry of its OpenAPI document).
pub const CENDA_API_BASE_URL: &str = "https://api.cenda.app";
/// Apiture's production discovery document.
pub const APITURE_DISCOVERY_URL: &str =
    "https://auth.apiture.com/oidc/.well-known/openid-configuration";
/// Apiture's Customer Acceptance Test (CAT) discovery document, as Apiture's
/// developer guide ("Secure access") names it for the pre-production
/// environments. Your Dev Portal account lists the environments open to you:
/// set `discovery_url` if yours differs.
pub const APITURE_TEST_DISCOVERY_URL: &str =
    "https://cat-oidc.apiture-comm-preprod.com/oidc/.well-known/openid-configuration";

/// An identity provider and the facts m2m needs to get tokens from it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Provider {
    /// NxtPort International: Azure AD B2C / Microsoft Entra ID,
    /// `https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token`,
    /// secret in the form body, scope `{client_id}/.default`.
    ///
    /// The tenant differs between the Live and the Staging environment, and
    /// NxtPort hands it out with the client id and secret: give the tenant of
    /// the environment you name. (Two environments are two providers, two
    /// clients and two token caches.)
    NxtPort {
        /// Which NxtPort environment the tenant belongs to.
        environment: NxtPortEnvironment,
        /// The directory (tenant) id of that environment.
        tenant_id: String,
        /// URL overrides (`authority_host`, `token_url`, …).
        endpoints: Endpoints,
    },
    /// NXTsoft: an AWS Cognito token URL, `https://auth.nxtsoft.com/oauth2/token`,
    /// secret in the form body; the scope is optional (Cognito then grants
    /// every scope of the client). API at `https://api.nxtsoft.com`.
    Nxtsoft {
        /// URL overrides.
        endpoints: Endpoints,
    },
    /// Cenda Configuration API: Microsoft Entra ID in the permissions tenant,
    /// scope `{gateway_client_id}/.default`, secret in the form body. API at
    /// `https://api.cenda.app` unless overridden (each Cenda environment has
    /// its own gateway).
    Cenda {
        /// `PermissionsTenantId`: the tenant that grants the permissions.
        permissions_tenant_id: String,
        /// `GatewayClientId`: the client id of the Cenda API gateway.
        gateway_client_id: String,
        /// URL overrides.
        endpoints: Endpoints,
    },
    /// Sequel: Duende IdentityServer at `{authentication_server_url}/connect/token`
    /// (the URL keeps its virtual path), several space-separated scopes,
    /// HTTP Basic with RFC 6749 encoding (IdentityModel's default).
    Sequel {
        /// `AuthenticationServerUrl`, with its virtual path
        /// (`https://security.sequel.com/Authentication`).
        authentication_server_url: Url,
        /// URL overrides.
        endpoints: Endpoints,
    },
    /// Apiture: the token endpoint comes from the OpenID Connect discovery
    /// document; HTTP Basic *and* the id and secret in the form body, as
    /// Apiture's guide shows; several space-separated scopes.
    Apiture {
        /// Production or the test (CAT) environment.
        environment: ApitureEnvironment,
        /// URL overrides (`discovery_url` replaces the environment's).
        endpoints: Endpoints,
    },
    /// Any other OAuth 2.0 server: a token URL or a discovery URL (in
    /// `endpoints`), any client-authentication method.
    Custom {
        /// `token_url` or `discovery_url` (one is required), `api_base_url`.
        endpoints: Endpoints,
        /// The client-authentication method; `client_secret_basic` when unset
        /// (the one RFC 6749 §2.3.1 obliges servers to support).
        client_auth: Option<ClientAuthMethod>,
        /// Scopes to ask for when the client configuration gives none.
        scopes: Vec<String>,
    },
}

/// The two NxtPort environments; each has its own tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NxtPortEnvironment {
    /// The Live (production) environment.
    Live,
    /// The Staging environment.
    Staging,
}

/// Apiture's environments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ApitureEnvironment {
    /// Production: [`APITURE_DISCOVERY_URL`].
    #[default]
    Production,
    /// The Customer Acceptance Test environment: [`APITURE_TEST_DISCOVERY_URL`]
    /// (override with `discovery_url` if your Dev Portal names another).
    Test,
}

/// URL overrides, each optional. `token_url` wins over `discovery_url`,
/// which wins over the provider's own endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Endpoints {
    /// Entra host for the Entra-based providers (NxtPort, Cenda), for
    /// sovereign clouds: `https://login.microsoftonline.us`,
    /// `https://login.partner.microsoftonline.cn`, or a test server.
    pub authority_host: Option<Url>,
    /// The token endpoint itself.
    pub token_url: Option<Url>,
    /// An OpenID Connect discovery document that names the token endpoint.
    pub discovery_url: Option<Url>,
    /// The API base URL (with any path prefix).
    pub api_base_url: Option<Url>,
}

/// Where the token endpoint is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenAuthority {
    /// The token URL is known.
    TokenUrl(Url),
    /// The token URL is read from this OpenID Connect discovery document.
    Discovery(Url),
}

impl TokenAuthority {
    /// The URL: the token URL or the discovery URL.
    pub fn url(&self) -> &Url {
        match self {
            Self::TokenUrl(url) | Self::Discovery(url) => url,
        }
    }
}

impl Provider {
    /// NxtPort in `environment`, whose tenant is `tenant_id`.
    pub fn nxtport(environment: NxtPortEnvironment, tenant_id: impl Into<String>) -> Self {
        Self::NxtPort {
            environment,
            tenant_id: tenant_id.into(),
            endpoints: Endpoints::default(),
        }
    }

    /// NXTsoft.
    pub fn nxtsoft() -> Self {
        Self::Nxtsoft {
            endpoints: Endpoints::default(),
        }
    }

    /// Cenda, with the permissions tenant and the gateway's client id.
    pub fn cenda(
        permissions_tenant_id: impl Into<String>,
        gateway_client_id: impl Into<String>,
    ) -> Self {
        Self::Cenda {
            permissions_tenant_id: permissions_tenant_id.into(),
            gateway_client_id: gateway_client_id.into(),
            endpoints: Endpoints::default(),
        }
    }

    /// Sequel, with the authentication server URL (virtual path included).
    pub fn sequel(authentication_server_url: Url) -> Self {
        Self::Sequel {
            authentication_server_url,
            endpoints: Endpoints::default(),
        }
    }

    /// Apiture in `environment`.
    pub fn apiture(environment: ApitureEnvironment) -> Self {
        Self::Apiture {
            environment,
            endpoints: Endpoints::default(),
        }
    }

    /// Any server, by its token URL.
    pub fn custom_token_url(token_url: Url) -> Self {
        Self::Custom {
            endpoints: Endpoints {
                token_url: Some(token_url),
                ..Endpoints::default()
            },
            client_auth: None,
            scopes: Vec::new(),
        }
    }

    /// Any server, by its OpenID Connect discovery URL.
    pub fn custom_discovery(discovery_url: Url) -> Self {
        Self::Custom {
            endpoints: Endpoints {
                discovery_url: Some(discovery_url),
                ..Endpoints::default()
            },
            client_auth: None,
            scopes: Vec::new(),
        }
    }

    /// The stable short name: `nxtport`, `nxtsoft`, `cenda`, `sequel`,
    /// `apiture`, `custom` (the `provider` of a client in `m2m.toml`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::NxtPort { .. } => "nxtport",
            Self::Nxtsoft { .. } => "nxtsoft",
            Self::Cenda { .. } => "cenda",
            Self::Sequel { .. } => "sequel",
            Self::Apiture { .. } => "apiture",
            Self::Custom { .. } => "custom",
        }
    }

    /// The URL overrides.
    pub fn endpoints(&self) -> &Endpoints {
        match self {
            Self::NxtPort { endpoints, .. }
            | Self::Nxtsoft { endpoints }
            | Self::Cenda { endpoints, .. }
            | Self::Sequel { endpoints, .. }
            | Self::Apiture { endpoints, .. }
            | Self::Custom { endpoints, .. } => endpoints,
        }
    }

    /// The URL overrides, to change them.
    pub fn endpoints_mut(&mut self) -> &mut Endpoints {
        match self {
            Self::NxtPort { endpoints, .. }
            | Self::Nxtsoft { endpoints }
            | Self::Cenda { endpoints, .. }
            | Self::Sequel { endpoints, .. }
            | Self::Apiture { endpoints, .. }
            | Self::Custom { endpoints, .. } => endpoints,
        }
    }

    /// With another Entra host (NxtPort and Cenda only: a sovereign cloud,
    /// or a test server). Other providers refuse it in [`Self::token_authority`].
    pub fn with_authority_host(mut self, host: Url) -> Self {
        self.endpoints_mut().authority_host = Some(host);
        self
    }

    /// With this token URL instead of the provider's.
    pub fn with_token_url(mut self, url: Url) -> Self {
        self.endpoints_mut().token_url = Some(url);
        self
    }

    /// With the token URL read from this discovery document.
    pub fn with_discovery_url(mut self, url: Url) -> Self {
        self.endpoints_mut().discovery_url = Some(url);
        self
    }

    /// With this API base URL.
    pub fn with_api_base_url(mut self, url: Url) -> Self {
        self.endpoints_mut().api_base_url = Some(url);
        self
    }

    /// Where the token endpoint is: the `token_url` override, else the
    /// `discovery_url` override, else the provider's own.
    pub fn token_authority(&self) -> Result<TokenAuthority, ConfigError> {
        let endpoints = self.endpoints();
        if endpoints.authority_host.is_some()
            && !matches!(self, Self::NxtPort { .. } | Self::Cenda { .. })
        {
            return Err(ConfigError::Invalid(format!(
                "authority_host applies to the Entra providers (nxtport, cenda), not to {}: set token_url instead",
                self.name()
            )));
        }
        if let Some(url) = &endpoints.token_url {
            return Ok(TokenAuthority::TokenUrl(url.clone()));
        }
        if let Some(url) = &endpoints.discovery_url {
            return Ok(TokenAuthority::Discovery(url.clone()));
        }
        match self {
            Self::NxtPort { tenant_id, .. } => self.entra_token_url(tenant_id, "tenant_id"),
            Self::Cenda {
                permissions_tenant_id,
                ..
            } => self.entra_token_url(permissions_tenant_id, "permissions_tenant_id"),
            Self::Nxtsoft { .. } => Ok(TokenAuthority::TokenUrl(parse_const(NXTSOFT_TOKEN_URL))),
            Self::Sequel {
                authentication_server_url,
                ..
            } => Ok(TokenAuthority::TokenUrl(append_path(
                authentication_server_url,
                &["connect", "token"],
            )?)),
            Self::Apiture { environment, .. } => {
                Ok(TokenAuthority::Discovery(parse_const(match environment {
                    ApitureEnvironment::Production => APITURE_DISCOVERY_URL,
                    ApitureEnvironment::Test => APITURE_TEST_DISCOVERY_URL,
                })))
            }
            Self::Custom { .. } => Err(ConfigError::Invalid(
                "a custom provider needs token_url or discovery_url".into(),
            )),
        }
    }

    /// The scopes to ask for when the caller gives none. NxtPort's
    /// `{client_id}/.default` needs the client id.
    pub fn default_scopes(&self, client_id: &str) -> Vec<String> {
        match self {
            Self::NxtPort { .. } => vec![format!("{client_id}/.default")],
            Self::Cenda {
                gateway_client_id, ..
            } => vec![format!("{gateway_client_id}/.default")],
            Self::Custom { scopes, .. } => scopes.clone(),
            Self::Nxtsoft { .. } | Self::Sequel { .. } | Self::Apiture { .. } => Vec::new(),
        }
    }

    /// How a client secret is sent unless the client configuration says
    /// otherwise. (A private key always means `private_key_jwt`.)
    pub fn default_client_auth(&self) -> ClientAuthMethod {
        match self {
            Self::NxtPort { .. } | Self::Nxtsoft { .. } | Self::Cenda { .. } => {
                ClientAuthMethod::ClientSecretPost
            }
            Self::Sequel { .. } => ClientAuthMethod::ClientSecretBasic,
            Self::Apiture { .. } => ClientAuthMethod::ClientSecretBasicAndPost,
            Self::Custom { client_auth, .. } => {
                client_auth.unwrap_or(ClientAuthMethod::ClientSecretBasic)
            }
        }
    }

    /// The API base URL: the override, else the provider's when known.
    pub fn api_base_url(&self) -> Option<Url> {
        if let Some(url) = &self.endpoints().api_base_url {
            return Some(url.clone());
        }
        match self {
            Self::Nxtsoft { .. } => Some(parse_const(NXTSOFT_API_BASE_URL)),
            Self::Cenda { .. } => Some(parse_const(CENDA_API_BASE_URL)),
            _ => None,
        }
    }

    /// What the provider expects as scope, in words (shown on `invalid_scope`).
    pub fn scope_format(&self) -> &'static str {
        match self {
            Self::NxtPort { .. } => {
                "exactly one scope, `{client_id}/.default`: your own client id followed by `/.default`"
            }
            Self::Cenda { .. } => {
                "exactly one scope, `{GatewayClientId}/.default`: the Cenda gateway's client id followed by `/.default`"
            }
            Self::Nxtsoft { .. } => {
                "Cognito scope names such as `transactions/mock`, separated by spaces, or no scope at all (every scope of the client is then granted)"
            }
            Self::Sequel { .. } => {
                "the IdentityServer scope names of the client, separated by spaces (`app.scope1 app.scope2`)"
            }
            Self::Apiture { .. } => {
                "the application's scopes from the Apiture Developer Portal, separated by spaces (`banking/read banking/write`)"
            }
            Self::Custom { .. } => "the scope names the server knows, separated by spaces",
        }
    }

    fn entra_token_url(&self, tenant: &str, field: &str) -> Result<TokenAuthority, ConfigError> {
        // A tenant is a GUID or a domain name; anything else would change the path.
        if !tenant.starts_with(|c: char| c.is_ascii_alphanumeric())
            || !tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(ConfigError::Invalid(format!(
                "{field} must be a tenant id (GUID) or a tenant domain name, got {tenant:?}"
            )));
        }
        let host = self
            .endpoints()
            .authority_host
            .clone()
            .unwrap_or_else(|| parse_const(ENTRA_AUTHORITY_HOST));
        Ok(TokenAuthority::TokenUrl(append_path(
            &host,
            &[tenant, "oauth2", "v2.0", "token"],
        )?))
    }
}

impl fmt::Display for Provider {
    /// The short name, plus the environment where there is one
    /// (`nxtport (staging)`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        match self {
            Self::NxtPort {
                environment: NxtPortEnvironment::Staging,
                ..
            } => f.write_str(" (staging)"),
            Self::Apiture {
                environment: ApitureEnvironment::Test,
                ..
            } => f.write_str(" (test)"),
            _ => Ok(()),
        }
    }
}

/// `base` with `segments` appended to its path (a trailing `/` does not
/// double; query and fragment are dropped).
fn append_path(base: &Url, segments: &[&str]) -> Result<Url, ConfigError> {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .map_err(|()| ConfigError::InvalidUrl {
            url: base.to_string(),
            reason: "it cannot have a path (not an http(s) URL)".into(),
        })?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

fn parse_const(url: &'static str) -> Url {
    // The constants above are valid URLs; a test checks every one.
    Url::parse(url).unwrap_or_else(|_| unreachable!("invalid built-in URL {url}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn built_in_urls_parse() {
        for u in [
            ENTRA_AUTHORITY_HOST,
            NXTSOFT_TOKEN_URL,
            NXTSOFT_API_BASE_URL,
            CENDA_API_BASE_URL,
            APITURE_DISCOVERY_URL,
            APITURE_TEST_DISCOVERY_URL,
        ] {
            assert!(Url::parse(u).is_ok(), "{u}");
        }
    }

    #[test]
    fn entra_providers_build_tenant_urls_and_scopes() {
        let cenda = Provider::cenda("tenant-1", "gateway-1");
        assert_eq!(
            cenda.token_authority().unwrap(),
            TokenAuthority::TokenUrl(url(
                "https://login.microsoftonline.com/tenant-1/oauth2/v2.0/token"
            ))
        );
        assert_eq!(cenda.default_scopes("me"), vec!["gateway-1/.default"]);
        assert_eq!(cenda.api_base_url(), Some(url("https://api.cenda.app")));

        let nxtport = Provider::nxtport(NxtPortEnvironment::Staging, "stg.onmicrosoft.com")
            .with_authority_host(url("https://login.microsoftonline.us/"));
        assert_eq!(
            nxtport.token_authority().unwrap().url().as_str(),
            "https://login.microsoftonline.us/stg.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(
            nxtport.default_scopes("client-9"),
            vec!["client-9/.default"]
        );
        assert_eq!(nxtport.to_string(), "nxtport (staging)");
        assert_eq!(
            nxtport.default_client_auth(),
            ClientAuthMethod::ClientSecretPost
        );
    }

    #[test]
    fn tenant_ids_cannot_change_the_path() {
        for bad in ["", "..", ".x", "a/b", "../x", "t?x=1", "t#f", "t%2F"] {
            assert!(
                Provider::cenda(bad, "g").token_authority().is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn sequel_keeps_its_virtual_path() {
        for base in [
            "https://security.sequel.com/Authentication",
            "https://security.sequel.com/Authentication/",
        ] {
            assert_eq!(
                Provider::sequel(url(base))
                    .token_authority()
                    .unwrap()
                    .url()
                    .as_str(),
                "https://security.sequel.com/Authentication/connect/token"
            );
        }
        assert_eq!(
            Provider::sequel(url("https://id.example"))
                .token_authority()
                .unwrap()
                .url()
                .as_str(),
            "https://id.example/connect/token"
        );
    }

    #[test]
    fn overrides_take_precedence_and_authority_host_is_entra_only() {
        let apiture = Provider::apiture(ApitureEnvironment::Test);
        assert_eq!(
            apiture.token_authority().unwrap(),
            TokenAuthority::Discovery(url(APITURE_TEST_DISCOVERY_URL))
        );
        let direct = apiture
            .clone()
            .with_token_url(url("https://t.example/token"));
        assert_eq!(
            direct.token_authority().unwrap(),
            TokenAuthority::TokenUrl(url("https://t.example/token"))
        );
        assert_eq!(
            Provider::nxtsoft()
                .with_discovery_url(url("https://d.example/.well-known/openid-configuration"))
                .token_authority()
                .unwrap(),
            TokenAuthority::Discovery(url("https://d.example/.well-known/openid-configuration"))
        );
        let err = Provider::nxtsoft()
            .with_authority_host(url("https://login.microsoftonline.us"))
            .token_authority()
            .unwrap_err();
        assert!(err.to_string().contains("authority_host"), "{err}");
        assert!(matches!(
            Provider::Custom {
                endpoints: Endpoints::default(),
                client_auth: None,
                scopes: vec![]
            }
            .token_authority(),
            Err(ConfigError::Invalid(_))
        ));
    }

    #[test]
    fn defaults_per_provider() {
        assert_eq!(
            Provider::nxtsoft().default_scopes("c"),
            Vec::<String>::new()
        );
        assert_eq!(
            Provider::nxtsoft().api_base_url(),
            Some(url("https://api.nxtsoft.com"))
        );
        assert_eq!(
            Provider::apiture(ApitureEnvironment::Production).default_client_auth(),
            ClientAuthMethod::ClientSecretBasicAndPost
        );
        assert_eq!(
            Provider::sequel(url("https://s.example")).default_client_auth(),
            ClientAuthMethod::ClientSecretBasic
        );
        assert_eq!(
            Provider::sequel(url("https://s.example")).api_base_url(),
            None
        );
        let names: Vec<&str> = [
            Provider::nxtport(NxtPortEnvironment::Live, "t"),
            Provider::nxtsoft(),
            Provider::cenda("t", "g"),
            Provider::sequel(url("https://s.example")),
            Provider::apiture(ApitureEnvironment::Production),
            Provider::custom_token_url(url("https://c.example/token")),
        ]
        .iter()
        .map(Provider::name)
        .collect();
        assert_eq!(
            names,
            ["nxtport", "nxtsoft", "cenda", "sequel", "apiture", "custom"]
        );
    }
}
