//! The router that ties every sandbox endpoint together.

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use super::api_routes::{self, Api};
use super::demo;
use super::endpoints::{
    COGNITO_TOKEN_PATH, ENTRA_TOKEN_PATH, IDENTITYSERVER_TOKEN_SUFFIX, JWKS_PATH,
    OIDC_DISCOVERY_PATH, OIDC_TOKEN_PATH,
};
use super::error::SandboxError;
use super::identity;
use super::shared::Shared;

/// Every route of the sandbox.
pub(crate) fn router(shared: Arc<Shared>) -> Result<Router, SandboxError> {
    let identityserver_token_path = format!(
        "{}{IDENTITYSERVER_TOKEN_SUFFIX}",
        demo::IDENTITYSERVER_VIRTUAL_PATH
    );
    let router = Router::new()
        .route(ENTRA_TOKEN_PATH, post(identity::entra_token))
        .route(COGNITO_TOKEN_PATH, post(identity::cognito_token))
        .route(
            &identityserver_token_path,
            post(identity::identityserver_token),
        )
        .route(OIDC_DISCOVERY_PATH, get(identity::oidc_discovery))
        .route(OIDC_TOKEN_PATH, post(identity::oidc_token))
        .route(JWKS_PATH, get(identity::jwks))
        .merge(api_routes::routes(Api::Cenda)?)
        .merge(api_routes::routes(Api::Nxtsoft)?)
        .with_state(shared);
    Ok(router)
}
