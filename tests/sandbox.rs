//! The embedded sandbox, driven over loopback with reqwest and with the
//! generated clients.
#![cfg(feature = "sandbox")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;
use m2m::apis::{cenda_configuration as cenda, nxtsoft_transactions as nxtsoft};
use m2m::auth::clock::{Clock, ManualClock, SystemClock};
use m2m::auth::{AccessToken, Auth, AuthError, BoxFuture, TokenSource};
use m2m::sandbox::demo::{self, accepted_transaction};
use m2m::sandbox::{DemoClient, GarbageBody, ProviderStyle, Sandbox, SandboxStats};
use secrecy::SecretString;
use serde_json::{Value, json};

// ---------------------------------------------------------------- scaffolding

/// Benchmarks and servers share these across tasks.
const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<Sandbox>();
    shareable::<m2m::sandbox::FaultControl>();
};

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn post_form(url: &str, form: &[(&str, &str)]) -> reqwest::Response {
    http().post(url).form(form).send().await.unwrap()
}

/// The body form of a demo client's request (secret in the body).
fn body_form(client: &DemoClient) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "client_credentials".to_owned()),
        ("client_id", client.client_id.to_owned()),
        ("client_secret", client.client_secret.to_owned()),
        ("scope", client.scope_param()),
    ]
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// RFC 6749 §2.3.1: form-urlencode id and secret, then Base64.
fn basic(id: &str, secret: &str) -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(id), encode(secret)))
    )
}

async fn access_token(client: &DemoClient, scope: Option<&str>) -> String {
    let mut form: Vec<(&str, String)> = body_form(client);
    form.retain(|(name, _)| *name != "scope");
    if let Some(scope) = scope {
        form.push(("scope", scope.to_owned()));
    }
    let response = http()
        .post(&client.token_url)
        .form(&form)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// A test token source: fetches from a sandbox token endpoint with reqwest
/// and keeps the token until it expires (by `clock`) or, when
/// `check_expiry` is off, until the API rejects it.
struct SandboxTokens {
    http: reqwest::Client,
    client: DemoClient,
    scope: Option<String>,
    clock: Arc<dyn Clock>,
    check_expiry: bool,
    current: Mutex<Option<AccessToken>>,
    fetches: Arc<AtomicUsize>,
}

impl SandboxTokens {
    fn new(client: DemoClient, clock: Arc<dyn Clock>) -> Self {
        Self {
            http: http(),
            scope: Some(client.scope_param()),
            client,
            clock,
            check_expiry: true,
            current: Mutex::new(None),
            fetches: Arc::new(AtomicUsize::new(0)),
        }
    }

    async fn fetch(&self) -> AccessToken {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let mut form = vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", self.client.client_id.to_owned()),
            ("client_secret", self.client.client_secret.to_owned()),
        ];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope.clone()));
        }
        let response = self
            .http
            .post(&self.client.token_url)
            .form(&form)
            .send()
            .await
            .expect("the sandbox answers");
        let body: Value = response.json().await.expect("a JSON token response");
        let expires_in = body["expires_in"].as_u64().expect("expires_in");
        let token = AccessToken::new(
            SecretString::from(
                body["access_token"]
                    .as_str()
                    .expect("access_token")
                    .to_owned(),
            ),
            body["token_type"].as_str().expect("token_type"),
            self.clock.now() + Duration::from_secs(expires_in),
            None,
        )
        .expect("a usable token");
        *self.current.lock().unwrap() = Some(token.clone());
        token
    }
}

impl TokenSource for SandboxTokens {
    fn token(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>> {
        Box::pin(async move {
            let cached = self.current.lock().unwrap().clone();
            match cached {
                Some(token) if !self.check_expiry || token.expires_at() > self.clock.now() => {
                    Ok(token)
                }
                _ => Ok(self.fetch().await),
            }
        })
    }

    fn renew<'a>(
        &'a self,
        rejected: &'a HeaderValue,
    ) -> BoxFuture<'a, Result<AccessToken, AuthError>> {
        Box::pin(async move {
            let current = self.current.lock().unwrap().clone();
            match current {
                Some(token) if !token.is_sent_as(rejected) => Ok(token),
                _ => Ok(self.fetch().await),
            }
        })
    }
}

fn cenda_client(sandbox: &Sandbox, tokens: SandboxTokens) -> cenda::Client {
    cenda::Client::new_with_client(&sandbox.cenda_api_url(), http(), Auth::from_source(tokens))
}

fn nxtsoft_client(sandbox: &Sandbox, tokens: SandboxTokens) -> nxtsoft::Client {
    nxtsoft::Client::new_with_client(
        &sandbox.nxtsoft_api_url(),
        http(),
        Auth::from_source(tokens),
    )
}

fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

fn organisation(name: &str) -> cenda::types::builder::CreateOrganisationRequest {
    cenda::types::CreateOrganisationRequest::builder()
        .name(name)
        .css_url(Some("https://www.acme.example/qr.css".to_owned()))
}

fn attribute(
    name: &str,
    data_type: cenda::types::AttributeDataType,
) -> cenda::types::CredentialAttribute {
    cenda::types::CredentialAttribute::builder()
        .name(name)
        .data_type(data_type)
        .try_into()
        .unwrap()
}

fn template(
    name: &str,
    template_type: cenda::types::TemplateType,
    attributes: &[&str],
) -> cenda::types::builder::CreateCredentialTemplateRequest {
    cenda::types::CreateCredentialTemplateRequest::builder()
        .name(name)
        .template_type(template_type)
        .attributes(
            attributes
                .iter()
                .map(|name| attribute(name, cenda::types::AttributeDataType::String))
                .collect::<Vec<_>>(),
        )
}

