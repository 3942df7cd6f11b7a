//! A client assertion made elsewhere: workload identity federation.
//!
//! The workload is given a JWT by another issuer (a Kubernetes projected
//! service-account token in `AZURE_FEDERATED_TOKEN_FILE`, a GitHub Actions
//! OIDC token) and sends it as `client_assertion`, with `client_assertion_type`
//! `urn:ietf:params:oauth:client-assertion-type:jwt-bearer` (RFC 7523 §2.2),
//! in place of a client secret. Entra accepts it for an application with a
//! federated credential whose issuer and subject match the JWT's.
//!
//! The assertion is asked for at **every** token request and never kept:
//! the file is rotated under the process (a cached assertion is what gave
//! azure-sdk-for-rust AADSTS700024 after an hour). Before it is sent, its
//! `exp` is read (without checking the signature: only its issuer can) so
//! that an empty, malformed or expired assertion fails here with a typed
//! [`CredentialError`] naming the file, instead of a vague `invalid_client`.
//!
//! The cache key of the tokens does not depend on the assertion (nor on the
//! file's path): a rotated assertion is the same client, and its tokens
//! stay cached.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};

use super::credential_file::{CredentialFile, trimmed_text};
use super::error::{
    ConfigError, CredentialError, CredentialKind, CredentialOrigin, CredentialProblem,
};
use crate::future::BoxFuture;

/// The variable the Entra workload identity webhook (and azure_identity)
/// names the federated token file with.
pub const AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
/// The variable the Entra workload identity webhook puts the application's
/// client id in.
pub const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";

/// Where client assertions come from: asked at every token request.
pub trait AssertionSource: Send + Sync + 'static {
    /// The assertion to send now (a JWT). Never cached by m2m.
    fn assertion(&self) -> BoxFuture<'_, Result<SecretString, CredentialError>>;

    /// Where the assertion comes from, for errors.
    fn origin(&self) -> CredentialOrigin;
}

/// A client assertion made elsewhere, read at every token request (the
/// README's "Secretless and rotating credentials"). Cloning shares the source. `Debug` shows
/// where it comes from, never an assertion.
#[derive(Clone)]
pub struct ClientAssertion {
    source: Arc<dyn AssertionSource>,
}

impl ClientAssertion {
    /// The assertion in `path`, read at every token request (its content
    /// less surrounding whitespace; at most 64 KiB).
    pub fn from_file(path: impl Into<PathBuf>) -> Self {
        Self::from_source(AssertionFile(CredentialFile::new(
            CredentialKind::ClientAssertion,
            path,
        )))
    }

    /// The file named by `AZURE_FEDERATED_TOKEN_FILE`, as the Entra
    /// workload identity webhook sets it up. Fails, naming the variable,
    /// when it is not set (or empty, or blank).
    pub fn azure_federated_token_file() -> Result<Self, ConfigError> {
        match std::env::var_os(AZURE_FEDERATED_TOKEN_FILE) {
            Some(path) if !path.to_string_lossy().trim().is_empty() => {
                Ok(Self::from_file(PathBuf::from(path)))
            }
            _ => Err(ConfigError::Invalid(format!(
                "{AZURE_FEDERATED_TOKEN_FILE} is not set: the client assertion file must be named (is the workload identity webhook enabled for this pod?)"
            ))),
        }
    }

    /// The assertion `callback` returns, called at every token request
    /// (fetch a GitHub Actions OIDC token, ask a metadata endpoint, …).
    pub fn from_fn<F>(callback: F) -> Self
    where
        F: Fn() -> BoxFuture<'static, Result<SecretString, CredentialError>>
            + Send
            + Sync
            + 'static,
    {
        Self::from_source(AssertionCallback(callback))
    }

    /// Assertions from any source.
    pub fn from_source(source: impl AssertionSource) -> Self {
        Self {
            source: Arc::new(source),
        }
    }

    /// Where the assertion comes from.
    pub fn origin(&self) -> CredentialOrigin {
        self.source.origin()
    }

    /// The assertion to send at `now`: asked of the source, checked to be a
    /// JWT whose `exp` is after `now`.
    pub(crate) async fn current(&self, now: SystemTime) -> Result<SecretString, CredentialError> {
        let assertion = self.source.assertion().await?;
        let fail = |problem| CredentialError {
            credential: CredentialKind::ClientAssertion,
            origin: self.source.origin(),
            problem,
        };
        let text = assertion.expose_secret().trim();
        if text.is_empty() {
            return Err(fail(CredentialProblem::Empty));
        }
        let exp = expiry(text).map_err(fail)?;
        let now_s = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        if exp <= now_s {
            return Err(fail(CredentialProblem::Expired {
                exp: exp as u64,
                ago: std::time::Duration::from_secs_f64((now_s - exp).min(1e12)),
            }));
        }
        if text.len() == assertion.expose_secret().len() {
            Ok(assertion)
        } else {
            Ok(text.to_owned().into())
        }
    }
}

