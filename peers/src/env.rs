//! What every peer is measured against: the m2m sandbox (its Entra-style
//! token endpoint) and the TLS front, on a runtime of their own, the HTTP
//! clients the peers are given, and the record of when token fetches ran.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use m2m::sandbox::demo::ENTRA_TENANT_ID;
use m2m::sandbox::{Faults, ProviderStyle, Sandbox};
use tokio::runtime::Runtime;

use crate::tls_front;

/// When each token fetch ran (from the peer's HTTP client or fetcher).
#[derive(Debug, Default)]
pub struct Fetches {
    windows: Mutex<Vec<(Instant, Instant)>>,
}

impl Fetches {
    /// Times `fetch` and records its window.
    pub async fn record<T>(&self, fetch: impl Future<Output = T>) -> T {
        let start = Instant::now();
        let result = fetch.await;
        self.lock().push((start, Instant::now()));
        result
    }

    /// The windows so far, and forgets them.
    pub fn take(&self) -> Vec<(Instant, Instant)> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(Instant, Instant)>> {
        self.windows.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The servers and what the peers share.
pub struct Env {
    servers: Runtime,
    /// The sandbox (plain HTTP on loopback).
    pub sandbox: Sandbox,
    /// `https://127.0.0.1:{port}`: the TLS front before the sandbox.
    pub https_base: String,
    /// A reqwest 0.13 client for plain HTTP.
    pub http: reqwest::Client,
    /// A reqwest 0.13 client that trusts only the TLS front's certificate.
    pub https: reqwest::Client,
    /// Token fetches of the peer being measured.
    pub fetches: Arc<Fetches>,
}

impl Env {
    /// Starts the sandbox and the TLS front on a one-thread runtime.
    pub fn start() -> Self {
        let servers = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("peers-server")
            .enable_all()
            .build()
            .expect("the servers' runtime starts");
        let (sandbox, front) = servers.block_on(async {
            let sandbox = Sandbox::builder()
                .seed(7)
                .faults(Faults::default())
                .start()
                .await
                .expect("the sandbox starts on loopback");
            let front = tls_front::start(sandbox.address()).await;
            (sandbox, front)
        });
        let certificate =
            reqwest::Certificate::from_der(&front.certificate).expect("a DER certificate");
        let https = reqwest::Client::builder()
            .tls_certs_only([certificate])
            .build()
            .expect("a reqwest client trusting the front");
        Self {
            servers,
            sandbox,
            https_base: front.base_url,
            http: reqwest::Client::new(),
            https,
            fetches: Arc::default(),
        }
    }

    /// The Entra-style token endpoint over plain HTTP.
    pub fn token_url(&self) -> String {
        self.sandbox.entra_token_url(ENTRA_TENANT_ID)
    }

    /// Token requests the sandbox has counted since the last reset.
    pub fn token_requests(&self) -> u64 {
        self.sandbox
            .stats()
            .token_requests_for(ProviderStyle::Entra)
    }

    /// Sets the counters back to zero and forgets the fetch windows.
    pub fn reset(&self) {
        self.sandbox.reset_stats();
        self.fetches.take();
    }

    /// Token endpoint latency and token lifetime from now on.
    pub fn set(&self, latency: Duration, lifetime: Duration) {
        let faults = self.sandbox.faults();
        faults.set_latency(latency);
        faults.set_token_lifetime(Some(lifetime));
    }

    /// Stops the servers.
    pub fn stop(self) {
        let Self {
            servers, sandbox, ..
        } = self;
        let _ = servers.block_on(sandbox.shutdown());
        servers.shutdown_timeout(Duration::from_secs(1));
    }
}