/// Status and problem details of a Cenda error answer.
fn problem(
    error: cenda::Error<cenda::types::ProblemDetails>,
) -> (u16, cenda::types::ProblemDetails) {
    match error {
        cenda::Error::ErrorResponse(response) => {
            (response.status().as_u16(), response.into_inner())
        }
        other => panic!("expected Cenda's problem details, got {other:?}"),
    }
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

// ------------------------------------------------------------ token endpoints

#[tokio::test]
async fn entra_answers_in_entras_shape() {
    let clock = Arc::new(ManualClock::at_fixed_date());
    let sandbox = Sandbox::builder()
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    let client = sandbox.demo_client(ProviderStyle::Entra);
    assert_eq!(
        client.token_url,
        sandbox.entra_token_url(demo::ENTRA_TENANT_ID)
    );

    let form = body_form(&client);
    let (status, body) = json_of(
        http()
            .post(&client.token_url)
            .form(&form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    assert!(body["access_token"].as_str().unwrap().starts_with("eyJ"));
    assert_eq!(body.as_object().unwrap().len(), 4, "{body}");

    let mut wrong = body_form(&client);
    wrong[2].1 = "not-the-secret".into();
    let response = http()
        .post(&client.token_url)
        .header("client-request-id", "08c3117b-8e36-4114-9bf0-053feb27299c")
        .form(&wrong)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"], json!([7000215]));
    assert_eq!(body["timestamp"], "2026-01-01 00:00:00Z");
    assert_eq!(
        body["correlation_id"],
        "08c3117b-8e36-4114-9bf0-053feb27299c"
    );
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.starts_with("AADSTS7000215: Invalid client secret provided."),
        "{description}"
    );
    assert!(description.contains(&format!("app '{}'", demo::ENTRA_CLIENT_ID)));
    assert!(description.contains(&format!("Trace ID: {}", body["trace_id"].as_str().unwrap())));
    assert!(description.ends_with("Timestamp: 2026-01-01 00:00:00Z"));
    assert!(
        body["error_uri"]
            .as_str()
            .unwrap()
            .ends_with("/error?code=7000215")
    );
    assert!(!body.to_string().contains("not-the-secret"));

    let mut no_default = body_form(&client);
    no_default[3].1 = demo::CENDA_GATEWAY_CLIENT_ID.into();
    let (status, body) = json_of(
        http()
            .post(&client.token_url)
            .form(&no_default)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    assert_eq!(body["error_codes"], json!([1002012]));

    let (status, body) = json_of(
        http()
            .post(sandbox.entra_token_url("no-such-tenant"))
            .form(&form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["error_codes"].clone()), (400, json!([90002])));

    // The tenant in upper case is the same tenant; its token is accepted.
    let upper = sandbox.entra_token_url(&demo::ENTRA_TENANT_ID.to_uppercase());
    let (status, body) = json_of(http().post(&upper).form(&form).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let organisations = http()
        .get(format!("{}/api/Organisation", sandbox.cenda_api_url()))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(organisations.status().as_u16(), 200);

    // Tenants that share a first path segment or prefix with other routes.
    for tenant in ["organizations", "oidc", "cenda", "oauth2"] {
        let response = http()
            .post(sandbox.entra_token_url(tenant))
            .form(&form)
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(
            (status, body["error_codes"].clone()),
            (400, json!([90002])),
            "{tenant}"
        );
    }

    let mut unknown = body_form(&client);
    unknown[1].1 = "00000000-0000-0000-0000-000000000000".into();
    let (status, body) = json_of(
        http()
            .post(&client.token_url)
            .form(&unknown)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
    assert_eq!(body["error_codes"], json!([700016]));
    assert_eq!(sandbox.stats().entra_token_requests, 10);
    assert_eq!(sandbox.stats().tokens_issued, 2);
}

#[tokio::test]
async fn cognito_grants_all_scopes_when_none_asked_and_ignores_unknown_ones() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = sandbox.demo_client(ProviderStyle::Cognito);
    assert_eq!(client.token_url, sandbox.cognito_token_url());

    let (status, body) = json_of(
        post_form(
            &client.token_url,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client.client_id),
                ("client_secret", client.client_secret),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["access_token", "expires_in", "token_type"]);
    let claims = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(claims["scope"], "transactions/mock transactions/post");
    assert_eq!(claims["aud"], demo::NXTSOFT_AUDIENCE);

    let response = http()
        .post(&client.token_url)
        .header(
            "authorization",
            basic(client.client_id, client.client_secret),
        )
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "unknown/scope transactions/mock"),
        ])
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        claims_of(body["access_token"].as_str().unwrap())["scope"],
        "transactions/mock"
    );

    let (status, body) = json_of(
        post_form(
            &client.token_url,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client.client_id),
                ("client_secret", "wrong"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!((status, body), (400, json!({"error": "invalid_client"})));
}

#[tokio::test]
async fn identityserver_takes_space_separated_scopes_and_answers_errors_400() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = sandbox.demo_client(ProviderStyle::IdentityServer);
    assert_eq!(
        client.token_url,
        format!(
            "{}/connect/token",
            sandbox.sequel_authentication_server_url()
        )
    );
    assert!(client.token_url.ends_with("/Authentication/connect/token"));

    let response = http()
        .post(&client.token_url)
        .header(
            "authorization",
            basic(client.client_id, client.client_secret),
        )
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "cenda/configuration transactions/mock"),
        ])
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "cenda/configuration transactions/mock");
    let claims = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(
        claims["aud"],
        json!([demo::CENDA_AUDIENCE, demo::NXTSOFT_AUDIENCE])
    );

    let mut form = body_form(&client);
    form[3].1 = "transactions/mock app.unknown".into();
    let (status, body) = json_of(
        http()
            .post(&client.token_url)
            .form(&form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body), (400, json!({"error": "invalid_scope"})));

    let mut form = body_form(&client);
    form[2].1 = "wrong".into();
    let (status, body) = json_of(
        http()
            .post(&client.token_url)
            .form(&form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body), (400, json!({"error": "invalid_client"})));

    // Basic and a body secret together: a strict server refuses.
    let response = http()
        .post(&client.token_url)
        .header(
            "authorization",
            basic(client.client_id, client.client_secret),
        )
        .form(&body_form(&client))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!((status, body), (400, json!({"error": "invalid_request"})));
}

