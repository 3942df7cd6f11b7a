//! oauth2-rs 5 used per call, as its documentation shows the client
//! credentials grant: a `BasicClient` with the token URL, its `reqwest`
//! client (reqwest 0.12, redirects off), one token request per call. It
//! has no cache.

use std::sync::Arc;

use m2m::sandbox::demo::{CENDA_ENTRA_SCOPE, ENTRA_CLIENT_ID, ENTRA_CLIENT_SECRET};
use oauth2::basic::BasicClient;
use oauth2::{AuthType, ClientId, ClientSecret, EndpointNotSet, EndpointSet, Scope, TokenUrl};

use super::{Kind, Peer};
use crate::env::{Env, Fetches};

/// oauth2-rs.
pub struct Oauth2;

type Configured =
    BasicClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// The configured client and its HTTP client.
pub struct Client {
    oauth: Configured,
    http: oauth2::reqwest::Client,
    fetches: Arc<Fetches>,
}

impl Peer for Client {
    async fn token(&self) -> bool {
        self.fetches
            .record(
                self.oauth
                    .exchange_client_credentials()
                    .add_scope(Scope::new(CENDA_ENTRA_SCOPE.to_owned()))
                    .request_async(&self.http),
            )
            .await
            .is_ok()
    }
}

impl Kind for Oauth2 {
    const NAME: &'static str = "oauth2 5.0.0, per call";
    const CACHES: bool = false;
    type Client = Client;
    const REFRESH: &'static str = "no cache: every call is a token request";

    fn client(env: &Env, _short: bool) -> Client {
        let oauth = BasicClient::new(ClientId::new(ENTRA_CLIENT_ID.to_owned()))
            .set_client_secret(ClientSecret::new(ENTRA_CLIENT_SECRET.to_owned()))
            .set_auth_type(AuthType::RequestBody)
            .set_token_uri(TokenUrl::new(env.token_url()).expect("a token URL"));
        let http = oauth2::reqwest::ClientBuilder::new()
            .redirect(oauth2::reqwest::redirect::Policy::none())
            .build()
            .expect("a reqwest 0.12 client");
        Client {
            oauth,
            http,
            fetches: Arc::clone(&env.fetches),
        }
    }
}
