//! [`AuthMiddleware`]: the [`Auth`] handle as a `reqwest-middleware`
//! layer, for hand-written reqwest code (feature `middleware`).

use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};

use super::handle::Auth;
use super::renewal::Resend;
use crate::oauth::error::AuthError;

/// Adds the `Authorization` header (marked sensitive) to every request, and
/// when the server answers 401 `Bearer error="invalid_token"`, renews the
/// token (invalidate-if-same) and sends a copy of the request once more —
/// the same behaviour as the generated clients. A request whose body is a
/// stream cannot be copied and is not sent again. When the server keeps
/// rejecting the renewed tokens too, the request fails instead of renewing
/// again (`AuthError::ApiCall`, `TokensRejected`).
///
/// The rules of the handle's [`ApiSettings`](super::ApiSettings) apply:
/// no token over plain http to a host that is not loopback (unless
/// `allow_http`); a whole call within its timeout (or the request's own when
/// shorter); the answer read here, whole, up to `max_response_bytes` (none
/// when its `Content-Length` says more). Redirects are the inner client's:
/// build it with [`ApiSettings::http_client`](super::ApiSettings::http_client)
/// so that none is followed to another origin.
///
/// A token that cannot be had or sent, or a limit hit, fails the request
/// with [`reqwest_middleware::Error::Middleware`], which holds the typed
/// [`AuthError`]; [`AuthMiddleware::auth_error`] gets it back.
///
/// ```no_run
/// # async fn example(auth: m2m::auth::Auth) -> Result<(), reqwest_middleware::Error> {
/// use m2m::auth::AuthMiddleware;
///
/// let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(AuthMiddleware::new(auth))
///     .build();
/// let response = http.get("https://api.example.com/things").send().await;
/// if let Err(error) = &response {
///     if let Some(auth_error) = AuthMiddleware::auth_error(error) {
///         eprintln!("no token: {auth_error}");
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AuthMiddleware {
    auth: Auth,
}

impl AuthMiddleware {
    /// A layer that takes its tokens from `auth`.
    pub fn new(auth: Auth) -> Self {
        Self { auth }
    }

    /// The typed error behind a request that failed because no token could
    /// be had; `None` for any other error.
    pub fn auth_error(error: &reqwest_middleware::Error) -> Option<&AuthError> {
        match error {
            reqwest_middleware::Error::Middleware(error) => error.downcast_ref(),
            reqwest_middleware::Error::Reqwest(_) => None,
        }
    }
}

#[async_trait::async_trait]
impl Middleware for AuthMiddleware {
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        self.auth
            .authorize(&mut request)
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        let settings = self.auth.api_settings();
        let ours = settings.limit_time(&mut request);
        let on_time = |result: reqwest_middleware::Result<Response>| {
            // The request's own shorter timeout is the caller's business.
            result.map_err(|error| match &error {
                reqwest_middleware::Error::Reqwest(inner) if ours => {
                    match settings.timed_out(inner) {
                        Some(timed_out) => reqwest_middleware::Error::middleware(timed_out),
                        None => error,
                    }
                }
                _ => error,
            })
        };
        let retry = request.try_clone();
        let nonce_retry = self.auth.nonce_retry_copy(&request);
        let sent = self.auth.sending(&request);
        let response = on_time(next.clone().run(request, extensions).await)?;
        let response = match self.auth.nonce_retry(&response, nonce_retry) {
            Some(again) => {
                let response = on_time(next.clone().run(again, extensions).await)?;
                self.auth.note_nonce(&response);
                response
            }
            None => response,
        };
        let call = response.url().path();
        let response = match self.auth.resend_after(&response, sent, retry, call).await {
            Resend::No => response,
            Resend::Once(retry) => {
                let response = on_time(next.run(*retry, extensions).await)?;
                self.auth.note_answer(&response);
                response
            }
            Resend::Stop(error) => return Err(reqwest_middleware::Error::middleware(error)),
        };
        let response = on_time(
            settings
                .read_whole(response, None)
                .await
                .map_err(reqwest_middleware::Error::Reqwest),
        )?;
        match super::api::stopped_by(&response) {
            Some(error) => Err(reqwest_middleware::Error::middleware(error.clone())),
            None => Ok(response),
        }
    }
}
