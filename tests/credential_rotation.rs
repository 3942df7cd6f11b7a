//! Credentials that change under the process, against real servers on
//! loopback: a federated client assertion read from a file at every token
//! request (rotated by a plain write and by a Kubernetes-style symlink
//! swap), two client secrets with fail-over on `invalid_client` and
//! eviction of the tokens of the refused one, and secret and key files
//! replaced between two fetches. wiremock checks the exact requests;
//! panva's oidc-provider checks that a strict server accepts them.
//!
//! How Entra itself judges a federated credential (the issuer and subject
//! of the Kubernetes token matched against the application's federated
//! identity credential) is out of reach here: oidc-provider is given a
//! client whose JWKS holds the key that signs the test's "federated"
//! token, which is the same request on the wire.

#[path = "support/oidc_provider.rs"]
mod oidc_provider;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use m2m::auth::clock::{FixedJitter, ManualClock};
use m2m::auth::{
    Auth, AuthError, CacheKey, ClientAuthMethod, ClientCredential, ClientSecrets, CredentialOrigin,
    CredentialProblem, FetchToken, KeyName, PrivateKeyFiles, SecretSlot, TokenCache, TokenEndpoint,
};
use m2m::provider::Provider;
use oidc_provider::{API_RESOURCE, ClientSpec, OidcProvider, TestKey};
use secrecy::ExposeSecret;
use serde_json::json;
use url::Url;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const CLIENT_ID: &str = "rotating-client";
const OLD_SECRET: &str = "old-secret-4e1d07";
const NEW_SECRET: &str = "new-secret-9b2c55";

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// An unsigned-looking JWT with these claims (wiremock does not verify).
fn fake_jwt(claims: serde_json::Value) -> String {
    format!(
        "{}.{}.c2lnbmF0dXJl",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn form(request: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

fn field(request: &Request, name: &str) -> Option<String> {
    form(request)
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

/// Answers every token request with a new token (`token-1`, `token-2`, …).
fn numbered_tokens() -> impl Fn(&Request) -> ResponseTemplate + Send + Sync + 'static {
    tokens_named("token")
}

/// Answers every token request with a new token (`{prefix}-1`, …).
fn tokens_named(prefix: &'static str) -> impl Fn(&Request) -> ResponseTemplate + Send + Sync {
    let issued = AtomicUsize::new(0);
    move |_: &Request| {
        let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200).set_body_json(json!({
            "access_token": format!("{prefix}-{n}"), "token_type": "Bearer", "expires_in": 3600
        }))
    }
}

fn invalid_client() -> ResponseTemplate {
    ResponseTemplate::new(401).set_body_json(json!({
        "error": "invalid_client", "error_description": "client authentication failed"
    }))
}

fn endpoint(server: &MockServer, credential: ClientCredential, scope: &str) -> TokenEndpoint {
    let url = Url::parse(&format!("{}/token", server.uri())).unwrap();
    // Secrets in the form body, where wiremock matches them.
    let method = match credential {
        ClientCredential::Secret(_) | ClientCredential::Secrets(_) => {
            Some(ClientAuthMethod::ClientSecretPost)
        }
        _ => None,
    };
    let builder = TokenEndpoint::builder(Provider::custom_token_url(url), CLIENT_ID, credential);
    let builder = match method {
        Some(method) => builder.client_auth(method),
        None => builder,
    };
    builder
        .scopes([scope])
        .clock(Arc::new(ManualClock::new(SystemTime::now())))
        .jitter(Arc::new(FixedJitter(0.0)))
        .build()
        .unwrap()
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

// ------------------------------------------------------- federated assertion

#[tokio::test]
async fn a_federated_assertion_is_read_at_every_request_and_sent_as_jwt_bearer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(numbered_tokens())
        .mount(&server)
        .await;
    let dir = temp_dir();
    let file = dir.path().join("azure-identity-token");
    let exp = unix(SystemTime::now()) + 3600;
    let first = fake_jwt(
        json!({"iss": "https://k8s.test", "sub": "system:serviceaccount:ns:sa", "exp": exp}),
    );
    let second = fake_jwt(
        json!({"iss": "https://k8s.test", "sub": "system:serviceaccount:ns:sa", "exp": exp + 1}),
    );
    // The kubelet writes no newline; a hand-made file has one: not sent.
    std::fs::write(&file, format!("{first}\n")).unwrap();
    let endpoint = endpoint(
        &server,
        ClientCredential::assertion_file(&file),
        "api/.default",
    );
    assert_eq!(endpoint.client_auth(), ClientAuthMethod::ClientAssertion);
    let key = CacheKey::for_endpoint(endpoint.identity());
    let cache = TokenCache::in_memory();
    let source = cache.source(key.clone(), Arc::new(endpoint));

    source.token().await.unwrap();
    std::fs::write(&file, &second).unwrap();
    // Same client, same key: the cached token is served, nothing is read.
    assert_eq!(
        source.token().await.unwrap().secret().expose_secret(),
        "token-1"
    );
    assert_eq!(requests(&server).await.len(), 1);
    let renewed = source.refresh().await.unwrap();
    assert_eq!(renewed.secret().expose_secret(), "token-2");
    assert_eq!(source.key(), &key);

    let sent = requests(&server).await;
    assert_eq!(sent.len(), 2);
    for (request, assertion) in sent.iter().zip([&first, &second]) {
        let mut fields = form(request);
        fields.sort();
        assert_eq!(
            fields,
            vec![
                ("client_assertion".to_owned(), assertion.clone()),
                (
                    "client_assertion_type".to_owned(),
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned()
                ),
                ("client_id".to_owned(), CLIENT_ID.to_owned()),
                ("grant_type".to_owned(), "client_credentials".to_owned()),
                ("scope".to_owned(), "api/.default".to_owned()),
            ]
        );
        assert!(request.headers.get("authorization").is_none());
    }
}

/// Kubernetes updates a projected volume by writing a new timestamped
/// directory and swapping the `..data` symlink to it in one rename; the
/// token file is a symlink through `..data`. The next request reads the
/// new token.
#[cfg(unix)]
#[tokio::test]
async fn a_symlink_swapped_assertion_file_is_followed_at_the_next_request() {
    use std::os::unix::fs::symlink;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(numbered_tokens())
        .mount(&server)
        .await;
    let dir = temp_dir();
    let exp = unix(SystemTime::now()) + 3600;
    let tokens = [
        fake_jwt(json!({"sub": "one", "exp": exp})),
        fake_jwt(json!({"sub": "two", "exp": exp})),
    ];
    for (version, token) in ["..2026_01_01_00_00_00.1", "..2026_01_01_00_50_00.2"]
        .iter()
        .zip(&tokens)
    {
        std::fs::create_dir(dir.path().join(version)).unwrap();
        std::fs::write(dir.path().join(version).join("token"), token).unwrap();
    }
    symlink("..2026_01_01_00_00_00.1", dir.path().join("..data")).unwrap();
    symlink("..data/token", dir.path().join("token")).unwrap();
    let endpoint = endpoint(
        &server,
        ClientCredential::assertion_file(dir.path().join("token")),
        "api/.default",
    );

    endpoint.fetch().await.unwrap();
    symlink("..2026_01_01_00_50_00.2", dir.path().join("..data_tmp")).unwrap();
    std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
    endpoint.fetch().await.unwrap();

    let sent: Vec<_> = requests(&server)
        .await
        .iter()
        .map(|r| field(r, "client_assertion").unwrap())
        .collect();
    assert_eq!(sent, tokens);
}

/// Whether a problem is the one expected.
type ProblemCheck = fn(&CredentialProblem) -> bool;

#[tokio::test]
async fn an_expired_empty_missing_or_expiryless_assertion_is_a_typed_error_naming_the_file() {
    let server = MockServer::start().await;
    let dir = temp_dir();
    let file = dir.path().join("token");
    let expired = fake_jwt(json!({"sub": "ci", "exp": unix(SystemTime::now()) - 60}));
    let cases: [(Option<&str>, ProblemCheck); 5] = [
        (Some(&expired), |p| {
            matches!(p, CredentialProblem::Expired { .. })
        }),
        (Some("\n"), |p| *p == CredentialProblem::Empty),
        (None, |p| matches!(p, CredentialProblem::Unreadable { .. })),
        (Some("eyJhbGciOiJub25lIn0.eyJzdWIiOiJjaSJ9.c2ln"), |p| {
            *p == CredentialProblem::NoExpiry
        }),
        (Some("not a jwt"), |p| *p == CredentialProblem::NotAJwt),
    ];
    for (content, expected) in cases {
        let _ = std::fs::remove_file(&file);
        if let Some(content) = content {
            std::fs::write(&file, content).unwrap();
        }
        let error = endpoint(&server, ClientCredential::assertion_file(&file), "s")
            .fetch()
            .await
            .unwrap_err();
        let AuthError::Credential(credential) = &error else {
            panic!("not a credential error: {error:?}");
        };
        assert!(expected(&credential.problem), "{error}");
        assert_eq!(credential.origin, CredentialOrigin::File(file.clone()));
        let text = error.to_string();
        assert!(text.contains(&file.display().to_string()), "{text}");
        assert!(!text.contains(&expired) && !text.contains("eyJ"), "{text}");
        assert!(!error.is_retryable());
    }
    assert!(requests(&server).await.is_empty(), "nothing was sent");
}

#[tokio::test]
async fn a_callback_is_asked_for_the_assertion_at_every_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(numbered_tokens())
        .mount(&server)
        .await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let credential = ClientCredential::assertion_from(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let jwt = fake_jwt(json!({"n": n, "exp": unix(SystemTime::now()) + 600}));
        Box::pin(async move { Ok(jwt.into()) })
    });
    let endpoint = endpoint(&server, credential, "s");
    endpoint.fetch().await.unwrap();
    endpoint.fetch().await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let sent: Vec<_> = requests(&server)
        .await
        .iter()
        .map(|r| field(r, "client_assertion").unwrap())
        .collect();
    assert_ne!(sent[0], sent[1]);
}