#[tokio::test]
async fn oidc_discovery_leads_to_a_basic_token_endpoint() {
    let sandbox = Sandbox::start().await.unwrap();
    let discovery: Value = http()
        .get(sandbox.oidc_discovery_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], sandbox.issuer(ProviderStyle::Oidc));
    assert_eq!(discovery["token_endpoint"], sandbox.oidc_token_url());
    assert_eq!(discovery["jwks_uri"], sandbox.jwks_url());
    assert_eq!(
        discovery["token_endpoint_auth_methods_supported"],
        json!([
            "client_secret_basic",
            "client_secret_post",
            "tls_client_auth",
            "self_signed_tls_client_auth"
        ])
    );
    let token_endpoint = discovery["token_endpoint"].as_str().unwrap();
    let client = sandbox.demo_client(ProviderStyle::Oidc);
    let scope_only = [
        ("grant_type", "client_credentials"),
        ("scope", "transactions/mock"),
    ];

    // Basic, id and secret form-urlencoded first (the secret has `:/+%&=?`).
    let response = http()
        .post(token_endpoint)
        .header(
            "authorization",
            basic(client.client_id, client.client_secret),
        )
        .form(&scope_only)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "transactions/mock");

    // The raw secret, not encoded: a stray `%` is refused.
    let raw = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", client.client_id, client.client_secret))
    );
    let response = http()
        .post(token_endpoint)
        .header("authorization", raw)
        .form(&scope_only)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );

    // Apiture's guide: Basic and the body together, agreeing.
    let response = http()
        .post(token_endpoint)
        .header(
            "authorization",
            basic(client.client_id, client.client_secret),
        )
        .form(&body_form(&client))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    // Disagreeing: 401 invalid_client with a Basic challenge.
    let mut form = body_form(&client);
    form[2].1 = "something else".into();
    let response = http()
        .post(token_endpoint)
        .header(
            "authorization",
            basic(client.client_id, client.client_secret),
        )
        .form(&form)
        .send()
        .await
        .unwrap();
    let challenge = header(&response, "www-authenticate");
    let (status, body) = json_of(response).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert!(challenge.starts_with("Basic realm="), "{challenge}");
    let stats = sandbox.stats();
    assert_eq!(
        (
            stats.discovery_requests,
            stats.oidc_token_requests,
            stats.tokens_issued
        ),
        (1, 4, 2)
    );
}

#[tokio::test]
async fn every_endpoint_refuses_json_repeated_parameters_and_other_grants() {
    let sandbox = Sandbox::start().await.unwrap();
    for style in ProviderStyle::ALL {
        let client = sandbox.demo_client(style);
        let url = &client.token_url;
        let json_body = http()
            .post(url)
            .json(
                &json!({"grant_type": "client_credentials", "client_id": client.client_id,
                          "client_secret": client.client_secret}),
            )
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(json_body).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{style}"
        );

        let mut form = body_form(&client);
        form[0].1 = "password".into();
        let (status, body) = json_of(http().post(url).form(&form).send().await.unwrap()).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("unsupported_grant_type")),
            "{style}"
        );

        let mut form = body_form(&client);
        form.push(("scope", client.scope_param()));
        let (status, body) = json_of(http().post(url).form(&form).send().await.unwrap()).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{style}"
        );
    }
    assert_eq!(sandbox.stats().token_requests(), 12);
    assert_eq!(sandbox.stats().tokens_issued, 0);
}

/// A token's claims, read without checking (the JWKS test checks signatures).
fn claims_of(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(token)
        .unwrap()
        .claims
}

#[tokio::test]
async fn tokens_verify_with_the_published_jwks() {
    let lifetime = Duration::from_secs(600);
    let sandbox = Sandbox::builder()
        .token_lifetime(lifetime)
        .start()
        .await
        .unwrap();
    let jwks: jsonwebtoken::jwk::JwkSet = http()
        .get(sandbox.jwks_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks.keys.len(), 1);
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
    let expected = [
        (ProviderStyle::Entra, demo::CENDA_AUDIENCE),
        (ProviderStyle::Cognito, demo::NXTSOFT_AUDIENCE),
        (ProviderStyle::IdentityServer, demo::NXTSOFT_AUDIENCE),
        (ProviderStyle::Oidc, demo::CENDA_AUDIENCE),
    ];
    for (style, audience) in expected {
        let client = sandbox.demo_client(style);
        let scope = match style {
            ProviderStyle::Entra => demo::CENDA_ENTRA_SCOPE,
            ProviderStyle::Oidc => demo::SCOPE_CENDA_CONFIGURATION,
            _ => demo::SCOPE_TRANSACTIONS_MOCK,
        };
        let token = access_token(&client, Some(scope)).await;
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
        assert_eq!(header.kid, jwks.keys[0].common.key_id);
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.set_issuer(&[sandbox.issuer(style)]);
        validation.set_audience(&[audience]);
        let claims = jsonwebtoken::decode::<Value>(&token, &key, &validation)
            .unwrap_or_else(|e| panic!("{style}: {e}"))
            .claims;
        assert_eq!(claims["client_id"], client.client_id);
        assert_eq!(claims["sub"], client.client_id);
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            600
        );
        assert_eq!(claims["jti"].as_str().unwrap().len(), 36);
        match style {
            ProviderStyle::Entra => {
                assert_eq!(claims["roles"], json!(["Configuration.ReadWrite"]));
                assert_eq!(claims["tid"], demo::ENTRA_TENANT_ID);
            }
            _ => assert_eq!(claims["scope"], scope),
        }
    }
    assert_eq!(sandbox.stats().jwks_requests, 1);
}

