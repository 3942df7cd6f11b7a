//! Client secrets that change without a restart: a secret file read again
//! when its content changes, and a second secret to fail over to.
//!
//! Rotating a secret without downtime: register the next secret with the
//! provider, give it to the client as the second (`secondary_client_secret_env`),
//! then retire the first. A token request refused with `invalid_client`
//! (or a bare 401) is sent once more with the other secret; when that one
//! is accepted, it is used from then on, and the switch is logged by which
//! secret it is (first or second), never by its value. Each switch bumps
//! the credential's *epoch*: the token cache sees the change at its next
//! call and evicts the tokens it holds for the endpoints that share this
//! credential, since they were obtained with a secret the server now refuses.
//!
//! Concurrent requests: each one retries with the secret *it did not use*
//! (not with "the other of the current one"), and the switch is a
//! compare-and-swap from the refused secret to the accepted one, so two
//! requests failing over at once switch (and log) once, and a request that
//! started with the stale secret never switches back.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use http::StatusCode;
use secrecy::SecretString;

use super::credential_file::{CredentialFile, Reloading, trimmed_text};
use super::error::{AuthError, CredentialError, CredentialKind};

/// Which of a client's two secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretSlot {
    /// The first (`client_secret_env`, `client_secret_file`).
    First,
    /// The second (`secondary_client_secret_env`).
    Second,
}

impl SecretSlot {
    fn other(self) -> Self {
        match self {
            Self::First => Self::Second,
            Self::Second => Self::First,
        }
    }

    fn index(self) -> u8 {
        match self {
            Self::First => 0,
            Self::Second => 1,
        }
    }

    fn from_index(index: u8) -> Self {
        if index == 0 {
            Self::First
        } else {
            Self::Second
        }
    }
}

impl fmt::Display for SecretSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::First => "first",
            Self::Second => "second",
        })
    }
}

/// One secret: a value, or a file read again when it changes.
enum SecretValue {
    Fixed(SecretString),
    File(Reloading<SecretString>),
}

impl SecretValue {
    async fn current(&self) -> Result<SecretString, CredentialError> {
        match self {
            Self::Fixed(secret) => Ok(secret.clone()),
            Self::File(file) => file.current().await.map(|s| (*s).clone()),
        }
    }

    fn file(path: PathBuf) -> Result<Self, CredentialError> {
        let file = CredentialFile::new(CredentialKind::ClientSecret, path);
        let parser = file.clone();
        Reloading::load(vec![file], move |contents| {
            trimmed_text(&parser, &contents[0])
        })
        .map(Self::File)
    }
}

/// A client secret (or two) that may change under the process: see the
/// README's "Secretless and rotating credentials". Cloning shares the secrets and which one
/// is in use. `Debug` never shows a secret.
#[derive(Clone)]
pub struct ClientSecrets {
    first: Arc<SecretValue>,
    second: Option<Arc<SecretValue>>,
    state: Arc<RotationState>,
}

#[derive(Default)]
struct RotationState {
    /// [`SecretSlot::index`] of the secret in use.
    active: AtomicU8,
    /// Bumped at each switch.
    epoch: AtomicU64,
}

impl ClientSecrets {
    /// One secret, `first`.
    pub fn new(first: SecretString) -> Self {
        Self::with_first(SecretValue::Fixed(first))
    }

    /// The secret in `path` (its content less surrounding whitespace, at
    /// most 64 KiB), read now and again at every token request; a changed
    /// content is used from that request on. Fails, naming the file, when
    /// it cannot be read or is empty.
    pub fn from_file(path: impl Into<PathBuf>) -> Result<Self, CredentialError> {
        Ok(Self::with_first(SecretValue::file(path.into())?))
    }

    /// With a second secret to fail over to.
    pub fn second(mut self, second: SecretString) -> Self {
        self.second = Some(Arc::new(SecretValue::Fixed(second)));
        self
    }

    /// With a second secret read from `path` (as [`Self::from_file`]).
    pub fn second_file(mut self, path: impl Into<PathBuf>) -> Result<Self, CredentialError> {
        self.second = Some(Arc::new(SecretValue::file(path.into())?));
        Ok(self)
    }

    fn with_first(first: SecretValue) -> Self {
        Self {
            first: Arc::new(first),
            second: None,
            state: Arc::default(),
        }
    }

    /// The secret in use: the first until the server refuses it and takes
    /// the second.
    pub fn in_use(&self) -> SecretSlot {
        SecretSlot::from_index(self.state.active.load(Ordering::Acquire))
    }

    /// How many times the secret in use changed: tokens obtained before a
    /// change were obtained with a secret the server refuses now.
    pub fn epoch(&self) -> u64 {
        self.state.epoch.load(Ordering::Acquire)
    }

    fn value(&self, slot: SecretSlot) -> Option<&SecretValue> {
        match slot {
            SecretSlot::First => Some(&self.first),
            SecretSlot::Second => self.second.as_deref(),
        }
    }