// ------------------------------------------------------------ two secrets

#[tokio::test]
async fn a_refused_secret_fails_over_to_the_second_which_stays_in_use() {
    let server = MockServer::start().await;
    Mock::given(body_string_contains(format!("client_secret={OLD_SECRET}")))
        .respond_with(invalid_client())
        .mount(&server)
        .await;
    Mock::given(body_string_contains(format!("client_secret={NEW_SECRET}")))
        .respond_with(numbered_tokens())
        .mount(&server)
        .await;
    let secrets =
        ClientSecrets::new(OLD_SECRET.to_owned().into()).second(NEW_SECRET.to_owned().into());
    let endpoint = endpoint(&server, secrets.clone().into(), "s");

    // Concurrent requests fail over together: one switch.
    let results = futures::future::join_all((0..8).map(|_| endpoint.fetch())).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(secrets.in_use(), SecretSlot::Second);
    assert_eq!(secrets.epoch(), 1);
    let before = requests(&server).await.len();
    assert!((9..=16).contains(&before), "{before} requests");

    endpoint.fetch().await.unwrap();
    let after = requests(&server).await;
    assert_eq!(
        after.len(),
        before + 1,
        "the second secret is used directly"
    );
    assert_eq!(
        field(after.last().unwrap(), "client_secret").as_deref(),
        Some(NEW_SECRET)
    );
}

