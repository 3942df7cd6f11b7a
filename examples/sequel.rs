//! Sequel (Duende IdentityServer): a token from
//! `{AuthenticationServerUrl}/connect/token` with several space-separated
//! scopes, reused until shortly before `expires_in`, as Sequel's guide asks.
//!
//! ```sh
//! cargo run --example sequel                      # on the embedded sandbox
//! SEQUEL_AUTHENTICATION_SERVER_URL=https://…/Authentication SEQUEL_CLIENT_ID=… \
//! SEQUEL_CLIENT_SECRET=… SEQUEL_SCOPES="app.scope1 app.scope2" cargo run --example sequel
//! ```

mod support;

use m2m::apis::cenda_configuration;
use m2m::auth::{Auth, ClientCredential, TokenCache, TokenEndpoint};
use m2m::provider::Provider;
use m2m::sandbox::ProviderStyle;
use support::{expires_in, required, setting, start_sandbox, stop_sandbox};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut sandbox = None;
    let (server_url, client_id, secret, scopes) = match setting("SEQUEL_CLIENT_SECRET") {
        Some(secret) => (
            required("SEQUEL_AUTHENTICATION_SERVER_URL")?,
            required("SEQUEL_CLIENT_ID")?,
            secret,
            required("SEQUEL_SCOPES")?,
        ),
        None => {
            let local = start_sandbox("SEQUEL_CLIENT_SECRET").await?;
            let client = local.demo_client(ProviderStyle::IdentityServer);
            let settings = (
                local.sequel_authentication_server_url(),
                client.client_id.to_owned(),
                client.client_secret.to_owned(),
                client.scope_param(),
            );
            sandbox = Some(local);
            settings
        }
    };
    let endpoint = TokenEndpoint::builder(
        Provider::sequel(server_url.parse()?),
        client_id,
        ClientCredential::secret(secret),
    )
    .scopes(scopes.split_whitespace())
    .build()?;
    let auth = Auth::new(endpoint, &TokenCache::in_memory());

    let token = auth.token().await?;
    let again = auth.token().await?;
    println!(
        "{} token for {:?}, expires in {} s; asked again: {}",
        token.token_type(),
        token.scopes().unwrap_or_default(),
        expires_in(&token),
        if again.is_sent_as(token.authorization()) {
            "the same token, from the cache"
        } else {
            "a new token"
        }
    );

    if let Some(sandbox) = &sandbox {
        // The sandbox's IdentityServer client may call the Cenda API too.
        let cenda = cenda_configuration::Client::new(&sandbox.cenda_api_url(), auth);
        let page = cenda.list_organisations().send().await?;
        println!("listOrganisations: {} organisation(s)", page.len());
    }
    stop_sandbox(sandbox).await
}
