//! huskarl's cached client credentials, as its caching guide wires them: a
//! `ClientCredentialsGrant` (token endpoint set directly, `ClientSecret`
//! sent in the form body, huskarl-reqwest's `ReqwestClient`) in a
//! `GrantTokenSource`, in an `InMemoryTokenCache` with its default timing:
//! near expiry one elected caller refreshes (and waits) while the others
//! are served the still-valid token.

use std::sync::Arc;

use huskarl::cache::{
    GrantTokenSource, InMemoryRefreshTokenStore, InMemoryTokenCache, TokenSource,
};
use huskarl::core::Error;
use huskarl::core::client_auth::ClientSecret;
use huskarl::core::http::{HttpClient, HttpResponse, Idempotency};
use huskarl::core::platform::MaybeSendBoxFuture;
use huskarl::core::secrets::{ProvidedSecret, SecretString};
use huskarl::grant::client_credentials::{
    ClientCredentialsGrant, ClientCredentialsGrantParameters,
};
use huskarl_reqwest::ReqwestClient;
use m2m::sandbox::demo::{CENDA_ENTRA_SCOPE, ENTRA_CLIENT_ID, ENTRA_CLIENT_SECRET};

use super::{Kind, Peer};
use crate::env::{Env, Fetches};

/// huskarl.
pub struct Huskarl;

type Source = GrantTokenSource<ClientCredentialsGrant, InMemoryRefreshTokenStore>;

/// The cache.
pub struct Client {
    cache: InMemoryTokenCache<Source>,
}

impl Peer for Client {
    async fn token(&self) -> bool {
        self.cache.token().await.is_ok()
    }
}

/// huskarl-reqwest's client, noting when each request ran.
struct Timed {
    http: ReqwestClient,
    fetches: Arc<Fetches>,
}

impl HttpClient for Timed {
    fn execute(
        &self,
        request: http::Request<bytes::Bytes>,
        idempotency: Idempotency,
    ) -> MaybeSendBoxFuture<'_, Result<HttpResponse, Error>> {
        Box::pin(self.fetches.record(self.http.execute(request, idempotency)))
    }
}

impl Kind for Huskarl {
    const NAME: &'static str = "huskarl 0.11.10";
    type Client = Client;
    const REFRESH: &'static str =
        "refresh-ahead in the caller: one elected caller waits, the others get the current token";

    fn client(env: &Env, _short: bool) -> Client {
        let http = Timed {
            http: ReqwestClient::from(env.http.clone()),
            fetches: Arc::clone(&env.fetches),
        };
        let grant = ClientCredentialsGrant::builder()
            .token_endpoint(env.token_url().parse().expect("a token URL"))
            .client_id(ENTRA_CLIENT_ID)
            .http_client(http)
            .client_auth(ClientSecret::new(ProvidedSecret::new(SecretString::new(
                ENTRA_CLIENT_SECRET,
            ))))
            .build();
        let source = GrantTokenSource::builder()
            .grant(grant)
            .grant_parameters(
                ClientCredentialsGrantParameters::builder()
                    .scope(vec![CENDA_ENTRA_SCOPE.to_owned()])
                    .build(),
            )
            .refresh_store(InMemoryRefreshTokenStore::default())
            .build();
        Client {
            cache: InMemoryTokenCache::builder().source(source).build(),
        }
    }
}
