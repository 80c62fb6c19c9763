//! `#[service]` makes the trait the contract at compile time: a client call
//! or a server method with the wrong argument type is a compile error, and
//! the error says which (the `.stderr` files next to the cases under `ui/`;
//! `TRYBUILD=overwrite` rewrites them after a compiler upgrade changes the
//! wording). One case per side, and one file of what the macro refuses
//! (not `async`, a reserved name, no `&self`), keep this to three small
//! compilations once trybuild has built the dependencies.

#[test]
fn wrong_argument_types_do_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*.rs");
}
