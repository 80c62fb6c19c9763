//! Where the pyrpc crates are, seen from the crate being compiled: a proc
//! macro cannot say `$crate`, so it reads the caller's Cargo.toml (through
//! `proc-macro-crate`, which also follows renames).

use proc_macro2::{Span, TokenStream};
use proc_macro_crate::{crate_name, FoundCrate};
use quote::quote;

/// The path of `package` (e.g. `"pyrpc-client"`) in the calling crate, if it
/// is a dependency (or the crate itself: then its doc tests and examples
/// name it by its library name, and the crate declares
/// `extern crate self as pyrpc_client;` for its own use).
pub(crate) fn find(package: &str) -> Option<TokenStream> {
    let name = match crate_name(package).ok()? {
        FoundCrate::Itself => package.replace('-', "_"),
        FoundCrate::Name(name) => name,
    };
    let ident = syn::Ident::new(&name, Span::call_site());
    Some(quote!(::#ident))
}
