//! The memory and array cases of `cargo xtask bench` (issue 10, points 3
//! and 7), run by `bench/python/memory_and_arrays.py`: a 100 MiB float64
//! array next to 100 MiB of bytes, the Python client's peak for a 100 MiB
//! return, and idle RSS before and after a shortened soak of the Python
//! server and the Rust example server. The section this returns goes into
//! the bench's RESULTS.md.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;

use anyhow::{bail, Context, Result};

use crate::python;
use crate::util::{cargo, run as sh, step};

/// One line of the script's `--json` output.
struct Row {
    case: String,
    ratio: f64,
    goal: f64,
    summary: String,
}

fn parse_row(line: &str) -> Result<Row> {
    let v: serde_json::Value =
        serde_json::from_str(line).with_context(|| format!("reading {line}"))?;
    let text = |k: &str| v[k].as_str().map(str::to_owned);
    let num = |k: &str| v[k].as_f64();
    Ok(Row {
        case: text("case").context("no case")?,
        ratio: num("ratio").context("no ratio")?,
        goal: num("goal").context("no goal")?,
        summary: text("summary").unwrap_or_default(),
    })
}

/// Runs the cases unless `only` names other cases; returns the Markdown
/// section (empty when skipped).
///
/// # Errors
///
/// When the venv or the example cannot be built or the script fails.
pub(crate) fn run(
    root: &Path,
    quick: bool,
    soak: Option<u64>,
    only: Option<&[String]>,
) -> Result<String> {
    if only.is_some_and(|o| !o.iter().any(|c| "memory-and-arrays".contains(c.as_str()))) {
        return Ok(String::new());
    }
    step("memory and arrays (bench/python/memory_and_arrays.py)");
    sh(
        cargo().args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "pyrpc-examples",
            "--example",
            "echo_server",
        ]),
        root,
    )?;
    let venv = python::setup(root)?;
    let mut cmd = venv.command(venv.python());
    cmd.arg(root.join("bench/python/memory_and_arrays.py"))
        .arg("--json")
        .arg("--rust-server")
        .arg(root.join("target/release/examples/echo_server"));
    if quick {
        cmd.arg("--quick");
    }
    if let Some(seconds) = soak {
        cmd.arg("--soak-seconds").arg(seconds.to_string());
    }
    let out = cmd
        .current_dir(root.join("bench/python"))
        .stderr(Stdio::inherit())
        .output()
        .context("running memory_and_arrays.py")?;
    if !out.status.success() {
        bail!("memory_and_arrays.py failed: {}", out.status);
    }
    let rows = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(parse_row)
        .collect::<Result<Vec<Row>>>()?;
    let md = table(&rows, quick);
    println!("{md}");
    Ok(md)
}

fn table(rows: &[Row], quick: bool) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## Memory and numpy arrays (issue 10)\n\n\
         A Python client and a Python server (Unix socket; the Rust example server for its \
         soak), `bench/python/memory_and_arrays.py`{}. Ratios: array time / bytes time, \
         client peak above idle / payload, idle RSS after / before the soak.\n\n\
         | case | ratio | goal | | details |\n|---|---:|---:|---|---|",
        if quick { " --quick" } else { "" }
    );
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {:.2} | <= {} | {} | {} |",
            r.case,
            r.ratio,
            r.goal,
            if r.ratio <= r.goal { "met" } else { "not met" },
            r.summary
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_scripts_json_lines() -> Result<()> {
        let r = parse_row(
            r#"{"case": "soak", "ratio": 1.25, "goal": 2.0, "summary": "idle 20 MiB, 25 MiB"}"#,
        )?;
        let md = table(&[r], false);
        assert!(
            md.contains("| soak | 1.25 | <= 2 | met | idle 20 MiB, 25 MiB |"),
            "{md}"
        );
        Ok(())
    }
}
