//! Typed API clients, generated at build time from `openapi/` by
//! [m2m-build](https://docs.rs/m2m-build), the helper a service uses for
//! its own documents.
//!
//! Every generated `Client` carries an [`Auth`](crate::auth::Auth) handle:
//! each call gets an `Authorization` header (only over https or to
//! loopback, unless `allow_http`), a token the API rejects (401
//! `invalid_token`) is renewed and the call sent again once, and the call
//! keeps to the time and size limits of the handle's
//! [`ApiSettings`](crate::auth::ApiSettings). A call that fails for want of
//! a token, or that m2m stopped, gives its typed [`AuthError`] back through
//! [`auth_error`].
//!
//! Each client is made in one line from a loaded configuration
//! (`Client::from_config(&config, "cenda")`, sharing the configuration's
//! token cache) or from a handle built by hand (`Client::from_auth`).
//!
//! [`AuthError`]: crate::auth::AuthError

mod auth_error;
pub(crate) mod client_parts;
pub mod exchange;
pub(crate) mod hooks;

pub use auth_error::auth_error;
pub use client_parts::ClientParts;
pub use hooks::{AUTH_ERROR_PREFIX, CALL_ERROR_PREFIX};

/// Declares one module per built-in API, and [`Api`], the list of them.
macro_rules! generated_apis {
    ($($module:ident = $file:literal : $doc:literal;)+) => {
        $(
            #[doc = $doc]
            #[doc = ""]
            #[doc = concat!("Generated from `openapi/", $file, "` by m2m-build.")]
            #[allow(missing_docs, clippy::all, clippy::pedantic)]
            pub mod $module {
                include!(concat!(env!("OUT_DIR"), "/", $file, ".rs"));
            }
        )+

        /// Every built-in API, for code that picks one at run time.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(non_camel_case_types)]
        pub enum Api {
            $(
                #[doc = $doc]
                $module,
            )+
        }

        impl Api {
            /// All built-in APIs, in declaration order.
            pub const ALL: &[Api] = &[$(Api::$module),+];

            /// The OpenAPI document's file stem (`cenda-configuration`).
            pub fn name(self) -> &'static str {
                match self {
                    $(Api::$module => $file,)+
                }
            }

            /// The OpenAPI document, as JSON.
            pub fn openapi_json(self) -> &'static str {
                match self {
                    $(Api::$module => $module::OPENAPI_JSON,)+
                }
            }
        }
    };
}

generated_apis! {
    cenda_configuration = "cenda-configuration":
        "The Cenda Configuration API: organisations, their validation, credential templates and revocation.";
    nxtsoft_transactions = "nxtsoft-transactions":
        "NXTsoft transactions: validation messages (`transactions/mock`) and the transactions they rehearse.";
}
