//! The commands in the `sh` blocks of the README and the guides exist: xtask
//! tasks, examples, `pyrpc` subcommands, paths. (The `rust` blocks run as doc
//! tests of this crate, see `src/lib.rs`; the `python` blocks run in
//! `crates/pyrpc-python/tests/test_docs.py`.)

use std::path::{Path, PathBuf};

const DOCS: [&str; 3] = ["README.md", "docs/guide-python.md", "docs/guide-rust.md"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// The lines of every block fenced with ```` ```lang ````.
fn blocks(text: &str, lang: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in text.lines() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut current, fence) {
            (None, Some(tag)) if tag.split(',').next() == Some(lang) => current = Some(Vec::new()),
            (Some(_), Some(_)) => out.extend(current.take()),
            (Some(lines), None) => lines.push(line.to_owned()),
            (None, _) => {}
        }
    }
    out
}

/// Why `line` (one shell command) is not known to exist, if it is not.
fn check(line: &str) -> Result<(), String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let exists = |rel: &str| root().join(rel.trim_start_matches("./")).exists();
    match words.as_slice() {
        ["cargo", "xtask", task, ..] => {
            // A task is a variant of clap's `Task` enum: `python-setup` is
            // `PythonSetup`.
            let main = read("xtask/src/main.rs");
            let variant: String = task
                .split('-')
                .map(|w| {
                    let mut w = w.to_owned();
                    w[..1].make_ascii_uppercase();
                    w
                })
                .collect();
            if [",", " {", "("]
                .iter()
                .any(|end| main.contains(&format!("\n    {variant}{end}")))
            {
                Ok(())
            } else {
                Err(format!("no xtask task `{task}` in xtask/src/main.rs"))
            }
        }
        ["cargo", "install", "--path", path, ..] | ["pip", "install", path, ..] => {
            if exists(path) {
                Ok(())
            } else {
                Err(format!("no path {path}"))
            }
        }
        ["cargo", "run", rest @ ..] => match rest.iter().position(|w| *w == "--example") {
            Some(i) => {
                let name = rest.get(i + 1).copied().unwrap_or("");
                if read("examples/Cargo.toml").contains(&format!("name = \"{name}\"")) {
                    Ok(())
                } else {
                    Err(format!("no example `{name}` in examples/Cargo.toml"))
                }
            }
            None => Err("cargo run without --example".into()),
        },
        ["pyrpc", sub, ..] => {
            let cli = read("crates/pyrpc-cli/src/lib.rs");
            let mut variant = sub.to_string();
            variant[..1].make_ascii_uppercase();
            if cli.contains(&format!("    {variant} {{")) {
                Ok(())
            } else {
                Err(format!("no `pyrpc {sub}` subcommand"))
            }
        }
        // The Python package runs the same command.
        ["python" | "python3", "-m", "pyrpc", sub, ..] => check(&format!("pyrpc {sub}")),
        ["python" | "python3", script, ..] if script.ends_with(".py") => {
            if exists(script) {
                Ok(())
            } else {
                Err(format!("no script {script}"))
            }
        }
        _ => Err("a command this test does not know how to check; teach it".into()),
    }
}

#[test]
fn every_sh_command_in_the_docs_exists() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for doc in DOCS {
        for block in blocks(&read(doc), "sh") {
            for line in block {
                let command = line.split(" #").next().unwrap_or("").trim();
                if command.is_empty() || command.starts_with('#') {
                    continue;
                }
                checked += 1;
                if let Err(why) = check(command) {
                    problems.push(format!("{doc}: `{command}`: {why}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked >= 5, "only {checked} commands found");
}

/// The files docs/guide-rust.md shows whole, so that what the guide says is
/// what `crates/pyrpc-python/tests/test_typed_rust.py` runs (Rust server,
/// Python client and the other way round, over TCP and Unix): the fence's
/// language, and the file (a Rust file without its leading `//!` lines).
const SHOWN: [(&str, &str); 3] = [
    ("rust", "examples/greeter.rs"),
    ("python", "examples/python/greeter_client.py"),
    ("python", "examples/python/greeter_server.py"),
];

#[test]
fn guide_rust_shows_the_tested_examples_as_they_are() {
    let guide = read("docs/guide-rust.md");
    for (lang, file) in SHOWN {
        let text = read(file);
        let body: Vec<&str> = text
            .lines()
            .skip_while(|l| l.starts_with("//!"))
            .skip_while(|l| l.is_empty())
            .collect();
        let found = blocks(&guide, lang)
            .iter()
            .any(|b| b.iter().map(String::as_str).eq(body.iter().copied()));
        assert!(
            found,
            "docs/guide-rust.md has no ```{lang} block equal to {file}; copy the file into the guide"
        );
    }
}

#[test]
fn the_checker_refuses_what_does_not_exist() {
    assert!(check("cargo xtask frobnicate").is_err());
    assert!(check("pyrpc frobnicate 127.0.0.1:1").is_err());
    assert!(check("cargo run -p pyrpc-examples --example nope").is_err());
    assert!(check("rm -rf /").is_err());
    assert!(check("pyrpc stats 127.0.0.1:1").is_ok());
    assert_eq!(
        blocks("a\n```sh\nx\n```\n```rust\ny\n```\n", "sh"),
        vec![vec!["x".to_owned()]]
    );
}
