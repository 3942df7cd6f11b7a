//! Entra workload identity in one line: the client id and the federated
//! token file the workload identity webhook puts in `AZURE_CLIENT_ID` and
//! `AZURE_FEDERATED_TOKEN_FILE`.

use super::token_endpoint::{TokenEndpoint, TokenEndpointBuilder};
use crate::oauth::assertion_source::{AZURE_CLIENT_ID, ClientAssertion};
use crate::oauth::error::ConfigError;
use crate::provider::Provider;

impl TokenEndpoint {
    /// A client of `provider` (an Entra provider: [`Provider::cenda`],
    /// [`Provider::nxtport`], or a custom one pointing at Entra) that
    /// proves itself with the federated token of a Kubernetes workload:
    /// the client id from `AZURE_CLIENT_ID`, the assertion read from the
    /// file in `AZURE_FEDERATED_TOKEN_FILE` at every token request. Fails,
    /// naming the variable, when one is not set.
    ///
    /// ```no_run
    /// # fn example() -> Result<(), m2m::auth::ConfigError> {
    /// use m2m::auth::TokenEndpoint;
    /// use m2m::provider::Provider;
    ///
    /// let endpoint =
    ///     TokenEndpoint::workload_identity(Provider::cenda("permissions-tenant", "gateway-id"))?
    ///         .build()?;
    /// # let _ = endpoint; Ok(()) }
    /// ```
    pub fn workload_identity(provider: Provider) -> Result<TokenEndpointBuilder, ConfigError> {
        let client_id = match std::env::var(AZURE_CLIENT_ID) {
            Ok(id) if !id.trim().is_empty() => id,
            _ => {
                return Err(ConfigError::Invalid(format!(
                    "{AZURE_CLIENT_ID} is not set: the client id must be given (is the workload identity webhook enabled for this pod?)"
                )));
            }
        };
        let assertion = ClientAssertion::azure_federated_token_file()?;
        Ok(TokenEndpoint::builder(
            provider,
            client_id,
            assertion.into(),
        ))
    }
}
