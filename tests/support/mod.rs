//! Helpers shared by the integration tests: the built-in clients pointed at
//! a recording server, and the check that a text holds no secret. The token
//! source and the recording server are `m2m::test_util`'s.
//!
//! Each test crate uses a subset of these helpers.
#![allow(dead_code)]

use m2m::apis::{cenda_configuration, nxtsoft_transactions};
use m2m::test_util::{RecordingServer, TestTokens};

/// A Cenda Configuration client that sends to `server` with `tokens`.
pub fn cenda_client(server: &RecordingServer, tokens: &TestTokens) -> cenda_configuration::Client {
    cenda_configuration::Client::new_with_client(
        &server.uri(),
        reqwest::Client::new(),
        tokens.auth(),
    )
}

/// A NXTsoft transactions client that sends to `server` with `tokens`.
pub fn nxtsoft_client(
    server: &RecordingServer,
    tokens: &TestTokens,
) -> nxtsoft_transactions::Client {
    nxtsoft_transactions::Client::new_with_client(
        &server.uri(),
        reqwest::Client::new(),
        tokens.auth(),
    )
}

/// Fails when `text` holds a secret: any secret the sandbox knows, the
/// wrong secret the tests send, a PEM private key, or anything shaped like
/// a JWT (an access token or a client assertion).
#[cfg(feature = "sandbox")]
pub fn assert_no_secret(what: &str, text: &str) {
    let secrets = [
        m2m::sandbox::demo::ENTRA_CLIENT_SECRET,
        m2m::sandbox::demo::COGNITO_CLIENT_SECRET,
        m2m::sandbox::demo::COGNITO_MOCK_ONLY_CLIENT_SECRET,
        m2m::sandbox::demo::IDENTITYSERVER_CLIENT_SECRET,
        m2m::sandbox::demo::OIDC_CLIENT_SECRET,
        "wrong-secret-0f9e8d",
        "PRIVATE KEY",
    ];
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{what} contains a secret ({secret:?}):\n{text}"
        );
    }
    // JWTs (access tokens, client assertions) start with a base64url `{"`.
    let jwt = text.match_indices("eyJ").find(|(at, _)| {
        text[*at..]
            .split_whitespace()
            .next()
            .is_some_and(|w| w.matches('.').count() >= 2)
    });
    assert!(jwt.is_none(), "{what} contains a JWT:\n{text}");
}
