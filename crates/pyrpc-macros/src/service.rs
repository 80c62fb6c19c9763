//! `#[service]`: a trait of async methods becomes the trait (with `Send`
//! futures), a server adapter and a typed client.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::{
    Attribute, FnArg, GenericArgument, Ident, ItemTrait, Pat, PathArguments, ReturnType, TraitItem,
    TraitItemFn, Type,
};

use crate::paths;

/// Names the generated client has for itself.
const RESERVED: [&str; 4] = ["new", "from_client", "with_options", "client"];

/// One method of the trait, as the generated code needs it.
struct Method {
    name: Ident,
    docs: Vec<Attribute>,
    doc_text: String,
    params: Vec<(Ident, Type)>,
    /// What the trait method returns.
    output: Type,
    /// `Some((T, E))` when `output` is `Result<T, E>`.
    result: Option<(Type, Type)>,
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    if !attr.is_empty() {
        return Err(syn::Error::new_spanned(
            attr,
            "#[service] takes no arguments",
        ));
    }
    let mut tr: ItemTrait = syn::parse2(item)?;
    if !tr.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &tr.generics,
            "a #[service] trait cannot be generic",
        ));
    }
    let methods = tr
        .items
        .iter()
        .map(|item| match item {
            TraitItem::Fn(f) => method(f),
            other => Err(syn::Error::new_spanned(
                other,
                "a #[service] trait holds async methods only",
            )),
        })
        .collect::<syn::Result<Vec<_>>>()?;

    // The trait: each `async fn` becomes `fn -> impl Future + Send`, so that
    // the server can run it on any task; implementations still write `async fn`.
    for item in &mut tr.items {
        if let TraitItem::Fn(f) = item {
            let output = output_type(&f.sig.output);
            f.sig.asyncness = None;
            f.sig.output = syn::parse_quote! {
                -> impl ::core::future::Future<Output = #output> + ::core::marker::Send
            };
        }
    }
    tr.supertraits.push(syn::parse_quote!(::core::marker::Send));
    tr.supertraits.push(syn::parse_quote!(::core::marker::Sync));
    tr.supertraits.push(syn::parse_quote!('static));

    let server = paths::find("pyrpc-server").map(|krate| server(&tr, &methods, &krate));
    let client = paths::find("pyrpc-client").map(|krate| client(&tr, &methods, &krate));
    if server.is_none() && client.is_none() {
        return Err(syn::Error::new(
            Span::call_site(),
            "#[service] needs pyrpc-server or pyrpc-client (or both) as a dependency",
        ));
    }
    Ok(quote! { #tr #server #client })
}

fn method(f: &TraitItemFn) -> syn::Result<Method> {
    let sig = &f.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            sig.fn_token,
            "a #[service] method must be `async fn`",
        ));
    }
    if !sig.generics.params.is_empty() || f.default.is_some() {
        return Err(syn::Error::new_spanned(
            sig,
            "a #[service] method has no generics and no default body",
        ));
    }
    let name = sig.ident.to_string();
    if RESERVED.contains(&name.as_str()) || name.starts_with("nb_") || name.starts_with('_') {
        return Err(syn::Error::new_spanned(
            &sig.ident,
            format!(
                "a #[service] method cannot be named `{name}`: names starting with `_` are \
                 not callable remotely, `nb_` is the prefix of the non-blocking twins, and \
                 {} are methods of the generated client",
                RESERVED.join(", ")
            ),
        ));
    }
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() => {}
        _ => {
            return Err(syn::Error::new_spanned(
                sig,
                "a #[service] method takes `&self` first",
            ))
        }
    }
    let params = inputs
        .map(|arg| match arg {
            FnArg::Typed(pt) => match &*pt.pat {
                Pat::Ident(_) if matches!(*pt.ty, Type::Reference(_)) => Err(syn::Error::new_spanned(
                    &pt.ty,
                    "a #[service] parameter has an owned type (it is deserialized from the call)",
                )),
                Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {
                    Ok((p.ident.clone(), (*pt.ty).clone()))
                }
                other => Err(syn::Error::new_spanned(
                    other,
                    "a #[service] parameter is a plain name (it is the keyword name on the wire)",
                )),
            },
            FnArg::Receiver(r) => Err(syn::Error::new_spanned(r, "unexpected receiver")),
        })
        .collect::<syn::Result<Vec<_>>>()?;
    let output = output_type(&sig.output);
    let docs: Vec<Attribute> = f
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .cloned()
        .collect();
    let doc_text = docs
        .iter()
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value().trim().to_owned()),
                _ => None,
            },
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Method {
        name: sig.ident.clone(),
        docs,
        doc_text,
        params,
        result: result_types(&output),
        output,
    })
}

