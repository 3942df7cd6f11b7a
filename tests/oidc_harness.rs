//! Proves the oidc-provider harness with plain reqwest requests, and pins down how the
//! provider (panva's `oidc-provider`, OpenID-certified) answers client credentials requests:
//! these are the facts m2m's token layer has to meet.

#[path = "support/oidc_provider.rs"]
mod oidc_provider;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, Header};
use oidc_provider::{API_RESOURCE, ClientSpec, OidcProvider, ProviderOptions, TestKey};
use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, HeaderMap, WWW_AUTHENTICATE};
use serde_json::{Value, json};

/// Client id and secret full of characters that form-urlencoding changes (RFC 6749 §2.3.1
/// asks for it before Basic's base64): `:` `/` `@` `+` `%` `&` `=`.
const RESERVED_ID: &str = "client:with/reserved@chars";
const RESERVED_SECRET: &str = "p@ss:w+rd/%&=";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

struct TokenResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl TokenResponse {
    fn access_token(&self) -> &str {
        self.body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token: {}", self.body))
    }

    fn error(&self) -> (&str, &str) {
        (
            self.body["error"].as_str().unwrap_or_default(),
            self.body["error_description"].as_str().unwrap_or_default(),
        )
    }
}

/// How the request authenticates; the form always carries `grant_type=client_credentials`.
enum Credentials<'a> {
    /// `Authorization: Basic base64(user:password)` with the parts exactly as given.
    Basic(&'a str, &'a str),
    /// Nothing beyond the form fields the test passes.
    FormOnly,
}

fn form_urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

async fn request_token(
    provider: &OidcProvider,
    credentials: Credentials<'_>,
    form: &[(&str, &str)],
) -> TokenResponse {
    let mut fields = vec![("grant_type", "client_credentials")];
    fields.extend_from_slice(form);
    let mut request = reqwest::Client::new()
        .post(provider.token_url())
        .form(&fields);
    if let Credentials::Basic(user, password) = credentials {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.expect("token request is answered");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json().await.expect("token endpoint answers JSON");
    TokenResponse {
        status,
        headers,
        body,
    }
}

/// Introspects `token` as `client_id`, a client whose secret is `right`.
async fn introspect(provider: &OidcProvider, client_id: &str, token: &str) -> Value {
    let form = [
        ("client_id", client_id),
        ("client_secret", "right"),
        ("token", token),
    ];
    let response = reqwest::Client::new()
        .post(provider.introspection_url())
        .form(&form)
        .send()
        .await
        .expect("introspection is answered");
    response.json().await.expect("introspection answers JSON")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// A `private_key_jwt` client assertion (RFC 7523 §3): iss = sub = client_id, aud, jti, exp.
fn client_assertion(key: &TestKey, client_id: &str, audience: &str) -> String {
    let mut header = Header::new(key.algorithm());
    header.kid = Some(key.kid().to_owned());
    let now = unix_now();
    let claims = json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": uuid::Uuid::new_v4().to_string(),
        "iat": now,
        "exp": now + 60,
    });
    jsonwebtoken::encode(&header, &claims, key.encoding_key()).expect("sign the client assertion")
}

#[tokio::test]
async fn discovery_lists_token_endpoint_jwks_and_client_auth_methods() {
    let provider = OidcProvider::start(&[ClientSpec::secret_post("post-client", "s3cret")]).await;

    let issuer = provider.issuer();
    assert!(issuer.starts_with("http://127.0.0.1:"), "{issuer}");
    assert_eq!(provider.discovery()["issuer"], issuer);
    assert_eq!(provider.token_url(), format!("{issuer}/token"));
    assert_eq!(provider.jwks_url(), format!("{issuer}/jwks"));
    assert_eq!(
        provider.introspection_url(),
        format!("{issuer}/token/introspection")
    );
    let grant_types = provider.discovery()["grant_types_supported"]
        .as_array()
        .expect("grant types");
    assert!(
        grant_types.contains(&json!("client_credentials")),
        "{grant_types:?}"
    );
    assert_eq!(
        provider.discovery()["token_endpoint_auth_methods_supported"],
        json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt"
        ])
    );
    let jwks = provider.jwks().await;
    let kids: Vec<_> = jwks
        .keys
        .iter()
        .filter_map(|key| key.common.key_id.as_deref())
        .collect();
    assert_eq!(kids, ["rsa-1", "ec-1"]);
}