// ----------------------------------------------------------------------- APIs

#[tokio::test]
async fn cenda_onboarding_follows_the_vendors_order_and_rules() {
    use cenda::types::TemplateType::{Issuance, Verification};
    let sandbox = Sandbox::start().await.unwrap();
    let tokens = SandboxTokens::new(sandbox.demo_client(ProviderStyle::Entra), system_clock());
    let fetches = Arc::clone(&tokens.fetches);
    let api = cenda_client(&sandbox, tokens);

    // Create: not validated yet.
    let created = api
        .create_organisation()
        .body(organisation("Acme Corporation"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let acme = created.into_inner();
    assert!(!acme.validated);
    let id = acme.organisation_id.clone();
    let other = api
        .create_organisation()
        .body(organisation("Globex"))
        .send()
        .await
        .unwrap()
        .into_inner();

    // A template before validation is refused, naming the rule.
    let (status, refused) = problem(
        api.create_credential_template()
            .organisation_id(&id)
            .body(template("Employee Badge", Issuance, &["SerialNumber"]))
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 409);
    assert!(
        refused.errors["organisationId"][0]
            .contains("only be created once the organisation is validated")
    );

    // Validation succeeds in the sandbox, and says it checked nothing.
    let validation = api
        .validate_organisation()
        .organisation_id(&id)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert!(validation.validated);
    let detail = validation.detail.unwrap();
    assert!(
        detail.contains("m2m sandbox") && detail.contains("no DNS"),
        "{detail}"
    );
    let fetched = api
        .get_organisation()
        .organisation_id(&id)
        .send()
        .await
        .unwrap();
    assert!(fetched.validated);

    // Issuance templates need at least one attribute, one named SerialNumber.
    for attributes in [&[][..], &["FullName"][..], &["serialNumber"][..]] {
        let (status, refused) = problem(
            api.create_credential_template()
                .organisation_id(&id)
                .body(template("Employee Badge", Issuance, attributes))
                .send()
                .await
                .unwrap_err(),
        );
        assert_eq!(status, 400, "{attributes:?}");
        assert_eq!(
            refused.title.as_deref(),
            Some("One or more validation errors occurred.")
        );
        assert!(
            refused.errors["attributes"][0].contains("SerialNumber"),
            "{refused:?}"
        );
    }
    let issuance = api
        .create_credential_template()
        .organisation_id(&id)
        .body(template(
            "Employee Badge",
            Issuance,
            &["SerialNumber", "FullName"],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(issuance.status().as_u16(), 201);
    let issuance = issuance.into_inner();
    assert_eq!(
        (issuance.template_type, issuance.organisation_id.as_str()),
        (Issuance, id.as_str())
    );
    // A verification template needs no SerialNumber.
    let verification = api
        .create_credential_template()
        .organisation_id(&id)
        .body(template(
            "Employee Badge Check",
            Verification,
            &["FullName"],
        ))
        .send()
        .await
        .unwrap()
        .into_inner();
    let (status, refused) = problem(
        api.create_credential_template()
            .organisation_id(&id)
            .body(template("employee badge", Issuance, &["SerialNumber"]))
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!((status, refused.errors.contains_key("name")), (409, true));

    let listed = api
        .list_credential_templates()
        .organisation_id(&id)
        .send()
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = listed
        .iter()
        .map(|t| (t.name.as_str(), t.template_type))
        .collect();
    assert_eq!(
        names,
        [
            ("Employee Badge", Issuance),
            ("Employee Badge Check", Verification)
        ]
    );
    let got = api
        .get_credential_template()
        .organisation_id(&id)
        .credential_template_id(&verification.credential_template_id)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (got.name.as_str(), got.attributes.len()),
        ("Employee Badge Check", verification.attributes.len())
    );
    let none = api
        .list_credential_templates()
        .organisation_id(&other.organisation_id)
        .send()
        .await
        .unwrap();
    assert!(none.is_empty());

    // Revocation: only what was issued, from an issuance template.
    let revoke = |template: &str, serial: &str| {
        cenda::types::RevokeCredentialRequest::builder()
            .organisation_id(id.clone())
            .credential_template_name(template)
            .serial_number(serial)
    };
    let (status, refused) = problem(
        api.revoke_credential()
            .body(revoke("Employee Badge", "never-issued"))
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (status, refused.errors.contains_key("serialNumber")),
        (404, true)
    );
    let serial = sandbox
        .issue_credential(&id, "Employee Badge", Some("SN-0001"))
        .unwrap();
    assert_eq!(serial, "SN-0001");
    for template in ["Employee Badge Check", "Visitor Pass"] {
        let (status, refused) = problem(
            api.revoke_credential()
                .body(revoke(template, &serial))
                .send()
                .await
                .unwrap_err(),
        );
        assert_eq!(
            (
                status,
                refused.errors.contains_key("credentialTemplateName")
            ),
            (404, true)
        );
    }
    for _ in 0..2 {
        let revoked = api
            .revoke_credential()
            .body(revoke("Employee Badge", &serial))
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status().as_u16(), 204);
    }
    let (status, _) = problem(
        api.revoke_credential()
            .body(revoke("Employee Badge", &serial).organisation_id("no-such-organisation"))
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 404);

    // Update replaces the details; validation stays.
    let updated = api
        .update_organisation()
        .organisation_id(&id)
        .body(cenda::types::CreateOrganisationRequest::builder().name("Acme Corporation Ltd"))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            updated.name.as_str(),
            updated.css_url.as_deref(),
            updated.validated
        ),
        ("Acme Corporation Ltd", None, true)
    );
    let all = api.list_organisations().send().await.unwrap().into_inner();
    assert_eq!(
        all.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(),
        ["Acme Corporation Ltd", "Globex"]
    );

    let deleted = api
        .delete_credential_template()
        .organisation_id(&id)
        .credential_template_id(&issuance.credential_template_id)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 204);
    api.delete_organisation()
        .organisation_id(&id)
        .send()
        .await
        .unwrap();
    let (status, gone) = problem(
        api.get_organisation()
            .organisation_id(&id)
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 404);
    assert_eq!(
        gone.detail,
        Some(format!("Organisation {id} was not found."))
    );

    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "one token serves every call"
    );
    let stats = sandbox.stats();
    assert_eq!(
        (stats.entra_token_requests, stats.cenda_api_requests),
        (1, 25)
    );
}

