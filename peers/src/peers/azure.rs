//! azure_identity's `ClientSecretCredential` with its own token cache, as
//! its documentation shows it, the authority host pointed at the sandbox.
//! azure_identity refuses an authority host that is not `https`, so the
//! credential talks to the TLS front before the sandbox, through a reqwest
//! transport (`ClientOptions::transport`) that trusts the front's
//! certificate. Its cache refreshes a token when it is within 5 minutes of
//! expiry (fixed), holding a write lock while it fetches.

use std::sync::Arc;
use std::time::Duration;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{AsyncRawResponse, ClientOptions, HttpClient, Request, Transport};
use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};
use m2m::sandbox::demo::{
    CENDA_ENTRA_SCOPE, ENTRA_CLIENT_ID, ENTRA_CLIENT_SECRET, ENTRA_TENANT_ID,
};

use super::{Kind, Peer};
use crate::env::{Env, Fetches};

/// azure_identity.
pub struct Azure;

/// The credential.
pub struct Client {
    credential: Arc<ClientSecretCredential>,
}

impl Peer for Client {
    async fn token(&self) -> bool {
        self.credential
            .get_token(&[CENDA_ENTRA_SCOPE], None)
            .await
            .is_ok()
    }
}

/// The reqwest transport, noting when each request ran.
#[derive(Debug)]
struct Timed {
    http: reqwest::Client,
    fetches: Arc<Fetches>,
}

#[async_trait::async_trait]
impl HttpClient for Timed {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        self.fetches
            .record(self.http.execute_request(request))
            .await
    }
}

impl Kind for Azure {
    const NAME: &'static str = "azure_identity 1.0.0";
    type Client = Client;
    const FIXED_REFRESH_MARGIN: Duration = Duration::from_secs(300);
    const REFRESH: &'static str =
        "refreshes in the caller within 5 min of expiry (fixed), others wait on its write lock";

    fn client(env: &Env, _short: bool) -> Client {
        let mut cloud = CustomConfiguration::default();
        cloud.authority_host = env.https_base.clone();
        let transport = Timed {
            http: env.https.clone(),
            fetches: Arc::clone(&env.fetches),
        };
        let options = ClientSecretCredentialOptions {
            client_options: ClientOptions {
                transport: Some(Transport::new(Arc::new(transport))),
                cloud: Some(Arc::new(CloudConfiguration::from(cloud))),
                ..ClientOptions::default()
            },
        };
        let credential = ClientSecretCredential::new(
            ENTRA_TENANT_ID,
            ENTRA_CLIENT_ID.to_owned(),
            Secret::new(ENTRA_CLIENT_SECRET),
            Some(options),
        )
        .expect("azure_identity takes the https authority host");
        Client { credential }
    }
}
