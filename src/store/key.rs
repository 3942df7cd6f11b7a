//! What a cached token is filed under.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use aws_lc_rs::digest;

use crate::endpoint::token_endpoint::EndpointIdentity;

/// Identifies one kind of token: the same provider, token endpoint, client,
/// scopes and resource always give the same key, in every process.
///
/// Scopes are order-insensitive and deduplicated (`"b a"`, `["a", "b", "a"]`
/// and `["a", "b"]` are one key). The key's string form ([`CacheKey::as_str`])
/// is the SHA-256 of those parts in hex: stable across releases and
/// processes, usable as a Redis key suffix, and free of secrets by
/// construction (no client secret or assertion ever goes into a key).
///
/// Cloning is cheap (one reference count).
#[derive(Clone)]
pub struct CacheKey(Arc<KeyParts>);

struct KeyParts {
    provider: String,
    token_endpoint: String,
    client_id: String,
    scopes: Vec<String>,
    resource: Option<String>,
    key_binding: Option<String>,
    digest: [u8; 32],
    hex: String,
}

/// Version tag hashed in front of the parts: changing the encoding below
/// must change this tag, so old and new keys never collide.
const KEY_ENCODING: &[u8] = b"m2m/token-cache-key/v1";

impl CacheKey {
    /// The key for tokens of `client_id` at `token_endpoint` (or issuer) of
    /// `provider`, for `scopes` and an optional `resource` (RFC 8707).
    ///
    /// Each scope item may itself hold several space-separated scopes; empty
    /// items are ignored. Strings are taken as given (scopes are
    /// case-sensitive in OAuth 2.0); pass the endpoint the same way every time.
    pub fn new<S: AsRef<str>>(
        provider: &str,
        token_endpoint: &str,
        client_id: &str,
        scopes: impl IntoIterator<Item = S>,
        resource: Option<&str>,
    ) -> Self {
        Self::bound(provider, token_endpoint, client_id, scopes, resource, None)
    }

    /// [`CacheKey::new`] for sender-constrained tokens: `key_binding` names
    /// what they are bound to (`dpop-jkt:{thumbprint}`), so that tokens bound
    /// to one key are never handed to a holder of another. `None` is the
    /// same key as [`CacheKey::new`].
    pub fn bound<S: AsRef<str>>(
        provider: &str,
        token_endpoint: &str,
        client_id: &str,
        scopes: impl IntoIterator<Item = S>,
        resource: Option<&str>,
        key_binding: Option<&str>,
    ) -> Self {
        let mut scopes: Vec<String> = scopes
            .into_iter()
            .flat_map(|item| {
                item.as_ref()
                    .split_ascii_whitespace()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        scopes.sort_unstable();
        scopes.dedup();
        let resource = resource.map(str::trim).filter(|r| !r.is_empty());

        let mut context = digest::Context::new(&digest::SHA256);
        context.update(KEY_ENCODING);
        for part in [provider, token_endpoint, client_id] {
            absorb(&mut context, part);
        }
        context.update(&(scopes.len() as u64).to_be_bytes());
        for scope in &scopes {
            absorb(&mut context, scope);
        }
        match resource {
            Some(resource) => {
                context.update(&[1]);
                absorb(&mut context, resource);
            }
            None => context.update(&[0]),
        }
        // Absent for unbound tokens, so their keys are those of before.
        if let Some(binding) = key_binding {
            context.update(&[2]);
            absorb(&mut context, binding);
        }
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(context.finish().as_ref());

        Self(Arc::new(KeyParts {
            provider: provider.to_owned(),
            token_endpoint: token_endpoint.to_owned(),
            client_id: client_id.to_owned(),
            scopes,
            resource: resource.map(str::to_owned),
            key_binding: key_binding.map(str::to_owned),
            hex: to_hex(&bytes),
            digest: bytes,
        }))
    }

    /// The key of the tokens a token endpoint with `identity` issues: its
    /// provider, token URL (or discovery URL), client id, scopes and
    /// resource.
    pub fn for_endpoint(identity: &EndpointIdentity) -> Self {
        Self::bound(
            identity.provider,
            &identity.authority,
            &identity.client_id,
            &identity.scopes,
            identity.resource.as_deref(),
            identity.key_binding.as_deref(),
        )
    }

    /// The stable string form: 64 lowercase hex characters (SHA-256).
    pub fn as_str(&self) -> &str {
        &self.0.hex
    }

    /// The provider name the key was made for.
    pub fn provider(&self) -> &str {
        &self.0.provider
    }

    /// The token endpoint (or issuer) the key was made for.
    pub fn token_endpoint(&self) -> &str {
        &self.0.token_endpoint
    }

    /// The client id the key was made for.
    pub fn client_id(&self) -> &str {
        &self.0.client_id
    }

    /// The scopes, sorted and deduplicated.
    pub fn scopes(&self) -> &[String] {
        &self.0.scopes
    }

    /// The resource indicator, if any.
    pub fn resource(&self) -> Option<&str> {
        self.0.resource.as_deref()
    }

    /// What the tokens are bound to (a DPoP key's thumbprint), if anything.
    pub fn key_binding(&self) -> Option<&str> {
        self.0.key_binding.as_deref()
    }

    /// The first 12 hex characters: enough to tell keys apart in logs.
    pub(crate) fn short(&self) -> &str {
        &self.0.hex[..12]
    }
}

/// Length-prefixed, so that `("ab", "c")` and `("a", "bc")` differ.
fn absorb(context: &mut digest::Context, part: &str) {
    context.update(&(part.len() as u64).to_be_bytes());
    context.update(part.as_bytes());
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        hex.push(DIGITS[usize::from(byte >> 4)] as char);
        hex.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    hex
}

impl PartialEq for CacheKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.digest == other.0.digest
    }
}

