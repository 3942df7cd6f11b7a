//! `<name>-dispatch.rs`: how `m2m call` drives a generated client.
//!
//! progenitor gives every operation a builder (`client.get_organisation()`)
//! whose setters take the parameter and body types of the document
//! (`organisation_id<V: TryInto<::uuid::Uuid>>`, `body<V: TryInto<types::X>>`).
//! This reads those setters off the generated code and writes, per
//! operation, a match arm that sets each one from the command line's input,
//! typed as the setter wants it, and sends the request with the builder
//! itself: the command sends exactly what the typed client sends.
//!
//! ```ignore
//! "get_organisation" => {
//!     let mut request = client.get_organisation();
//!     if let Some(value) = input.param::<::uuid::Uuid>("organisation_id")? {
//!         request = request.organisation_id(value);
//!     }
//!     finish(auth, request.send().await)
//! }
//! ```

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{
    GenericArgument, ImplItem, Item, PathArguments, ReturnType, Type, TypeParamBound,
    WherePredicate,
};

/// One operation: the client method and its builder's setters.
struct Operation {
    method: String,
    builder: String,
    setters: Vec<Setter>,
}

/// A builder setter `name<V>(value: V) where V: TryInto<ty>`.
#[derive(Clone)]
struct Setter {
    name: String,
    ty: Type,
}

/// The dispatch code for the generated client in `file` (the client's
/// module is glob-imported where it goes).
pub fn generate(file: &syn::File) -> Result<TokenStream, String> {
    let mut operations = client_methods(file);
    let builders = builder_setters(file)?;
    for operation in &mut operations {
        operation.setters = builders
            .iter()
            .find(|(name, _)| *name == operation.builder)
            .map(|(_, setters)| setters.clone())
            .ok_or_else(|| {
                format!(
                    "progenitor's output has no builder {} for {}",
                    operation.builder, operation.method
                )
            })?;
    }
    let methods: Vec<&str> = operations.iter().map(|o| o.method.as_str()).collect();
    let setters = operations.iter().map(|operation| {
        let method = &operation.method;
        let names = operation.setters.iter().map(|s| s.name.as_str());
        quote! { (#method, &[#(#names),*]) }
    });
    let arms = operations.iter().map(|operation| {
        let method = &operation.method;
        let method_ident = format_ident!("{}", method);
        let sets = operation.setters.iter().map(|setter| {
            let name = &setter.name;
            let ident = format_ident!("{}", name);
            let ty = &setter.ty;
            if name == "body" {
                quote! {
                    if let Some(value) = input.body::<#ty>()? {
                        request = request.body(value);
                    }
                }
            } else {
                quote! {
                    if let Some(value) = input.param::<#ty>(#name)? {
                        request = request.#ident(value);
                    }
                }
            }
        });
        quote! {
            #method => {
                #[allow(unused_mut)]
                let mut request = client.#method_ident();
                #(#sets)*
                finish(auth, request.send().await)
            }
        }
    });
    Ok(quote! {
        use crate::invoke::{CallFailure, Input, Sent, finish};

        /// progenitor's method name of every operation.
        pub(crate) const METHODS: &[&str] = &[#(#methods),*];

        /// The setters of each method's builder (`body` for the body).
        pub(crate) const SETTERS: &[(&str, &[&str])] = &[#(#setters),*];

        /// Sends the operation progenitor calls `method` with `input`,
        /// through the generated builder. The response itself is taken by
        /// the hooks' exchange tap.
        pub(crate) async fn send(
            client: &Client,
            auth: &::m2m::auth::Auth,
            method: &str,
            input: &Input,
        ) -> Result<Sent, CallFailure> {
            match method {
                #(#arms)*
                other => Err(CallFailure::Refused(format!("no generated operation {other}"))),
            }
        }
    })
}

/// `impl Client { pub fn method(&self) -> builder::Builder<'_> }`, in order.
fn client_methods(file: &syn::File) -> Vec<Operation> {
    let mut operations = Vec::new();
    for item in &file.items {
        let Item::Impl(block) = item else { continue };
        if block.trait_.is_some() || !is_path_named(&block.self_ty, "Client") {
            continue;
        }
        for member in &block.items {
            let ImplItem::Fn(function) = member else {
                continue;
            };
            let ReturnType::Type(_, returned) = &function.sig.output else {
                continue;
            };
            let Type::Path(path) = returned.as_ref() else {
                continue;
            };
            let segments: Vec<_> = path.path.segments.iter().collect();
            if segments.len() == 2 && segments[0].ident == "builder" {
                operations.push(Operation {
                    method: function.sig.ident.to_string(),
                    builder: segments[1].ident.to_string(),
                    setters: Vec::new(),
                });
            }
        }
    }
    operations
}

/// The setters of every builder in `pub mod builder`.
fn builder_setters(file: &syn::File) -> Result<Vec<(String, Vec<Setter>)>, String> {
    let builder_module = file
        .items
        .iter()
        .find_map(|item| match item {
            Item::Mod(module) if module.ident == "builder" => module.content.as_ref(),
            _ => None,
        })
        .ok_or("progenitor's output has no builder module")?;
    let mut builders = Vec::new();
    for item in &builder_module.1 {
        let Item::Impl(block) = item else { continue };
        if block.trait_.is_some() {
            continue;
        }
        let Type::Path(self_ty) = block.self_ty.as_ref() else {
            continue;
        };
        let Some(name) = self_ty.path.segments.last().map(|s| s.ident.to_string()) else {
            continue;
        };
        let setters = block
            .items
            .iter()
            .filter_map(|member| match member {
                ImplItem::Fn(function) => setter(function),
                _ => None,
            })
            .collect();
        builders.push((name, setters));
    }
    Ok(builders)
}

/// `fn name<V>(mut self, value: V) -> Self where V: std::convert::TryInto<T>`.
fn setter(function: &syn::ImplItemFn) -> Option<Setter> {
    let where_clause = function.sig.generics.where_clause.as_ref()?;
    where_clause
        .predicates
        .iter()
        .find_map(|predicate| {
            let WherePredicate::Type(predicate) = predicate else {
                return None;
            };
            predicate.bounds.iter().find_map(|bound| {
                let TypeParamBound::Trait(bound) = bound else {
                    return None;
                };
                let last = bound.path.segments.last()?;
                if last.ident != "TryInto" {
                    return None;
                }
                let PathArguments::AngleBracketed(arguments) = &last.arguments else {
                    return None;
                };
                arguments.args.iter().find_map(|argument| match argument {
                    GenericArgument::Type(ty) => Some(ty.clone()),
                    _ => None,
                })
            })
        })
        .map(|ty| Setter {
            name: function.sig.ident.to_string(),
            ty,
        })
}

fn is_path_named(ty: &Type, name: &str) -> bool {
    matches!(ty, Type::Path(path) if path.path.is_ident(name))
}
