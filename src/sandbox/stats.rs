//! Request counters, for tests and benchmarks to assert on.

use std::sync::atomic::{AtomicU64, Ordering};

use super::demo::ProviderStyle;

/// How many requests the sandbox has answered, by endpoint.
///
/// Every request that reached an endpoint counts, whether it succeeded, was
/// refused or was answered by an injected fault.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SandboxStats {
    /// Requests to the Entra token endpoint.
    pub entra_token_requests: u64,
    /// Requests to the Cognito token endpoint.
    pub cognito_token_requests: u64,
    /// Requests to the IdentityServer token endpoint.
    pub identityserver_token_requests: u64,
    /// Requests to the OIDC token endpoint.
    pub oidc_token_requests: u64,
    /// Tokens issued (successful token responses), all endpoints together.
    pub tokens_issued: u64,
    /// Requests for the OIDC discovery document.
    pub discovery_requests: u64,
    /// Requests for the JWKS.
    pub jwks_requests: u64,
    /// Requests to the Cenda Configuration API routes.
    pub cenda_api_requests: u64,
    /// Requests to the NXTsoft API routes.
    pub nxtsoft_api_requests: u64,
    /// Responses that were an injected fault.
    pub faults_injected: u64,
}

impl SandboxStats {
    /// Requests to the token endpoint of `style`.
    pub fn token_requests_for(&self, style: ProviderStyle) -> u64 {
        match style {
            ProviderStyle::Entra => self.entra_token_requests,
            ProviderStyle::Cognito => self.cognito_token_requests,
            ProviderStyle::IdentityServer => self.identityserver_token_requests,
            ProviderStyle::Oidc => self.oidc_token_requests,
        }
    }

    /// Requests to all token endpoints together.
    pub fn token_requests(&self) -> u64 {
        ProviderStyle::ALL
            .iter()
            .map(|style| self.token_requests_for(*style))
            .sum()
    }

    /// Requests to both APIs together.
    pub fn api_requests(&self) -> u64 {
        self.cenda_api_requests + self.nxtsoft_api_requests
    }
}

/// Which counter a request moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counter {
    TokenRequest(ProviderStyle),
    TokenIssued,
    Discovery,
    Jwks,
    CendaApi,
    NxtsoftApi,
}

/// The live counters behind [`SandboxStats`].
#[derive(Debug, Default)]
pub(crate) struct StatsCounters {
    entra: AtomicU64,
    cognito: AtomicU64,
    identityserver: AtomicU64,
    oidc: AtomicU64,
    issued: AtomicU64,
    discovery: AtomicU64,
    jwks: AtomicU64,
    cenda: AtomicU64,
    nxtsoft: AtomicU64,
}

impl StatsCounters {
    pub(crate) fn count(&self, counter: Counter) {
        self.cell(counter).fetch_add(1, Ordering::Relaxed);
    }

    fn cell(&self, counter: Counter) -> &AtomicU64 {
        match counter {
            Counter::TokenRequest(ProviderStyle::Entra) => &self.entra,
            Counter::TokenRequest(ProviderStyle::Cognito) => &self.cognito,
            Counter::TokenRequest(ProviderStyle::IdentityServer) => &self.identityserver,
            Counter::TokenRequest(ProviderStyle::Oidc) => &self.oidc,
            Counter::TokenIssued => &self.issued,
            Counter::Discovery => &self.discovery,
            Counter::Jwks => &self.jwks,
            Counter::CendaApi => &self.cenda,
            Counter::NxtsoftApi => &self.nxtsoft,
        }
    }

    pub(crate) fn snapshot(&self, faults_injected: u64) -> SandboxStats {
        let read = |cell: &AtomicU64| cell.load(Ordering::Relaxed);
        SandboxStats {
            entra_token_requests: read(&self.entra),
            cognito_token_requests: read(&self.cognito),
            identityserver_token_requests: read(&self.identityserver),
            oidc_token_requests: read(&self.oidc),
            tokens_issued: read(&self.issued),
            discovery_requests: read(&self.discovery),
            jwks_requests: read(&self.jwks),
            cenda_api_requests: read(&self.cenda),
            nxtsoft_api_requests: read(&self.nxtsoft),
            faults_injected,
        }
    }

    pub(crate) fn reset(&self) {
        for cell in [
            &self.entra,
            &self.cognito,
            &self.identityserver,
            &self.oidc,
            &self.issued,
            &self.discovery,
            &self.jwks,
            &self.cenda,
            &self.nxtsoft,
        ] {
            cell.store(0, Ordering::Relaxed);
        }
    }
}