/// Two keys (two scope sets) share the credential. The server stops
/// accepting the first secret; one key's refresh fails over to the second:
/// the other key's token, obtained with the refused secret, is not served
/// again, and its next token comes with the second secret at once.
#[tokio::test]
async fn tokens_obtained_with_a_now_refused_secret_are_evicted() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(numbered_tokens())
        .mount(&server)
        .await;
    let secrets =
        ClientSecrets::new(OLD_SECRET.to_owned().into()).second(NEW_SECRET.to_owned().into());
    let cache = TokenCache::in_memory();
    let auth = |scope: &str| {
        let endpoint = endpoint(&server, secrets.clone().into(), scope);
        let key = CacheKey::for_endpoint(endpoint.identity());
        cache.source(key, Arc::new(endpoint))
    };
    let (read, write) = (auth("read"), auth("write"));
    let read_token = read.token().await.unwrap();
    let write_token = write.token().await.unwrap();
    assert_eq!(requests(&server).await.len(), 2);

    // The first secret is retired at the server.
    server.reset().await;
    Mock::given(body_string_contains(format!("client_secret={OLD_SECRET}")))
        .respond_with(invalid_client())
        .mount(&server)
        .await;
    Mock::given(body_string_contains(format!("client_secret={NEW_SECRET}")))
        .respond_with(tokens_named("after-rotation"))
        .mount(&server)
        .await;
    let renewed = read.refresh().await.unwrap();
    assert_ne!(
        renewed.secret().expose_secret(),
        read_token.secret().expose_secret()
    );
    assert_eq!(
        requests(&server).await.len(),
        2,
        "old refused, new accepted"
    );

    // The key that failed over keeps its new token.
    assert_eq!(
        read.token().await.unwrap().secret().expose_secret(),
        renewed.secret().expose_secret()
    );
    assert_eq!(requests(&server).await.len(), 2);
    // The other key's token came from the refused secret: evicted.
    let replaced = write.token().await.unwrap();
    assert_ne!(
        replaced.secret().expose_secret(),
        write_token.secret().expose_secret()
    );
    let sent = requests(&server).await;
    assert_eq!(sent.len(), 3);
    assert_eq!(
        field(&sent[2], "client_secret").as_deref(),
        Some(NEW_SECRET)
    );
    assert_eq!(field(&sent[2], "scope").as_deref(), Some("write"));
    // And it is served from the cache from then on.
    write.token().await.unwrap();
    assert_eq!(requests(&server).await.len(), 3);
    let _ = Auth::from_source(write);
}

