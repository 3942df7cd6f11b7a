#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

// The layers of the token core, bottom to top (scripts/layers.json): the
// small shared pieces, the OAuth request, the provider, the token endpoint,
// the stores, the cache, the auth handle, the configuration. Their public
// items are reached through `auth`, `provider` and `config`.
mod future;
mod metrics;
mod redaction;
mod time;

mod oauth;

pub mod provider;

mod endpoint;

mod store;

mod cache;

pub mod auth;

pub mod config;

pub mod apis;
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "sandbox")]
pub mod sandbox;
