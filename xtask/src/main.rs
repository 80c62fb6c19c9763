//! Project tasks, run as `cargo xtask <task>` (see `.cargo/config.toml`).
//!
//! * `codegen [--check]` regenerates `crates/pyrpc-proto/src/generated/` from `proto/`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

mod codegen;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = project_root();
    match args.first().map(String::as_str) {
        Some("codegen") => codegen::run(&root, args.iter().any(|a| a == "--check")),
        Some(other) => bail!("unknown task `{other}`; try `cargo xtask help`"),
        None => {
            println!("{}", HELP);
            Ok(())
        }
    }
}

const HELP: &str =
    "cargo xtask <task>\n\n  codegen [--check]   regenerate (or check) the prost code from proto/";

/// The workspace root (the parent of this crate's directory).
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .context("xtask lives inside the workspace")
        .unwrap_or_else(|_| PathBuf::from("."))
}
