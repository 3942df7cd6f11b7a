//! The Entra workload identity defaults read from the process environment:
//! `AZURE_CLIENT_ID` and `AZURE_FEDERATED_TOKEN_FILE`, through
//! `TokenEndpoint::workload_identity` and through a configuration's
//! `auth = "client-assertion"` client of an Entra provider (what the `m2m`
//! command uses too), against a wiremock token endpoint.
//!
//! These tests change the process environment, so they are a test binary
//! of their own with a single `#[test]` that runs the cases in sequence:
//! the variables are changed only between cases, while no runtime of this
//! process is running (each case has a runtime of its own, shut down
//! before the next change) and no other test exists to read them.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use m2m::auth::clock::{FixedJitter, ManualClock};
use m2m::auth::{
    AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE, Auth, AuthError, CacheSettings, ConfigError,
    JWT_BEARER_ASSERTION_TYPE, MemoryStore, TokenCache, TokenEndpoint,
};
use m2m::config::{Config, ConfigFileError};
use m2m::provider::Provider;
use secrecy::ExposeSecret;
use serde_json::json;
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const CLIENT_ID: &str = "5f0c8b1e-wi-client-id";

/// A JWT-shaped federated token (a projected service-account token) whose
/// `exp` is far after the test clock; `subject` tells two apart. m2m reads
/// its `exp` without checking the signature.
fn federated_token(subject: &str, exp: u64) -> String {
    let part = |value: serde_json::Value| URL_SAFE_NO_PAD.encode(value.to_string());
    format!(
        "{}.{}.{}",
        part(json!({ "alg": "RS256", "kid": "k8s-sa-key-1" })),
        part(json!({
            "iss": "https://oidc.prod-aks.azure.com/00000000-0000-0000-0000-00000000000a/",
            "sub": format!("system:serviceaccount:payments:{subject}"),
            "aud": ["api://AzureADTokenExchange"],
            "iat": 1_767_225_000u64,
            "exp": exp,
        })),
        URL_SAFE_NO_PAD.encode(format!("signature-of-{subject}-not-checked-by-m2m"))
    )
}

/// 2100-01-01: after the test clock (2026-01-01).
const FAR_EXP: u64 = 4_102_444_800;

/// Sets (`Some`) or removes (`None`) a variable.
fn set_env(name: &str, value: Option<&str>) {
    // SAFETY: this binary has one test (`workload_identity_defaults_come_from_the_environment`)
    // and calls this only between its cases, when no tokio runtime of this
    // process exists (each case's runtime is shut down, its blocking
    // threads joined, before the next change) and no request is in flight:
    // no other thread reads the environment meanwhile.
    unsafe {
        match value {
            Some(value) => std::env::set_var(name, value),
            None => std::env::remove_var(name),
        }
    }
}

/// Runs one case on a runtime of its own, shut down when it returns.
fn run<F: Future>(case: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(case)
}

/// A token endpoint that issues `token-{n}` for an hour at each request.
async fn token_server() -> MockServer {
    let server = MockServer::start().await;
    let issued = std::sync::atomic::AtomicUsize::new(0);
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(move |_: &Request| {
            let n = issued.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            ResponseTemplate::new(200).set_body_json(json!({
                "access_token": format!("token-{n}"), "token_type": "Bearer", "expires_in": 3600
            }))
        })
        .mount(&server)
        .await;
    server
}

fn token_url(server: &MockServer) -> Url {
    Url::parse(&format!("{}/token", server.uri())).unwrap()
}

/// The form fields of each token request, in order.
async fn token_forms(server: &MockServer) -> Vec<Vec<(String, String)>> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|request| {
            url::form_urlencoded::parse(&request.body)
                .into_owned()
                .collect()
        })
        .collect()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// The federated client's fields: its client id, the jwt-bearer assertion
