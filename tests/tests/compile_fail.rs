//! `#[service]` makes the trait the contract at compile time: a client call
//! or a server method with the wrong argument type is a compile error, and
//! the error says which (the `.stderr` files next to the cases under `ui/`;
//! `TRYBUILD=overwrite` rewrites them after a compiler upgrade changes the
//! wording). One case per side keeps this to two small compilations.

#[test]
fn wrong_argument_types_do_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*.rs");
}
