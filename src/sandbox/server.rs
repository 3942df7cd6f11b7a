//! The state every handler shares and the router that ties the endpoints
//! together.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::response::Response;
use axum::routing::{get, post};

use super::demo::{self, ProviderStyle};
use super::faults::{FaultControl, Injected, Site};
use super::stats::StatsCounters;
use super::tokens::TokenIssuer;
use super::{SandboxError, api, cenda, identity, nxtsoft};
use crate::auth::clock::Clock;

/// Path of the Entra v2 token endpoint (tenant in the path).
pub(crate) const ENTRA_TOKEN_PATH: &str = "/{tenant}/oauth2/v2.0/token";
/// Path of the Cognito token endpoint.
pub(crate) const COGNITO_TOKEN_PATH: &str = "/oauth2/token";
/// Path of the IdentityServer token endpoint below its virtual path.
pub(crate) const IDENTITYSERVER_TOKEN_SUFFIX: &str = "/connect/token";
/// Where the OIDC provider lives (its issuer is `{base}{OIDC_PREFIX}`).
pub(crate) const OIDC_PREFIX: &str = "/oidc";
/// Path of the OIDC discovery document.
pub(crate) const OIDC_DISCOVERY_PATH: &str = "/oidc/.well-known/openid-configuration";
/// Path of the OIDC token endpoint.
pub(crate) const OIDC_TOKEN_PATH: &str = "/oidc/token";
/// Path of the JWKS (one key for every issuer).
pub(crate) const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Issuer path of the Cognito-style tokens.
pub(crate) const COGNITO_ISSUER_PATH: &str = "/cognito";

/// Everything the handlers share.
pub(crate) struct Shared {
    pub(crate) base_url: String,
    pub(crate) clock: Arc<dyn Clock>,
    token_lifetime: Duration,
    pub(crate) issuer: TokenIssuer,
    trusted_issuers: Vec<String>,
    pub(crate) faults: FaultControl,
    pub(crate) stats: StatsCounters,
    cenda: Mutex<cenda::Store>,
    nxtsoft: Mutex<nxtsoft::Store>,
}

impl Shared {
    pub(crate) fn new(
        base_url: String,
        clock: Arc<dyn Clock>,
        token_lifetime: Duration,
        faults: FaultControl,
    ) -> Result<Self, SandboxError> {
        let trusted_issuers = ProviderStyle::ALL
            .iter()
            .map(|style| issuer_url(&base_url, *style, demo::ENTRA_TENANT_ID))
            .collect();
        Ok(Self {
            issuer: TokenIssuer::generate()?,
            base_url,
            clock,
            token_lifetime,
            trusted_issuers,
            faults,
            stats: StatsCounters::default(),
            cenda: Mutex::default(),
            nxtsoft: Mutex::default(),
        })
    }

    /// "Now", from the injected clock.
    pub(crate) fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// The lifetime of a token issued now.
    pub(crate) fn token_lifetime(&self) -> Duration {
        self.faults.token_lifetime().unwrap_or(self.token_lifetime)
    }

    /// The issuers whose tokens the APIs accept.
    pub(crate) fn trusted_issuers(&self) -> &[String] {
        &self.trusted_issuers
    }

    pub(crate) fn cenda(&self) -> MutexGuard<'_, cenda::Store> {
        // Handlers never hold the lock across a failure point that could
        // leave the store torn: poisoning is ignored.
        self.cenda.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn nxtsoft(&self) -> MutexGuard<'_, nxtsoft::Store> {
        self.nxtsoft.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies the fault knobs to one request at `site`: waits the added
    /// latency, then returns the injected response, if any.
    pub(crate) async fn inject_faults(
        &self,
        site: Site,
        render: impl FnOnce(Injected) -> Response,
    ) -> Option<Response> {
        let (latency, injected) = self.faults.decide(site);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        injected.map(render)
    }
}

/// The issuer (`iss`) of tokens from the endpoint of `style`.
pub(crate) fn issuer_url(base_url: &str, style: ProviderStyle, tenant: &str) -> String {
    match style {
        ProviderStyle::Entra => format!("{base_url}/{tenant}/v2.0"),
        ProviderStyle::Cognito => format!("{base_url}{COGNITO_ISSUER_PATH}"),
        ProviderStyle::IdentityServer => {
            format!("{base_url}{}", demo::IDENTITYSERVER_VIRTUAL_PATH)
        }
        ProviderStyle::Oidc => format!("{base_url}{OIDC_PREFIX}"),
    }
}

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
        .merge(api::routes(api::Api::Cenda)?)
        .merge(api::routes(api::Api::Nxtsoft)?)
        .with_state(shared);
    Ok(router)
}