/// type, `assertion`, and no secret or Basic credentials.
fn assert_federated(form: &[(String, String)], assertion: &str) {
    assert_eq!(field(form, "client_id"), Some(CLIENT_ID), "{form:?}");
    assert_eq!(
        field(form, "client_assertion_type"),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
    assert_eq!(
        JWT_BEARER_ASSERTION_TYPE,
        field(form, "client_assertion_type").unwrap()
    );
    assert_eq!(field(form, "client_assertion"), Some(assertion));
    assert_eq!(field(form, "grant_type"), Some("client_credentials"));
    assert_eq!(field(form, "client_secret"), None);
}

/// `endpoint` behind a cache, every layer on `clock`.
fn auth_on(endpoint: m2m::auth::TokenEndpointBuilder, clock: &Arc<ManualClock>) -> Auth {
    let endpoint = endpoint.clock(clock.clone()).build().unwrap();
    let cache = TokenCache::new(
        Arc::new(MemoryStore::default()),
        clock.clone(),
        Arc::new(FixedJitter(0.0)),
        CacheSettings::default(),
    );
    Auth::new(endpoint, &cache).with_clock(clock.clone())
}

/// Fetches a token, then rewrites the file with `rotated` and lets the
/// first token expire (on the injected clock): the second fetch must read
/// the file again.
async fn two_fetches_across_a_rotation(
    auth: &Auth,
    file: &Path,
    rotated: &str,
    clock: &ManualClock,
) {
    assert_eq!(
        auth.token().await.unwrap().secret().expose_secret(),
        "token-0"
    );
    // The kubelet replaces the projected token under the process.
    std::fs::write(file, format!("{rotated}\n")).unwrap();
    clock.advance(Duration::from_secs(3_700));
    assert_eq!(
        auth.token().await.unwrap().secret().expose_secret(),
        "token-1"
    );
}

fn endpoint_error(result: Result<m2m::auth::TokenEndpointBuilder, ConfigError>) -> ConfigError {
    match result {
        Ok(builder) => panic!("a workload identity endpoint without its variables: {builder:?}"),
        Err(error) => error,
    }
}

/// A configuration with one federated client of the Entra provider
/// `cenda`, its token URL the wiremock server's.
fn config(token_url: &Url, extra: &str) -> Config {
    Config::parse(
        &format!(
            r#"
[clients.payments]
provider = "cenda"
tenant_id = "00000000-0000-0000-0000-00000000000a"
gateway_client_id = "00000000-0000-0000-0000-00000000000b"
auth = "client-assertion"
token_url = "{token_url}"
{extra}
"#
        ),
        "m2m.toml",
    )
    .unwrap()
}

fn config_error(config: &Config) -> String {
    match config.token_endpoint("payments").and_then(|builder| {
        builder.build().map_err(|error| ConfigFileError::Client {
            client: "payments".into(),
            message: error.to_string(),
        })
    }) {
        Ok(endpoint) => panic!("a federated client without its variables: {endpoint:?}"),
        Err(error @ ConfigFileError::Client { .. }) => error.to_string(),
        Err(other) => panic!("not the client's error: {other:?}"),
    }
}

#[test]
fn workload_identity_defaults_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("azure-identity-token");
    let first = federated_token("first", FAR_EXP);
    let second = federated_token("second", FAR_EXP);
    let secrets = [first.clone(), second.clone()];
    let assert_no_assertion = |text: &str| {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "an assertion in {text}");
            let signature = secret.rsplit('.').next().unwrap();
            assert!(!text.contains(signature), "an assertion's part in {text}");
        }
    };

    // Both variables set: `TokenEndpoint::workload_identity` sends the
    // client id and the file's content, read again at the next fetch.
    std::fs::write(&file, format!("{first}\n")).unwrap();
    set_env(AZURE_CLIENT_ID, Some(CLIENT_ID));
    set_env(AZURE_FEDERATED_TOKEN_FILE, Some(file.to_str().unwrap()));
    run(async {
        let server = token_server().await;
        let clock = Arc::new(ManualClock::at_fixed_date());
        let builder =
            TokenEndpoint::workload_identity(Provider::custom_token_url(token_url(&server)))
                .unwrap();
        assert_no_assertion(&format!("{builder:?}"));
        let auth = auth_on(builder, &clock);
        two_fetches_across_a_rotation(&auth, &file, &second, &clock).await;
        let forms = token_forms(&server).await;
        assert_eq!(forms.len(), 2);
        assert_federated(&forms[0], &first);
        assert_federated(&forms[1], &second);
    });

    // The same through a configuration: `auth = "client-assertion"` with
    // neither `client_id` nor `client_assertion_file`, provider cenda.
    std::fs::write(&file, &first).unwrap();
    run(async {
        let server = token_server().await;
        let clock = Arc::new(ManualClock::at_fixed_date());
        let config = config(&token_url(&server), "");
        let auth = auth_on(config.token_endpoint("payments").unwrap(), &clock);
        two_fetches_across_a_rotation(&auth, &file, &second, &clock).await;
        let forms = token_forms(&server).await;
        assert_eq!(forms.len(), 2);
        assert_federated(&forms[0], &first);
        assert_federated(&forms[1], &second);
        assert_eq!(
            field(&forms[0], "scope"),
            Some("00000000-0000-0000-0000-00000000000b/.default")
        );
    });

    // The file's content is never in an error: an expired assertion, then
    // a missing file, fail with errors that name the file only.
    std::fs::write(&file, federated_token("expired", 1_700_000_000)).unwrap();
    let expired_token = federated_token("expired", 1_700_000_000);
    run(async {
        let server = token_server().await;
        let clock = Arc::new(ManualClock::at_fixed_date());
        let auth = auth_on(
            TokenEndpoint::workload_identity(Provider::custom_token_url(token_url(&server)))
                .unwrap(),
            &clock,
        );
        let error = auth.token().await.unwrap_err();
        assert!(matches!(error, AuthError::Credential(_)), "{error:?}");
        let text = format!("{error} {error:?}");
        assert!(text.contains(file.to_str().unwrap()), "{text}");
        assert!(!text.contains(&expired_token), "{text}");
        assert!(
            !text.contains(expired_token.rsplit('.').next().unwrap()),
            "{text}"
        );
        std::fs::remove_file(&file).unwrap();
        let error = auth.token().await.unwrap_err();
        let text = format!("{error} {error:?}");
        assert!(text.contains(file.to_str().unwrap()), "{text}");
        assert_no_assertion(&text);
        assert!(token_forms(&server).await.is_empty(), "nothing was sent");
    });
    std::fs::write(&file, &first).unwrap();

    // AZURE_CLIENT_ID unset, empty or blank: a typed error naming it.
    let server_url = Url::parse("http://127.0.0.1:9/token").unwrap();
    for client_id in [None, Some(""), Some("  \t")] {
        set_env(AZURE_CLIENT_ID, client_id);
        let error = endpoint_error(TokenEndpoint::workload_identity(
            Provider::custom_token_url(server_url.clone()),
        ));
        assert!(
            matches!(&error, ConfigError::Invalid(message) if message.contains(AZURE_CLIENT_ID)),
            "{client_id:?}: {error:?}"
        );
        assert_no_assertion(&format!("{error} {error:?}"));
        let text = config_error(&config(&server_url, ""));
        assert!(text.contains(AZURE_CLIENT_ID), "{client_id:?}: {text}");
        assert_no_assertion(&text);
    }
    // `client_id` in the file wins over the (missing) variable.
    let with_id = config(&server_url, &format!("client_id = \"{CLIENT_ID}\""));
    assert_eq!(
        with_id
            .token_endpoint("payments")
            .unwrap()
            .build()
            .unwrap()
            .identity()
            .client_id,
        CLIENT_ID
    );

    // AZURE_FEDERATED_TOKEN_FILE unset, empty or blank: a typed error
    // naming it (blank was taken as a file name).
    set_env(AZURE_CLIENT_ID, Some(CLIENT_ID));
    for token_file in [None, Some(""), Some("  ")] {
        set_env(AZURE_FEDERATED_TOKEN_FILE, token_file);
        let error = endpoint_error(TokenEndpoint::workload_identity(
            Provider::custom_token_url(server_url.clone()),
        ));
        assert!(
            matches!(&error, ConfigError::Invalid(message) if message.contains(AZURE_FEDERATED_TOKEN_FILE)),
            "{token_file:?}: {error:?}"
        );
        assert_no_assertion(&format!("{error} {error:?}"));
        let text = config_error(&config(&server_url, ""));
        assert!(
            text.contains(AZURE_FEDERATED_TOKEN_FILE),
            "{token_file:?}: {text}"
        );
        assert_no_assertion(&text);
    }
    set_env(AZURE_CLIENT_ID, None);
}
