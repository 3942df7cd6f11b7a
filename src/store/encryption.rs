//! The key that encrypts access tokens at rest (Redis, files): AES-256-GCM from
//! aws-lc-rs (the crypto library rustls already links), a random 96-bit
//! nonce per value.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, Nonce, RandomizedNonceKey};
use aws_lc_rs::{digest, hkdf};
use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use secrecy::{ExposeSecret, SecretSlice};

/// A 256-bit key that encrypts cached access tokens before they go to Redis
/// or to a file.
///
/// Every process of a fleet must use the same key (usually from the
/// [`CacheEncryptionKey::ENV_VAR`] environment variable); a value written
/// with another key is treated as a miss and overwritten. Make one with
/// `openssl rand -base64 32`.
///
/// `Debug` shows only the key id, a fingerprint that tells keys apart
/// without revealing them.
pub struct CacheEncryptionKey {
    key: RandomizedNonceKey,
    id: String,
}

/// Why a cache encryption key was refused. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncryptionKeyError {
    /// The text is not base64 (standard or URL-safe alphabet).
    #[error("the cache encryption key is not valid base64")]
    NotBase64,
    /// The key does not have 32 bytes.
    #[error("the cache encryption key has {len} bytes; AES-256-GCM needs 32")]
    WrongLength {
        /// How many bytes it had.
        len: usize,
    },
    /// The environment variable is set but not valid Unicode.
    #[error("the environment variable {var} is not valid Unicode")]
    NotUnicode {
        /// The variable's name.
        var: &'static str,
    },
    /// The crypto library refused the key.
    #[error("the crypto library refused the cache encryption key")]
    Rejected,
}

/// HKDF salt of [`CacheEncryptionKey::derive_from_secret`]; versioned.
const DERIVE_SALT: &[u8] = b"m2m/cache-encryption-key-from-secret/v1";

/// Versioned, so another derivation never yields the same id.
const KEY_ID_CONTEXT: &[u8] = b"m2m/cache-encryption-key-id/v1";

/// Nonce length of AES-256-GCM (96 bits).
pub(super) const NONCE_LEN: usize = 12;

impl CacheEncryptionKey {
    /// The environment variable [`CacheEncryptionKey::from_env`] reads.
    pub const ENV_VAR: &'static str = "M2M_CACHE_KEY";

    /// The length of a key in bytes.
    pub const LEN: usize = 32;

    /// A key from its 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EncryptionKeyError> {
        if bytes.len() != Self::LEN {
            return Err(EncryptionKeyError::WrongLength { len: bytes.len() });
        }
        let key = RandomizedNonceKey::new(&AES_256_GCM, bytes)
            .map_err(|_| EncryptionKeyError::Rejected)?;
        let mut context = digest::Context::new(&digest::SHA256);
        context.update(KEY_ID_CONTEXT);
        context.update(bytes);
        let id = to_hex(&context.finish().as_ref()[..8]);
        Ok(Self { key, id })
    }

    /// A key derived (HKDF-SHA256) from a secret the caller already keeps,
    /// such as the client secret or the private key of the client whose
    /// tokens it protects: whoever can read the cache then needs that secret
    /// too, and could have asked for a token with it anyway. Any length
    /// will do, but an empty secret is refused.
    pub fn derive_from_secret(secret: &[u8]) -> Result<Self, EncryptionKeyError> {
        if secret.is_empty() {
            return Err(EncryptionKeyError::WrongLength { len: 0 });
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, DERIVE_SALT).extract(secret);
        let mut bytes = [0u8; Self::LEN];
        prk.expand(&[], hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut bytes))
            .map_err(|_| EncryptionKeyError::Rejected)?;
        let key = Self::from_bytes(&bytes);
        bytes.fill(0);
        key
    }

    /// A key from base64 text (standard or URL-safe alphabet, padded or not;
    /// surrounding whitespace is ignored).
    pub fn from_base64(encoded: &str) -> Result<Self, EncryptionKeyError> {
        const INDIFFERENT: GeneralPurposeConfig =
            GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
        const STANDARD: GeneralPurpose =
            GeneralPurpose::new(&base64::alphabet::STANDARD, INDIFFERENT);
        const URL_SAFE: GeneralPurpose =
            GeneralPurpose::new(&base64::alphabet::URL_SAFE, INDIFFERENT);
        let encoded = encoded.trim();
        let bytes: SecretSlice<u8> = STANDARD
            .decode(encoded)
            .or_else(|_| URL_SAFE.decode(encoded))
            .map_err(|_| EncryptionKeyError::NotBase64)?
            .into();
        Self::from_bytes(bytes.expose_secret())
    }

    /// The key in [`CacheEncryptionKey::ENV_VAR`] (`M2M_CACHE_KEY`), in
    /// base64; `Ok(None)` when the variable is unset or empty.
    pub fn from_env() -> Result<Option<Self>, EncryptionKeyError> {
        match std::env::var(Self::ENV_VAR) {
            Ok(value) if value.trim().is_empty() => Ok(None),
            Ok(value) => {
                let value = secrecy::SecretString::from(value);
                Self::from_base64(value.expose_secret()).map(Some)
            }
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(EncryptionKeyError::NotUnicode { var: Self::ENV_VAR })
            }
        }
    }

    /// The key id: 16 hex characters of a SHA-256 fingerprint, written next
    /// to every encrypted value so a value from another key is recognised
    /// without trying to decrypt it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Encrypts `plaintext` bound to `aad`: the random nonce and the
    /// ciphertext with its tag.
    pub(super) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Option<([u8; NONCE_LEN], Vec<u8>)> {
        let mut in_out = plaintext.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(aad), &mut in_out)
            .ok()?;
        Some((*nonce.as_ref(), in_out))
    }

    /// Decrypts what [`CacheEncryptionKey::seal`] made with the same `aad`;
    /// `None` if the key, the nonce, the AAD or the ciphertext differ.
    pub(super) fn open(&self, nonce: &[u8], aad: &[u8], mut sealed: Vec<u8>) -> Option<Vec<u8>> {
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let len = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut sealed)
            .ok()?
            .len();
        sealed.truncate(len);
        Some(sealed)
    }
}

