//! Renew-once on a rejected token: what the generated clients' hooks and
//! [`AuthMiddleware`](super::AuthMiddleware) both do after a response.

use http::HeaderValue;
use http::header::AUTHORIZATION;
use reqwest::{Request, Response};

use super::{Auth, challenge};

impl Auth {
    /// After `response` to a request that carried `sent` as its
    /// `Authorization`: when the API rejected that token (401 `Bearer
    /// error="invalid_token"`), renews it (invalidate-if-same) and returns
    /// `retry`, a copy of the request, with the new token, to be sent once
    /// more. `None`: return `response` as it is — it did not reject the
    /// token, the renewal failed, or there is no copy (a streamed body; the
    /// token is renewed all the same, so the next request has a good one).
    /// `call` names the request in logs.
    pub(crate) async fn resend_after(
        &self,
        response: &Response,
        sent: Option<&HeaderValue>,
        retry: Option<Request>,
        call: &str,
    ) -> Option<Request> {
        if !challenge::rejects_token(response.status(), response.headers()) {
            return None;
        }
        let token = match self.renew(sent?).await {
            Ok(token) => token,
            Err(error) => {
                tracing::warn!(call, %error, "token rejected and renewal failed");
                return None;
            }
        };
        let Some(mut retry) = retry else {
            tracing::debug!(
                call,
                "token rejected and renewed, but the request body is a stream: not sent again"
            );
            return None;
        };
        tracing::debug!(call, "token rejected: sending once more with a new token");
        retry
            .headers_mut()
            .insert(AUTHORIZATION, token.authorization().clone());
        Some(retry)
    }
}
