//! How a token is written at rest, in Redis ([`RedisStore`]) and in files
//! ([`FileStore`]): versioned JSON, the access token encrypted when a key is
//! configured (always, in files).
//!
//! [`RedisStore`]: crate::auth::RedisStore
//! [`FileStore`]: crate::auth::FileStore
//!
//! ```json
//! {"v":1,"token_type":"Bearer","expires_at_ms":1767225600000,"scopes":["api/.default"],
//!  "access_token":{"alg":"A256GCM","kid":"3f…","nonce":"…","ciphertext":"…"}}
//! ```
//!
//! Without a key, `access_token` is `{"alg":"none","value":"…"}`. The
//! ciphertext is bound (AES-GCM additional data) to the cache key, the token
//! type, the expiry and the scopes: a value copied under another key, or
//! with a later expiry, does not decrypt. Anything that does not read back
//! as this version with this key is [`Unreadable`]: a miss, never a panic.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::encryption::{CacheEncryptionKey, base64_decode, base64_encode};
use super::key::CacheKey;
use super::token_store::StoreError;
use crate::oauth::token::AccessToken;

/// The version this build writes and reads.
pub(super) const VERSION: u32 = 1;

/// Prefix of the additional data; versioned with the format. The name is
/// historical (the format was Redis's first): files use the same.
const AAD_CONTEXT: &[u8] = b"m2m/redis-token/v1";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    v: u32,
    token_type: String,
    expires_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scopes: Option<Vec<String>>,
    access_token: Sealed,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "alg", deny_unknown_fields)]
enum Sealed {
    #[serde(rename = "none")]
    Plain { value: String },
    #[serde(rename = "A256GCM")]
    Aes256Gcm {
        kid: String,
        nonce: String,
        ciphertext: String,
    },
}

#[derive(Deserialize)]
struct VersionOnly {
    v: u32,
}

/// Why a stored value was not taken. Never contains the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum Unreadable {
    #[error("not a token value written by m2m")]
    Foreign,
    #[error("written in format version {0}; this build reads version {VERSION}")]
    OtherVersion(u32),
    #[error("malformed token value")]
    Malformed,
    #[error("the token is encrypted but no cache encryption key is configured")]
    EncryptedWithoutKey,
    #[error("the token is stored in clear text but a cache encryption key is configured")]
    ClearWithKey,
    #[error("the token was encrypted with another key")]
    OtherKey,
    #[error("the token does not decrypt (tampered with, or moved from another key)")]
    DoesNotDecrypt,
}

/// Encodes and decodes stored tokens, with or without an encryption key.
pub(super) struct Codec {
    key: Option<Arc<CacheEncryptionKey>>,
}

impl Codec {
    pub fn new(key: Option<Arc<CacheEncryptionKey>>) -> Self {
        Self { key }
    }

    /// The value to store for `token` under `key`.
    pub fn encode(&self, key: &CacheKey, token: &AccessToken) -> Result<Vec<u8>, StoreError> {
        let expires_at_ms = to_unix_ms(token.expires_at());
        let scopes = token.scopes().map(<[String]>::to_vec);
        let secret = token.secret().expose_secret();
        let access_token = match &self.key {
            None => Sealed::Plain {
                value: secret.to_owned(),
            },
            Some(encryption) => {
                let aad = aad(key, token.token_type(), expires_at_ms, scopes.as_deref());
                let (nonce, ciphertext) = encryption
                    .seal(&aad, secret.as_bytes())
                    .ok_or_else(|| StoreError::new("encrypting the token for the store failed"))?;
                Sealed::Aes256Gcm {
                    kid: encryption.id().to_owned(),
                    nonce: base64_encode(&nonce),
                    ciphertext: base64_encode(&ciphertext),
                }
            }
        };
        let stored = Stored {
            v: VERSION,
            token_type: token.token_type().to_owned(),
            expires_at_ms,
            scopes,
            access_token,
        };
        serde_json::to_vec(&stored)
            .map_err(|_| StoreError::new("serialising the token for the store failed"))
    }

