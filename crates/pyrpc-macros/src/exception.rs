//! `#[derive(Exception)]`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::{Attribute, Data, DeriveInput, Fields, LitStr};

use crate::paths;

/// `name = ".."` and `module = ".."` of `#[exception(..)]` attributes.
#[derive(Default)]
struct Names {
    name: Option<String>,
    module: Option<String>,
}

fn names(attrs: &[Attribute]) -> syn::Result<Names> {
    let mut out = Names::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("exception")) {
        attr.parse_nested_meta(|meta| {
            let value: LitStr = meta.value()?.parse()?;
            if meta.path.is_ident("name") {
                out.name = Some(value.value());
            } else if meta.path.is_ident("module") {
                out.module = Some(value.value());
            } else {
                return Err(meta.error("expected `name = \"..\"` or `module = \"..\"`"));
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// One exception type: a variant, or the struct itself.
struct Case {
    /// `Self::Variant` or `Self`.
    path: TokenStream,
    type_name: String,
    module: String,
    fields: Fields,
}

pub(crate) fn expand(item: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(item)?;
    let krate = paths::find("pyrpc-server")
        .or_else(|| paths::find("pyrpc-client"))
        .or_else(|| paths::find("pyrpc-proto"))
        .ok_or_else(|| {
            syn::Error::new(
                Span::call_site(),
                "#[derive(Exception)] needs pyrpc-server or pyrpc-client as a dependency",
            )
        })?;
    let top = names(&input.attrs)?;
    let module = top.module.clone().unwrap_or_default();
    let ty = &input.ident;
    let cases: Vec<Case> = match &input.data {
        Data::Enum(e) => e
            .variants
            .iter()
            .map(|v| {
                let n = names(&v.attrs)?;
                let ident = &v.ident;
                // A variant renamed without a module of its own is a builtin.
                let module = match (&n.module, &n.name) {
                    (Some(m), _) => m.clone(),
                    (None, Some(_)) => "builtins".to_owned(),
                    (None, None) => module.clone(),
                };
                Ok(Case {
                    path: quote!(Self::#ident),
                    type_name: n.name.unwrap_or_else(|| ident.to_string()),
                    module,
                    fields: v.fields.clone(),
                })
            })
            .collect::<syn::Result<_>>()?,
        Data::Struct(s) => vec![Case {
            path: quote!(Self),
            type_name: top.name.clone().unwrap_or_else(|| ty.to_string()),
            module: match (&top.module, &top.name) {
                (None, Some(_)) => "builtins".to_owned(),
                _ => module,
            },
            fields: s.fields.clone(),
        }],
        Data::Union(_) => {
            return Err(syn::Error::new_spanned(
                ty,
                "#[derive(Exception)] is for enums and structs",
            ))
        }
    };

    let ds = quote!(#krate::__private::derive_support);
    let mut into_arms = Vec::new();
    let mut from_checks = Vec::new();
    for case in &cases {
        let Case {
            path,
            type_name,
            module,
            fields,
        } = case;
        let n = fields.len();
        let vars: Vec<_> = (0..n).map(|i| format_ident!("__f{i}")).collect();
        let idx = 0..n;
        let (pattern, build) = match fields {
            Fields::Named(named) => {
                let names: Vec<_> = named.named.iter().map(|f| &f.ident).collect();
                (
                    quote!(#path { #(#names: #vars),* }),
                    quote!(#path { #(#names: #vars),* }),
                )
            }
            Fields::Unnamed(_) => (quote!(#path(#(#vars),*)), quote!(#path(#(#vars),*))),
            Fields::Unit => (quote!(#path), quote!(#path)),
        };
        into_arms.push(quote! {
            #pattern => #krate::RemoteError::exception(
                #type_name, #module, ::std::vec![#(#ds::arg(&#vars)),*]),
        });
        from_checks.push(quote! {
            if #ds::is(&e, #type_name, #n) {
                if let (#(::core::option::Option::Some(#vars),)*) = (#(#ds::field(&e, #idx),)*) {
                    return ::core::result::Result::Ok(#build);
                }
            }
        });
    }
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics #krate::Exception for #ty #ty_generics #where_clause {
            fn into_remote(self) -> #krate::RemoteError {
                match self { #(#into_arms)* }
            }
            fn from_remote(
                e: #krate::RemoteError,
            ) -> ::core::result::Result<Self, #krate::RemoteError> {
                #(#from_checks)*
                ::core::result::Result::Err(e)
            }
        }
    })
}