/// Two handles of one client built apart (each with its own pair of
/// secrets, as two `Config::auth` calls make them) share the key's token.
/// One fails over after a refusal the other never saw: the other serves the
/// token obtained with the second secret, and neither evicts the other's.
/// (Each compared the key's credential epoch with its own: every call that
/// switched handles evicted the token and fetched a new one.)
#[tokio::test]
async fn handles_with_secrets_of_their_own_do_not_evict_each_others_token() {
    let server = MockServer::start().await;
    // The first secret is refused once (a passing refusal), then taken.
    Mock::given(body_string_contains(format!("client_secret={OLD_SECRET}")))
        .respond_with(invalid_client())
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(numbered_tokens())
        .mount(&server)
        .await;
    let cache = TokenCache::in_memory();
    let handle = || {
        let secrets =
            ClientSecrets::new(OLD_SECRET.to_owned().into()).second(NEW_SECRET.to_owned().into());
        let endpoint = endpoint(&server, secrets.into(), "s");
        let key = CacheKey::for_endpoint(endpoint.identity());
        cache.source(key, Arc::new(endpoint))
    };
    let (one, other) = (handle(), handle());

    let token = one.token().await.unwrap();
    assert_eq!(requests(&server).await.len(), 2, "refused, then the second");
    for _ in 0..3 {
        for source in [&one, &other] {
            let served = source.token().await.unwrap();
            assert_eq!(
                served.secret().expose_secret(),
                token.secret().expose_secret()
            );
        }
    }
    assert_eq!(requests(&server).await.len(), 2);
}

// ------------------------------------------------- files replaced on disk

#[tokio::test]
async fn a_secret_file_replaced_between_two_fetches_is_read_again() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(numbered_tokens())
        .mount(&server)
        .await;
    let dir = temp_dir();
    let file = dir.path().join("client-secret");
    std::fs::write(&file, format!("{OLD_SECRET}\n")).unwrap();
    let endpoint = endpoint(
        &server,
        ClientSecrets::from_file(&file).unwrap().into(),
        "s",
    );
    endpoint.fetch().await.unwrap();
    // Replaced atomically, as a secret manager's agent does.
    std::fs::write(dir.path().join("next"), NEW_SECRET).unwrap();
    std::fs::rename(dir.path().join("next"), &file).unwrap();
    endpoint.fetch().await.unwrap();
    let sent: Vec<_> = requests(&server)
        .await
        .iter()
        .map(|r| field(r, "client_secret").unwrap())
        .collect();
    assert_eq!(sent, [OLD_SECRET, NEW_SECRET]);

    // Emptied: a typed error naming the file, and nothing sent.
    std::fs::write(&file, "").unwrap();
    let error = endpoint.fetch().await.unwrap_err();
    assert!(
        error.to_string().contains(&file.display().to_string())
            && !error.to_string().contains(NEW_SECRET),
        "{error}"
    );
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn a_private_key_file_replaced_between_two_fetches_signs_the_next_assertion() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(numbered_tokens())
        .mount(&server)
        .await;
    let dir = temp_dir();
    let file = dir.path().join("key.pem");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::copy(fixtures.join("rsa-private.pem"), &file).unwrap();
    let key = PrivateKeyFiles::load(&file, None, KeyName::Kid("k1".into())).unwrap();
    let endpoint = endpoint(&server, key.into(), "s");
    endpoint.fetch().await.unwrap();
    std::fs::copy(fixtures.join("ec-private.pem"), &file).unwrap();
    endpoint.fetch().await.unwrap();
    let algorithms: Vec<String> = requests(&server)
        .await
        .iter()
        .map(|r| {
            let assertion = field(r, "client_assertion").unwrap();
            jsonwebtoken::decode_header(&assertion).unwrap().alg
        })
        .map(|alg| format!("{alg:?}"))
        .collect();
    assert_eq!(algorithms, ["RS256", "ES256"]);
}

// --------------------------------------------------------- oidc-provider

