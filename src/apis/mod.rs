//! Typed API clients, generated at build time from `openapi/`.
//!
//! Each line of the `generated_apis!` list below turns one OpenAPI document
//! into a module with its `Client`, its builders and its `types`. Every
//! generated `Client` carries an [`Auth`](crate::auth::Auth) handle: each call
//! gets an `Authorization` header (only over https or to loopback, unless
//! `allow_http`), a token the API rejects (401 `invalid_token`) is renewed and
//! the call sent again once, and the call keeps to the time and size limits
//! of the handle's [`ApiSettings`](crate::auth::ApiSettings).
//!
//! To add an API, put its OpenAPI 3.0 document in `openapi/<name>.yaml` and
//! add one line to the list: `<module_name> = "<name>": "<what it is>";`.

#[cfg(feature = "cli")]
pub mod call;
mod hooks;

pub use hooks::{AUTH_ERROR_PREFIX, CALL_ERROR_PREFIX};

/// Declares one module per generated API, and [`Api`], the list of them.
macro_rules! generated_apis {
    ($($module:ident = $file:literal : $doc:literal;)+) => {
        $(
            #[doc = $doc]
            #[doc = ""]
            #[doc = concat!("Generated from `openapi/", $file, "`.")]
            #[allow(missing_docs, clippy::all, clippy::pedantic)]
            pub mod $module {
                include!(concat!(env!("OUT_DIR"), "/", $file, ".rs"));

                /// `m2m call`'s way into this client (build.rs).
                #[cfg(feature = "cli")]
                pub(crate) mod dispatch {
                    include!(concat!(env!("OUT_DIR"), "/", $file, "-dispatch.rs"));
                }

                /// The OpenAPI document this module was generated from, as JSON.
                pub const OPENAPI_JSON: &str =
                    include_str!(concat!(env!("OUT_DIR"), "/", $file, ".json"));

                impl Client {
                    /// A client for `base_url` whose HTTP client follows the
                    /// [`ApiSettings`](crate::auth::ApiSettings) of `auth`: a
                    /// redirect is followed only within the origin, so the token
                    /// never follows one elsewhere. Prefer it to `new`, whose
                    /// reqwest client follows redirects to other origins (without
                    /// the token, except from https to http on the same port).
                    pub fn from_auth(
                        base_url: &str,
                        auth: crate::auth::Auth,
                    ) -> Result<Self, crate::auth::ConfigError> {
                        let http = auth.api_settings().http_client()?;
                        Ok(Self::new_with_client(base_url, http, auth))
                    }
                }

                impl ClientHooks<crate::auth::Auth> for Client {
                    async fn pre<E>(
                        &self,
                        request: &mut reqwest::Request,
                        info: &progenitor_client::OperationInfo,
                    ) -> Result<(), Error<E>> {
                        crate::apis::hooks::authorize(self.inner(), request, info).await
                    }

                    async fn exec(
                        &self,
                        request: reqwest::Request,
                        info: &progenitor_client::OperationInfo,
                    ) -> reqwest::Result<reqwest::Response> {
                        crate::apis::hooks::send(self.client(), self.inner(), request, info).await
                    }

                    async fn post<E>(
                        &self,
                        result: &reqwest::Result<reqwest::Response>,
                        info: &progenitor_client::OperationInfo,
                    ) -> Result<(), Error<E>> {
                        crate::apis::hooks::check(self.inner(), result, info).await
                    }
                }
            }
        )+

        /// Every generated API, for code that picks one at run time.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(non_camel_case_types)]
        pub enum Api {
            $(
                #[doc = $doc]
                $module,
            )+
        }

        impl Api {
            /// All generated APIs, in declaration order.
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

        #[cfg(feature = "cli")]
        impl Api {
            /// progenitor's method names of this API's operations.
            fn generated_methods(self) -> &'static [&'static str] {
                match self {
                    $(Api::$module => $module::dispatch::METHODS,)+
                }
            }

            /// The setters of the builder of progenitor's `method`.
            fn generated_setters(self, method: &str) -> &'static [&'static str] {
                let setters = match self {
                    $(Api::$module => $module::dispatch::SETTERS,)+
                };
                setters
                    .iter()
                    .find(|(name, _)| *name == method)
                    .map_or(&[], |(_, setters)| setters)
            }

            /// Sends the operation progenitor calls `method` through this
            /// API's generated client.
            async fn send_generated(
                self,
                base_url: &str,
                http: reqwest::Client,
                auth: &crate::auth::Auth,
                method: &str,
                input: &call::Input,
            ) -> Result<call::Sent, call::CallFailure> {
                match self {
                    $(Api::$module => {
                        let client = $module::Client::new_with_client(base_url, http, auth.clone());
                        $module::dispatch::send(&client, auth, method, input).await
                    })+
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