    /// Sends with the secret in use; when that is refused as an
    /// `invalid_client`, once more with the other, which becomes the one in
    /// use if the server takes it.
    pub(crate) async fn send_with_fail_over<T, F, Fut>(&self, send: F) -> Result<T, AuthError>
    where
        F: Fn(SecretString) -> Fut,
        Fut: Future<Output = Result<T, AuthError>>,
    {
        let used = self.in_use();
        let secret = self.current(used).await?;
        let refused = match send(secret).await {
            Err(error) if refuses_the_client(&error) => error,
            result => return result,
        };
        let other = used.other();
        let Some(value) = self.value(other) else {
            return Err(refused);
        };
        let secret = match value.current().await {
            Ok(secret) => secret,
            Err(unusable) => {
                tracing::warn!(refused = %used, other = %other, error = %unusable,
                    "the client secret in use was refused, and the other cannot be read");
                return Err(refused);
            }
        };
        tracing::info!(refused = %used, trying = %other,
            "the token endpoint refused the client secret in use (invalid_client): trying the other");
        let result = send(secret).await;
        match &result {
            Ok(_) => {
                if self
                    .state
                    .active
                    .compare_exchange(
                        used.index(),
                        other.index(),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    )
                    .is_ok()
                {
                    self.state.epoch.fetch_add(1, Ordering::AcqRel);
                    tracing::warn!(secret = %other, refused = %used,
                        "the {used} client secret is refused and the {other} accepted: the {other} is used from now on, and tokens obtained with the {used} are evicted");
                }
            }
            Err(error) if refuses_the_client(error) => {
                tracing::warn!(
                    "both client secrets were refused (invalid_client): check them and the client id"
                );
            }
            Err(_) => {}
        }
        result
    }

    async fn current(&self, slot: SecretSlot) -> Result<SecretString, CredentialError> {
        match self.value(slot) {
            Some(value) => value.current().await,
            // Never in use without being set; the first always is.
            None => self.first.current().await,
        }
    }
}

/// Whether the token endpoint refused the client's authentication:
/// `invalid_client`, or a 401 without an OAuth error body.
fn refuses_the_client(error: &AuthError) -> bool {
    match error.oauth_error() {
        Some(oauth) => oauth.error == "invalid_client",
        None => {
            matches!(error, AuthError::Rejected(_))
                && error.status() == Some(StatusCode::UNAUTHORIZED)
        }
    }
}

impl fmt::Debug for ClientSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let describe = |value: &SecretValue| match value {
            SecretValue::Fixed(_) => "[redacted]".to_owned(),
            SecretValue::File(file) => format!("file {}", file.files()[0].path.display()),
        };
        f.debug_struct("ClientSecrets")
            .field("first", &describe(&self.first))
            .field("second", &self.second.as_deref().map(describe))
            .field("in_use", &self.in_use())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::error::{EndpointError, OAuthError};
    use secrecy::ExposeSecret;
    use std::sync::Mutex;

    fn invalid_client() -> AuthError {
        AuthError::Rejected(Box::new(EndpointError {
            url: "https://t.example/token".into(),
            status: StatusCode::BAD_REQUEST,
            retry_after: None,
            oauth: Some(OAuthError {
                error: "invalid_client".into(),
                ..OAuthError::default()
            }),
            excerpt: None,
            scope_format: None,
        }))
    }

    #[tokio::test]
    async fn a_refused_secret_fails_over_once_and_the_accepted_one_stays() {
        let secrets = ClientSecrets::new("old".to_owned().into()).second("new".to_owned().into());
        let sent = Mutex::new(Vec::new());
        let send = |secret: SecretString| {
            let value = secret.expose_secret().to_owned();
            sent.lock().unwrap().push(value.clone());
            async move {
                if value == "new" {
                    Ok(())
                } else {
                    Err(invalid_client())
                }
            }
        };
        secrets.send_with_fail_over(send).await.unwrap();
        assert_eq!(secrets.in_use(), SecretSlot::Second);
        assert_eq!(secrets.epoch(), 1);
        secrets.send_with_fail_over(send).await.unwrap();
        assert_eq!(*sent.lock().unwrap(), ["old", "new", "new"]);
        assert_eq!(secrets.epoch(), 1);
        let debug = format!("{secrets:?}");
        assert!(!debug.contains("old") && !debug.contains("new"), "{debug}");
    }

    #[tokio::test]
    async fn without_a_second_secret_or_when_both_are_refused_nothing_switches() {
        let refuse = |_: SecretString| async { Err::<(), _>(invalid_client()) };
        let one = ClientSecrets::new("a".to_owned().into());
        assert!(one.send_with_fail_over(refuse).await.is_err());
        let two = ClientSecrets::new("a".to_owned().into()).second("b".to_owned().into());
        assert!(two.send_with_fail_over(refuse).await.is_err());
        assert_eq!(two.in_use(), SecretSlot::First);
        assert_eq!(two.epoch(), 0);
    }

    #[tokio::test]
    async fn a_stale_request_that_fails_over_late_does_not_switch_back() {
        let secrets = ClientSecrets::new("old".to_owned().into()).second("new".to_owned().into());
        let accept_new = |secret: SecretString| async move {
            if secret.expose_secret() == "new" {
                Ok(())
            } else {
                Err(invalid_client())
            }
        };
        // Two requests fail over concurrently: one switch, one epoch.
        let (a, b) = tokio::join!(
            secrets.send_with_fail_over(accept_new),
            secrets.send_with_fail_over(accept_new)
        );
        a.unwrap();
        b.unwrap();
        assert_eq!(secrets.in_use(), SecretSlot::Second);
        assert_eq!(secrets.epoch(), 1);
    }
}
