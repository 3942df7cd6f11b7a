//! What the generated clients do around each call, against a real wiremock
//! server: the `Authorization` header, one renewal and resend on 401
//! `invalid_token`, and no retry for anything else.
//!
//! A request whose body is a stream is covered by the unit tests of
//! `src/apis/hooks.rs`: no generated operation sends one.

mod support;

use m2m::apis::AUTH_ERROR_PREFIX;
use m2m::apis::cenda_configuration::{Client, Error, types};
use serde_json::{Value, json};
use support::{TestTokens, authorization, authorizations, cenda_client, nxtsoft_client, received};
use wiremock::matchers::{any, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ORGANISATION_ID: &str = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
const INVALID_TOKEN: &str =
    r#"Bearer realm="cenda", error="invalid_token", error_description="The access token expired""#;

fn organisation_json() -> Value {
    json!({
        "organisationId": ORGANISATION_ID,
        "name": "Acme Corporation",
        "validated": false
    })
}

/// A 401 as Cenda sends it, with `challenge` as `WWW-Authenticate` if any.
fn unauthorized(challenge: Option<&str>) -> ResponseTemplate {
    let response = ResponseTemplate::new(401).set_body_json(json!({
        "title": "Unauthorized",
        "status": 401,
        "detail": "The access token is missing or invalid."
    }));
    match challenge {
        Some(challenge) => response.insert_header("www-authenticate", challenge),
        None => response,
    }
}

async fn get_organisation(
    client: &Client,
) -> Result<types::Organisation, Error<types::ProblemDetails>> {
    client
        .get_organisation()
        .organisation_id(ORGANISATION_ID)
        .send()
        .await
        .map(|response| response.into_inner())
}

/// Status and `detail` of an error answer from the API.
fn api_error(error: Error<types::ProblemDetails>) -> (u16, Option<String>) {
    match error {
        Error::ErrorResponse(response) => {
            (response.status().as_u16(), response.into_inner().detail)
        }
        other => panic!("expected the API's error answer, got {other:?}"),
    }
}

#[tokio::test]
async fn every_call_carries_the_token_as_a_bearer_header() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/api/Organisation/{ORGANISATION_ID}")))
        .and(header("authorization", "Bearer token-one"))
        .respond_with(ResponseTemplate::new(200).set_body_json(organisation_json()))
        .expect(1)
        .mount(&server)
        .await;
    let tokens = TestTokens::new(&["token-one"]);

    let organisation = get_organisation(&cenda_client(&server, &tokens))
        .await
        .unwrap();

    assert_eq!(organisation.name, "Acme Corporation");
    assert_eq!(authorizations(&server).await, ["Bearer token-one"]);
    assert_eq!(tokens.token_calls(), 1);
    assert_eq!(tokens.renew_calls(), 0);
}

