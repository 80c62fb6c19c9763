//! The value cases of `cargo xtask bench` (issue 10): round trips of large
//! values through a Python pyrpc client and server, next to pickle over a
//! plain Unix socket in the same run (`bench/python/values_vs_pickle.py`).
//!
//! The goal is a ratio: pyrpc's round trip at most 0.8x pickle's, for 1M
//! ints, a 100k str->float dict and 100k small records. The section this
//! returns goes into the bench's RESULTS.md.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;

use anyhow::{bail, Context, Result};

use crate::python;
use crate::util::step;

/// The most pyrpc may take, as a fraction of pickle's time.
const GOAL_RATIO: f64 = 0.8;

/// One case's medians.
struct Row {
    case: String,
    pyrpc_s: f64,
    pickle_s: f64,
}

/// Runs the value cases unless `only` names other cases; returns the
/// Markdown section (empty when skipped).
///
/// # Errors
///
/// When the venv cannot be set up or the script fails.
pub(crate) fn run(root: &Path, quick: bool, only: Option<&[String]>) -> Result<String> {
    if only.is_some_and(|o| !o.iter().any(|c| "values-vs-pickle".contains(c.as_str()))) {
        return Ok(String::new());
    }
    step("values vs pickle (bench/python/values_vs_pickle.py)");
    let venv = python::setup(root)?;
    let repeats = if quick { "1" } else { "7" };
    let out = venv
        .command(venv.python())
        .arg(root.join("bench/python/values_vs_pickle.py"))
        .args([repeats, "--json"])
        .current_dir(root.join("bench/python"))
        .stderr(Stdio::inherit())
        .output()
        .context("running values_vs_pickle.py")?;
    if !out.status.success() {
        bail!("values_vs_pickle.py failed: {}", out.status);
    }
    let rows = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(parse_row)
        .collect::<Result<Vec<Row>>>()?;
    let md = table(&rows, repeats);
    println!("{md}");
    Ok(md)
}

/// A JSON line of the script: `{"case": "...", "pyrpc_s": x, "pickle_s": y, ...}`.
fn parse_row(line: &str) -> Result<Row> {
    let field = |name: &str| -> Result<&str> {
        let key = format!("\"{name}\": ");
        let start = line
            .find(&key)
            .with_context(|| format!("no {name} in {line}"))?
            + key.len();
        let rest = &line[start..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Ok(rest[..end].trim())
    };
    let num = |name: &str| -> Result<f64> {
        field(name)?
            .parse()
            .with_context(|| format!("{name} in {line}"))
    };
    Ok(Row {
        case: field("case")?.trim_matches('"').to_owned(),
        pyrpc_s: num("pyrpc_s")?,
        pickle_s: num("pickle_s")?,
    })
}

fn table(rows: &[Row], repeats: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## Values vs pickle (issue 10)\n\n\
         One Python client echoing one value through a Python pyrpc server (Unix socket), \
         next to pickle protocol 5 over a plain persistent Unix socket (4-byte length, \
         `loads`/`dumps` on the other side), in the same run; medians of {repeats} round \
         trips, pyrpc and pickle in turn. Goal: pyrpc at most {GOAL_RATIO}x pickle.\n\n\
         | value | pyrpc ms | pickle ms | ratio | goal <= {GOAL_RATIO} |\n\
         |---|---:|---:|---:|---|"
    );
    for r in rows {
        let ratio = r.pyrpc_s / r.pickle_s;
        let _ = writeln!(
            md,
            "| {} | {:.1} | {:.1} | {:.2} | {} |",
            r.case,
            r.pyrpc_s * 1e3,
            r.pickle_s * 1e3,
            ratio,
            if ratio <= GOAL_RATIO {
                "met"
            } else {
                "not met"
            }
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_scripts_json_lines() -> Result<()> {
        let r =
            parse_row(r#"{"case": "1M ints", "pyrpc_s": 0.125, "pickle_s": 0.25, "repeats": 5}"#)?;
        assert_eq!(r.case, "1M ints");
        assert_eq!((r.pyrpc_s, r.pickle_s), (0.125, 0.25));
        let md = table(&[r], "5");
        assert!(
            md.contains("| 1M ints | 125.0 | 250.0 | 0.50 | met |"),
            "{md}"
        );
        Ok(())
    }
}
