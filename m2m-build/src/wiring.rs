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
            /// `ApiSettings` of `auth` (its client certificate and CA
            /// roots; a redirect is followed only within the origin, so the
            /// token never follows one elsewhere), as `new`, but an HTTP
            /// client that cannot be built is an error here.
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

/// Gives progenitor's `Client::new(baseurl, inner)` the HTTP client of the
/// handle's `ApiSettings` (`::m2m::__private::http_client_of`): its client
/// certificate and CA roots, redirects only within the origin. progenitor
/// builds a plain reqwest client there, which presents no certificate.
/// Fails when progenitor's output has no such `new`.
pub fn new_follows_the_handle(file: &mut syn::File) -> Result<(), String> {
    let new = file
        .items
        .iter_mut()
        .filter_map(|item| match item {
            Item::Impl(block) if block.trait_.is_none() => Some(block),
            _ => None,
        })
        .filter(
            |block| matches!(&*block.self_ty, syn::Type::Path(ty) if ty.path.is_ident("Client")),
        )
        .flat_map(|block| block.items.iter_mut())
        .find_map(|item| match item {
            syn::ImplItem::Fn(function)
                if function.sig.ident == "new" && function.sig.inputs.len() == 2 =>
            {
                Some(function)
            }
            _ => None,
        })
        .ok_or("progenitor's output has no `Client::new(baseurl, inner)`")?;
    new.attrs
        .retain(|attribute| !attribute.path().is_ident("doc"));
    new.attrs.push(parse_quote! {
        #[doc = " A client for `baseurl` (scheme, host, any path stem) whose HTTP\n client follows the `ApiSettings` of `inner`: it presents the\n handle's client certificate, trusts its CA roots, and follows a\n redirect only within the origin. `from_auth` is the same, and\n returns the error when that client cannot be built."]
    });
    new.block = parse_quote! {{
        let client = ::m2m::__private::http_client_of(&inner);
        Self::new_with_client(baseurl, client, inner)
    }};
    Ok(())
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