fn output_type(output: &ReturnType) -> Type {
    match output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    }
}

/// `(T, E)` of a `Result<T, E>` (any path ending in `Result` with two type
/// arguments).
fn result_types(ty: &Type) -> Option<(Type, Type)> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|a| match a {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    });
    match (types.next(), types.next(), types.next()) {
        (Some(t), Some(e), None) => Some((t, e)),
        _ => None,
    }
}

fn server(tr: &ItemTrait, methods: &[Method], krate: &TokenStream) -> TokenStream {
    let vis = &tr.vis;
    let trait_name = &tr.ident;
    let server_name = format_ident!("{}Server", trait_name);
    let p = quote!(#krate::__private);
    let arms = methods.iter().map(|m| {
        let name = &m.name;
        let wire = name.to_string();
        let param_names: Vec<String> = m.params.iter().map(|(n, _)| n.to_string()).collect();
        let takes = m.params.iter().enumerate().map(|(i, (n, ty))| {
            let pname = n.to_string();
            quote! {
                let #n: #ty = #p::take_arg(#wire, #i, #pname, __slots.next().flatten())?;
            }
        });
        let idents = m.params.iter().map(|(n, _)| n);
        let reply = if m.result.is_some() {
            quote!(#p::reply_result(#wire, __out))
        } else {
            quote!(#p::reply_value(#wire, __out))
        };
        quote! {
            #wire => {
                let __service = ::std::sync::Arc::clone(&self.0);
                #p::run(ctx, async move {
                    let mut __slots =
                        #p::bind_args(#wire, &[#(#param_names),*], args)?.into_iter();
                    #(#takes)*
                    let __out = <S as #trait_name>::#name(&__service, #(#idents),*).await;
                    #reply
                })
            }
        }
    });
    let infos = methods.iter().map(|m| {
        let wire = m.name.to_string();
        let sig = format!(
            "({})",
            m.params
                .iter()
                .map(|(n, _)| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let doc = &m.doc_text;
        quote!(#p::method_info(#wire, #sig, #doc))
    });
    let doc = format!(
        "Serves a [`{trait_name}`]: a `Callee` for `Server::builder`, written by `#[service]`."
    );
    quote! {
        #[doc = #doc]
        #vis struct #server_name<S>(::std::sync::Arc<S>);

        impl<S: #trait_name> #server_name<S> {
            /// Serves `service`.
            #vis fn new(service: S) -> Self {
                Self(::std::sync::Arc::new(service))
            }

            /// Serves a service shared with other code.
            #vis fn from_arc(service: ::std::sync::Arc<S>) -> Self {
                Self(service)
            }
        }

        impl<S> ::core::clone::Clone for #server_name<S> {
            fn clone(&self) -> Self {
                Self(::std::sync::Arc::clone(&self.0))
            }
        }

        impl<S: #trait_name> #krate::Callee for #server_name<S> {
            fn call(
                &self,
                ctx: #krate::CallContext,
                method: &str,
                args: #krate::Args,
            ) -> #krate::CallFuture {
                match method {
                    #(#arms)*
                    _ => #p::no_such_method(method),
                }
            }

            fn methods(&self) -> ::std::vec::Vec<#krate::MethodInfo> {
                ::std::vec![#(#infos),*]
            }
        }
    }
}

