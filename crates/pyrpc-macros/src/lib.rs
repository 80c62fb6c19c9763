//! The macros of pyrpc: [`macro@service`] turns a Rust trait into a typed
//! client and a server adapter, and [`macro@Exception`] maps an error type
//! to and from a remote exception.
//!
//! Use them through `pyrpc-client` or `pyrpc-server`, which re-export both
//! (`pyrpc_server::service`, `pyrpc_client::Exception`, ...); the code they
//! write names those crates, so this crate is never a dependency of its own.
//! docs/guide-rust.md shows them at work, docs/decisions/0040 says why they
//! are shaped this way.
//!
//! # Layout
//!
//! * `service.rs` — `#[service]`: the trait, `<Trait>Client`, `<Trait>Server`.
//! * `exception.rs` — `#[derive(Exception)]`.
//! * `paths.rs` — which pyrpc crates the calling crate depends on, and their
//!   names there.

use proc_macro::TokenStream;

mod exception;
mod paths;
mod service;

/// Turns a trait of async methods into a typed pyrpc service: the contract
/// both a client and a server are checked against at compile time.
///
/// ```text
/// #[pyrpc_server::service]
/// pub trait Greeter {
///     /// Says hello.
///     async fn greet(&self, name: String) -> String;
///     async fn divide(&self, a: f64, b: f64) -> Result<f64, MathError>;
/// }
/// ```
///
/// writes, next to the trait (whose methods become `fn ... -> impl Future +
/// Send`, so an `async fn` implements them):
///
/// * when the crate depends on `pyrpc-server`: `GreeterServer<S>`, a
///   `Callee` serving any `S: Greeter` (`GreeterServer::new(service)`),
///   which binds positional and keyword arguments by the parameters' names
///   (a Python client may call `c.greet(name="Py")`; an `Option` parameter
///   may be left out) and lists the methods with their docs;
/// * when it depends on `pyrpc-client`: `GreeterClient`, with the trait's
///   methods (same names, same argument types), each also as `nb_<name>` (a
///   non-blocking call), and `with_options` for per-call options. A method
///   returning `T` returns `Result<T, CallError>` there, one returning
///   `Result<T, E>` returns `Result<T, ServiceError<E>>`, where `E`
///   implements `Exception`. `GreeterBlockingClient` has the same methods,
///   blocking (for code without an async runtime).
///
/// The names on the wire are the method names, so the same trait describes a
/// Python server to a Rust client and a Rust server to a Python client.
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    service::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Derives `Exception` for an enum (each variant is an exception type) or a
/// struct (one exception type): the type name is the variant's (or the
/// struct's) name, the args are its fields in order, converted with serde.
///
/// Attributes: `#[exception(name = "ValueError")]` on a variant or struct
/// renames the type, and makes it a builtin (module `builtins`) unless it
/// says `module` too; `#[exception(module = "bank")]` on the type (or a
/// variant) sets the module a Python client looks the class up in (empty by
/// default). A remote exception of the type whose args do not fit the fields
/// is no match: the client keeps it as a `RemoteError`.
#[proc_macro_derive(Exception, attributes(exception))]
pub fn derive_exception(item: TokenStream) -> TokenStream {
    exception::expand(item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
