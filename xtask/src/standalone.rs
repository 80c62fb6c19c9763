//! Checks that a crate depending on `pyrpc-client` alone, and one depending on
//! `pyrpc-server` alone, build outside this workspace, and that neither of the
//! two crates depends on the other.

use std::path::Path;

use anyhow::{bail, Result};

use crate::util::{cargo, run, step};

/// The two standalone crates: (name, dependency, main.rs).
const CRATES: [(&str, &str, &str); 2] = [
    (
        "client-only",
        "pyrpc-client",
        "fn main() {\n    let addr = \"127.0.0.1:50300\".parse().expect(\"address\");\n    let _client = pyrpc_client::Client::new(addr);\n}\n",
    ),
    (
        "server-only",
        "pyrpc-server",
        "fn main() {\n    let _server = pyrpc_server::Server::builder(pyrpc_server::Methods::new()).build();\n}\n",
    ),
];

/// Runs the checks.
pub(crate) fn run_checks(root: &Path) -> Result<()> {
    step("pyrpc-client and pyrpc-server do not depend on each other");
    for (krate, other) in [
        ("pyrpc-client", "pyrpc-server"),
        ("pyrpc-server", "pyrpc-client"),
    ] {
        let out = cargo()
            .args(["tree", "--quiet", "--edges", "normal,build", "-p", krate])
            .current_dir(root)
            .output()?;
        if !out.status.success() {
            bail!(
                "cargo tree -p {krate} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if String::from_utf8_lossy(&out.stdout).contains(other) {
            bail!("{krate} depends on {other}");
        }
        println!("{krate}: no dependency on {other}");
    }

    step("a crate depending on pyrpc-client alone, and one on pyrpc-server alone, build");
    let base = root.join("target").join("standalone");
    for (name, dep, main) in CRATES {
        let dir = base.join(name);
        std::fs::create_dir_all(dir.join("src"))?;
        let manifest = format!(
            "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
             [workspace]\n\n[dependencies]\n{dep} = {{ path = \"{}\" }}\n",
            root.join("crates").join(dep).display()
        );
        std::fs::write(dir.join("Cargo.toml"), manifest)?;
        std::fs::write(dir.join("src/main.rs"), main)?;
        // Same versions as the workspace: start from its lock file.
        std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock"))?;
        run(
            cargo()
                .args(["build", "--quiet"])
                .env("CARGO_TARGET_DIR", base.join("target")),
            &dir,
        )?;
        println!("{name}: builds with {dep} alone");
    }
    Ok(())
}
