//! `m2m providers`: the built-in provider variants and what each needs.

use m2m::config::ProviderKind;
use m2m::provider::{ApitureEnvironment, NxtPortEnvironment, Provider};

/// One row of the listing.
struct Row {
    kind: ProviderKind,
    needs: &'static str,
    example: Provider,
}

fn rows() -> Vec<Row> {
    let url = |s: &str| url::Url::parse(s).expect("a valid example URL");
    vec![
        Row {
            kind: ProviderKind::Nxtport,
            needs: "environment (live|staging), tenant_id, client_id, secret",
            example: Provider::nxtport(NxtPortEnvironment::Live, "{tenant_id}"),
        },
        Row {
            kind: ProviderKind::Nxtsoft,
            needs: "client_id, secret (scopes optional)",
            example: Provider::nxtsoft(),
        },
        Row {
            kind: ProviderKind::Cenda,
            needs: "tenant_id (PermissionsTenantId), gateway_client_id, client_id, secret",
            example: Provider::cenda("{tenant_id}", "{gateway_client_id}"),
        },
        Row {
            kind: ProviderKind::Sequel,
            needs: "authentication_server_url, client_id, secret, scopes",
            example: Provider::sequel(url("https://security.example.com/Authentication")),
        },
        Row {
            kind: ProviderKind::Apiture,
            needs: "client_id, secret, scopes (environment production|test)",
            example: Provider::apiture(ApitureEnvironment::Production),
        },
        Row {
            kind: ProviderKind::Custom,
            needs: "token_url or discovery_url, client_id, secret or private key",
            example: Provider::custom_token_url(url("https://idp.example.com/oauth2/token")),
        },
    ]
}

/// Prints the listing.
pub fn print() {
    println!("Built-in providers (m2m.toml `provider = \"…\"`, or --provider):\n");
    for row in rows() {
        let endpoint = row
            .example
            .token_authority()
            .map(|authority| authority.url().to_string())
            .unwrap_or_else(|e| e.to_string());
        let api = row
            .example
            .api_base_url()
            .map_or_else(|| "(set api_base_url)".to_owned(), |u| u.to_string());
        println!("  {}", row.kind.name());
        println!("    needs        {}", row.needs);
        println!("    token        {endpoint}");
        println!("    client auth  {}", row.example.default_client_auth());
        println!("    scope        {}", row.example.scope_format());
        println!("    API          {api}");
        println!();
    }
    println!(
        "Every URL can be overridden: token_url, discovery_url, authority_host, api_base_url."
    );
}
