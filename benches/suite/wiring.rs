//! What every benchmark is built from: the servers on a runtime of their
//! own (so a server's work never runs on the measuring threads' runtime),
//! client runtimes, and the sandbox's NXTsoft demo client wired the way a
//! user wires it (`TokenEndpoint` → `TokenCache` → `Auth` → generated client).

use std::sync::Arc;
use std::time::Duration;

use m2m::apis::nxtsoft_transactions as nxtsoft;
use m2m::auth::{Auth, ClientCredential, TokenCache, TokenEndpoint, TokenEndpointBuilder};
use m2m::provider::Provider;
use m2m::sandbox::demo::{self, COGNITO_CLIENT_ID, COGNITO_CLIENT_SECRET};
use m2m::sandbox::{Faults, ProviderStyle, Sandbox};
use tokio::runtime::Runtime;
use url::Url;

/// The servers' runtime (one worker thread) and the floor API server.
pub struct Servers {
    runtime: Runtime,
    /// Base URL of the minimal API server (`/api/Organisation/{id}`).
    pub floor_url: String,
}

impl Servers {
    /// Starts the servers' runtime and the floor server on it.
    pub fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("bench-server")
            .enable_all()
            .build()
            .expect("the servers' runtime starts");
        let floor_url = runtime.block_on(super::floor::start());
        Self { runtime, floor_url }
    }

    /// A sandbox on the servers' runtime issuing tokens valid `lifetime`,
    /// with a delay of `token_latency` on every token response (a remote
    /// identity provider; zero for loopback speed).
    pub fn sandbox(&self, lifetime: Duration, token_latency: Duration) -> Sandbox {
        self.runtime.block_on(async {
            Sandbox::builder()
                .token_lifetime(lifetime)
                .seed(7)
                .faults(Faults {
                    latency: token_latency,
                    ..Faults::default()
                })
                .start()
                .await
                .expect("the sandbox starts on loopback")
        })
    }

    /// Stops `sandbox` on the runtime it runs on.
    pub fn stop(&self, sandbox: Sandbox) {
        let _ = self.runtime.block_on(sandbox.shutdown());
    }
}

/// A runtime for the measuring side: `threads` workers (0: current thread).
pub fn client_runtime(threads: usize) -> Runtime {
    let mut builder = if threads == 0 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    builder
        .enable_all()
        .build()
        .expect("a client runtime starts")
}

/// The NXTsoft demo client's token endpoint on `sandbox` (Cognito dialect,
/// secret in the form body, scope `transactions/mock` and the others the
/// provider asks by default).
pub fn endpoint(sandbox: &Sandbox) -> TokenEndpoint {
    endpoint_at(&sandbox.token_url(ProviderStyle::Cognito))
}

/// The NXTsoft demo client's token endpoint at `token_url`.
pub fn endpoint_at(token_url: &str) -> TokenEndpoint {
    builder_at(token_url)
        .build()
        .expect("the sandbox endpoint is valid")
}

fn builder_at(token_url: &str) -> TokenEndpointBuilder {
    let url = Url::parse(token_url).expect("a token URL");
    TokenEndpoint::builder(
        Provider::nxtsoft().with_token_url(url),
        COGNITO_CLIENT_ID,
        ClientCredential::secret(COGNITO_CLIENT_SECRET),
    )
}

/// An `Auth` handle over `endpoint`, its tokens in `cache`.
pub fn auth(endpoint: TokenEndpoint, cache: &TokenCache) -> Auth {
    Auth::new(endpoint, cache)
}

/// The generated NXTsoft client at the sandbox's API over `auth`.
pub fn nxtsoft_client(sandbox: &Sandbox, auth: Auth) -> Arc<nxtsoft::Client> {
    Arc::new(nxtsoft::Client::new_with_client(
        &sandbox.nxtsoft_api_url(),
        reqwest::Client::new(),
        auth,
    ))
}

/// One generated call, `POST /transactions/mock`: whether it succeeded.
pub async fn validate(client: &nxtsoft::Client) -> bool {
    client
        .post_validation_message()
        .body(demo::accepted_transaction())
        .send()
        .await
        .is_ok()
}
