//! Where cached tokens live: the [`CacheKey`](key::CacheKey) they are filed
//! under, the [`TokenStore`](token_store::TokenStore) contract with its
//! in-process store, the file store of one user's processes and the Redis
//! store of a fleet, and the sealed envelope the shared stores keep a token
//! in.

pub(crate) mod encryption;
pub(crate) mod envelope;
pub(crate) mod file_store;
pub(crate) mod key;
#[cfg(feature = "redis")]
pub(crate) mod redis_store;
pub(crate) mod token_store;
