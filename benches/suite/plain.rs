//! B5: against the plain approach. The same workload — `POST
//! /transactions/mock` to the sandbox's NXTsoft API from 8 concurrent
//! callers — done twice:
//! - with m2m: the generated client, its token from a fresh cache;
//! - as the `oauth2` crate's documentation shows it: a `BasicClient` built
//!   once, `exchange_client_credentials().add_scope(..).request_async(..)`
//!   before every call, then the call with raw reqwest and that token.
//!
//! Both go through the same reqwest 0.13 (oauth2's own `reqwest` feature
//! would bring 0.12: here a small `AsyncHttpClient` adapter, as m2m's).
//! Twice over: with the sandbox's token endpoint at loopback speed (the
//! least the plain approach can pay), and answering in 50 ms as a remote
//! identity provider does.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use m2m::apis::nxtsoft_transactions::types;
use m2m::auth::TokenCache;
use m2m::sandbox::demo::{COGNITO_CLIENT_ID, COGNITO_CLIENT_SECRET, SCOPE_TRANSACTIONS_MOCK};
use m2m::sandbox::{DEFAULT_TOKEN_LIFETIME, ProviderStyle, Sandbox};
use oauth2::basic::BasicClient;
use oauth2::{ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};
use serde_json::{Value, json};

use super::sample::{Sample, millis, round};
use super::wiring::{self, Servers, client_runtime};
use super::{Options, Row};

/// Concurrent callers in both workloads.
const CALLERS: usize = 8;
/// The remote identity provider's answer time in the second scenario.
const REMOTE_LATENCY: Duration = Duration::from_millis(50);

/// `oauth2::AsyncHttpClient` over reqwest 0.13, redirects off (as the
/// oauth2 documentation builds its client).
struct Reqwest013(reqwest::Client);

type HttpFuture<'c> =
    Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, reqwest::Error>> + Send + 'c>>;

impl<'c> oauth2::AsyncHttpClient<'c> for Reqwest013 {
    type Error = reqwest::Error;
    type Future = HttpFuture<'c>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let response = self.0.execute(reqwest::Request::try_from(request)?).await?;
            let status = response.status();
            let headers = response.headers().clone();
            let mut answer = http::Response::new(response.bytes().await?.to_vec());
            *answer.status_mut() = status;
            *answer.headers_mut() = headers;
            Ok(answer)
        })
    }
}

/// What one workload measured.
struct Workload {
    calls: usize,
    failed: usize,
    elapsed: Duration,
    latencies: Sample,
    token_requests: u64,
}

impl Workload {
    fn calls_per_second(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }

    fn to_json(&self) -> Value {
        json!({
            "calls": self.calls,
            "failed": self.failed,
            "calls_per_second": round(self.calls_per_second(), 1),
            "p50_ms": round(millis(self.latencies.median()), 3),
            "p99_ms": round(millis(self.latencies.p99()), 3),
            "token_requests": self.token_requests,
        })
    }
}

/// Runs B5: one row, the loopback ratio as its value.
pub fn run(options: &Options, servers: &Servers) -> Row {
    let (loopback_calls, remote_plain_calls, remote_m2m_calls) = if options.quick {
        (80, 24, 80)
    } else {
        (4_000, 400, 4_000)
    };
    let runtime = client_runtime(2);
    let scenario = |latency: Duration, m2m_calls: usize, plain_calls: usize| {
        let sandbox = servers.sandbox(DEFAULT_TOKEN_LIFETIME, latency);
        let result = runtime.block_on(async {
            let m2m = m2m_workload(&sandbox, m2m_calls).await;
            sandbox.reset_stats();
            let plain = plain_workload(&sandbox, plain_calls).await;
            (m2m, plain)
        });
        servers.stop(sandbox);
        result
    };
    let (m2m, plain) = scenario(Duration::ZERO, loopback_calls, loopback_calls);
    let (remote_m2m, remote_plain) = scenario(REMOTE_LATENCY, remote_m2m_calls, remote_plain_calls);
    let ratio = m2m.calls_per_second() / plain.calls_per_second();
    let remote_ratio = remote_m2m.calls_per_second() / remote_plain.calls_per_second();
    let pass = ratio > 1.0
        && m2m.token_requests == 1
        && plain.token_requests == plain.calls as u64
        && m2m.failed + plain.failed + remote_m2m.failed + remote_plain.failed == 0;
    Row::new(
        "B5 throughput m2m / token per call",
        round(ratio, 2),
        "ratio",
        "> 1, 1 token request",
        pass,
        json!({
            "summary": format!(
                "loopback IdP: {:.0} vs {:.0} calls/s, {} vs {} token requests; {} ms IdP: {:.0}x",
                m2m.calls_per_second(), plain.calls_per_second(),
                m2m.token_requests, plain.token_requests,
                REMOTE_LATENCY.as_millis(), remote_ratio
            ),
            "callers": CALLERS,
            "loopback": { "m2m": m2m.to_json(), "oauth2_token_per_call": plain.to_json() },
            "remote_idp_latency_ms": REMOTE_LATENCY.as_millis() as u64,
            "remote_ratio": round(remote_ratio, 1),
            "remote": { "m2m": remote_m2m.to_json(), "oauth2_token_per_call": remote_plain.to_json() },
        }),
    )
}

