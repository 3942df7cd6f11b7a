//! Routes the crates the generated code names through `::m2m::__private`,
//! so that a crate depending only on m2m compiles it.

use proc_macro2::Span;
use syn::punctuated::Punctuated;
use syn::visit_mut::{self, VisitMut};
use syn::{Attribute, Ident, Item, Meta, Path, PathSegment, Token, UseTree, parse_quote};

/// The crates progenitor and typify name; each is re-exported by
/// `m2m::__private`.
const ROUTED: [&str; 8] = [
    "serde",
    "serde_json",
    "regress",
    "chrono",
    "uuid",
    "schemars",
    "progenitor_client",
    "reqwest",
];

/// Rewrites every path, `use` and derive of `file` that starts with a
/// [`ROUTED`] crate, and tells serde's and schemars' derives where their
/// crate is.
pub fn through_m2m(file: &mut syn::File) {
    Router.visit_file_mut(file);
}

struct Router;

fn routed(ident: &Ident) -> bool {
    ROUTED.iter().any(|name| ident == name)
}

fn prefix() -> [PathSegment; 2] {
    [
        Ident::new("m2m", Span::call_site()).into(),
        Ident::new("__private", Span::call_site()).into(),
    ]
}

/// Prefixes `path` with `::m2m::__private` when it starts with a routed
/// crate; whether it did.
fn route(path: &mut Path) -> bool {
    if path.segments.len() < 2 || !routed(&path.segments[0].ident) {
        return false;
    }
    let mut segments: Punctuated<PathSegment, Token![::]> = prefix().into_iter().collect();
    segments.extend(std::mem::take(&mut path.segments));
    path.segments = segments;
    path.leading_colon = Some(Default::default());
    true
}

/// `<D::Error as ::serde::de::Error>::custom`: the trait is the first
/// `position` segments, which grow by the prefix.
fn route_qualified(qself: Option<&mut syn::QSelf>, path: &mut Path) {
    if let Some(qself) = qself
        && qself.position >= 2
        && route(path)
    {
        qself.position += 2;
    }
}

/// The derives of `attrs`, rewritten; whether serde's and schemars' are among them.
fn route_derives(attrs: &mut [Attribute]) -> (bool, bool) {
    let (mut serde, mut schemars) = (false, false);
    for attr in attrs.iter_mut().filter(|a| a.path().is_ident("derive")) {
        let Ok(mut derives) = attr.parse_args_with(Punctuated::<Path, Token![,]>::parse_terminated)
        else {
            continue;
        };
        for path in &mut derives {
            let first = path.segments.first().map(|s| s.ident.to_string());
            serde |= first.as_deref() == Some("serde");
            schemars |= first.as_deref() == Some("schemars");
            route(path);
        }
        if let Meta::List(list) = &mut attr.meta {
            list.tokens = quote::quote!(#derives);
        }
    }
    (serde, schemars)
}

fn route_item_attrs(attrs: &mut Vec<Attribute>) {
    let (serde, schemars) = route_derives(attrs);
    if serde {
        attrs.push(parse_quote!(#[serde(crate = "::m2m::__private::serde")]));
    }
    if schemars {
        attrs.push(parse_quote!(#[schemars(crate = "::m2m::__private::schemars")]));
    }
}

impl VisitMut for Router {
    fn visit_path_mut(&mut self, path: &mut Path) {
        route(path);
        visit_mut::visit_path_mut(self, path);
    }

    fn visit_expr_path_mut(&mut self, expr: &mut syn::ExprPath) {
        route_qualified(expr.qself.as_mut(), &mut expr.path);
        visit_mut::visit_expr_path_mut(self, expr);
    }

    fn visit_type_path_mut(&mut self, ty: &mut syn::TypePath) {
        route_qualified(ty.qself.as_mut(), &mut ty.path);
        visit_mut::visit_type_path_mut(self, ty);
    }

    fn visit_item_use_mut(&mut self, item: &mut syn::ItemUse) {
        if let UseTree::Path(tree) = &item.tree
            && routed(&tree.ident)
        {
            let inner = item.tree.clone();
            item.tree = parse_quote!(m2m::__private::#inner);
            item.leading_colon = Some(Default::default());
        }
    }

    fn visit_item_mut(&mut self, item: &mut Item) {
        match item {
            Item::Struct(s) => route_item_attrs(&mut s.attrs),
            Item::Enum(e) => route_item_attrs(&mut e.attrs),
            _ => {}
        }
        visit_mut::visit_item_mut(self, item);
    }
}

#[cfg(test)]
mod tests {
    use super::through_m2m;

    fn routed(code: &str) -> String {
        let mut file: syn::File = syn::parse_str(code).unwrap();
        through_m2m(&mut file);
        quote::quote!(#file).to_string()
    }

    #[test]
    fn paths_uses_and_derives_go_through_m2m() {
        let out = routed(
            "use progenitor_client::{Error, ClientInfo};
             #[derive(::serde::Serialize, Clone, schemars::JsonSchema)]
             pub struct A { id: ::uuid::Uuid, at: chrono::DateTime<chrono::Utc>, s: String }
             fn f() -> reqwest::Result<()> { let _ = ::std::string::String::new(); Ok(()) }
             fn g<D: ::serde::Deserializer<'static>>(e: D::Error) { <D::Error as ::serde::de::Error>::custom(\"x\"); }",
        );
        for expected in [
            "use :: m2m :: __private :: progenitor_client :: { Error , ClientInfo }",
            ":: m2m :: __private :: serde :: Serialize",
            ":: m2m :: __private :: schemars :: JsonSchema",
            "# [serde (crate = \"::m2m::__private::serde\")]",
            "# [schemars (crate = \"::m2m::__private::schemars\")]",
            ":: m2m :: __private :: uuid :: Uuid",
            ":: m2m :: __private :: chrono :: DateTime < :: m2m :: __private :: chrono :: Utc >",
            ":: m2m :: __private :: reqwest :: Result",
            ":: std :: string :: String",
            "< D :: Error as :: m2m :: __private :: serde :: de :: Error > :: custom",
        ] {
            assert!(out.contains(expected), "{expected}\n in {out}");
        }
    }
}
