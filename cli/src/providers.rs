//! `m2m providers`: the built-in provider variants and what each needs.

use m2m::config::ProviderKind;
use m2m::provider::{ApitureEnvironment, NxtPortEnvironment, Provider, TokenAuthority};

/// One row of the listing.
struct Row {
    kind: ProviderKind,
    needs: &'static str,
    example: Provider,
    /// `(value in the example, placeholder shown instead)`.
    placeholders: &'static [(&'static str, &'static str)],
}

/// Stand-ins that make a valid example provider, shown as placeholders.
const TENANT: &str = "00000000-0000-4000-8000-00000000a11d";
const GATEWAY: &str = "00000000-0000-4000-8000-0000000009a7";
const AUTH_SERVER: &str = "https://authentication-server-url.invalid";
const TOKEN_URL: &str = "https://token-url.invalid/";

fn rows() -> Vec<Row> {
    let url = |s: &str| url::Url::parse(s).expect("a valid example URL");
    vec![
        Row {
            kind: ProviderKind::Nxtport,
            needs: "environment (live|staging), tenant_id, client_id, secret",
            example: Provider::nxtport(NxtPortEnvironment::Live, TENANT),
            placeholders: &[(TENANT, "{tenant_id}")],
        },
        Row {
            kind: ProviderKind::Nxtsoft,
            needs: "client_id, secret (scopes optional)",
            example: Provider::nxtsoft(),
            placeholders: &[],
        },
        Row {
            kind: ProviderKind::Cenda,
            needs: "tenant_id (PermissionsTenantId), gateway_client_id, client_id, secret",
            example: Provider::cenda(TENANT, GATEWAY),
            placeholders: &[(TENANT, "{tenant_id}"), (GATEWAY, "{gateway_client_id}")],
        },
        Row {
            kind: ProviderKind::Sequel,
            needs: "authentication_server_url, client_id, secret, scopes",
            example: Provider::sequel(url(AUTH_SERVER)),
            placeholders: &[(AUTH_SERVER, "{authentication_server_url}")],
        },
        Row {
            kind: ProviderKind::Apiture,
            needs: "client_id, secret, scopes (environment production|test)",
            example: Provider::apiture(ApitureEnvironment::Production),
            placeholders: &[],
        },
        Row {
            kind: ProviderKind::Custom,
            needs: "token_url or discovery_url, client_id, secret or private key",
            example: Provider::custom_token_url(url(TOKEN_URL)),
            placeholders: &[(
                TOKEN_URL,
                "{token_url} (or the token_endpoint of {discovery_url})",
            )],
        },
    ]
}

/// `text` with the example values replaced by their placeholders.
fn templated(text: String, placeholders: &[(&str, &str)]) -> String {
    placeholders
        .iter()
        .fold(text, |text, (value, placeholder)| {
            text.replace(value, placeholder)
        })
}

/// Prints the listing.
pub fn print() {
    println!("Built-in providers (m2m.toml `provider = \"…\"`, or --provider):\n");
    for row in rows() {
        let (label, endpoint) = match row.example.token_authority() {
            Ok(TokenAuthority::Discovery(url)) => ("discovery", url.to_string()),
            Ok(TokenAuthority::TokenUrl(url)) => ("token", url.to_string()),
            Err(error) => ("token", error.to_string()),
        };
        let endpoint = templated(endpoint, row.placeholders);
        let scope = templated(row.example.scope_format().to_string(), row.placeholders);
        let api = row
            .example
            .api_base_url()
            .map_or_else(|| "(set api_base_url)".to_owned(), |u| u.to_string());
        println!("  {}", row.kind.name());
        println!("    needs        {}", row.needs);
        println!("    {label:<12} {endpoint}");
        println!("    client auth  {}", row.example.default_client_auth());
        println!("    scope        {scope}");
        println!("    API          {api}");
        println!();
    }
    println!(
        "Every URL can be overridden: token_url, discovery_url, authority_host, api_base_url."
    );
}