/// `calls` calls from [`CALLERS`] concurrent callers, each call by `call`,
/// and the token requests `sandbox` saw.
async fn spread<F, Fut>(sandbox: &Sandbox, calls: usize, call: F) -> Workload
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let started = Instant::now();
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let call = call.clone();
            let mine = calls / CALLERS + usize::from(caller < calls % CALLERS);
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(mine);
                let mut failed = 0;
                for _ in 0..mine {
                    let at = Instant::now();
                    failed += usize::from(!call().await);
                    latencies.push(at.elapsed());
                }
                (latencies, failed)
            })
        })
        .collect();
    let (mut latencies, mut failed) = (Vec::with_capacity(calls), 0);
    for caller in callers {
        let (mut mine, mine_failed) = caller.await.expect("a caller ends");
        latencies.append(&mut mine);
        failed += mine_failed;
    }
    Workload {
        calls,
        failed,
        elapsed: started.elapsed(),
        latencies: Sample::new(latencies),
        token_requests: sandbox.stats().token_requests_for(ProviderStyle::Cognito),
    }
}

async fn m2m_workload(sandbox: &Sandbox, calls: usize) -> Workload {
    let cache = TokenCache::in_memory();
    let client = wiring::nxtsoft_client(sandbox, wiring::auth(wiring::endpoint(sandbox), &cache));
    spread(sandbox, calls, move || {
        let client = Arc::clone(&client);
        async move { wiring::validate(&client).await }
    })
    .await
}

/// What the plain approach keeps between calls: the oauth2 client, the
/// HTTP client, the API URL and the body.
struct Plain {
    oauth: BasicClient<
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointSet,
    >,
    http: Reqwest013,
    url: String,
    body: types::TransactionRequest,
}

impl Plain {
    /// A token request, then the call with that token.
    async fn call(&self) -> bool {
        let token = self
            .oauth
            .exchange_client_credentials()
            .add_scope(Scope::new(SCOPE_TRANSACTIONS_MOCK.to_owned()))
            .request_async(&self.http)
            .await;
        let Ok(token) = token else { return false };
        self.http
            .0
            .post(&self.url)
            .bearer_auth(token.access_token().secret())
            .json(&self.body)
            .send()
            .await
            .is_ok_and(|response| response.status().is_success())
    }
}

async fn plain_workload(sandbox: &Sandbox, calls: usize) -> Workload {
    let oauth = BasicClient::new(ClientId::new(COGNITO_CLIENT_ID.to_owned()))
        .set_client_secret(ClientSecret::new(COGNITO_CLIENT_SECRET.to_owned()))
        .set_token_uri(
            TokenUrl::new(sandbox.token_url(ProviderStyle::Cognito)).expect("a token URL"),
        );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client");
    let plain = Arc::new(Plain {
        oauth,
        http: Reqwest013(http),
        url: format!("{}/transactions/mock", sandbox.nxtsoft_api_url()),
        body: m2m::sandbox::demo::accepted_transaction()
            .try_into()
            .expect("the transaction is valid"),
    });
    spread(sandbox, calls, move || {
        let plain = Arc::clone(&plain);
        async move { plain.call().await }
    })
    .await
}
