//! Apiture: the token endpoint from OIDC discovery, the client id and
//! secret sent as HTTP Basic *and* in the form body (as Apiture's guide
//! shows), and the header `{token_type} {access_token}`.
//!
//! ```sh
//! cargo run --example apiture                     # on the embedded sandbox
//! APITURE_ENVIRONMENT=test APITURE_CLIENT_ID=… APITURE_CLIENT_SECRET=… \
//! APITURE_SCOPES="banking/read banking/write" cargo run --example apiture
//! ```

mod support;

use m2m::apis::nxtsoft_transactions;
use m2m::auth::{Auth, ClientCredential, TokenCache, TokenEndpoint};
use m2m::provider::{ApitureEnvironment, Provider};
use m2m::sandbox::ProviderStyle;
use support::{expires_in, required, setting, start_sandbox, stop_sandbox};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut sandbox = None;
    let (provider, client_id, secret, scopes) = match setting("APITURE_CLIENT_SECRET") {
        Some(secret) => {
            let environment = match setting("APITURE_ENVIRONMENT").as_deref() {
                Some("test") => ApitureEnvironment::Test,
                Some("production") | None => ApitureEnvironment::Production,
                Some(other) => {
                    return Err(
                        format!("APITURE_ENVIRONMENT={other}: use production or test").into(),
                    );
                }
            };
            let provider = Provider::apiture(environment);
            (
                provider,
                required("APITURE_CLIENT_ID")?,
                secret,
                required("APITURE_SCOPES")?,
            )
        }
        None => {
            let local = start_sandbox("APITURE_CLIENT_SECRET").await?;
            let client = local.demo_client(ProviderStyle::Oidc);
            let provider = Provider::apiture(ApitureEnvironment::Production)
                .with_discovery_url(local.oidc_discovery_url().parse()?);
            let settings = (
                provider,
                client.client_id.to_owned(),
                client.client_secret.to_owned(),
                client.scope_param(),
            );
            sandbox = Some(local);
            settings
        }
    };
    let endpoint = TokenEndpoint::builder(provider, client_id, ClientCredential::secret(secret))
        .scopes(scopes.split_whitespace())
        .build()?;
    println!("client authentication: {:?}", endpoint.client_auth());
    let auth = Auth::new(endpoint, &TokenCache::in_memory());

    let token = auth.token().await?;
    println!(
        "{} token for {:?}, expires in {} s",
        token.token_type(),
        token.scopes().unwrap_or_default(),
        expires_in(&token)
    );

    if let Some(sandbox) = &sandbox {
        // The sandbox's OIDC client may post NXTsoft validation messages:
        // the same handle feeds a generated client.
        let nxtsoft = nxtsoft_transactions::Client::new(&sandbox.nxtsoft_api_url(), auth);
        let message: nxtsoft_transactions::types::TransactionRequest =
            serde_json::from_value(serde_json::json!({
                "accountNumber": "000123456789",
                "routingNumber": "021000021",
                "amount": 10,
                "currency": "USD",
                "transactionType": "Debit",
                "reference": "APITURE-EXAMPLE-1"
            }))?;
        let result = nxtsoft
            .post_validation_message()
            .body(message)
            .send()
            .await?;
        println!("validation message: {:?}", result.status);
    }
    stop_sandbox(sandbox).await
}
