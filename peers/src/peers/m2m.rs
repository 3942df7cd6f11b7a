//! m2m: `Auth` over a shared `TokenCache`, the endpoint as a `TokenEndpoint`
//! (Cenda's Entra provider with its token URL overridden), default cache
//! settings: refresh in the background before expiry.

use std::sync::Arc;

use m2m::auth::{
    AccessToken, Auth, AuthError, BoxFuture, CacheKey, ClientCredential, FetchToken, HttpSettings,
    TokenCache, TokenEndpoint, TokenHttpClient,
};
use m2m::provider::Provider;
use m2m::sandbox::demo::{
    CENDA_ENTRA_SCOPE, CENDA_GATEWAY_CLIENT_ID, ENTRA_CLIENT_ID, ENTRA_CLIENT_SECRET,
    ENTRA_TENANT_ID,
};

use super::{Kind, Peer};
use crate::env::{Env, Fetches};

/// m2m.
pub struct M2m;

/// An `Auth` handle.
pub struct Client {
    auth: Auth,
}

impl Peer for Client {
    async fn token(&self) -> bool {
        self.auth.token().await.is_ok()
    }
}

/// The endpoint, noting when each fetch ran.
struct Timed {
    endpoint: TokenEndpoint,
    fetches: Arc<Fetches>,
}

impl FetchToken for Timed {
    fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>> {
        Box::pin(self.fetches.record(self.endpoint.request_token()))
    }
}

/// The Entra demo client's endpoint; `http`: a shared HTTP client (the
/// builder's default is one of its own).
fn endpoint(env: &Env, http: Option<&TokenHttpClient>) -> TokenEndpoint {
    let url = url::Url::parse(&env.token_url()).expect("a token URL");
    let mut builder = TokenEndpoint::builder(
        Provider::cenda(ENTRA_TENANT_ID, CENDA_GATEWAY_CLIENT_ID).with_token_url(url),
        ENTRA_CLIENT_ID,
        ClientCredential::secret(ENTRA_CLIENT_SECRET),
    );
    if let Some(http) = http {
        builder = builder.http_client(http.clone());
    }
    builder.build().expect("the sandbox endpoint is valid")
}

fn client_in(endpoint: TokenEndpoint, env: &Env, cache: &TokenCache, key: CacheKey) -> Client {
    let fetcher = Timed {
        endpoint,
        fetches: Arc::clone(&env.fetches),
    };
    Client {
        auth: Auth::from_source(cache.source(key, Arc::new(fetcher))),
    }
}

impl Kind for M2m {
    const NAME: &'static str = "m2m";
    type Client = Client;
    const REFRESH: &'static str = "background refresh before expiry";

    fn client(env: &Env, _short: bool) -> Client {
        let endpoint = endpoint(env, None);
        let key = CacheKey::for_endpoint(endpoint.identity());
        client_in(endpoint, env, &TokenCache::in_memory(), key)
    }

    fn clients(env: &Env, n: usize) -> Vec<Client> {
        // One cache and one HTTP client, as the other peers share theirs;
        // a key per client.
        let cache = TokenCache::in_memory();
        let http = TokenHttpClient::new(&HttpSettings::default()).expect("an HTTP client");
        let url = env.token_url();
        (0..n)
            .map(|i| {
                let key = CacheKey::new(
                    "Cenda",
                    &url,
                    &format!("client-{i:08}"),
                    [CENDA_ENTRA_SCOPE],
                    None,
                );
                client_in(endpoint(env, Some(&http)), env, &cache, key)
            })
            .collect()
    }
}
