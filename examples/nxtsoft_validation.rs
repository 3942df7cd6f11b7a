//! NXTsoft: post a validation message (`POST /transactions/mock`, scope
//! `transactions/mock`) with a token from NXTsoft's Cognito-style server.
//!
//! ```sh
//! cargo run --example nxtsoft_validation          # on the embedded sandbox
//! NXTSOFT_CLIENT_ID=… NXTSOFT_CLIENT_SECRET=… NXTSOFT_API_BASE_URL=https://… \
//!   cargo run --example nxtsoft_validation
//! ```

mod support;

use m2m::apis::nxtsoft_transactions::{Client, types};
use m2m::auth::{Auth, ClientCredential, TokenCache, TokenEndpoint};
use m2m::provider::Provider;
use m2m::sandbox::demo;
use progenitor_client::ClientInfo;
use support::{required, setting, start_sandbox, stop_sandbox};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut sandbox = None;
    let (provider, client_id, secret, api_base_url) = match setting("NXTSOFT_CLIENT_SECRET") {
        // https://auth.nxtsoft.com/oauth2/token, secret in the form body.
        Some(secret) => (
            Provider::nxtsoft(),
            required("NXTSOFT_CLIENT_ID")?,
            secret,
            required("NXTSOFT_API_BASE_URL")?,
        ),
        None => {
            let local = start_sandbox("NXTSOFT_CLIENT_SECRET").await?;
            let provider = Provider::nxtsoft().with_token_url(local.cognito_token_url().parse()?);
            let api_base_url = local.nxtsoft_api_url();
            sandbox = Some(local);
            (
                provider,
                demo::COGNITO_CLIENT_ID.to_owned(),
                demo::COGNITO_CLIENT_SECRET.to_owned(),
                api_base_url,
            )
        }
    };
    let endpoint = TokenEndpoint::builder(provider, client_id, ClientCredential::secret(secret))
        .scopes([demo::SCOPE_TRANSACTIONS_MOCK])
        .build()?;
    let nxtsoft = Client::new(&api_base_url, Auth::new(endpoint, &TokenCache::in_memory()));

    let message: types::TransactionRequest = serde_json::from_value(serde_json::json!({
        "accountNumber": "000123456789",
        "routingNumber": "021000021",
        "amount": 125.5,
        "currency": "USD",
        "transactionType": "Credit",
        "reference": "INV-2024-0042"
    }))?;
    for attempt in 1..=2 {
        match nxtsoft
            .post_validation_message()
            .body(message.clone())
            .send()
            .await
        {
            Ok(result) => println!(
                "validation message {attempt}: {:?}, {} check(s)",
                result.status,
                result.checks.len()
            ),
            // A call that failed for want of a token: the typed error, with
            // the token endpoint's status, OAuth error code and what to check.
            Err(error) => {
                return Err(match nxtsoft.inner().error_of(&error) {
                    Some(auth_error) => format!("no token for NXTsoft: {auth_error}").into(),
                    None => format!("postValidationMessage: {error}").into(),
                });
            }
        }
    }

    // Both messages went out with the one cached token.
    stop_sandbox(sandbox).await
}