#[tokio::test]
async fn basic_with_form_urlencoded_reserved_characters_gets_a_verifiable_jwt() {
    let provider =
        OidcProvider::start(&[ClientSpec::secret_basic(RESERVED_ID, RESERVED_SECRET)]).await;

    let (user, password) = (form_urlencode(RESERVED_ID), form_urlencode(RESERVED_SECRET));
    assert_eq!(password, "p%40ss%3Aw%2Brd%2F%25%26%3D");
    let response = request_token(
        &provider,
        Credentials::Basic(&user, &password),
        &[("scope", "api:read api:write"), ("resource", API_RESOURCE)],
    )
    .await;

    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.headers[CACHE_CONTROL], "no-store");
    assert_eq!(response.body["token_type"], "Bearer");
    assert_eq!(response.body["expires_in"], 600);
    assert_eq!(response.body["scope"], "api:read api:write");
    let header = jsonwebtoken::decode_header(response.access_token()).expect("a JWT");
    assert_eq!(
        (header.alg, header.typ.as_deref(), header.kid.as_deref()),
        (Algorithm::RS256, Some("at+jwt"), Some("rsa-1"))
    );
    let claims = provider
        .verify_access_token(response.access_token(), API_RESOURCE)
        .await;
    assert_eq!(claims["iss"], provider.issuer());
    assert_eq!(claims["aud"], API_RESOURCE);
    assert_eq!(claims["client_id"], RESERVED_ID);
    assert_eq!(claims["sub"], RESERVED_ID);
    assert_eq!(claims["scope"], "api:read api:write");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        600
    );
}

#[tokio::test]
async fn basic_with_raw_reserved_characters_is_rejected() {
    let provider = OidcProvider::start(&[
        ClientSpec::secret_basic(RESERVED_ID, RESERVED_SECRET),
        ClientSpec::secret_basic("plain-id", "plus+sign"),
    ])
    .await;

    // Raw: the server splits at the first ':' (inside the id), then percent-decodes, and the
    // bare '%' in the secret cannot be decoded.
    let raw = request_token(
        &provider,
        Credentials::Basic(RESERVED_ID, RESERVED_SECRET),
        &[],
    )
    .await;
    assert_eq!(raw.status, StatusCode::BAD_REQUEST, "{}", raw.body);
    assert_eq!(
        raw.error(),
        (
            "invalid_request",
            "client_id and client_secret in the authorization header are not properly encoded"
        )
    );

    // A raw '+' is decoded as a space, so the secret no longer matches.
    let plus = request_token(&provider, Credentials::Basic("plain-id", "plus+sign"), &[]).await;
    assert_eq!(plus.status, StatusCode::UNAUTHORIZED, "{}", plus.body);
    assert_eq!(
        plus.error(),
        ("invalid_client", "client authentication failed")
    );

    let encoded = request_token(
        &provider,
        Credentials::Basic("plain-id", &form_urlencode("plus+sign")),
        &[],
    )
    .await;
    assert_eq!(encoded.status, StatusCode::OK, "{}", encoded.body);
}

#[tokio::test]
async fn post_client_gets_a_jwt_for_the_requested_resource() {
    let provider =
        OidcProvider::start(&[ClientSpec::secret_post(RESERVED_ID, RESERVED_SECRET)]).await;

    let response = request_token(
        &provider,
        Credentials::FormOnly,
        &[
            ("client_id", RESERVED_ID),
            ("client_secret", RESERVED_SECRET),
            ("scope", "api:write"),
            ("resource", API_RESOURCE),
        ],
    )
    .await;

    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.body["scope"], "api:write");
    let claims = provider
        .verify_access_token(response.access_token(), API_RESOURCE)
        .await;
    assert_eq!(
        (claims["client_id"].as_str(), claims["scope"].as_str()),
        (Some(RESERVED_ID), Some("api:write"))
    );
}