impl fmt::Debug for ClientAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAssertion")
            .field("origin", &self.source.origin())
            .finish()
    }
}

/// The `exp` of a JWS compact serialisation, read without checking its
/// signature.
fn expiry(jwt: &str) -> Result<f64, CredentialProblem> {
    let mut parts = jwt.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(CredentialProblem::NotAJwt);
    };
    if header.is_empty() || signature.is_empty() {
        return Err(CredentialProblem::NotAJwt);
    }
    let json = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| CredentialProblem::NotAJwt)?;
    let claims: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&json).map_err(|_| CredentialProblem::NotAJwt)?;
    match claims.get("exp") {
        None | Some(serde_json::Value::Null) => Err(CredentialProblem::NoExpiry),
        Some(exp) => exp.as_f64().ok_or(CredentialProblem::NoExpiry),
    }
}

/// Assertions read from a file at every request.
struct AssertionFile(CredentialFile);

impl AssertionSource for AssertionFile {
    fn assertion(&self) -> BoxFuture<'_, Result<SecretString, CredentialError>> {
        Box::pin(async move { trimmed_text(&self.0, &self.0.read().await?) })
    }

    fn origin(&self) -> CredentialOrigin {
        CredentialOrigin::File(self.0.path.clone())
    }
}

/// Assertions from a callback.
struct AssertionCallback<F>(F);

impl<F> AssertionSource for AssertionCallback<F>
where
    F: Fn() -> BoxFuture<'static, Result<SecretString, CredentialError>> + Send + Sync + 'static,
{
    fn assertion(&self) -> BoxFuture<'_, Result<SecretString, CredentialError>> {
        (self.0)()
    }

    fn origin(&self) -> CredentialOrigin {
        CredentialOrigin::Callback
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn jwt(claims: &str) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    async fn check(text: &str, now: u64) -> Result<String, CredentialError> {
        let text = text.to_owned();
        ClientAssertion::from_fn(move || {
            let text = text.clone();
            Box::pin(async move { Ok(SecretString::from(text)) })
        })
        .current(at(now))
        .await
        .map(|s| s.expose_secret().to_owned())
    }

    #[tokio::test]
    async fn the_expiry_is_read_without_the_signature() {
        let good = jwt(r#"{"iss":"k8s","exp":2000}"#);
        assert_eq!(check(&good, 1999).await.unwrap(), good);
        assert_eq!(
            check(&format!("{good}\n"), 1999).await.unwrap(),
            good,
            "a trailing newline is not sent"
        );
        let expired = check(&good, 2030).await.unwrap_err();
        assert_eq!(
            expired.problem,
            CredentialProblem::Expired {
                exp: 2000,
                ago: Duration::from_secs(30)
            }
        );
        assert!(!expired.to_string().contains(&good));
        assert_eq!(
            check(&jwt(r#"{"iss":"k8s"}"#), 0)
                .await
                .unwrap_err()
                .problem,
            CredentialProblem::NoExpiry
        );
        assert_eq!(
            check(&jwt(r#"{"exp":"soon"}"#), 0)
                .await
                .unwrap_err()
                .problem,
            CredentialProblem::NoExpiry
        );
        for bad in ["opaque-token", "a.b", "a.b.c.d.e", &jwt("[1]"), ".e30.x"] {
            assert_eq!(
                check(bad, 0).await.unwrap_err().problem,
                CredentialProblem::NotAJwt,
                "{bad}"
            );
        }
        assert_eq!(
            check("  \n", 0).await.unwrap_err().problem,
            CredentialProblem::Empty
        );
    }

    #[tokio::test]
    async fn a_callbacks_failure_is_its_own() {
        let failing = ClientAssertion::from_fn(|| {
            Box::pin(async { Err(CredentialError::assertion_callback("no OIDC token")) })
        });
        let error = failing.current(at(0)).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "the client assertion callback failed: no OIDC token"
        );
        assert_eq!(
            format!("{failing:?}"),
            "ClientAssertion { origin: Callback }"
        );
    }
}