impl Eq for CacheKey {}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The digest is already uniformly distributed: its first 8 bytes
        // identify the key well enough for a hash table.
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&self.0.digest[..8]);
        state.write_u64(u64::from_le_bytes(prefix));
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheKey")
            .field("hash", &self.short())
            .field("provider", &self.0.provider)
            .field("token_endpoint", &self.0.token_endpoint)
            .field("client_id", &self.0.client_id)
            .field("scopes", &self.0.scopes)
            .field("resource", &self.0.resource)
            .field("key_binding", &self.0.key_binding)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{ClientCredential, TokenEndpoint};
    use crate::provider::Provider;
    use url::Url;

    const ENDPOINT: &str = "https://login.example.test/tenant/oauth2/v2.0/token";

    fn key(scopes: &[&str]) -> CacheKey {
        CacheKey::new("Cenda", ENDPOINT, "client-1", scopes.iter().copied(), None)
    }

    #[test]
    fn scopes_are_order_insensitive_and_deduplicated() {
        let a = key(&["b", "a"]);
        assert_eq!(a, key(&["a", "b", "a"]));
        assert_eq!(a, key(&["a b"]));
        assert_eq!(a, key(&[" b  a ", ""]));
        assert_eq!(a.scopes(), ["a", "b"]);
        assert_eq!(a.as_str(), key(&["a b"]).as_str());
    }

    #[test]
    fn every_part_changes_the_key() {
        let base = key(&["a"]);
        let others = [
            CacheKey::new("Sequel", ENDPOINT, "client-1", ["a"], None),
            CacheKey::new("Cenda", "https://other.test/token", "client-1", ["a"], None),
            CacheKey::new("Cenda", ENDPOINT, "client-2", ["a"], None),
            CacheKey::new("Cenda", ENDPOINT, "client-1", ["A"], None),
            CacheKey::new(
                "Cenda",
                ENDPOINT,
                "client-1",
                ["a"],
                Some("https://api.test"),
            ),
        ];
        for other in &others {
            assert_ne!(&base, other, "{other:?}");
            assert_ne!(base.as_str(), other.as_str());
        }
    }

    #[test]
    fn a_key_binding_changes_the_key_and_none_keeps_it() {
        let unbound = CacheKey::new("p", "https://t", "c", ["s"], None);
        let none = CacheKey::bound("p", "https://t", "c", ["s"], None, None);
        let one = CacheKey::bound("p", "https://t", "c", ["s"], None, Some("dpop-jkt:a"));
        let other = CacheKey::bound("p", "https://t", "c", ["s"], None, Some("dpop-jkt:b"));
        assert_eq!(unbound.as_str(), none.as_str());
        assert_ne!(unbound.as_str(), one.as_str());
        assert_ne!(one.as_str(), other.as_str());
        assert_eq!(one.key_binding(), Some("dpop-jkt:a"));
    }

    #[test]
    fn parts_are_length_prefixed() {
        let a = CacheKey::new("ab", "c", "d", ["x"], None);
        let b = CacheKey::new("a", "bc", "d", ["x"], None);
        assert_ne!(a, b);
    }

    #[test]
    fn string_form_is_a_stable_sha256_hex() {
        let k = CacheKey::new(
            "Nxtsoft",
            "https://auth.nxtsoft.com/oauth2/token",
            "id",
            ["transactions/mock"],
            None,
        );
        assert_eq!(k.as_str().len(), 64);
        assert!(
            k.as_str()
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        // Pinned (computed independently with Python's hashlib from the encoding
        // above): a change here breaks every shared (Redis) cache on upgrade.
        assert_eq!(
            k.as_str(),
            "176215e608a7712795a28f287ddc93326d7cb8de283c2b26bdfe1dce2fe35c5b"
        );
        assert_eq!(k.to_string(), k.as_str());
    }

    #[test]
    fn an_endpoints_key_is_made_of_its_identity() {
        let endpoint = TokenEndpoint::builder(
            Provider::sequel(Url::parse("https://s.example/Auth").unwrap()),
            "app.client",
            ClientCredential::secret("s"),
        )
        .scopes(["b a", "a"])
        .resource("https://api.example/")
        .build()
        .unwrap();
        let key = CacheKey::for_endpoint(endpoint.identity());
        assert_eq!(key.provider(), "sequel");
        assert_eq!(key.token_endpoint(), "https://s.example/Auth/connect/token");
        assert_eq!(key.client_id(), "app.client");
        assert_eq!(key.scopes(), ["a", "b"]);
        assert_eq!(key.resource(), Some("https://api.example/"));
        assert_eq!(endpoint.scopes(), ["b", "a"]);
        assert_eq!(
            key.as_str(),
            CacheKey::new(
                "sequel",
                "https://s.example/Auth/connect/token",
                "app.client",
                ["a b"],
                Some("https://api.example/")
            )
            .as_str()
        );
    }
}
