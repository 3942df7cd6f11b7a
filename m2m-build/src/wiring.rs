//! What m2m adds to progenitor's client: the hooks that carry the token,
//! the constructors, the document as JSON, and the module declaration.

use syn::{Item, parse_quote};

use crate::Document;

/// The items appended to the generated client of `document`.
pub fn items(document: &Document) -> Vec<Item> {
    let json_file = format!("/{}.json", document.stem);
    let file: syn::File = parse_quote! {
        /// The OpenAPI document this module was generated from, as JSON.
        pub const OPENAPI_JSON: &str = include_str!(concat!(env!("OUT_DIR"), #json_file));

        impl Client {
            /// The client called `name` in `config` (`[clients.<name>]` of
            /// `m2m.toml`): its `api_base_url`, else its provider's; its
            /// token endpoint and API settings; and the token cache `config`
            /// owns, so every client made from one configuration shares
            /// tokens.
            pub fn from_config(
                config: &::m2m::config::Config,
                name: &str,
            ) -> ::std::result::Result<Self, ::m2m::config::ConfigFileError> {
                let parts = ::m2m::__private::ClientParts::from_config(config, name)?;
                // progenitor appends paths (`/items/1`) to the base URL as
                // text: no trailing slash, or they would start with `//`.
                let base_url = parts.base_url.as_str().trim_end_matches('/');
                Ok(Self::new_with_client(base_url, parts.http, parts.auth))
            }

            /// A client for `base_url` whose HTTP client follows the
            /// `ApiSettings` of `auth`: a redirect is followed only within
            /// the origin, so the token never follows one elsewhere. Prefer
            /// it to `new`, whose reqwest client follows redirects to other
            /// origins.
            pub fn from_auth(
                base_url: &str,
                auth: ::m2m::auth::Auth,
            ) -> ::std::result::Result<Self, ::m2m::auth::ConfigError> {
                let http = auth.api_settings().http_client()?;
                Ok(Self::new_with_client(base_url, http, auth))
            }
        }

        impl ClientHooks<::m2m::auth::Auth> for Client {
            async fn pre<E>(
                &self,
                request: &mut ::m2m::__private::reqwest::Request,
                info: &::m2m::__private::progenitor_client::OperationInfo,
            ) -> ::std::result::Result<(), Error<E>> {
                ::m2m::__private::hooks::authorize(self.inner(), request, info).await
            }

            async fn exec(
                &self,
                request: ::m2m::__private::reqwest::Request,
                info: &::m2m::__private::progenitor_client::OperationInfo,
            ) -> ::m2m::__private::reqwest::Result<::m2m::__private::reqwest::Response> {
                ::m2m::__private::hooks::send(self.client(), self.inner(), request, info).await
            }

            async fn post<E>(
                &self,
                result: &::m2m::__private::reqwest::Result<::m2m::__private::reqwest::Response>,
                info: &::m2m::__private::progenitor_client::OperationInfo,
            ) -> ::std::result::Result<(), Error<E>> {
                ::m2m::__private::hooks::check(self.inner(), result, info).await
            }
        }
    };
    file.items
}

/// The declaration of `document`'s module, for the index file.
pub fn index_entry(document: &Document) -> String {
    let module = quote::format_ident!("{}", document.module);
    let file = format!("/{}.rs", document.stem);
    let title = document.title.clone();
    let origin = format!("Generated from `{}` by m2m-build.", document.path.display());
    let item: Item = parse_quote! {
        #[doc = #title]
        #[doc = ""]
        #[doc = #origin]
        #[allow(missing_docs, clippy::all, clippy::pedantic)]
        pub mod #module {
            include!(concat!(env!("OUT_DIR"), #file));
        }
    };
    prettyplease::unparse(&syn::File {
        shebang: None,
        attrs: Vec::new(),
        items: vec![item],
    })
}
