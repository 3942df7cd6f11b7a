//! What every generated client does around a request: attach the token
//! where it may go, renew it once when the API says it is no longer valid,
//! and hold the call to the limits of the handle's
//! [`ApiSettings`](crate::auth::ApiSettings).

use http::header::AUTHORIZATION;
use progenitor_client::{Error, OperationInfo};

use crate::auth::renewal::Resend;
use crate::auth::{Auth, AuthError, DPOP_HEADER, api};

/// Start of the message of `Error::Custom` when a call failed because no
/// token could be had or sent; [`Auth::error_of`] turns such an error back
/// into the typed [`AuthError`].
pub const AUTH_ERROR_PREFIX: &str = "m2m: no access token";

/// Start of the message of `Error::Custom` when m2m stopped a call (a limit
/// of the handle's [`ApiSettings`](crate::auth::ApiSettings)); [`Auth::error_of`]
/// turns such an error back into the typed [`AuthError::ApiCall`].
pub const CALL_ERROR_PREFIX: &str = "m2m: call stopped";

/// `pre` hook: sets `Authorization` (marked sensitive) from the auth handle,
/// when the URL may receive it (https, loopback, or `allow_http`).
pub async fn authorize<E>(
    auth: &Auth,
    request: &mut reqwest::Request,
    info: &OperationInfo,
) -> Result<(), Error<E>> {
    let token = async {
        auth.api_settings().refuse_insecure(request.url())?;
        let token = auth.token().await?;
        auth.attach(request, &token)
    };
    token.await.map_err(|error| {
        tracing::warn!(operation = info.operation_id, %error, "no access token for the call");
        let reference = auth.record_failure(&error);
        Error::Custom(format!(
            "{AUTH_ERROR_PREFIX} for {} {reference}: {error}",
            info.operation_id
        ))
    })
}

/// `exec` hook: sends the request within the handle's timeout; on 401 with
/// `Bearer error="invalid_token"` renews the token and sends a copy once
/// more. A request whose body cannot be copied (a stream) is not sent again,
/// but the token is still renewed so that the next call does not carry the
/// rejected one. Plain 401 and 403 are returned as they are. An API that
/// keeps rejecting fresh tokens stops the call (see `auth::renewal`). The
/// answer is read here, up to `max_response_bytes`; one over the limit comes
/// back without its body, marked for [`check`].
///
/// Every request is logged at DEBUG (method, URL with query secrets
/// redacted, status); inside [`exchange::tapped`](crate::apis::exchange::tapped)
/// the final answer is recorded.
pub async fn send(
    http: &reqwest::Client,
    auth: &Auth,
    request: reqwest::Request,
    info: &OperationInfo,
) -> reqwest::Result<reqwest::Response> {
    let settings = auth.api_settings();
    // With client certificate files, the client that presents the
    // certificate read last (the generated client's own has the first).
    let following = auth.api_client_now();
    let http = following.as_ref().unwrap_or(http);
    // The copy to resend after a rejected token.
    let retry = copy_to_resend(&request);
    // The URL to name if the time runs out: the copy's, or (a streamed
    // body, no copy) one of its own.
    let own_url = retry.is_none().then(|| request.url().clone());
    let nonce_retry = auth.nonce_retry_copy(&request);
    let sent = auth.sending(&request);
    // The credentials of each request sent, to scrub from a recorded answer.
    let mut sent_credentials = [credentials_of(&request), [None, None], [None, None]];
    // Generated code sets no timeout of its own: the handle's applies to
    // each request sent and to reading the answer to the last one. It is
    // kept here rather than set on the request (reqwest keeps that in an
    // extension map and a boxed timer: four allocations a call).
    let mut deadline = settings.deadline();
    let response = match within(deadline, execute(http, request, info)).await {
        Some(response) => response?,
        None => {
            let url = own_url.or_else(|| retry.map(|copy| copy.url().clone()));
            return Ok(settings.time_ran_out(url));
        }
    };
    let response = match auth.nonce_retry(&response, nonce_retry) {
        Some(again) => {
            sent_credentials[1] = credentials_of(&again);
            let url = again.url().clone();
            deadline = settings.deadline();
            let response = match within(deadline, execute(http, again, info)).await {
                Some(response) => response?,
                None => return Ok(settings.time_ran_out(Some(url))),
            };
            auth.note_nonce(&response);
            response
        }
        None => response,
    };
    let response = match auth
        .resend_after(&response, sent, retry, info.operation_id)
        .await
    {
        Resend::No => response,
        Resend::Once(retry) => {
            sent_credentials[2] = credentials_of(&retry);
            let url = retry.url().clone();
            deadline = settings.deadline();
            let response = match within(deadline, execute(http, *retry, info)).await {
                Some(response) => response?,
                None => return Ok(settings.time_ran_out(Some(url))),
            };
            auth.note_answer(&response);
            response
        }
        Resend::Stop(error) => return Ok(api::stop(response, error)),
    };
    let response = settings.read_whole(response, Some(deadline)).await?;
    finish(response, sent_credentials.as_flattened()).await
}