/// What the generated client cannot send: a data type outside the enum,
/// `null`s, and the problem details' media type.
#[tokio::test]
async fn cenda_errors_are_problem_details_naming_the_field() {
    let sandbox = Sandbox::start().await.unwrap();
    let token = access_token(
        &sandbox.demo_client(ProviderStyle::Entra),
        Some(demo::CENDA_ENTRA_SCOPE),
    )
    .await;
    let base = sandbox.cenda_api_url();
    let send = |path: String, body: Value| {
        let token = token.clone();
        async move {
            http()
                .post(path)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let response = send(format!("{base}/api/Organisation"), json!({"name": "Acme"})).await;
    let (_, organisation) = json_of(response).await;
    let id = organisation["organisationId"].as_str().unwrap().to_owned();
    send(
        format!("{base}/api/Organisation/{id}/validate"),
        Value::Null,
    )
    .await;

    let templates = format!("{base}/api/Organisation/{id}/credentialtemplate");
    let cases = [
        (
            json!({"name": "Badge", "templateType": "Issuance",
                   "attributes": [{"name": "SerialNumber", "dataType": "Text"}]}),
            "attributes[0].dataType",
        ),
        (
            json!({"name": "Badge", "templateType": "Revocation"}),
            "templateType",
        ),
        (
            json!({"templateType": "Issuance", "attributes": []}),
            "name",
        ),
        (
            json!({"name": "Badge", "templateType": "Issuance",
                   "attributes": [{"name": "SerialNumber", "dataType": "String", "authenticatorLabel": null}]}),
            "attributes[0].authenticatorLabel",
        ),
    ];
    for (body, field) in cases {
        let response = send(templates.clone(), body.clone()).await;
        let content_type = header(&response, "content-type");
        let (status, problem) = json_of(response).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(content_type, "application/problem+json; charset=utf-8");
        assert_eq!(problem["status"], 400);
        assert!(problem["errors"][field].is_array(), "{field}: {problem}");
    }
    let revoke = format!("{base}/api/Revocation/revoke");
    let response = send(revoke, json!({"organisationId": id, "serialNumber": 7})).await;
    let (status, problem) = json_of(response).await;
    assert_eq!(status, 400);
    let named: Vec<&String> = problem["errors"].as_object().unwrap().keys().collect();
    assert_eq!(named, ["credentialTemplateName", "serialNumber"]);
}

#[tokio::test]
async fn nxtsoft_validates_and_posts_transactions() {
    let sandbox = Sandbox::start().await.unwrap();
    let api = nxtsoft_client(
        &sandbox,
        SandboxTokens::new(sandbox.demo_client(ProviderStyle::Cognito), system_clock()),
    );
    let valid = api
        .post_validation_message()
        .body(accepted_transaction())
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(valid.status, nxtsoft::types::ValidationStatus::Valid);
    let codes: Vec<_> = valid
        .checks
        .iter()
        .map(|c| (c.code.as_str(), c.passed))
        .collect();
    assert!(codes.contains(&("aba_checksum", true)), "{codes:?}");

    let invalid = api
        .post_validation_message()
        .body(
            accepted_transaction()
                .routing_number("021000022")
                .currency("EUR"),
        )
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(invalid.status, nxtsoft::types::ValidationStatus::Invalid);
    let failed: Vec<_> = invalid
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.code.as_str())
        .collect();
    assert_eq!(failed, ["aba_checksum", "currency_supported"]);

    let review = api
        .post_validation_message()
        .body(accepted_transaction().amount(25_000.0))
        .send()
        .await
        .unwrap();
    assert_eq!(
        review.into_inner().status,
        nxtsoft::types::ValidationStatus::NeedsReview
    );

    let first = api
        .post_transaction()
        .idempotency_key("key-1")
        .body(accepted_transaction())
        .send()
        .await
        .unwrap();
    assert_eq!(first.status().as_u16(), 201);
    let first = first.into_inner();
    assert_eq!(first.status, nxtsoft::types::TransactionStatus::Pending);
    let again = api
        .post_transaction()
        .idempotency_key("key-1")
        .body(accepted_transaction())
        .send()
        .await
        .unwrap();
    assert_eq!(again.into_inner().transaction_id, first.transaction_id);
    let reused = api
        .post_transaction()
        .idempotency_key("key-1")
        .body(accepted_transaction().amount(1.0))
        .send()
        .await
        .unwrap_err();
    assert_eq!(reused.status().map(|s| s.as_u16()), Some(409));

    let rejected = api
        .post_transaction()
        .body(accepted_transaction().routing_number("021000022"))
        .send()
        .await
        .unwrap_err();
    match rejected {
        nxtsoft::Error::ErrorResponse(response) => {
            assert_eq!(response.status().as_u16(), 422);
            let error = response.into_inner();
            assert_eq!(error.code, "validation_failed");
            assert_eq!(error.details[0].field.as_deref(), Some("routingNumber"));
        }
        other => panic!("expected a 422 error response, got {other:?}"),
    }
    assert_eq!(sandbox.stats().nxtsoft_api_requests, 7);
}

#[tokio::test]
async fn expired_token_gets_invalid_token_and_the_client_renews_once() {
    let clock = Arc::new(ManualClock::at_fixed_date());
    let sandbox = Sandbox::builder()
        .clock(clock.clone())
        .token_lifetime(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    let client = sandbox.demo_client(ProviderStyle::Cognito);
    let token = access_token(&client, None).await;
    let url = format!("{}/transactions/mock", sandbox.nxtsoft_api_url());
    let body = serde_json::to_value(
        nxtsoft::types::TransactionRequest::try_from(accepted_transaction()).unwrap(),
    )
    .unwrap();
    let send = |token: String| {
        let url = url.clone();
        let body = body.clone();
        async move {
            http()
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(send(token.clone()).await.status().as_u16(), 200);

    clock.advance(Duration::from_secs(60));
    let response = send(token).await;
    let challenge = header(&response, "www-authenticate");
    let (status, body) = json_of(response).await;
    assert_eq!(status, 401);
    assert_eq!(
        challenge,
        "Bearer realm=\"sandbox\", error=\"invalid_token\", error_description=\"The access token expired\""
    );
    assert_eq!(body["code"], "invalid_token");

    // A source that keeps its token until rejected: the generated client's
    // hook renews once and the call succeeds.
    let mut tokens = SandboxTokens::new(client, clock.clone());
    tokens.check_expiry = false;
    let fetches = Arc::clone(&tokens.fetches);
    let api = nxtsoft_client(&sandbox, tokens);
    api.post_validation_message()
        .body(accepted_transaction())
        .send()
        .await
        .unwrap();
    clock.advance(Duration::from_secs(61));
    sandbox.reset_stats();
    let result = api
        .post_validation_message()
        .body(accepted_transaction())
        .send()
        .await
        .unwrap();
    assert_eq!(
        result.into_inner().status,
        nxtsoft::types::ValidationStatus::Valid
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    let stats = sandbox.stats();
    assert_eq!(
        (stats.cognito_token_requests, stats.nxtsoft_api_requests),
        (1, 2)
    );
}

#[tokio::test]
async fn tokens_the_api_cannot_accept_are_refused_as_rfc_6750_says() {
    let sandbox = Sandbox::start().await.unwrap();
    let url = format!("{}/transactions", sandbox.nxtsoft_api_url());
    let body = serde_json::to_value(
        nxtsoft::types::TransactionRequest::try_from(accepted_transaction()).unwrap(),
    )
    .unwrap();

    let missing = http().post(&url).json(&body).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 401);
    assert_eq!(
        header(&missing, "www-authenticate"),
        "Bearer realm=\"sandbox\", DPoP realm=\"sandbox\", algs=\"ES256\""
    );

    let mock_only = sandbox
        .demo_clients()
        .into_iter()
        .find(|c| c.client_id == demo::COGNITO_MOCK_ONLY_CLIENT_ID)
        .unwrap();
    let token = access_token(&mock_only, None).await;
    let forbidden = http()
        .post(&url)
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let challenge = header(&forbidden, "www-authenticate");
    let (status, error) = json_of(forbidden).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (403, Some("insufficient_scope"))
    );
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(
        challenge.ends_with("scope=\"transactions/post\""),
        "{challenge}"
    );

    // A Cenda token on NXTsoft: wrong audience.
    let entra = access_token(
        &sandbox.demo_client(ProviderStyle::Entra),
        Some(demo::CENDA_ENTRA_SCOPE),
    )
    .await;
    let response = http()
        .post(&url)
        .bearer_auth(&entra)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert!(
        header(&response, "www-authenticate")
            .contains("The access token is not meant for this API")
    );

    // A token from another sandbox: its key is not this one's.
    let other = Sandbox::start().await.unwrap();
    let foreign = access_token(&other.demo_client(ProviderStyle::Cognito), None).await;
    let response = http()
        .post(&url)
        .bearer_auth(&foreign)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert!(header(&response, "www-authenticate").contains(
        "error=\"invalid_token\", error_description=\"The access token signature is invalid\""
    ));

    let cenda = format!("{}/api/Organisation", sandbox.cenda_api_url());
    let response = http()
        .get(&cenda)
        .bearer_auth("not-a-jwt")
        .send()
        .await
        .unwrap();
    let challenge = header(&response, "www-authenticate");
    let (status, problem) = json_of(response).await;
    assert_eq!((status, problem["status"].as_i64()), (401, Some(401)));
    assert_eq!(problem["title"], "Unauthorized");
    assert!(challenge.contains("error=\"invalid_token\""));
}

#[tokio::test]
async fn bodies_that_break_the_schema_get_400_in_the_specs_error_schema() {
    let sandbox = Sandbox::start().await.unwrap();
    let cenda_token = access_token(
        &sandbox.demo_client(ProviderStyle::Entra),
        Some(demo::CENDA_ENTRA_SCOPE),
    )
    .await;
    let url = format!("{}/api/Organisation", sandbox.cenda_api_url());
    let cases = [
        (json!({"cssUrl": "https://www.acme.example/qr.css"}), "name"),
        (json!({"name": 5}), "name"),
        (json!({"name": "Acme", "roundLogo": null}), "roundLogo"),
    ];
    for (body, field) in cases {
        let response = http()
            .post(&url)
            .bearer_auth(&cenda_token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, problem) = json_of(response).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(problem["status"], 400);
        assert_eq!(problem["title"], "One or more validation errors occurred.");
        assert!(problem["errors"][field].is_array(), "{field}: {problem}");
    }
    // The generated clients send `api-version: <info.version>`; the
    // documents declare no such parameter, so the sandbox holds no value of
    // it against the caller.
    let response = http()
        .get(&url)
        .bearer_auth(&cenda_token)
        .header("api-version", "2.0")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    let url = format!("{}/transactions/mock", sandbox.nxtsoft_api_url());
    let token = access_token(&sandbox.demo_client(ProviderStyle::Cognito), None).await;
    let bad = json!({"accountNumber": "000123456789", "routingNumber": "12345", "amount": 1.0,
                     "currency": "USD", "transactionType": "Credit", "reference": "x"});
    let (status, error) = json_of(
        http()
            .post(&url)
            .bearer_auth(&token)
            .json(&bad)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (400, Some("invalid_request"))
    );
    assert_eq!(error["details"][0]["field"], "routingNumber");
    assert_eq!(sandbox.stats().nxtsoft_api_requests, 1);
}

#[tokio::test]
async fn every_operation_in_both_specs_has_a_route() {
    let sandbox = Sandbox::start().await.unwrap();
    let mut sent = 0;
    for (spec, base) in [
        (cenda::OPENAPI_JSON, sandbox.cenda_api_url()),
        (nxtsoft::OPENAPI_JSON, sandbox.nxtsoft_api_url()),
    ] {
        let spec: Value = serde_json::from_str(spec).unwrap();
        for (path, item) in spec["paths"].as_object().unwrap() {
            for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
                if item.get(method).is_none() {
                    continue;
                }
                let concrete = path
                    .split('/')
                    .map(|segment| {
                        if segment.starts_with('{') {
                            "3fa85f64-5717-4562-b3fc-2c963f66afa6"
                        } else {
                            segment
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("/");
                let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let response = http()
                    .request(method.clone(), format!("{base}{concrete}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status().as_u16(), 401, "{method} {path}");
                assert_eq!(
                    header(&response, "www-authenticate"),
                    "Bearer realm=\"sandbox\", DPoP realm=\"sandbox\", algs=\"ES256\""
                );
                sent += 1;
            }
        }
    }
    assert_eq!(sent, 13);
    assert_eq!(sandbox.stats().api_requests(), 13);
    let unknown = http()
        .get(format!("{}/api/Nothing", sandbox.cenda_api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
}

// ----------------------------------------------------------------- the knobs

#[tokio::test]
async fn fault_knobs_throttle_fail_garble_and_shorten_lifetimes() {
    let sandbox = Sandbox::builder().seed(7).start().await.unwrap();
    let client = sandbox.demo_client(ProviderStyle::Cognito);
    let form = body_form(&client);
    let request = || http().post(&client.token_url).form(&form).send();

    sandbox.faults().throttle_next(2, Duration::from_secs(30));
    for _ in 0..2 {
        let response = request().await.unwrap();
        assert_eq!(response.status().as_u16(), 429);
        assert_eq!(header(&response, "retry-after"), "30");
    }
    assert_eq!(request().await.unwrap().status().as_u16(), 200);

    sandbox.faults().fail_next(1, 502);
    let response = request().await.unwrap();
    assert_eq!(response.status().as_u16(), 502);
    assert!(header(&response, "content-type").starts_with("text/html"));

    sandbox.faults().garble_next(2, GarbageBody::TruncatedJson);
    let garbled = request().await.unwrap();
    assert_eq!(garbled.status().as_u16(), 200);
    assert!(
        garbled.json::<Value>().await.is_err(),
        "truncated JSON does not parse"
    );
    sandbox.faults().update(|f| f.garbage = GarbageBody::Html);
    let html = request().await.unwrap().text().await.unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));

    sandbox.faults().set_failure_rate(1.0);
    assert_eq!(request().await.unwrap().status().as_u16(), 500);
    sandbox.faults().set_failure_rate(0.0);

    sandbox
        .faults()
        .set_token_lifetime(Some(Duration::from_secs(5)));
    let (_, body) = json_of(request().await.unwrap()).await;
    assert_eq!(body["expires_in"], 5);

    // API routes only when asked.
    let token = body["access_token"].as_str().unwrap().to_owned();
    let api_url = format!("{}/transactions/mock", sandbox.nxtsoft_api_url());
    let tx = serde_json::to_value(
        nxtsoft::types::TransactionRequest::try_from(accepted_transaction()).unwrap(),
    )
    .unwrap();
    sandbox.faults().throttle_next(1, Duration::from_secs(30));
    sandbox.faults().update(|f| f.include_api_routes = true);
    let throttled = http()
        .post(&api_url)
        .bearer_auth(&token)
        .json(&tx)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&throttled, "retry-after"), "30");
    let (status, error) = json_of(throttled).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (429, Some("rate_limited"))
    );
    sandbox.faults().clear();
    assert_eq!(
        http()
            .post(&api_url)
            .bearer_auth(&token)
            .json(&tx)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );

    let stats = sandbox.stats();
    assert_eq!(stats.faults_injected, 7);
    assert_eq!((stats.cognito_token_requests, stats.tokens_issued), (8, 2));
    assert_eq!(stats.nxtsoft_api_requests, 2);
}

#[tokio::test]
async fn stats_count_each_endpoint_and_reset() {
    let sandbox = Sandbox::start().await.unwrap();
    for style in ProviderStyle::ALL {
        let scope = (style == ProviderStyle::Entra).then_some(demo::CENDA_ENTRA_SCOPE);
        access_token(&sandbox.demo_client(style), scope).await;
    }
    http()
        .get(sandbox.oidc_discovery_url())
        .send()
        .await
        .unwrap();
    http().get(sandbox.jwks_url()).send().await.unwrap();
    http()
        .get(format!("{}/api/Organisation", sandbox.cenda_api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        sandbox.stats(),
        SandboxStats {
            entra_token_requests: 1,
            cognito_token_requests: 1,
            identityserver_token_requests: 1,
            oidc_token_requests: 1,
            tokens_issued: 4,
            discovery_requests: 1,
            jwks_requests: 1,
            cenda_api_requests: 1,
            nxtsoft_api_requests: 0,
            faults_injected: 0,
        }
    );
    sandbox.reset_stats();
    assert_eq!(sandbox.stats(), SandboxStats::default());
}

#[tokio::test]
async fn summary_names_every_url_and_demo_credential() {
    let sandbox = Sandbox::start().await.unwrap();
    let text = sandbox.to_string();
    for url in [
        sandbox.cenda_api_url(),
        sandbox.nxtsoft_api_url(),
        sandbox.oidc_discovery_url(),
        sandbox.jwks_url(),
        sandbox.sequel_authentication_server_url(),
        sandbox.entra_token_url(demo::ENTRA_TENANT_ID),
        sandbox.cognito_token_url(),
        sandbox.identityserver_token_url(),
    ] {
        assert!(text.contains(&url), "{url} missing from:\n{text}");
    }
    let clients = sandbox.demo_clients();
    assert_eq!(clients.len(), 6);
    for client in &clients {
        assert!(text.contains(client.client_id) && text.contains(client.client_secret));
    }
}

#[tokio::test]
async fn shutdown_stops_listening_and_drop_does_too() {
    let sandbox = Sandbox::start().await.unwrap();
    let url = sandbox.jwks_url();
    assert_eq!(
        http().get(&url).send().await.unwrap().status().as_u16(),
        200
    );
    sandbox.shutdown().await.unwrap();
    assert!(http().get(&url).send().await.is_err());

    let sandbox = Sandbox::builder().port(0).start().await.unwrap();
    let address = sandbox.address();
    assert!(address.ip().is_loopback());
    drop(sandbox);
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(address).await.is_err() {
            refused = true;
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(refused, "the listener closes after drop");
}

#[tokio::test]
async fn a_busy_port_is_a_bind_error() {
    let sandbox = Sandbox::start().await.unwrap();
    let taken = sandbox.address().port();
    let error = Sandbox::builder().port(taken).start().await.unwrap_err();
    assert!(
        matches!(error, m2m::sandbox::SandboxError::Bind { port, .. } if port == taken),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn latency_delays_token_responses_but_not_api_routes_by_default() {
    let sandbox = Sandbox::start().await.unwrap();
    sandbox.faults().set_latency(Duration::from_secs(30));
    let client = sandbox.demo_client(ProviderStyle::Cognito);
    let started = tokio::time::Instant::now();
    let token = access_token(&client, None).await;
    let token_wait = started.elapsed();
    assert!(token_wait >= Duration::from_secs(30), "{token_wait:?}");

    let started = tokio::time::Instant::now();
    let url = format!("{}/transactions/mock", sandbox.nxtsoft_api_url());
    let tx = serde_json::to_value(
        nxtsoft::types::TransactionRequest::try_from(accepted_transaction()).unwrap(),
    )
    .unwrap();
    let response = http()
        .post(&url)
        .bearer_auth(&token)
        .json(&tx)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(sandbox.faults().get().latency, Duration::from_secs(30));
}

/// Workload identity federation: the sandbox's federated client takes the
/// workload token the sandbox signed (signature, issuer and subject of the
/// federated credential, audience, expiry), through m2m's client assertion
/// read from a file; and refuses what Entra refuses, with its codes.
#[tokio::test]
async fn the_federated_client_takes_a_workload_token_as_its_client_assertion() {
    let clock = Arc::new(ManualClock::new(std::time::SystemTime::now()));
    let sandbox = Sandbox::builder()
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    let token_url = sandbox.entra_token_url(demo::ENTRA_TENANT_ID);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sandbox-federated-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("azure-identity-token");
    std::fs::write(
        &file,
        sandbox.federated_token(Duration::from_secs(600)).unwrap(),
    )
    .unwrap();
    let endpoint = m2m::auth::TokenEndpoint::builder(
        m2m::provider::Provider::cenda(demo::ENTRA_TENANT_ID, demo::CENDA_GATEWAY_CLIENT_ID)
            .with_authority_host(url::Url::parse(sandbox.base_url()).unwrap()),
        demo::FEDERATED_CLIENT_ID,
        m2m::auth::ClientCredential::assertion_file(&file),
    )
    .clock(clock.clone())
    .build()
    .unwrap();
    let auth = Auth::new(endpoint, &m2m::auth::TokenCache::in_memory());
    let cenda = cenda::Client::new(&sandbox.cenda_api_url(), auth);
    cenda.list_organisations().send().await.unwrap();

    let assertion_form = |assertion: &str| {
        vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", demo::FEDERATED_CLIENT_ID.to_owned()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
            ),
            ("client_assertion", assertion.to_owned()),
            ("scope", demo::CENDA_ENTRA_SCOPE.to_owned()),
        ]
    };
    let refused = |form: Vec<(&'static str, String)>| {
        let token_url = token_url.clone();
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            json_of(post_form(&token_url, &form).await).await
        }
    };
    // Expired on the sandbox's clock: AADSTS700024.
    let short = sandbox.federated_token(Duration::from_secs(60)).unwrap();
    clock.advance(Duration::from_secs(61));
    let (status, body) = refused(assertion_form(&short)).await;
    assert_eq!(
        (status, body["error_codes"].clone()),
        (401, json!([700024])),
        "{body}"
    );
    // Not signed by the sandbox's key: AADSTS700027.
    let fresh = sandbox.federated_token(Duration::from_secs(600)).unwrap();
    let (head, _) = fresh.rsplit_once('.').unwrap();
    let (status, body) = refused(assertion_form(&format!("{head}.c2lnbmF0dXJl"))).await;
    assert_eq!(
        (status, body["error_codes"].clone()),
        (401, json!([700027])),
        "{body}"
    );
    // An assertion and a secret together: refused.
    let mut form = assertion_form(&fresh);
    form.push(("client_secret", "extra".to_owned()));
    let (status, _) = refused(form).await;
    assert_eq!(status, 400, "an assertion and a secret together");
    // The federated client has no secret to send.
    let (status, body) = refused(vec![
        ("grant_type", "client_credentials".to_owned()),
        ("client_id", demo::FEDERATED_CLIENT_ID.to_owned()),
        ("client_secret", "guess".to_owned()),
        ("scope", demo::CENDA_ENTRA_SCOPE.to_owned()),
    ])
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = refused(assertion_form(&fresh)).await;
    assert_eq!(status, 200, "{body}");
    sandbox.shutdown().await.unwrap();
}
