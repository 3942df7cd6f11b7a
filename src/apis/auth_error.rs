//! The typed error behind a failed call of a generated client.

use crate::auth::{AuthError, RecentFailures};

/// The typed [`AuthError`] behind a generated-client call that failed
/// because no token could be had or sent, or that m2m stopped (a time or
/// size limit of the handle's [`ApiSettings`](crate::auth::ApiSettings)):
/// the HTTP status and OAuth error code of the token endpoint, Entra's
/// `AADSTS` codes, and what to check. `None` for any other error (the API
/// answered, the network failed, …).
///
/// Needs only the error the call returned, not the client: such a call
/// fails with `progenitor_client::Error::Custom`, whose text carries a
/// reference to the process-wide list of the last
/// [`RecentFailures::CAPACITY`] distinct failures.
///
/// ```no_run
/// # async fn example(cenda: m2m::apis::cenda_configuration::Client) {
/// match cenda.list_organisations().send().await {
///     Ok(organisations) => println!("{:?}", organisations.into_inner()),
///     Err(error) => match m2m::auth_error(&error) {
///         Some(auth) => eprintln!("no token: {auth} (status {:?})", auth.status()),
///         None => eprintln!("the call failed: {error}"),
///     },
/// }
/// # }
/// ```
pub fn auth_error<E>(error: &progenitor_client::Error<E>) -> Option<AuthError> {
    match error {
        progenitor_client::Error::Custom(message) => RecentFailures::global().find(message),
        _ => None,
    }
}