/// What `request` carries that no output may show: its `Authorization`
/// and its DPoP proof (a bearer call has none: nothing is copied for it).
fn credentials_of(request: &reqwest::Request) -> [Option<http::HeaderValue>; 2] {
    let headers = request.headers();
    [
        headers.get(AUTHORIZATION).cloned(),
        headers.get(DPOP_HEADER).cloned(),
    ]
}

/// `work`'s output, or `None` when `deadline` passed first.
async fn within<T>(
    deadline: tokio::time::Instant,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::time::timeout_at(deadline, work).await.ok()
}

/// `post` hook: the call fails with `Error::Custom` (starting with
/// [`CALL_ERROR_PREFIX`]) when m2m stopped it: the timeout ran out, the
/// answer was over the size limit, or the API keeps rejecting fresh tokens.
pub async fn check<E>(
    auth: &Auth,
    result: &reqwest::Result<reqwest::Response>,
    info: &OperationInfo,
) -> Result<(), Error<E>> {
    let stopped: Option<AuthError> = match result {
        Ok(response) => api::stopped_by(response).cloned(),
        Err(error) => auth.api_settings().timed_out(error),
    };
    match stopped {
        None => Ok(()),
        Some(error) => {
            tracing::warn!(operation = info.operation_id, %error, "call stopped");
            let reference = auth.record_failure(&error);
            Err(Error::Custom(format!(
                "{CALL_ERROR_PREFIX}: {} {reference}: {error}",
                info.operation_id
            )))
        }
    }
}

/// A copy of `request` (made by a generated client: reqwest's
/// `RequestBuilder`, no timeout yet) to send once more, or `None` when its
/// body is a stream. Without a body, `Request::try_clone` without its
/// extra work: that sets the copy's timeout through `timeout_mut`, which
/// allocates reqwest's extension map even for no timeout, before
/// overwriting it with a clone of the original's. A request built by
/// reqwest's builder has no extension but that timeout, which the copy
/// keeps.
fn copy_to_resend(request: &reqwest::Request) -> Option<reqwest::Request> {
    if request.body().is_some() {
        return request.try_clone();
    }
    let mut copy = reqwest::Request::new(request.method().clone(), request.url().clone());
    *copy.headers_mut() = request.headers().clone();
    *copy.version_mut() = request.version();
    if let Some(timeout) = request.timeout() {
        *copy.timeout_mut() = Some(*timeout);
    }
    Some(copy)
}

/// Sends one request, logging it.
async fn execute(
    http: &reqwest::Client,
    request: reqwest::Request,
    info: &OperationInfo,
) -> reqwest::Result<reqwest::Response> {
    let method = request.method().clone();
    // The URL as it may be shown, made only when someone looks: a copy and
    // a scan of the query on every call otherwise.
    let url = (crate::apis::exchange::tapping() || tracing::enabled!(tracing::Level::DEBUG))
        .then(|| redact_url(request.url()));
    if let Some(url) = &url {
        crate::apis::exchange::note_request(&method, url);
    }
    let url = url.unwrap_or_default();
    let result = http.execute(request).await;
    match &result {
        Ok(response) => tracing::debug!(
            operation = info.operation_id,
            %method,
            %url,
            status = response.status().as_u16(),
            "API request"
        ),
        Err(error) => tracing::debug!(
            operation = info.operation_id,
            %method,
            %url,
            timeout = error.is_timeout(),
            error = %error_chain(error),
            "API request failed"
        ),
    }
    result
}

async fn finish(
    response: reqwest::Response,
    sent: &[Option<http::HeaderValue>],
) -> reqwest::Result<reqwest::Response> {
    crate::apis::exchange::keep(response, sent).await
}

/// The causes of `error`, without reqwest's own line (which carries the
/// URL): `connection refused`, `operation timed out`.
pub(crate) fn error_chain(error: &reqwest::Error) -> String {
    let mut chain: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(current) = source {
        let text = current.to_string();
        if !chain.contains(&text) {
            chain.push(text);
        }
        source = current.source();
    }
    if chain.is_empty() {
        "no answer".to_owned()
    } else {
        chain.join(": ")
    }
}

