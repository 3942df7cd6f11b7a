//! What `m2m sandbox` prints: the URLs and demo credentials of a running
//! sandbox.

use std::fmt;

use super::demo::DemoClient;

/// The URLs and demo credentials of a running sandbox, printable.
///
/// The client secrets in it are public, sandbox-only values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// `http://127.0.0.1:{port}`.
    pub base_url: String,
    /// The OIDC discovery document.
    pub oidc_discovery_url: String,
    /// The JWKS.
    pub jwks_url: String,
    /// Sequel's `AuthenticationServerUrl`.
    pub sequel_authentication_server_url: String,
    /// Base URL of the Cenda Configuration API.
    pub cenda_api_url: String,
    /// Base URL of the NXTsoft API.
    pub nxtsoft_api_url: String,
    /// `https://127.0.0.1:{port}`: the same routes with mutual TLS.
    pub mtls_base_url: String,
    /// The OIDC token endpoint over mutual TLS (the discovery document's
    /// `mtls_endpoint_aliases.token_endpoint`).
    pub mtls_token_url: String,
    /// The Entra tenant the sandbox knows.
    pub entra_tenant_id: &'static str,
    /// The demo clients.
    pub clients: Vec<DemoClient>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "m2m sandbox on {}", self.base_url)?;
        writeln!(f)?;
        writeln!(f, "APIs")?;
        writeln!(f, "  Cenda Configuration API   {}", self.cenda_api_url)?;
        writeln!(f, "  NXTsoft transactions      {}", self.nxtsoft_api_url)?;
        writeln!(f)?;
        writeln!(f, "Identity")?;
        writeln!(f, "  Entra tenant              {}", self.entra_tenant_id)?;
        writeln!(
            f,
            "  Sequel auth server URL    {}",
            self.sequel_authentication_server_url
        )?;
        writeln!(f, "  OIDC discovery            {}", self.oidc_discovery_url)?;
        writeln!(f, "  JWKS                      {}", self.jwks_url)?;
        writeln!(f)?;
        writeln!(
            f,
            "Mutual TLS (RFC 8705; the sandbox's own CA, made at start)"
        )?;
        writeln!(f, "  HTTPS base URL            {}", self.mtls_base_url)?;
        writeln!(f, "  token endpoint (alias)    {}", self.mtls_token_url)?;
        writeln!(
            f,
            "  client_id                 {} (tls_client_auth: its certificate, no secret)",
            super::demo::MTLS_CLIENT_ID
        )?;
        writeln!(
            f,
            "  client_id                 {} (self_signed_tls_client_auth)",
            super::demo::MTLS_SELF_SIGNED_CLIENT_ID
        )?;
        writeln!(f)?;
        writeln!(f, "Demo clients (sandbox-only credentials)")?;
        for client in &self.clients {
            writeln!(f, "  {} — {}", client.style, client.description)?;
            writeln!(f, "    token URL      {}", client.token_url)?;
            writeln!(f, "    client_id      {}", client.client_id)?;
            writeln!(f, "    client_secret  {}", client.client_secret)?;
            writeln!(f, "    scope          {}", client.scope_param())?;
        }
        Ok(())
    }
}
