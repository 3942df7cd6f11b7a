//! The thin adapter to the `oauth2` crate: oauth2 builds the
//! client-credentials request and reads the answer; it sends through
//! [`TokenHttpClient`], and the answer is kept so that errors can quote its
//! status, `Retry-After` and body.

use std::sync::Mutex;

use http::HeaderValue;
use http::header::{AUTHORIZATION, CONTENT_LENGTH};
use oauth2::basic::{BasicRevocationErrorResponse, BasicTokenIntrospectionResponse};
use oauth2::{ClientId, EndpointNotSet, EndpointSet, Scope, StandardRevocableToken, TokenUrl};
use url::Url;

use super::credentials::RequestAuth;
use super::dpop::DPOP_HEADER;
use super::error::{TransportError, TransportErrorKind};
use super::http_client::{RecordedResponse, TokenHttpClient};
use super::response::{ErrorResponseBody, ExchangeResult, TokenResponseBody};
use crate::future::BoxFuture;

/// The oauth2 client of one token request: only its token URL is set.
pub(crate) type OAuthClient = oauth2::Client<
    ErrorResponseBody,
    TokenResponseBody,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// The oauth2 client for `client_id` at `token_url`, authenticating as
/// `auth` says.
pub(crate) fn oauth_client(client_id: &str, token_url: &Url, auth: &RequestAuth) -> OAuthClient {
    let client = oauth2::Client::new(ClientId::new(client_id.to_owned()))
        .set_auth_type(auth.auth_type.clone())
        .set_token_uri(TokenUrl::from_url(token_url.clone()));
    match auth.client_secret.clone() {
        Some(secret) => client.set_client_secret(secret),
        None => client,
    }
}

/// One client-credentials request for `scopes` (and an RFC 8707
/// `resource`), with a DPoP proof when one is given: what oauth2 made of it,
/// and the answer received, if one was.
pub(crate) async fn exchange(
    http: &TokenHttpClient,
    client_id: &str,
    token_url: &Url,
    auth: &RequestAuth,
    scopes: &[String],
    resource: Option<&str>,
    dpop_proof: Option<HeaderValue>,
) -> (ExchangeResult, Option<RecordedResponse>) {
    let client = oauth_client(client_id, token_url, auth);
    let mut request = client
        .exchange_client_credentials()
        .add_scopes(scopes.iter().map(|s| Scope::new(s.clone())));
    for (name, value) in &auth.extra_params {
        request = request.add_extra_param(*name, value.as_str());
    }
    if let Some(resource) = resource {
        request = request.add_extra_param("resource", resource);
    }
    let mut adapter = RecordingClient::new(http, auth.authorization.clone());
    adapter.dpop_proof = dpop_proof;
    let result = request.request_async(&adapter).await;
    (result, adapter.take())
}

impl RecordedResponse {
    /// The answer as oauth2 reads it (without `Content-Length`: the body is
    /// whole).
    pub(crate) fn to_oauth_response(&self) -> Result<oauth2::HttpResponse, TransportError> {
        let mut response = http::Response::builder().status(self.status);
        for (name, value) in &self.headers {
            if name != CONTENT_LENGTH {
                response = response.header(name, value);
            }
        }
        response
            .body(self.body.to_vec())
            .map_err(|e| TransportError {
                kind: TransportErrorKind::Other,
                url: String::new(),
                status: Some(self.status),
                detail: e.to_string(),
            })
    }
}

/// The `oauth2::AsyncHttpClient` handed to one oauth2 request: sends through
/// [`TokenHttpClient`], optionally replaces the `Authorization` value oauth2
/// built (unencoded Basic), and keeps the answer for error reporting.
struct RecordingClient<'a> {
    http: &'a TokenHttpClient,
    authorization: Option<HeaderValue>,
    dpop_proof: Option<HeaderValue>,
    recorded: Mutex<Option<RecordedResponse>>,
}

impl<'a> RecordingClient<'a> {
    fn new(http: &'a TokenHttpClient, authorization: Option<HeaderValue>) -> Self {
        Self {
            http,
            authorization,
            dpop_proof: None,
            recorded: Mutex::new(None),
        }
    }

    /// The answer received, if one was.
    fn take(&self) -> Option<RecordedResponse> {
        self.recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

impl<'c> oauth2::AsyncHttpClient<'c> for RecordingClient<'_> {
    type Error = TransportError;
    type Future = BoxFuture<'c, Result<oauth2::HttpResponse, TransportError>>;

    fn call(&'c self, mut request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            if let Some(value) = &self.authorization {
                request.headers_mut().insert(AUTHORIZATION, value.clone());
            }
            if let Some(value) = request.headers_mut().get_mut(AUTHORIZATION) {
                value.set_sensitive(true);
            }
            if let Some(proof) = &self.dpop_proof {
                request.headers_mut().insert(DPOP_HEADER, proof.clone());
            }
            let recorded = self.http.send(request).await?;
            let response = recorded.to_oauth_response()?;
            *self.recorded.lock().unwrap_or_else(|e| e.into_inner()) = Some(recorded);
            Ok(response)
        })
    }
}
