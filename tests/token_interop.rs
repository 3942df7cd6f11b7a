//! The token endpoint against a real, OpenID-certified server: panva's
//! `oidc-provider` on loopback (see `tests/support/oidc_provider.rs`). Every
//! client-authentication method gets a token the server signed, through
//! discovery; what a strict server must refuse comes back as a typed error,
//! without retries.

#[path = "support/oidc_provider.rs"]
mod oidc_provider;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use m2m::auth::clock::{Clock, ManualClock};
use m2m::auth::{
    AuthError, ClientAuthMethod, ClientCredential, FetchToken, KeyIdentifier, PrivateKeyJwt,
    SigningAlgorithm, TokenEndpoint,
};
use m2m::provider::Provider;
use oidc_provider::{API_RESOURCE, ClientSpec, OidcProvider, TestKey};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// Characters that RFC 6749 §2.3.1 encoding changes: `:` `/` `@` `+` `%` `&` `=`.
const RESERVED_ID: &str = "client:with/reserved@chars";
const RESERVED_SECRET: &str = "p@ss:w+rd/%&=";

fn endpoint(
    provider: &OidcProvider,
    clock: &Arc<ManualClock>,
    client_id: &str,
    credential: ClientCredential,
    method: ClientAuthMethod,
    scopes: &str,
) -> TokenEndpoint {
    let discovery = Url::parse(&provider.discovery_url()).unwrap();
    TokenEndpoint::builder(Provider::custom_discovery(discovery), client_id, credential)
        .client_auth(method)
        .scopes([scopes])
        .resource(API_RESOURCE)
        .clock(clock.clone())
        .build()
        .unwrap()
}

/// A manual clock that starts at the real time: the server checks the
/// assertions' `iat`/`exp` against its own clock.
fn real_time_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(SystemTime::now()))
}

fn key_credential(key: &TestKey, algorithm: SigningAlgorithm) -> ClientCredential {
    PrivateKeyJwt::from_pem(
        &SecretString::from(key.private_key_pem()),
        algorithm,
        KeyIdentifier::Kid(key.kid().to_owned()),
    )
    .unwrap()
    .into()
}

#[tokio::test]
async fn every_client_auth_method_gets_a_token_the_server_signed() {
    let rsa = TestKey::rsa("rsa-key");
    let ec = TestKey::ec_p256("ec-key");
    let provider = OidcProvider::start(&[
        ClientSpec::secret_basic(RESERVED_ID, RESERVED_SECRET),
        ClientSpec::secret_post("post-client", RESERVED_SECRET),
        ClientSpec::private_key_jwt("rsa-client", &rsa),
        ClientSpec::private_key_jwt("ec-client", &ec),
    ])
    .await;
    let clock = real_time_clock();
    let cases = [
        (
            RESERVED_ID,
            ClientCredential::secret(RESERVED_SECRET),
            ClientAuthMethod::ClientSecretBasic,
        ),
        (
            "post-client",
            ClientCredential::secret(RESERVED_SECRET),
            ClientAuthMethod::ClientSecretPost,
        ),
        (
            "rsa-client",
            key_credential(&rsa, SigningAlgorithm::RS256),
            ClientAuthMethod::PrivateKeyJwt,
        ),
        (
            "ec-client",
            key_credential(&ec, SigningAlgorithm::ES256),
            ClientAuthMethod::PrivateKeyJwt,
        ),
    ];
    for (client_id, credential, method) in cases {
        let endpoint = endpoint(&provider, &clock, client_id, credential, method, "api:read");
        let token = endpoint
            .fetch()
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}\n{}", provider.logs()));
        let claims = provider
            .verify_access_token(token.secret().expose_secret(), API_RESOURCE)
            .await;
        assert_eq!(claims["client_id"], client_id, "{method}");
        assert_eq!(claims["scope"], "api:read", "{method}");
        assert_eq!(token.token_type(), "Bearer");
        assert_eq!(
            token.expires_at(),
            clock.now() + Duration::from_secs(600),
            "{method}"
        );
        assert_eq!(endpoint.identity().authority, provider.discovery_url());
    }
    assert!(clock.sleeps().is_empty(), "no request was retried");
}