#[tokio::test]
async fn private_key_jwt_accepts_token_endpoint_or_issuer_as_audience_and_rejects_replays() {
    let (rsa, ec) = (TestKey::rsa("client-rsa"), TestKey::ec_p256("client-ec"));
    assert!(
        rsa.private_key_pem()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    let provider = OidcProvider::start(&[
        ClientSpec::private_key_jwt("jwt-rsa", &rsa),
        ClientSpec::private_key_jwt("jwt-ec", &ec),
    ])
    .await;
    let provider = &provider;
    let with_assertion = |client_id: &'static str, assertion: String| async move {
        let form = [
            ("client_id", client_id),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion.as_str()),
            ("scope", "api:read"),
            ("resource", API_RESOURCE),
        ];
        request_token(provider, Credentials::FormOnly, &form).await
    };

    let to_token_endpoint = client_assertion(&rsa, "jwt-rsa", provider.token_url());
    let response = with_assertion("jwt-rsa", to_token_endpoint.clone()).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let claims = provider
        .verify_access_token(response.access_token(), API_RESOURCE)
        .await;
    assert_eq!(
        (claims["client_id"].as_str(), claims["scope"].as_str()),
        (Some("jwt-rsa"), Some("api:read"))
    );

    let to_issuer =
        with_assertion("jwt-ec", client_assertion(&ec, "jwt-ec", provider.issuer())).await;
    assert_eq!(to_issuer.status, StatusCode::OK, "{}", to_issuer.body);

    let replayed = with_assertion("jwt-rsa", to_token_endpoint).await;
    assert_eq!(
        replayed.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        replayed.body
    );
    assert_eq!(replayed.error().0, "invalid_client");
    assert!(replayed.headers.get(WWW_AUTHENTICATE).is_none());

    let wrong_audience =
        with_assertion("jwt-rsa", client_assertion(&rsa, "jwt-rsa", API_RESOURCE)).await;
    assert_eq!(
        wrong_audience.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        wrong_audience.body
    );

    let signed_by_other_key = with_assertion(
        "jwt-rsa",
        client_assertion(&ec, "jwt-rsa", provider.token_url()),
    )
    .await;
    assert_eq!(
        signed_by_other_key.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        signed_by_other_key.body
    );
    assert!(
        provider.logs().contains("grant.error: 401 invalid_client"),
        "{}",
        provider.logs()
    );
}

#[tokio::test]
async fn wrong_secret_is_401_invalid_client_with_a_basic_challenge_only_for_basic() {
    let provider = OidcProvider::start(&[
        ClientSpec::secret_basic("basic-client", "right"),
        ClientSpec::secret_post("post-client", "right"),
    ])
    .await;

    let basic = request_token(&provider, Credentials::Basic("basic-client", "wrong"), &[]).await;
    assert_eq!(basic.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        basic.error(),
        ("invalid_client", "client authentication failed")
    );
    let issuer = provider.issuer();
    assert_eq!(
        basic.headers[WWW_AUTHENTICATE],
        format!(
            r#"Basic realm="{issuer}", error="invalid_client", error_description="client authentication failed""#
        )
    );

    let post = request_token(
        &provider,
        Credentials::FormOnly,
        &[("client_id", "post-client"), ("client_secret", "wrong")],
    )
    .await;
    assert_eq!(post.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        post.error(),
        ("invalid_client", "client authentication failed")
    );
    assert!(post.headers.get(WWW_AUTHENTICATE).is_none());

    let unknown = request_token(&provider, Credentials::Basic("nobody", "right"), &[]).await;
    assert_eq!(
        (unknown.status, unknown.error().0),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
}

#[tokio::test]
async fn scopes_unknown_are_dropped_known_but_not_allowed_are_invalid_scope() {
    let provider = OidcProvider::start(&[
        ClientSpec::secret_basic("basic-client", "right").default_resource(API_RESOURCE)
    ])
    .await;
    let provider = &provider;
    let ask = |scope: Option<&'static str>| {
        let form: Vec<_> = scope.map(|scope| ("scope", scope)).into_iter().collect();
        async move { request_token(provider, Credentials::Basic("basic-client", "right"), &form).await }
    };

    let unknown = ask(Some("api:read bogus")).await;
    assert_eq!(unknown.status, StatusCode::OK, "{}", unknown.body);
    assert_eq!(unknown.body["scope"], "api:read");

    let not_allowed = ask(Some("api:read api:admin")).await;
    assert_eq!(not_allowed.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        not_allowed.error(),
        ("invalid_scope", "requested scope is not allowed")
    );
    assert_eq!(not_allowed.body["scope"], "api:admin");

    // No scope asked, none granted: the response has no `scope`, the token no scope claim.
    let none = ask(None).await;
    assert_eq!(none.status, StatusCode::OK, "{}", none.body);
    assert!(none.body.get("scope").is_none(), "{}", none.body);
    let claims = provider
        .verify_access_token(none.access_token(), API_RESOURCE)
        .await;
    assert!(claims.get("scope").is_none(), "{claims}");
}

