//! A lock holder's failed fetch as it is kept in Redis: versioned JSON of
//! a [`SharedFailure`] (secret-free by construction: an error's text).

use std::time::Duration;

use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::oauth::error::{OAuthError, SharedFailure};

/// The stored form; version 1.
#[derive(Serialize, Deserialize)]
struct Record {
    v: u32,
    message: String,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    oauth: Option<OAuthError>,
    #[serde(default)]
    retry_after_ms: Option<u64>,
    #[serde(default)]
    retryable: bool,
}

pub(super) fn encode(failure: &SharedFailure) -> Vec<u8> {
    let record = Record {
        v: 1,
        message: failure.message.clone(),
        status: failure.status.map(|status| status.as_u16()),
        oauth: failure.oauth.clone(),
        retry_after_ms: failure
            .retry_after
            .map(|after| u64::try_from(after.as_millis()).unwrap_or(u64::MAX)),
        retryable: failure.retryable,
    };
    // A struct of strings and numbers always serialises.
    serde_json::to_vec(&record).unwrap_or_default()
}

/// The failure, or `None` for a value that does not read back (another
/// version, garbage): then nothing is known to have failed.
pub(super) fn decode(raw: &[u8]) -> Option<SharedFailure> {
    let record: Record = serde_json::from_slice(raw).ok()?;
    if record.v != 1 {
        return None;
    }
    let status = record.status.and_then(|s| StatusCode::from_u16(s).ok());
    let retry_after = record.retry_after_ms.map(Duration::from_millis);
    Some(
        SharedFailure::new(record.message, record.retryable).with_details(
            status,
            record.oauth,
            retry_after,
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthError, EndpointError};

    #[test]
    fn a_failure_reads_back_as_it_was_shared() {
        let error = AuthError::Rejected(Box::new(EndpointError {
            url: "https://login.example/token".into(),
            status: StatusCode::UNAUTHORIZED,
            retry_after: Some(Duration::from_secs(3)),
            oauth: Some(OAuthError {
                error: "invalid_client".into(),
                error_codes: vec![7_000_215],
                ..OAuthError::default()
            }),
            excerpt: None,
            scope_format: None,
        }));
        let shared = SharedFailure::of(&error);
        assert_eq!(decode(&encode(&shared)), Some(shared.clone()));
        assert_eq!(shared.status, Some(StatusCode::UNAUTHORIZED));
        assert!(!shared.retryable);
        let again = AuthError::Shared(Box::new(shared));
        assert_eq!(
            again.oauth_error().map(|o| o.error.as_str()),
            Some("invalid_client")
        );
        assert!(again.to_string().ends_with(&error.to_string()), "{again}");
        assert_eq!(decode(b"garbage"), None);
        assert_eq!(decode(br#"{"v":2,"message":"from a newer m2m"}"#), None);
    }
}