impl fmt::Debug for CacheEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheEncryptionKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Lowercase hex.
pub(super) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Standard padded base64, as values are written.
pub(super) fn base64_encode(bytes: &[u8]) -> String {
    general_purpose::STANDARD.encode(bytes)
}

/// Standard padded base64, as values are written; `None` if it is not.
pub(super) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    general_purpose::STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn parses_standard_and_url_safe_base64_with_or_without_padding() {
        let bytes: Vec<u8> = (0..32).collect();
        let id = CacheEncryptionKey::from_bytes(&bytes)
            .unwrap()
            .id()
            .to_owned();
        assert_eq!(id.len(), 16);
        for text in [
            KEY_B64,
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
            "  AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        ] {
            assert_eq!(CacheEncryptionKey::from_base64(text).unwrap().id(), id);
        }
        let url_safe: Vec<u8> = vec![0xfb; 32];
        let text = general_purpose::URL_SAFE_NO_PAD.encode(&url_safe);
        assert!(text.contains('-') || text.contains('_'), "{text}");
        assert_eq!(
            CacheEncryptionKey::from_base64(&text).unwrap().id(),
            CacheEncryptionKey::from_bytes(&url_safe).unwrap().id()
        );
    }

    #[test]
    fn refuses_bad_keys_without_echoing_them() {
        let error = CacheEncryptionKey::from_base64("not base64 at all!").unwrap_err();
        assert_eq!(error, EncryptionKeyError::NotBase64);
        let error = CacheEncryptionKey::from_base64("c2hvcnQta2V5").unwrap_err();
        assert_eq!(error, EncryptionKeyError::WrongLength { len: 9 });
        assert!(!error.to_string().contains("c2hvcnQta2V5"));
    }

    #[test]
    fn a_derived_key_depends_on_the_secret_only_and_refuses_an_empty_one() {
        let one = CacheEncryptionKey::derive_from_secret(b"client-secret-1").unwrap();
        let again = CacheEncryptionKey::derive_from_secret(b"client-secret-1").unwrap();
        let two = CacheEncryptionKey::derive_from_secret(b"client-secret-2").unwrap();
        assert_eq!(one.id(), again.id());
        assert_ne!(one.id(), two.id());
        let (nonce, sealed) = one.seal(b"aad", b"token").unwrap();
        assert_eq!(
            again.open(&nonce, b"aad", sealed.clone()).unwrap(),
            b"token"
        );
        assert_eq!(two.open(&nonce, b"aad", sealed), None);
        assert_eq!(
            CacheEncryptionKey::derive_from_secret(b"").unwrap_err(),
            EncryptionKeyError::WrongLength { len: 0 }
        );
    }

    #[test]
    fn different_keys_have_different_ids_and_debug_hides_the_key() {
        let one = CacheEncryptionKey::from_bytes(&[1; 32]).unwrap();
        let two = CacheEncryptionKey::from_bytes(&[2; 32]).unwrap();
        assert_ne!(one.id(), two.id());
        assert_eq!(
            format!("{one:?}"),
            format!("CacheEncryptionKey {{ id: {:?}, .. }}", one.id())
        );
    }

    #[test]
    fn seals_with_a_fresh_nonce_and_opens_only_with_the_same_key_and_aad() {
        let key = CacheEncryptionKey::from_base64(KEY_B64).unwrap();
        let (nonce_a, sealed_a) = key.seal(b"aad", b"token-value").unwrap();
        let (nonce_b, sealed_b) = key.seal(b"aad", b"token-value").unwrap();
        assert_ne!(nonce_a, nonce_b);
        assert_ne!(sealed_a, sealed_b);
        assert_eq!(sealed_a.len(), b"token-value".len() + 16);
        assert_eq!(
            key.open(&nonce_a, b"aad", sealed_a.clone()).unwrap(),
            b"token-value"
        );
        assert_eq!(key.open(&nonce_a, b"other aad", sealed_a.clone()), None);
        assert_eq!(key.open(&nonce_b, b"aad", sealed_a.clone()), None);
        assert_eq!(key.open(&nonce_a[..8], b"aad", sealed_a.clone()), None);
        let other = CacheEncryptionKey::from_bytes(&[9; 32]).unwrap();
        assert_eq!(other.open(&nonce_a, b"aad", sealed_a), None);
    }
}
