//! Writes `dispatch.rs` into `OUT_DIR`: `m2m call`'s way into each
//! generated client of m2m (`Api`, and for each operation, its builder with
//! every parameter and the body typed as the builder takes them, so the
//! request is the one the typed client sends).
//!
//! m2m's build script says where its generated clients are and which they
//! are (`links = "m2m"` metadata: `DEP_M2M_GENERATED`, `DEP_M2M_APIS`).

use std::path::PathBuf;
use std::process::ExitCode;

use quote::{format_ident, quote};

#[path = "build/dispatch.rs"]
mod dispatch;

fn main() -> ExitCode {
    match generate() {
        Ok(()) => ExitCode::SUCCESS,
        Err(problem) => {
            println!("cargo::error={}", problem.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

fn generate() -> Result<(), String> {
    let generated = PathBuf::from(
        std::env::var_os("DEP_M2M_GENERATED").ok_or("m2m's build script set no GENERATED")?,
    );
    let apis = std::env::var("DEP_M2M_APIS").map_err(|_| "m2m's build script set no APIS")?;
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("cargo sets OUT_DIR")?);
    let mut modules = Vec::new();
    let mut stems = Vec::new();
    let mut bodies = Vec::new();
    for stem in apis.split(',').filter(|stem| !stem.is_empty()) {
        let path = generated.join(format!("{stem}.rs"));
        println!("cargo::rerun-if-changed={}", path.display());
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let file = syn::parse_file(&text)
            .map_err(|e| format!("{}: does not parse: {e}", path.display()))?;
        let module = format_ident!("{}", stem.replace('-', "_"));
        let body = dispatch::generate(&file).map_err(|e| format!("{}: {e}", path.display()))?;
        bodies.push(quote! {
            mod #module {
                use ::m2m::apis::#module::*;
                #body
            }
        });
        modules.push(module);
        stems.push(stem.to_owned());
    }
    let code = quote! {
        /// Every API of m2m that `m2m call` reaches.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(non_camel_case_types)]
        pub enum Api {
            #(
                #[doc = #stems]
                #modules,
            )*
        }

        impl Api {
            /// All of them, in m2m's order.
            pub const ALL: &[Api] = &[#(Api::#modules),*];

            /// The OpenAPI document's file stem (`cenda-configuration`).
            pub fn name(self) -> &'static str {
                match self {
                    #(Api::#modules => #stems,)*
                }
            }

            /// The OpenAPI document, as JSON.
            pub fn openapi_json(self) -> &'static str {
                match self {
                    #(Api::#modules => ::m2m::apis::#modules::OPENAPI_JSON,)*
                }
            }

            /// progenitor's method names of this API's operations.
            pub(crate) fn generated_methods(self) -> &'static [&'static str] {
                match self {
                    #(Api::#modules => #modules::METHODS,)*
                }
            }

            /// The setters of the builder of progenitor's `method`.
            pub(crate) fn generated_setters(self, method: &str) -> &'static [&'static str] {
                let setters = match self {
                    #(Api::#modules => #modules::SETTERS,)*
                };
                setters
                    .iter()
                    .find(|(name, _)| *name == method)
                    .map_or(&[], |(_, setters)| setters)
            }

            /// Sends the operation progenitor calls `method` through this
            /// API's generated client.
            pub(crate) async fn send_generated(
                self,
                base_url: &str,
                http: ::m2m::__private::reqwest::Client,
                auth: &::m2m::auth::Auth,
                method: &str,
                input: &crate::invoke::Input,
            ) -> Result<crate::invoke::Sent, crate::invoke::CallFailure> {
                match self {
                    #(Api::#modules => {
                        let client = ::m2m::apis::#modules::Client::new_with_client(
                            base_url, http, auth.clone(),
                        );
                        #modules::send(&client, auth, method, input).await
                    })*
                }
            }
        }

        #(#bodies)*
    };
    let file = syn::parse2::<syn::File>(code).map_err(|e| format!("dispatch: {e}"))?;
    let path = out_dir.join("dispatch.rs");
    let text = prettyplease::unparse(&file);
    if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    std::fs::write(&path, text).map_err(|e| format!("{}: cannot write: {e}", path.display()))
}
