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

// The generated clients name `::m2m::…` (m2m-build writes them for any
// crate); this makes those paths resolve inside m2m too.
extern crate self as m2m;

pub mod apis;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "sandbox")]
pub mod sandbox;
#[cfg(feature = "test-util")]
pub mod test_util;

pub use apis::auth_error;

/// Declares one module per OpenAPI document that m2m-build generated a
/// client for in this crate's build script (`m2m_build::Generator`).
///
/// ```ignore
/// m2m::include_apis!();
/// let petstore = petstore::Client::from_config(&config, "petstore")?;
/// ```
#[macro_export]
macro_rules! include_apis {
    () => {
        include!(concat!(env!("OUT_DIR"), "/m2m-apis.rs"));
    };
}

/// What the code m2m-build generates names: the crates it is written
/// against and the hooks it calls. Not a stable API: use the generated
/// clients instead.
#[doc(hidden)]
pub mod __private {
    pub use chrono;
    pub use progenitor_client;
    pub use regress;
    pub use reqwest;
    pub use schemars;
    pub use serde;
    pub use serde_json;
    pub use uuid;

    pub use crate::apis::ClientParts;
    pub use crate::apis::client_parts::http_client_of;
    /// The hooks of every generated client.
    pub mod hooks {
        pub use crate::apis::hooks::{authorize, check, send};
    }
}