fn oidc_endpoint(
    provider: &OidcProvider,
    client_id: &str,
    credential: ClientCredential,
) -> TokenEndpoint {
    let discovery = Url::parse(&provider.discovery_url()).unwrap();
    TokenEndpoint::builder(Provider::custom_discovery(discovery), client_id, credential)
        .scopes(["api:read"])
        .resource(API_RESOURCE)
        .build()
        .unwrap()
}

/// The "federated" token: signed by a key of the client's JWKS, `iss` =
/// `sub` = the client id, `aud` = the token endpoint, a fresh `jti`.
fn federated_token(key: &TestKey, client_id: &str, audience: &str, exp: u64) -> String {
    let mut header = jsonwebtoken::Header::new(key.algorithm());
    header.kid = Some(key.kid().to_owned());
    let now = unix(SystemTime::now());
    let claims = json!({
        "iss": client_id, "sub": client_id, "aud": audience,
        "jti": uuid::Uuid::new_v4().to_string(), "iat": now.min(exp), "exp": exp,
    });
    jsonwebtoken::encode(&header, &claims, key.encoding_key()).unwrap()
}

#[tokio::test]
async fn oidc_provider_accepts_a_rotated_federated_assertion_from_the_config_file() {
    let key = TestKey::ec_p256("federated-1");
    let provider = OidcProvider::start(&[ClientSpec::private_key_jwt("federated", &key)]).await;
    let dir = temp_dir();
    let token_file = dir.path().join("token");
    let exp = unix(SystemTime::now()) + 300;
    std::fs::write(
        &token_file,
        federated_token(&key, "federated", provider.token_url(), exp),
    )
    .unwrap();
    let config = m2m::config::Config::parse(
        &format!(
            "[clients.federated]\nprovider = \"custom\"\ndiscovery_url = \"{}\"\nclient_id = \"federated\"\n\
             auth = \"client-assertion\"\nclient_assertion_file = {:?}\nscopes = [\"api:read\"]\nresource = \"{API_RESOURCE}\"\n",
            provider.discovery_url(),
            token_file.display().to_string()
        ),
        "m2m.toml",
    )
    .unwrap();
    let endpoint = config.token_endpoint("federated").unwrap().build().unwrap();
    let first = endpoint
        .fetch()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", provider.logs()));
    let claims = provider
        .verify_access_token(first.secret().expose_secret(), API_RESOURCE)
        .await;
    assert_eq!(claims["client_id"], "federated");

    // oidc-provider refuses a replayed jti: the second request succeeds
    // only because the rotated file was read again.
    std::fs::write(
        &token_file,
        federated_token(&key, "federated", provider.token_url(), exp),
    )
    .unwrap();
    endpoint
        .fetch()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", provider.logs()));

    // Signed by a key the client does not have: the server's typed refusal.
    let stranger = TestKey::ec_p256("stranger");
    std::fs::write(
        &token_file,
        federated_token(&stranger, "federated", provider.token_url(), exp),
    )
    .unwrap();
    let refused = endpoint.fetch().await.unwrap_err();
    assert_eq!(
        refused.oauth_error().map(|o| o.error.as_str()),
        Some("invalid_client"),
        "{refused}"
    );

    // Expired: refused here, naming the file, before anything is sent.
    let past = unix(SystemTime::now()) - 10;
    std::fs::write(
        &token_file,
        federated_token(&key, "federated", provider.token_url(), past),
    )
    .unwrap();
    let expired = endpoint.fetch().await.unwrap_err();
    assert!(
        matches!(&expired, AuthError::Credential(e) if matches!(e.problem, CredentialProblem::Expired { .. })),
        "{expired}"
    );
    assert!(
        expired
            .to_string()
            .contains(&token_file.display().to_string())
    );
}

#[tokio::test]
async fn oidc_provider_refuses_the_wrong_first_secret_and_takes_the_second() {
    let provider = OidcProvider::start(&[ClientSpec::secret_post("rotating", NEW_SECRET)]).await;
    let secrets =
        ClientSecrets::new(OLD_SECRET.to_owned().into()).second(NEW_SECRET.to_owned().into());
    let endpoint = oidc_endpoint(&provider, "rotating", secrets.clone().into());
    let token = endpoint
        .fetch()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", provider.logs()));
    provider
        .verify_access_token(token.secret().expose_secret(), API_RESOURCE)
        .await;
    assert_eq!(secrets.in_use(), SecretSlot::Second);
    endpoint.fetch().await.unwrap();
    let refusals = provider
        .logs()
        .lines()
        .filter(|line| line.contains("invalid_client"))
        .count();
    assert_eq!(
        refusals,
        1,
        "the first secret was tried once: {}",
        provider.logs()
    );
}
