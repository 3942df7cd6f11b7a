//! A wiremock token endpoint that numbers its tokens (`<prefix>1`,
//! `<prefix>2`, …) and counts what it is asked, and a fetcher that posts to
//! it: the token side of the fleet tests (tests/fleet.rs,
//! tests/fleet_cluster.rs).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use m2m::auth::{AccessToken, AuthError, BoxFuture, FetchToken};
use secrecy::SecretString;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

struct NumberedTokens {
    prefix: &'static str,
    issued: AtomicUsize,
    delay: Duration,
}

impl Respond for NumberedTokens {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200)
            .set_body_json(serde_json::json!({
                "access_token": format!("{}{n}", self.prefix),
                "token_type": "Bearer",
                "expires_in": 3600,
            }))
            .set_delay(self.delay)
    }
}

/// A token endpoint at `/oauth2/token` answering after `delay` with
/// `<prefix><n>`, n counting from 1.
pub async fn token_server(prefix: &'static str, delay: Duration) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(NumberedTokens {
            prefix,
            issued: AtomicUsize::new(0),
            delay,
        })
        .mount(&server)
        .await;
    server
}

/// How many token requests `server` received.
pub async fn token_requests(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

/// Posts to the token endpoint (a real HTTP request per fetch).
pub struct HttpFetcher {
    client: reqwest::Client,
    url: String,
}

impl HttpFetcher {
    pub fn new(url: String) -> Arc<Self> {
        Arc::new(Self {
            client: reqwest::Client::new(),
            url,
        })
    }
}

impl FetchToken for HttpFetcher {
    fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>> {
        Box::pin(async move {
            let body: serde_json::Value = self
                .client
                .post(&self.url)
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .expect("the test token endpoint answers")
                .json()
                .await
                .expect("the test token endpoint answers JSON");
            let lives = Duration::from_secs(body["expires_in"].as_u64().unwrap());
            let value = body["access_token"].as_str().unwrap().to_owned();
            AccessToken::new(
                SecretString::from(value),
                body["token_type"].as_str().unwrap(),
                SystemTime::now() + lives,
                None,
            )
        })
    }
}
