//! The state every handler shares: the base URLs, the clock, the token
//! issuer, the DPoP proof checker, the PKI of mutual TLS, the fault knobs,
//! the counters and the APIs' in-memory stores.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::response::Response;

use super::demo::{self, ProviderStyle};
use super::dpop_proof::ProofChecker;
use super::endpoints::issuer_url;
use super::error::SandboxError;
use super::faults::{FaultControl, Injected, Site};
use super::mutual_tls::{Connection, Pki};
use super::stats::StatsCounters;
use super::tokens::TokenIssuer;
use super::{cenda, nxtsoft};
use crate::auth::clock::Clock;

/// Everything the handlers share.
pub(crate) struct Shared {
    /// `http://127.0.0.1:{port}`.
    pub(crate) base_url: String,
    /// `https://127.0.0.1:{port}`: the same routes, with mutual TLS.
    pub(crate) mtls_base_url: String,
    pub(crate) pki: Pki,
    pub(crate) clock: Arc<dyn Clock>,
    token_lifetime: Duration,
    pub(crate) issuer: TokenIssuer,
    /// The DPoP nonce and the proofs seen.
    pub(crate) dpop: ProofChecker,
    trusted_issuers: Vec<String>,
    pub(crate) faults: FaultControl,
    pub(crate) stats: StatsCounters,
    cenda: Mutex<cenda::Store>,
    nxtsoft: Mutex<nxtsoft::Store>,
}

impl Shared {
    pub(crate) fn new(
        base_url: String,
        mtls_base_url: String,
        pki: Pki,
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
            dpop: ProofChecker::new(),
            base_url,
            mtls_base_url,
            pki,
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

    /// The base URL a request on `connection` was sent to.
    pub(crate) fn base_url_of(&self, connection: &Connection) -> &str {
        if connection.tls {
            &self.mtls_base_url
        } else {
            &self.base_url
        }
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