    /// The token stored as `raw` under `key`, if this build with this key
    /// can read it.
    pub fn decode(&self, key: &CacheKey, raw: &[u8]) -> Result<AccessToken, Unreadable> {
        let version: VersionOnly = serde_json::from_slice(raw).map_err(|_| Unreadable::Foreign)?;
        if version.v != VERSION {
            return Err(Unreadable::OtherVersion(version.v));
        }
        let stored: Stored = serde_json::from_slice(raw).map_err(|_| Unreadable::Malformed)?;
        let expires_at = SystemTime::UNIX_EPOCH
            .checked_add(Duration::from_millis(stored.expires_at_ms))
            .ok_or(Unreadable::Malformed)?;
        let secret = match (stored.access_token, &self.key) {
            (Sealed::Plain { value }, None) => SecretString::from(value),
            (Sealed::Plain { .. }, Some(_)) => return Err(Unreadable::ClearWithKey),
            (Sealed::Aes256Gcm { .. }, None) => return Err(Unreadable::EncryptedWithoutKey),
            (
                Sealed::Aes256Gcm {
                    kid,
                    nonce,
                    ciphertext,
                },
                Some(encryption),
            ) => {
                if kid != encryption.id() {
                    return Err(Unreadable::OtherKey);
                }
                let nonce = base64_decode(&nonce).ok_or(Unreadable::Malformed)?;
                let ciphertext = base64_decode(&ciphertext).ok_or(Unreadable::Malformed)?;
                let aad = aad(
                    key,
                    &stored.token_type,
                    stored.expires_at_ms,
                    stored.scopes.as_deref(),
                );
                let plaintext = encryption
                    .open(&nonce, &aad, ciphertext)
                    .ok_or(Unreadable::DoesNotDecrypt)?;
                let text = String::from_utf8(plaintext).map_err(|_| Unreadable::Malformed)?;
                SecretString::from(text)
            }
        };
        AccessToken::new(secret, &stored.token_type, expires_at, stored.scopes)
            .map_err(|_| Unreadable::Malformed)
    }
}

