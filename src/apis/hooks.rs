//! What every generated client does around a request: attach the token, and
//! renew it once when the API says it is no longer valid.

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use progenitor_client::{Error, OperationInfo};
use reqwest::StatusCode;

use crate::auth::{Auth, challenge};

/// Start of the message of `Error::Custom` when a call failed because no
/// token could be had.
pub const AUTH_ERROR_PREFIX: &str = "m2m: no access token";

/// `pre` hook: sets `Authorization` (marked sensitive) from the auth handle.
pub(crate) async fn authorize<E>(
    auth: &Auth,
    request: &mut reqwest::Request,
    info: &OperationInfo,
) -> Result<(), Error<E>> {
    let token = auth.token().await.map_err(|error| {
        tracing::warn!(operation = info.operation_id, %error, "no access token for the call");
        Error::Custom(format!("{AUTH_ERROR_PREFIX} for {}: {error}", info.operation_id))
    })?;
    request
        .headers_mut()
        .insert(AUTHORIZATION, token.authorization().clone());
    Ok(())
}

/// `exec` hook: sends the request; on 401 with `Bearer error="invalid_token"`
/// renews the token and sends a copy once more. Requests whose body cannot be
/// copied (streams) are sent once. Plain 401 and 403 are returned as they are.
pub(crate) async fn send(
    http: &reqwest::Client,
    auth: &Auth,
    request: reqwest::Request,
    info: &OperationInfo,
) -> reqwest::Result<reqwest::Response> {
    let retry = request.try_clone();
    let rejected = request.headers().get(AUTHORIZATION).cloned();
    let response = http.execute(request).await?;
    if response.status() != StatusCode::UNAUTHORIZED
        || !challenge::says_invalid_token(response.headers().get_all(WWW_AUTHENTICATE))
    {
        return Ok(response);
    }
    let (Some(mut retry), Some(rejected)) = (retry, rejected) else {
        tracing::debug!(
            operation = info.operation_id,
            "token rejected, but the request body is a stream: not retried"
        );
        return Ok(response);
    };
    let token = match auth.renew(&rejected).await {
        Ok(token) => token,
        Err(error) => {
            tracing::warn!(operation = info.operation_id, %error, "token rejected and renewal failed");
            return Ok(response);
        }
    };
    tracing::debug!(operation = info.operation_id, "token rejected: sending once more with a new token");
    retry
        .headers_mut()
        .insert(AUTHORIZATION, token.authorization().clone());
    http.execute(retry).await
}
