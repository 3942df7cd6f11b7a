//! NxtPort (Azure AD B2C / Entra ID): a token for the client's own app
//! registration (`{client_id}/.default`), on the tenant of the Staging or
//! the Live environment, attached to hand-written reqwest calls with
//! [`Auth::authorization`].
//!
//! ```sh
//! cargo run --example nxtport                     # on the embedded sandbox
//! NXTPORT_ENVIRONMENT=staging NXTPORT_TENANT_ID=… NXTPORT_CLIENT_ID=… \
//! NXTPORT_CLIENT_SECRET=… NXTPORT_API_URL=https://… cargo run --example nxtport
//! ```

mod support;

use m2m::auth::{Auth, ClientCredential, TokenCache, TokenEndpoint};
use m2m::provider::{NxtPortEnvironment, Provider};
use m2m::sandbox::demo;
use support::{required, setting, start_sandbox, stop_sandbox};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut sandbox = None;
    let (provider, client_id, secret) = match setting("NXTPORT_CLIENT_SECRET") {
        Some(secret) => {
            let environment = match setting("NXTPORT_ENVIRONMENT").as_deref() {
                Some("live") => NxtPortEnvironment::Live,
                Some("staging") | None => NxtPortEnvironment::Staging,
                Some(other) => {
                    return Err(format!("NXTPORT_ENVIRONMENT={other}: use live or staging").into());
                }
            };
            let provider = Provider::nxtport(environment, required("NXTPORT_TENANT_ID")?);
            (provider, required("NXTPORT_CLIENT_ID")?, secret)
        }
        None => {
            let local = start_sandbox("NXTPORT_CLIENT_SECRET").await?;
            let provider = Provider::nxtport(NxtPortEnvironment::Staging, demo::ENTRA_TENANT_ID)
                .with_authority_host(local.base_url().parse()?);
            sandbox = Some(local);
            let secret = demo::ENTRA_CLIENT_SECRET.to_owned();
            (provider, demo::ENTRA_CLIENT_ID.to_owned(), secret)
        }
    };
    // No scopes given: NxtPort's default, `{client_id}/.default`.
    let endpoint = TokenEndpoint::builder(provider, client_id, ClientCredential::secret(secret));
    let endpoint = endpoint.build()?;
    println!("scope: {}", endpoint.scopes().join(" "));
    let auth = Auth::new(endpoint, &TokenCache::in_memory());

    // Hand-written code asks for the header value each time: the first
    // call fetches a token, later ones reuse it until shortly before expiry.
    let http = reqwest::Client::new();
    for call in 1..=3 {
        let authorization = auth.authorization().await?;
        match setting("NXTPORT_API_URL") {
            Some(url) => {
                let response = http
                    .get(&url)
                    .header(reqwest::header::AUTHORIZATION, authorization)
                    .send()
                    .await?;
                println!("call {call}: GET {url} → {}", response.status());
            }
            // The value is sensitive: never print it, only its shape.
            None => println!(
                "call {call}: Authorization: {} [{} bytes, sensitive: {}]",
                auth.token().await?.token_type(),
                authorization.len(),
                authorization.is_sensitive()
            ),
        }
    }

    stop_sandbox(sandbox).await
}
