//! The token cache: one fetch per key at a time, refresh ahead of expiry,
//! backoff after failures, over any [`TokenStore`](crate::auth::TokenStore);
//! and the [`TokenSource`](token_source::TokenSource) contract it fulfils
//! for the auth handle. See [`token_cache`].

pub(crate) mod flight;
pub(crate) mod key_state;
pub(crate) mod observer;
pub(crate) mod settings;
pub(crate) mod shared;
pub(crate) mod stats;
pub(crate) mod token_cache;
pub(crate) mod token_source;
