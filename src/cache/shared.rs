//! What every source bound to one token cache shares: the store, the clock,
//! the jitter, the settings, the counters and the state of each key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::key_state::KeyState;
use super::settings::CacheSettings;
use super::stats::Counters;
use crate::store::key::CacheKey;
use crate::store::token_store::{StoreError, TokenStore};
use crate::time::clock::{Clock, Jitter};

/// The insides of a [`TokenCache`](crate::auth::TokenCache), shared by its
/// clones and by every [`CachedTokenSource`](crate::auth::CachedTokenSource)
/// it binds.
pub(crate) struct Shared {
    pub store: Arc<dyn TokenStore>,
    pub clock: Arc<dyn Clock>,
    pub jitter: Arc<dyn Jitter>,
    pub settings: CacheSettings,
    pub counters: Counters,
    /// Per-key state, shared by every source bound to the key.
    pub keys: Mutex<HashMap<CacheKey, Weak<KeyState>>>,
}

/// Counts and logs a store failure; the cache carries on without the store.
pub(crate) fn store_failed(
    shared: &Shared,
    key: &CacheKey,
    operation: &'static str,
    error: &StoreError,
) {
    Counters::bump(&shared.counters.store_errors);
    tracing::warn!(provider = key.provider(), key = key.short(), operation, %error,
        "token store failed; carrying on without it");
}