fn client(tr: &ItemTrait, methods: &[Method], krate: &TokenStream) -> TokenStream {
    let vis = &tr.vis;
    let trait_name = &tr.ident;
    let client_name = format_ident!("{}Client", trait_name);
    let p = quote!(#krate::__private);
    let fns = methods.iter().map(|m| {
        let name = &m.name;
        let nb_name = format_ident!("nb_{}", name);
        let wire = name.to_string();
        let docs = &m.docs;
        let params = m.params.iter().map(|(n, ty)| quote!(#n: #ty));
        let params2 = params.clone();
        let idents: Vec<&Ident> = m.params.iter().map(|(n, _)| n).collect();
        let (ret, call) = match &m.result {
            Some((t, e)) => (
                quote!(::core::result::Result<#t, #krate::ServiceError<#e>>),
                quote!(call_result),
            ),
            None => {
                let t = &m.output;
                (
                    quote!(::core::result::Result<#t, #krate::CallError>),
                    quote!(call_value),
                )
            }
        };
        let nb_doc = format!(
            "[`{client_name}::{name}`] as a non-blocking call (submitted, then polled for)."
        );
        quote! {
            #(#docs)*
            #vis async fn #name(&self, #(#params),*) -> #ret {
                let __args = ::std::vec![#(#p::arg(&#idents)?),*];
                self.inner.#call(#wire, __args, false).await
            }

            #[doc = #nb_doc]
            #vis async fn #nb_name(&self, #(#params2),*) -> #ret {
                let __args = ::std::vec![#(#p::arg(&#idents)?),*];
                self.inner.#call(#wire, __args, true).await
            }
        }
    });
    let blocking_name = format_ident!("{}BlockingClient", trait_name);
    let blocking_fns = methods.iter().map(|m| {
        let name = &m.name;
        let nb_name = format_ident!("nb_{}", name);
        let wire = name.to_string();
        let docs = &m.docs;
        let params = m.params.iter().map(|(n, ty)| quote!(#n: #ty));
        let params2 = params.clone();
        let idents: Vec<&Ident> = m.params.iter().map(|(n, _)| n).collect();
        let (ret, call) = match &m.result {
            Some((t, e)) => (
                quote!(::core::result::Result<#t, #krate::ServiceError<#e>>),
                quote!(call_result),
            ),
            None => {
                let t = &m.output;
                (
                    quote!(::core::result::Result<#t, #krate::CallError>),
                    quote!(call_value),
                )
            }
        };
        let nb_doc = format!(
            "[`{blocking_name}::{name}`] as a non-blocking call (submitted, then polled for)."
        );
        quote! {
            #(#docs)*
            #vis fn #name(&self, #(#params),*) -> #ret {
                let __args = ::std::vec![#(#p::arg(&#idents)?),*];
                self.inner.#call(#wire, __args, false)
            }

            #[doc = #nb_doc]
            #vis fn #nb_name(&self, #(#params2),*) -> #ret {
                let __args = ::std::vec![#(#p::arg(&#idents)?),*];
                self.inner.#call(#wire, __args, true)
            }
        }
    });
    let blocking_doc = format!(
        "A blocking typed client of a [`{trait_name}`] service (written by `#[service]`), \
         for code without an async runtime: see `pyrpc_client::blocking::Client`."
    );
    let doc = format!(
        "A typed client of a [`{trait_name}`] service (written by `#[service]`): its methods \
         have the trait's names and argument types."
    );
    quote! {
        #[doc = #doc]
        #[derive(Clone, Debug)]
        #vis struct #client_name {
            inner: #p::ServiceClient,
        }

        impl #client_name {
            /// A client of the service at `address`, with the default settings.
            /// Nothing is connected until the first call.
            #vis fn new(address: #krate::Address) -> Self {
                Self::from_client(#krate::Client::new(address))
            }

            /// A client calling through `client` (its settings, its connection).
            #vis fn from_client(client: #krate::Client) -> Self {
                Self { inner: #p::ServiceClient::new(client) }
            }

            /// The same client whose calls use `options` (a timeout, ...).
            #vis fn with_options(&self, options: #krate::CallOptions) -> Self {
                Self { inner: self.inner.with_options(options) }
            }

            /// The untyped client underneath (`connected`, `shutdown`, ...).
            #vis fn client(&self) -> &#krate::Client {
                self.inner.client()
            }

            #(#fns)*
        }

        #[doc = #blocking_doc]
        #[derive(Clone, Debug)]
        #vis struct #blocking_name {
            inner: #p::BlockingServiceClient,
        }

        impl #blocking_name {
            /// A blocking client of the service at `address`, with the default
            /// settings. Nothing is connected until the first call.
            ///
            /// # Errors
            ///
            /// When the client's runtime cannot be started.
            #vis fn new(address: #krate::Address) -> ::std::io::Result<Self> {
                ::core::result::Result::Ok(Self::from_client(#krate::blocking::Client::new(address)?))
            }

            /// A client calling through `client`.
            #vis fn from_client(client: #krate::blocking::Client) -> Self {
                Self { inner: #p::BlockingServiceClient::new(client) }
            }

            /// The same client whose calls use `options` (a timeout, ...).
            #vis fn with_options(&self, options: #krate::CallOptions) -> Self {
                Self { inner: self.inner.with_options(options) }
            }

            /// The untyped blocking client underneath (`connected`, `shutdown`, ...).
            #vis fn client(&self) -> &#krate::blocking::Client {
                self.inner.client()
            }

            #(#blocking_fns)*
        }
    }
}