/// Milliseconds since the Unix epoch, rounded down (0 before it).
pub(super) fn to_unix_ms(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The additional data the ciphertext is bound to: every field of the
/// value and the cache key, length-prefixed.
fn aad(key: &CacheKey, token_type: &str, expires_at_ms: u64, scopes: Option<&[String]>) -> Vec<u8> {
    let mut aad = Vec::with_capacity(128);
    aad.extend_from_slice(AAD_CONTEXT);
    let mut part = |bytes: &[u8]| {
        aad.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        aad.extend_from_slice(bytes);
    };
    part(key.as_str().as_bytes());
    part(token_type.as_bytes());
    part(&expires_at_ms.to_be_bytes());
    match scopes {
        None => part(b"no scopes"),
        Some(scopes) => {
            part(&(scopes.len() as u64).to_be_bytes());
            for scope in scopes {
                part(scope.as_bytes());
            }
        }
    }
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "eyJ.envelope-test-token.sig";

    fn key(client: &str) -> CacheKey {
        CacheKey::new("Custom", "https://idp.test/token", client, ["s"], None)
    }

    fn token() -> AccessToken {
        let expires_at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_767_225_600_123);
        AccessToken::new(
            SecretString::from(SECRET),
            "bearer",
            expires_at,
            Some(vec!["s".into()]),
        )
        .unwrap()
    }

    fn encrypted(byte: u8) -> Codec {
        Codec::new(Some(Arc::new(
            CacheEncryptionKey::from_bytes(&[byte; 32]).unwrap(),
        )))
    }

    fn json(raw: &[u8]) -> serde_json::Value {
        serde_json::from_slice(raw).unwrap()
    }

    #[test]
    fn clear_text_round_trip() {
        let codec = Codec::new(None);
        let raw = codec.encode(&key("a"), &token()).unwrap();
        let value = json(&raw);
        assert_eq!(value["v"], 1);
        assert_eq!(value["access_token"]["alg"], "none");
        assert_eq!(value["access_token"]["value"], SECRET);
        assert_eq!(value["expires_at_ms"], 1_767_225_600_123u64);
        let back = codec.decode(&key("a"), &raw).unwrap();
        assert!(back.is_sent_as(token().authorization()));
        assert_eq!(back.expires_at(), token().expires_at());
        assert_eq!(back.scopes(), Some(&["s".to_owned()][..]));
    }

    #[test]
    fn encrypted_values_do_not_contain_the_token_and_round_trip() {
        let codec = encrypted(7);
        let raw = codec.encode(&key("a"), &token()).unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("envelope-test-token"));
        let value = json(&raw);
        assert_eq!(value["access_token"]["alg"], "A256GCM");
        assert_eq!(value["access_token"]["kid"].as_str().unwrap().len(), 16);
        assert_eq!(
            base64_decode(value["access_token"]["nonce"].as_str().unwrap())
                .unwrap()
                .len(),
            12
        );
        let back = codec.decode(&key("a"), &raw).unwrap();
        assert!(back.is_sent_as(token().authorization()));
    }

    #[test]
    fn wrong_key_moved_value_and_tampering_are_misses() {
        let codec = encrypted(7);
        let raw = codec.encode(&key("a"), &token()).unwrap();
        assert_eq!(
            encrypted(8).decode(&key("a"), &raw).unwrap_err(),
            Unreadable::OtherKey
        );
        assert_eq!(
            Codec::new(None).decode(&key("a"), &raw).unwrap_err(),
            Unreadable::EncryptedWithoutKey
        );
        assert_eq!(
            codec.decode(&key("b"), &raw).unwrap_err(),
            Unreadable::DoesNotDecrypt
        );
        let mut later = json(&raw);
        later["expires_at_ms"] = serde_json::json!(1_767_225_600_123u64 + 3_600_000);
        let later = serde_json::to_vec(&later).unwrap();
        assert_eq!(
            codec.decode(&key("a"), &later).unwrap_err(),
            Unreadable::DoesNotDecrypt
        );
        let clear = Codec::new(None).encode(&key("a"), &token()).unwrap();
        assert_eq!(
            codec.decode(&key("a"), &clear).unwrap_err(),
            Unreadable::ClearWithKey
        );
    }

    #[test]
    fn garbage_and_other_versions_are_misses() {
        let codec = Codec::new(None);
        let cases: [(&[u8], Unreadable); 6] = [
            (b"garbage", Unreadable::Foreign),
            (b"", Unreadable::Foreign),
            (b"\xff\xfe\x00", Unreadable::Foreign),
            (br#"{"v":2,"anything":true}"#, Unreadable::OtherVersion(2)),
            (br#"{"v":1,"token_type":"Bearer"}"#, Unreadable::Malformed),
            (
                br#"{"v":1,"token_type":"Bearer","expires_at_ms":1,"access_token":{"alg":"none","value":"bad\nvalue"}}"#,
                Unreadable::Malformed,
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(
                codec.decode(&key("a"), raw).unwrap_err(),
                expected,
                "{raw:?}"
            );
        }
        let huge = br#"{"v":1,"token_type":"Bearer","expires_at_ms":18446744073709551615,"access_token":{"alg":"none","value":"x"}}"#;
        // The largest expiry still reads (SystemTime holds it on 64-bit Unix).
        assert!(codec.decode(&key("a"), huge).is_ok());
        let with_key = encrypted(7);
        let kid = CacheEncryptionKey::from_bytes(&[7; 32])
            .unwrap()
            .id()
            .to_owned();
        let bad_nonce = format!(
            r#"{{"v":1,"token_type":"Bearer","expires_at_ms":1,"access_token":{{"alg":"A256GCM","kid":"{kid}","nonce":"%%","ciphertext":"AA=="}}}}"#
        );
        assert_eq!(
            with_key
                .decode(&key("a"), bad_nonce.as_bytes())
                .unwrap_err(),
            Unreadable::Malformed
        );
        let short = bad_nonce.replace("%%", "AAAA");
        assert_eq!(
            with_key.decode(&key("a"), short.as_bytes()).unwrap_err(),
            Unreadable::DoesNotDecrypt
        );
    }
}