#[tokio::test]
async fn a_strict_server_refuses_with_typed_errors_that_are_not_retried() {
    let provider = OidcProvider::start(&[
        ClientSpec::secret_basic(RESERVED_ID, RESERVED_SECRET),
        ClientSpec::secret_basic("plain-client", "right"),
    ])
    .await;
    let clock = real_time_clock();
    let refused = |client_id: &str, secret: &str, method: ClientAuthMethod, scopes: &str| {
        let endpoint = endpoint(
            &provider,
            &clock,
            client_id,
            ClientCredential::secret(secret),
            method,
            scopes,
        );
        async move { endpoint.fetch().await.unwrap_err() }
    };

    // The raw pair cannot be decoded: why the unencoded switch is off by default.
    let raw = refused(
        RESERVED_ID,
        RESERVED_SECRET,
        ClientAuthMethod::ClientSecretBasicUnencoded,
        "api:read",
    )
    .await;
    assert_eq!(raw.status(), Some(http::StatusCode::BAD_REQUEST), "{raw}");
    assert_eq!(raw.oauth_error().unwrap().error, "invalid_request");

    // Two mechanisms at once (Apiture's way) are refused by a strict server.
    let both = refused(
        "plain-client",
        "right",
        ClientAuthMethod::ClientSecretBasicAndPost,
        "api:read",
    )
    .await;
    assert_eq!(
        both.oauth_error().unwrap().error_description.as_deref(),
        Some("client authentication must only be provided using one mechanism")
    );

    let wrong = refused(
        "plain-client",
        "wrong",
        ClientAuthMethod::ClientSecretBasic,
        "api:read",
    )
    .await;
    assert_eq!(wrong.status(), Some(http::StatusCode::UNAUTHORIZED));
    assert_eq!(wrong.oauth_error().unwrap().error, "invalid_client");
    assert!(
        wrong
            .to_string()
            .contains("Check the client id and the client secret"),
        "{wrong}"
    );
    assert!(!wrong.to_string().contains("wrong"), "{wrong}");

    let scope = refused(
        "plain-client",
        "right",
        ClientAuthMethod::ClientSecretBasic,
        "api:admin",
    )
    .await;
    assert_eq!(scope.oauth_error().unwrap().error, "invalid_scope");
    assert!(scope.to_string().contains("Check the scope"), "{scope}");

    for error in [&raw, &both, &wrong, &scope] {
        assert!(matches!(error, AuthError::Rejected(_)), "{error:?}");
        assert!(!error.is_retryable(), "{error}");
    }
    assert!(clock.sleeps().is_empty(), "no request was retried");
}

/// The PKCS#8 form `openssl genpkey -algorithm EC` writes
/// (`-----BEGIN PRIVATE KEY-----`): the key's algorithm identifier says EC,
/// so a client of the configuration file signs ES256 without being told.
#[tokio::test]
async fn private_key_jwt_with_a_pkcs8_ec_key_from_the_config_file_gets_a_token() {
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ec-private.pem");
    let key = TestKey::from_pem(
        "ec-fixture",
        jsonwebtoken::Algorithm::ES256,
        &std::fs::read_to_string(&fixture).unwrap(),
    );
    let provider = OidcProvider::start(&[ClientSpec::private_key_jwt("ec-client", &key)]).await;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("interop-pkcs8-ec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("m2m.toml");
    // No key_algorithm: it comes from the key.
    std::fs::write(
        &file,
        format!(
            "[clients.ec]\n\
             provider = \"custom\"\n\
             discovery_url = \"{}\"\n\
             client_id = \"ec-client\"\n\
             auth = \"private-key-jwt\"\n\
             private_key_file = {:?}\n\
             key_id = \"ec-fixture\"\n\
             scopes = [\"api:read\"]\n\
             resource = \"{API_RESOURCE}\"\n",
            provider.discovery_url(),
            fixture.display().to_string(),
        ),
    )
    .unwrap();
    let config = m2m::config::Config::load(&file).unwrap();

    let auth = config
        .auth_with_cache("ec", &config.new_token_cache().await.unwrap())
        .unwrap_or_else(|e| panic!("{e}"));
    let token = auth
        .token()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", provider.logs()));

    let claims = provider
        .verify_access_token(token.secret().expose_secret(), API_RESOURCE)
        .await;
    assert_eq!(claims["client_id"], "ec-client");
    assert_eq!(claims["scope"], "api:read");
    assert_eq!(token.token_type(), "Bearer");
}