#[tokio::test]
async fn invalid_token_is_renewed_and_the_call_sent_once_more_with_the_new_token() {
    let server = MockServer::start().await;
    Mock::given(header("authorization", "Bearer old-token"))
        .respond_with(unauthorized(Some(INVALID_TOKEN)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(header("authorization", "Bearer new-token"))
        .respond_with(ResponseTemplate::new(201).set_body_json(organisation_json()))
        .expect(1)
        .mount(&server)
        .await;
    let tokens = TestTokens::new(&["old-token", "new-token"]);

    let created = cenda_client(&server, &tokens)
        .create_organisation()
        .body(
            types::CreateOrganisationRequest::builder()
                .name("Acme Corporation")
                .css_url(Some("https://www.acme.example/qr.css".to_owned())),
        )
        .send()
        .await
        .expect("the resent call succeeds")
        .into_inner();

    assert_eq!(created.organisation_id.to_string(), ORGANISATION_ID);
    let requests = received(&server).await;
    assert_eq!(requests.len(), 2);
    assert_eq!(authorization(&requests[0]), "Bearer old-token");
    assert_eq!(authorization(&requests[1]), "Bearer new-token");
    // The copy is the same request: same method, path and body.
    assert_eq!(requests[1].method, requests[0].method);
    assert_eq!(requests[1].url, requests[0].url);
    assert_eq!(requests[1].body, requests[0].body);
    assert_eq!(
        requests[1].body_json::<Value>().unwrap(),
        json!({"name": "Acme Corporation", "cssUrl": "https://www.acme.example/qr.css"})
    );
    assert_eq!(tokens.token_calls(), 1);
    assert_eq!(tokens.rejected(), ["Bearer old-token"]);
}

#[tokio::test]
async fn a_second_invalid_token_answer_is_returned_to_the_caller() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(unauthorized(Some(INVALID_TOKEN)))
        .expect(2)
        .mount(&server)
        .await;
    let tokens = TestTokens::new(&["old-token", "new-token"]);

    let error = get_organisation(&cenda_client(&server, &tokens))
        .await
        .unwrap_err();

    assert_eq!(
        api_error(error),
        (
            401,
            Some("The access token is missing or invalid.".to_owned())
        )
    );
    assert_eq!(
        authorizations(&server).await,
        ["Bearer old-token", "Bearer new-token"]
    );
    assert_eq!(tokens.rejected(), ["Bearer old-token"]);
}

/// Sends one call answered by `response`; checks it went out once, came back
/// as the API's error with `status`, and renewed nothing.
async fn assert_not_retried(response: ResponseTemplate, status: u16) {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(response)
        .expect(1)
        .mount(&server)
        .await;
    let tokens = TestTokens::new(&["only-token", "unused-token"]);

    let error = get_organisation(&cenda_client(&server, &tokens))
        .await
        .unwrap_err();

    // A status the document does not declare (Cenda's 403) comes back as
    // an unexpected response, with its status all the same.
    assert_eq!(error.status().map(|s| s.as_u16()), Some(status));
    assert_eq!(authorizations(&server).await, ["Bearer only-token"]);
    assert_eq!(tokens.token_calls(), 1);
    assert_eq!(tokens.renew_calls(), 0);
}

#[tokio::test]
async fn a_401_without_a_challenge_is_not_retried() {
    assert_not_retried(unauthorized(None), 401).await;
}

#[tokio::test]
async fn a_401_with_a_bare_bearer_challenge_is_not_retried() {
    assert_not_retried(unauthorized(Some(r#"Bearer realm="x""#)), 401).await;
}

#[tokio::test]
async fn a_401_insufficient_scope_is_not_retried() {
    let challenge = r#"Bearer error="insufficient_scope", scope="{GatewayClientId}/.default""#;
    assert_not_retried(unauthorized(Some(challenge)), 401).await;
}

#[tokio::test]
async fn invalid_token_in_another_scheme_is_not_retried() {
    assert_not_retried(unauthorized(Some(r#"Basic error="invalid_token""#)), 401).await;
}

#[tokio::test]
async fn a_403_is_not_retried_even_with_an_invalid_token_challenge() {
    let forbidden = ResponseTemplate::new(403)
        .insert_header("www-authenticate", INVALID_TOKEN)
        .set_body_json(json!({"title": "Forbidden", "status": 403}));
    assert_not_retried(forbidden, 403).await;
}

#[tokio::test]
async fn a_403_insufficient_scope_from_nxtsoft_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/transactions"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header(
                    "www-authenticate",
                    r#"Bearer error="insufficient_scope", scope="transactions/post""#,
                )
                .set_body_json(json!({
                    "code": "insufficient_scope",
                    "message": "The access token does not carry the scope transactions/post."
                })),
        )
        .expect(1)
        .mount(&server)
        .await;
    let tokens = TestTokens::new(&["mock-scope-token", "unused-token"]);

    let error = nxtsoft_client(&server, &tokens)
        .post_transaction()
        .body(
            m2m::apis::nxtsoft_transactions::types::TransactionRequest::builder()
                .account_number("000123456789")
                .routing_number("021000021")
                .amount(125.5)
                .currency("USD")
                .transaction_type(m2m::apis::nxtsoft_transactions::types::TransactionType::Credit)
                .reference("INV-2024-0042"),
        )
        .send()
        .await
        .unwrap_err();

    let m2m::apis::nxtsoft_transactions::Error::ErrorResponse(response) = error else {
        panic!("expected the API's error answer, got {error:?}");
    };
    assert_eq!(response.status(), 403);
    assert_eq!(response.into_inner().code, "insufficient_scope");
    assert_eq!(authorizations(&server).await, ["Bearer mock-scope-token"]);
    assert_eq!(tokens.renew_calls(), 0);
}

#[tokio::test]
async fn a_failed_renewal_returns_the_original_401() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(unauthorized(Some(INVALID_TOKEN)))
        .expect(1)
        .mount(&server)
        .await;
    // The renewed token cannot go into a header: renewal fails.
    let tokens = TestTokens::new(&["old-token", "new-token\nunsendable"]);

    let error = get_organisation(&cenda_client(&server, &tokens))
        .await
        .unwrap_err();

    assert_eq!(
        api_error(error),
        (
            401,
            Some("The access token is missing or invalid.".to_owned())
        )
    );
    assert_eq!(authorizations(&server).await, ["Bearer old-token"]);
    assert_eq!(tokens.rejected(), ["Bearer old-token"]);
}

#[tokio::test]
async fn no_token_fails_the_call_before_sending_with_a_secret_free_message() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_json(organisation_json()))
        .expect(0)
        .mount(&server)
        .await;
    // A token the source holds but cannot send (a newline in it).
    let tokens = TestTokens::new(&["s3cr3t-token-value\n"]);

    let error = get_organisation(&cenda_client(&server, &tokens))
        .await
        .unwrap_err();

    let Error::Custom(message) = &error else {
        panic!("expected Error::Custom, got {error:?}");
    };
    assert!(
        message.starts_with(AUTH_ERROR_PREFIX),
        "{message:?} starts with {AUTH_ERROR_PREFIX:?}"
    );
    assert!(
        message.contains("get_organisation"),
        "{message:?} names the operation"
    );
    assert!(!message.contains("s3cr3t"), "{message:?} shows no token");
    assert!(!format!("{error:?}").contains("s3cr3t"));
    assert!(received(&server).await.is_empty());
    assert_eq!(tokens.token_calls(), 1);
    assert_eq!(tokens.renew_calls(), 0);
}
