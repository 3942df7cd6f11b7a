//! Helpers shared by the CLI's integration tests.
#![allow(dead_code)]

/// Fails when `text` holds a secret: any secret the sandbox knows, the
/// wrong secret the tests send, a PEM private key, or anything shaped like
/// a JWT (an access token or a client assertion).
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