#[tokio::test]
async fn token_format_follows_the_resource() {
    let provider = OidcProvider::start(&[
        ClientSpec::secret_post("no-default", "right"),
        ClientSpec::secret_post("with-default", "right").default_resource(API_RESOURCE),
    ])
    .await;
    let provider = &provider;
    let ask = |client_id: &'static str, resource: Option<&'static str>| async move {
        let mut form = vec![
            ("client_id", client_id),
            ("client_secret", "right"),
            ("scope", "api:read"),
        ];
        form.extend(resource.map(|resource| ("resource", resource)));
        request_token(provider, Credentials::FormOnly, &form).await
    };

    // Without any resource the token is opaque; only opaque tokens can be introspected.
    let opaque = ask("no-default", None).await;
    assert_eq!(opaque.status, StatusCode::OK, "{}", opaque.body);
    assert!(
        jsonwebtoken::decode_header(opaque.access_token()).is_err(),
        "{}",
        opaque.access_token()
    );
    assert_eq!(opaque.body["scope"], "api:read");
    let introspected = introspect(provider, "no-default", opaque.access_token()).await;
    assert_eq!(introspected["active"], true, "{introspected}");
    assert_eq!(introspected["client_id"], "no-default");
    assert_eq!(introspected["scope"], "api:read");

    let defaulted = ask("with-default", None).await;
    assert_eq!(defaulted.status, StatusCode::OK, "{}", defaulted.body);
    let claims = provider
        .verify_access_token(defaulted.access_token(), API_RESOURCE)
        .await;
    assert_eq!(claims["scope"], "api:read");
    let refused = introspect(provider, "with-default", defaulted.access_token()).await;
    assert_eq!(refused["error"], "unsupported_token_type", "{refused}");

    let unknown = ask("no-default", Some("https://elsewhere.test/")).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.error().0, "invalid_target");
}

#[tokio::test]
async fn one_client_authentication_method_per_request_and_form_bodies_only() {
    let provider = OidcProvider::start(&[ClientSpec::secret_basic("basic-client", "right")]).await;

    let both = request_token(
        &provider,
        Credentials::Basic("basic-client", "right"),
        &[("client_id", "basic-client"), ("client_secret", "right")],
    )
    .await;
    assert_eq!(both.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        both.error(),
        (
            "invalid_request",
            "client authentication must only be provided using one mechanism"
        )
    );

    // Basic and post are interchangeable for secret clients: the registered method is not enforced.
    let posted = request_token(
        &provider,
        Credentials::FormOnly,
        &[("client_id", "basic-client"), ("client_secret", "right")],
    )
    .await;
    assert_eq!(posted.status, StatusCode::OK, "{}", posted.body);

    let json_body = reqwest::Client::new()
        .post(provider.token_url())
        .basic_auth("basic-client", Some("right"))
        .json(&json!({ "grant_type": "client_credentials" }))
        .send()
        .await
        .expect("answered");
    assert_eq!(json_body.status(), StatusCode::BAD_REQUEST);
    let body: Value = json_body.json().await.expect("JSON error");
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(
        body["error_description"],
        "only application/x-www-form-urlencoded content-type bodies are supported on POST /token"
    );
}

#[tokio::test]
async fn es256_access_tokens_and_short_lifetimes_are_configurable() {
    let options = ProviderOptions {
        access_token_ttl: Duration::from_secs(5),
        access_token_alg: Algorithm::ES256,
        ..ProviderOptions::default()
    };
    let clients = [ClientSpec::secret_post("post-client", "right").default_resource(API_RESOURCE)];
    let provider = OidcProvider::start_with(&clients, &options).await;

    let response = request_token(
        &provider,
        Credentials::FormOnly,
        &[
            ("client_id", "post-client"),
            ("client_secret", "right"),
            ("scope", "api:read"),
        ],
    )
    .await;

    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.body["expires_in"], 5);
    let header = jsonwebtoken::decode_header(response.access_token()).expect("a JWT");
    assert_eq!(
        (header.alg, header.kid.as_deref()),
        (Algorithm::ES256, Some("ec-1"))
    );
    let claims = provider
        .verify_access_token(response.access_token(), API_RESOURCE)
        .await;
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        5
    );
}