/// Query parameters whose values are never shown: names containing any
/// of these (case-insensitive).
const SECRET_QUERY_NAMES: [&str; 9] = [
    "token",
    "secret",
    "key",
    "password",
    "passwd",
    "sig",
    "code",
    "auth",
    "credential",
];

/// `url` as it may be shown: no password, and the values of query
/// parameters that look secret (`api_key`, `access_token`, `sig`, …)
/// replaced by `redacted`.
pub(crate) fn redact_url(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("redacted"));
    }
    let is_secret = |name: &str| {
        let lower = name.to_lowercase();
        SECRET_QUERY_NAMES.iter().any(|s| lower.contains(s))
    };
    if shown.query_pairs().any(|(name, _)| is_secret(&name)) {
        let pairs: Vec<(String, String)> = shown
            .query_pairs()
            .map(|(name, value)| {
                let value = if is_secret(&name) {
                    "redacted".to_owned()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), value)
            })
            .collect();
        shown.query_pairs_mut().clear().extend_pairs(pairs);
    }
    shown.to_string()
}

#[cfg(test)]
mod tests {
    //! The hooks on raw `reqwest::Request`s, for what no generated operation
    //! exercises: a body that is a stream. The generated-client view of the
    //! hooks is in `tests/hooks.rs`.

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, SystemTime};

    use bytes::Bytes;
    use http::HeaderValue;
    use secrecy::SecretString;
    use wiremock::matchers::header;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::auth::{AccessToken, AuthError, BoxFuture, TokenSource};
    use reqwest::StatusCode;

    const OLD: &str = "old-token";
    const NEW: &str = "new-token";
    const INFO: OperationInfo = OperationInfo {
        operation_id: "upload_document",
    };

    /// Hands out `OLD` until renewed, then `NEW`; counts renewals.
    #[derive(Clone, Default)]
    struct OldThenNew(std::sync::Arc<AtomicUsize>);

    impl OldThenNew {
        fn renewals(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }

        fn current(&self) -> Result<AccessToken, AuthError> {
            let value = if self.renewals() == 0 { OLD } else { NEW };
            let expires_at = SystemTime::UNIX_EPOCH + Duration::from_secs(4_102_444_800);
            AccessToken::new(SecretString::from(value), "Bearer", expires_at, None)
        }
    }

    impl TokenSource for OldThenNew {
        fn token(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>> {
            Box::pin(async move { self.current() })
        }

        fn renew<'a>(
            &'a self,
            rejected: &'a HeaderValue,
        ) -> BoxFuture<'a, Result<AccessToken, AuthError>> {
            assert_eq!(rejected.as_bytes(), format!("Bearer {OLD}").as_bytes());
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move { self.current() })
        }
    }

    /// A server that rejects `OLD` with `invalid_token` and accepts `NEW`.
    async fn server_rejecting_the_old_token() -> MockServer {
        let server = MockServer::start().await;
        Mock::given(header("authorization", format!("Bearer {OLD}").as_str()))
            .respond_with(
                ResponseTemplate::new(401)
                    .insert_header("www-authenticate", r#"Bearer error="invalid_token""#),
            )
            .mount(&server)
            .await;
        Mock::given(header("authorization", format!("Bearer {NEW}").as_str()))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        server
    }

    /// Authorizes and sends `body` to `server` as the generated code does.
    async fn call(
        server: &MockServer,
        http: &reqwest::Client,
        auth: &Auth,
        body: reqwest::Body,
    ) -> reqwest::Response {
        let mut request = http
            .post(format!("{}/documents", server.uri()))
            .body(body)
            .build()
            .unwrap();
        authorize::<()>(auth, &mut request, &INFO).await.unwrap();
        send(http, auth, request, &INFO).await.unwrap()
    }

    fn stream_of(chunks: &'static [&'static str]) -> reqwest::Body {
        let chunks = chunks
            .iter()
            .map(|chunk| Ok::<_, std::io::Error>(Bytes::from_static(chunk.as_bytes())));
        reqwest::Body::wrap_stream(futures::stream::iter(chunks))
    }

    fn authorizations(requests: &[wiremock::Request]) -> Vec<&str> {
        requests
            .iter()
            .map(|request| request.headers[AUTHORIZATION].to_str().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_buffered_body_is_resent_with_the_new_token() {
        let server = server_rejecting_the_old_token().await;
        let (http, tokens) = (reqwest::Client::new(), OldThenNew::default());
        let auth = Auth::from_source(tokens.clone());

        let response = call(&server, &http, &auth, reqwest::Body::from("part-1 part-2")).await;

        assert_eq!(response.status(), StatusCode::OK);
        let requests = server.received_requests().await.unwrap();
        assert_eq!(
            authorizations(&requests),
            ["Bearer old-token", "Bearer new-token"]
        );
        assert_eq!(requests[1].body, b"part-1 part-2");
        assert_eq!(tokens.renewals(), 1);
    }

    #[tokio::test]
    async fn a_streamed_body_is_not_resent_but_the_next_call_has_the_new_token() {
        let server = server_rejecting_the_old_token().await;
        let (http, tokens) = (reqwest::Client::new(), OldThenNew::default());
        let auth = Auth::from_source(tokens.clone());

        let rejected = call(&server, &http, &auth, stream_of(&["part-1 ", "part-2"])).await;

        assert_eq!(rejected.status(), StatusCode::UNAUTHORIZED);
        let requests = server.received_requests().await.unwrap();
        assert_eq!(authorizations(&requests), ["Bearer old-token"]);
        assert_eq!(requests[0].body, b"part-1 part-2");
        // The rejected token was renewed although the request could not be
        // sent again: the next call goes out with the new one at once.
        assert_eq!(tokens.renewals(), 1);

        let next = call(&server, &http, &auth, stream_of(&["part-3"])).await;

        assert_eq!(next.status(), StatusCode::OK);
        let requests = server.received_requests().await.unwrap();
        assert_eq!(
            authorizations(&requests),
            ["Bearer old-token", "Bearer new-token"]
        );
        assert_eq!(tokens.renewals(), 1);
    }

    #[test]
    fn the_copy_to_resend_has_the_method_url_headers_version_and_timeout() {
        let http = reqwest::Client::new();
        let mut request = http
            .delete("http://127.0.0.1:9/organisations/1?force=true")
            .header("api-version", "1.0")
            .header(AUTHORIZATION, "Bearer old-token")
            .version(http::Version::HTTP_2)
            .timeout(Duration::from_secs(7))
            .build()
            .unwrap();

        let copy = copy_to_resend(&request).unwrap();

        assert_eq!(copy.method(), request.method());
        assert_eq!(copy.url(), request.url());
        assert_eq!(copy.headers(), request.headers());
        assert_eq!(copy.version(), http::Version::HTTP_2);
        assert_eq!(copy.timeout(), Some(&Duration::from_secs(7)));
        assert!(copy.body().is_none());
        // Without a timeout the copy has none either.
        *request.timeout_mut() = None;
        assert_eq!(copy_to_resend(&request).unwrap().timeout(), None);
        // A buffered body is copied, a stream is not.
        let buffered = http
            .post("http://127.0.0.1:9/x")
            .body("part-1")
            .build()
            .unwrap();
        let copy = copy_to_resend(&buffered).unwrap();
        assert_eq!(
            copy.body().and_then(reqwest::Body::as_bytes),
            Some(&b"part-1"[..])
        );
        let streamed = http
            .post("http://127.0.0.1:9/x")
            .body(stream_of(&["part-1"]))
            .build()
            .unwrap();
        assert!(copy_to_resend(&streamed).is_none());
    }

    #[test]
    fn shown_urls_have_no_password_and_no_secret_query_values() {
        let url = url::Url::parse(
            "https://user:pw@api.test/x?page=2&api_key=k1&access_token=t1&Signature=s1&q=a+b",
        )
        .unwrap();
        assert_eq!(
            redact_url(&url),
            "https://user:redacted@api.test/x?page=2&api_key=redacted&access_token=redacted&Signature=redacted&q=a+b"
        );
        let plain = url::Url::parse("http://127.0.0.1:9/api/Organisation/1").unwrap();
        assert_eq!(redact_url(&plain), "http://127.0.0.1:9/api/Organisation/1");
    }

    #[tokio::test]
    async fn the_authorization_header_is_sensitive_and_not_in_debug_output() {
        let auth = Auth::from_source(OldThenNew::default());
        let mut request = reqwest::Client::new()
            .get("http://127.0.0.1:9/organisations")
            .build()
            .unwrap();

        authorize::<()>(&auth, &mut request, &INFO).await.unwrap();

        let value = &request.headers()[AUTHORIZATION];
        assert_eq!(value.as_bytes(), b"Bearer old-token");
        assert!(value.is_sensitive());
        assert!(!format!("{request:?}").contains(OLD));
    }
}
