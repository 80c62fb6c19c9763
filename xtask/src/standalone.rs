//! Checks that a crate depending on `pyrpc-client` alone, and one depending on
//! `pyrpc-server` alone, build outside this workspace (each with a
//! `#[service]` trait and the re-exported types: one dependency is enough),
//! that the client one builds without default features and then without
//! hmac and sha2, and that neither of the two crates depends on the other.

use std::path::Path;

use anyhow::{bail, Result};

use crate::util::{cargo, run, step};

/// The two standalone crates: (name, dependency, more options of the
/// dependency, main.rs).
const CRATES: [(&str, &str, &str, &str); 2] = [
    (
        "client-only",
        "pyrpc-client",
        ", default-features = false",
        CLIENT_MAIN,
    ),
    ("server-only", "pyrpc-server", "", SERVER_MAIN),
];

const CLIENT_MAIN: &str = r#"use pyrpc_client::{Address, Args, Value};

#[pyrpc_client::service]
pub trait Greeter {
    async fn greet(&self, name: String) -> String;
}

fn main() {
    let addr: Address = "127.0.0.1:50300".parse().expect("address");
    let _client = GreeterClient::new(addr);
    let _args = Args::new().arg(Value::from(1));
}
"#;

const SERVER_MAIN: &str = r#"use pyrpc_server::{Exception, Server};

#[derive(Debug, Exception)]
pub enum GreetError {
    Refused(String),
}

#[pyrpc_server::service]
pub trait Greeter {
    async fn greet(&self, name: String) -> Result<String, GreetError>;
}

struct Mine;

impl Greeter for Mine {
    async fn greet(&self, name: String) -> Result<String, GreetError> {
        Err(GreetError::Refused(name))
    }
}

fn main() {
    let _server = Server::builder(GreeterServer::new(Mine)).build();
}
"#;

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
    for (name, dep, options, main) in CRATES {
        let dir = base.join(name);
        std::fs::create_dir_all(dir.join("src"))?;
        let manifest = format!(
            "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
             [workspace]\n\n[dependencies]\n{dep} = {{ path = \"{}\"{options} }}\n",
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

    step("without default features, pyrpc-client builds without hmac and sha2");
    let out = cargo()
        .args(["tree", "--quiet", "--edges", "normal"])
        .env("CARGO_TARGET_DIR", base.join("target"))
        .current_dir(base.join("client-only"))
        .output()?;
    let tree = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || tree.contains("hmac") || tree.contains("sha2") {
        bail!("client-only (pyrpc-client without default features) has hmac or sha2:\n{tree}");
    }
    println!("client-only: no hmac, no sha2");
    Ok(())
}
