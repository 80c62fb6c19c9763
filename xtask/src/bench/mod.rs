//! `cargo xtask bench [--quick] [--case a,b]`: issue 6's benchmark, every number next to
//! the peers it is judged against, measured in the same run.
//!
//! Each case is a server process and a client process (the binaries of the
//! `bench/` crate, built in release mode, and the scripts of `bench/python/`
//! run by `target/venv`'s Python with the release build of `pyrpc`). The
//! client prints one JSON line (calls, seconds, p50/p99, MB/s, its own peak
//! RSS); xtask reads the server's RSS from `/proc/<pid>/status` right after
//! it accepts connections (idle) and once the client is done (`VmHWM`, peak).
//! Cases are interleaved: repeat 1 of every case, then repeat 2, ..., and
//! the table shows medians, so a slow minute on this shared machine hurts
//! every case a little rather than one case a lot. Goals are ratios of
//! numbers from the same run.
//!
//! Full mode writes `bench/RESULTS.md`, `bench/results.json` and
//! `bench/results.png` (keeping the hand-written analysis section of
//! RESULTS.md); `--quick` runs every case once with tiny counts (under a
//! minute) and writes to `target/bench/` instead, as does `--case a,b`
//! (also spelled `--only`), which runs only the cases named by the
//! comma-separated strings: a case whose id is one of them, or whose id
//! contains one that is no case's whole id (e.g. `--case raw,rust-seq`:
//! `raw` is the raw Rust ping-pong alone, not also `py-raw`). All exit
//! non-zero when a case failed to run; none judges the numbers by its exit
//! code.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::certs;
use crate::python::{self, Venv};
use crate::util::{cargo, run as sh, step, temp_dir, KillOnDrop};

mod cases;
mod goals;
mod report;
mod runner;

use cases::*;
use goals::*;
use report::*;
use runner::*;

/// What the bench installs into the venv (grpcio, grpcio-tools, matplotlib).
const REQUIREMENTS: &str = "bench/python/requirements.txt";
/// How long a server may take to accept connections.
const READY_LIMIT: Duration = Duration::from_secs(30);
const MIB: u64 = 1024 * 1024;
/// Marks the hand-written part of RESULTS.md, kept across runs.
const ANALYSIS_START: &str = "<!-- analysis:start -->";
const ANALYSIS_END: &str = "<!-- analysis:end -->";

// ===== the task =====

/// `cargo xtask bench [--quick]`.
/// `cargo xtask bench`'s options.
#[derive(clap::Args, Debug, Default)]
pub(crate) struct Options {
    /// Every case once with tiny counts (a smoke run; results to target/bench/).
    #[arg(long)]
    pub(crate) quick: bool,
    /// Only the cases whose id contains one of these (results to target/bench/).
    #[arg(long, alias = "only", value_delimiter = ',', value_name = "ID,..")]
    pub(crate) case: Option<Vec<String>>,
    /// Only the streaming benchmark: 100k streamed items against 100k
    /// separate calls (also `--case stream`; results to target/bench/stream.md).
    #[arg(long)]
    pub(crate) stream: bool,
    /// The soak of the memory case runs this many seconds per server instead
    /// of 40 (`--soak 300` is issue 10's 5-minute soak; with `--case memory`,
    /// results to target/bench/).
    #[arg(long, value_name = "SECONDS")]
    pub(crate) soak: Option<u64>,
}

pub(crate) fn run(root: &Path, opts: &Options) -> Result<()> {
    if crate::bench_stream::wanted(opts) {
        return crate::bench_stream::run(root);
    }
    let quick = opts.quick;
    // `--case a,b` (or `--only a,b`): run only the cases the
    // comma-separated strings name; the results then go to
    // `target/bench/`, never over `bench/RESULTS.md`.
    let only = opts.case.clone();
    let plan = Plan::new(quick);
    let started = Instant::now();

    step("building the bench binaries (release)");
    sh(
        cargo().args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "pyrpc-bench",
            "--bins",
        ]),
        root,
    )?;
    let mut cases = plan.cases();
    if let Some(only) = &only {
        let ids: Vec<String> = cases.iter().map(|c| c.id.clone()).collect();
        cases.retain(|c| named(only, &c.id, &ids));
    }
    // A run of Rust cases only (`--case rust-seq`) needs no Python at all.
    let needs_python = cases.iter().any(|c| {
        matches!(
            c.server,
            ServerKind::PyrpcPython
                | ServerKind::PyrpcPythonSync
                | ServerKind::Grpcio
                | ServerKind::RawPython
        ) || matches!(c.client, ClientKind::PyrpcPython | ClientKind::Grpcio)
    });
    let venv = if needs_python {
        let venv = python::setup(root)?;
        venv.install_requirements(
            root,
            REQUIREMENTS,
            ".bench-installed",
            "installing grpcio, grpcio-tools and matplotlib into target/venv",
        )?;
        venv
    } else {
        python::Venv::existing(root)
    };
    let out_dir = if quick || only.is_some() {
        root.join("target/bench")
    } else {
        root.join("bench")
    };
    let gen = root.join("target/bench/gen");
    std::fs::create_dir_all(&gen)?;
    std::fs::create_dir_all(&out_dir)?;
    if needs_python {
        step("generating the grpcio echo stubs from bench/proto/echo.proto");
        sh(
            venv.command(venv.python())
                .args(["-m", "grpc_tools.protoc", "-Ibench/proto"])
                .arg(format!("--python_out={}", gen.display()))
                .arg(format!("--grpc_python_out={}", gen.display()))
                .arg("bench/proto/echo.proto"),
            root,
        )?;
    }

    // Short paths: a Unix socket path must fit in 108 bytes.
    let _tmp_guard = temp_dir("pyrpc-bench")?;
    let tmp = _tmp_guard.path().to_path_buf();
    let tls = certs::write(&tmp.join("tls"))?;
    let env = Env {
        root: root.to_path_buf(),
        venv,
        bin: root.join("target/release"),
        gen,
        tmp,
        tls,
    };

    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut samples: Vec<Vec<Result<Sample, String>>> = vec![Vec::new(); cases.len()];
    for rep in 0..plan.repeats {
        step(&format!(
            "repeat {}/{} of {} cases",
            rep + 1,
            plan.repeats,
            cases.len()
        ));
        for (i, case) in cases.iter().enumerate() {
            let t = Instant::now();
            let r = env.run_case(case, rep).map_err(|e| format!("{e:#}"));
            match &r {
                Ok(s) => println!(
                    "  {:<58} {:<4} {:>10} calls/s {:>9} MB/s  ({:.1?})",
                    case.name,
                    case.transport.name(),
                    s.get("rate").map_or("-".into(), |v| fmt_num(*v)),
                    s.get("mbps").map_or("-".into(), |v| fmt_num(*v)),
                    t.elapsed()
                ),
                Err(e) => println!(
                    "  {:<58} {:<4} FAILED: {}",
                    case.name,
                    case.transport.name(),
                    e.lines().next().unwrap_or("")
                ),
            }
            samples[i].push(r);
        }
    }

    // Issue 15: processes=1 vs 2 (its own script and output; bench_scale.rs).
    let mut scale_md = String::new();
    if only
        .as_ref()
        .is_none_or(|o| o.iter().any(|c| c.contains("scale")))
    {
        match crate::bench_scale::run_case(root, &env.venv, quick, &out_dir) {
            Ok(md) => {
                println!("{md}");
                scale_md = md;
            }
            Err(e) => {
                println!("  scaling case FAILED: {e:#}");
                scale_md = format!("## Processes (issue 15)\n\nThe case failed: {e:#}\n\n");
            }
        }
    }

    // Issue 10's value round trips against pickle (xtask/src/bench_values.rs).
    let values_md = crate::bench_values::run(root, quick, only.as_deref())?;
    // Issue 10's memory and numpy cases (xtask/src/bench_memory.rs).
    let memory_md = crate::bench_memory::run(root, quick, opts.soak, only.as_deref())?;

    let summaries: Vec<Summary> = cases
        .into_iter()
        .zip(&samples)
        .map(|(c, s)| summarize(c, s))
        .collect();
    let goals = goals(&summaries, &plan);
    let failed: Vec<&Summary> = summaries.iter().filter(|s| s.ok < s.runs).collect();

    let header = describe_run(root, &plan, &load_before, started.elapsed());
    let cases_md = table(&summaries);
    let goals_md = goals_table(&goals);
    step("results");
    println!("{header}\n\n{cases_md}\n{goals_md}");
    let met = goals.iter().filter(|g| g.met() == Some(true)).count();
    println!("{met} of {} goals met", goals.len());

    let json_path = out_dir.join("results.json");
    let png_path = out_dir.join("results.png");
    let title = if quick {
        "pyrpc bench --quick (smoke run; numbers mean nothing)".to_owned()
    } else {
        format!("pyrpc bench: {}", header.split(',').next().unwrap_or(""))
    };
    std::fs::write(&json_path, results_json(&title, &summaries, &goals))?;
    if needs_python {
        step("drawing the chart");
        sh(env.python("chart.py").arg(&json_path).arg(&png_path), root)?;
    }

    let md_path = out_dir.join("RESULTS.md");
    let mut md = String::new();
    let _ =
        writeln!(
        md,
        "# pyrpc benchmark results{}\n\nWritten by `cargo xtask bench{}` (issue 6). {header}.\n\n\
         Every case runs its server and its client in separate processes on this machine \
         (loopback TCP or a Unix socket); numbers are medians of the repeats. Rust clients run \
         on a current-thread tokio runtime; servers on their default runtimes. \"peak\" is \
         `VmHWM`, \"idle\" is `VmRSS` before the measured calls (the server's right after it \
         accepts connections). A goal comparing two cases takes their ratio within each repeat \
         and judges the median of those. Chart: `results.png`; raw medians: `results.json`.\n",
        if quick { " (quick smoke run: the numbers mean nothing)" } else { "" },
        if quick { " --quick" } else { "" }
    );
    let _ = writeln!(
        md,
        "## Goals\n\n{met} of {} met in this run.\n\n{goals_md}",
        goals.len()
    );
    let _ = writeln!(md, "## Cases\n\n{cases_md}");
    md.push_str(&scale_md);
    md.push_str(&values_md);
    md.push_str(&memory_md);
    if !failed.is_empty() {
        md.push_str("## Failed runs\n\n");
        for f in &failed {
            for e in &f.errors {
                let _ = writeln!(
                    md,
                    "- {} ({}): {}",
                    f.case.name,
                    f.case.transport.name(),
                    e.lines().next().unwrap_or("")
                );
            }
        }
        md.push('\n');
    }
    md.push_str(&kept_analysis(&md_path));
    md.push('\n');
    std::fs::write(&md_path, md)?;
    println!(
        "\nwrote {}, {} and {}",
        md_path.display(),
        json_path.display(),
        png_path.display()
    );

    if !failed.is_empty() {
        for f in &failed {
            for e in &f.errors {
                eprintln!(
                    "\n{} ({}) failed:\n{e}",
                    f.case.name,
                    f.case.transport.name()
                );
            }
        }
        bail!(
            "{} of {} cases failed to run",
            failed.len(),
            summaries.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_json_is_json_and_keeps_non_finite_numbers_out() -> Result<()> {
        let plan = Plan::new(true);
        let case = plan.cases().remove(0);
        let ok: Result<Sample, String> = Ok(Sample::from([
            ("rate".to_owned(), 1500.0),
            ("p99_us".to_owned(), f64::NAN),
        ]));
        let summary = summarize(case, &[ok]);
        let text = results_json("t \"q\"", &[summary], &[]);
        let doc: serde_json::Value = serde_json::from_str(&text)?;
        assert_eq!(doc["title"], "t \"q\"");
        assert_eq!(doc["cases"][0]["rate"], 1500.0);
        assert_eq!(doc["cases"][0]["p99_us"], 0.0);
        Ok(())
    }

    #[test]
    fn cpu_time_comes_from_fields_14_and_15_of_stat() {
        // A command name with spaces and a `)` must not shift the fields.
        let stat = "4242 (py thon) x) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 9 0 0";
        assert_eq!(cpu_secs_of_stat(stat, 100.0), Some(3.0));
        assert_eq!(cpu_secs_of_stat("garbage", 100.0), None);
        let own = proc_cpu_secs(std::process::id());
        assert!(own.is_some_and(|s| s >= 0.0), "{own:?}");
    }

    #[test]
    fn quick_plan_runs_every_full_case() {
        let ids = |p: Plan| -> Vec<(String, Transport)> {
            p.cases()
                .into_iter()
                .map(|c| {
                    (
                        c.id.split('-').take(2).collect::<Vec<_>>().join("-"),
                        c.transport,
                    )
                })
                .collect()
        };
        assert_eq!(ids(Plan::new(true)), ids(Plan::new(false)));
    }
}

/// Whether `--case` names `id` (of the cases `ids`): a name that is a case's
/// whole id names that case alone (`raw` is not also `py-raw`); any other
/// name, every case whose id contains it.
fn named(names: &[String], id: &str, ids: &[String]) -> bool {
    names
        .iter()
        .any(|n| id == n || (!ids.contains(n) && id.contains(n.as_str())))
}

#[cfg(test)]
mod case_names {
    use super::named;

    #[test]
    fn a_whole_id_names_one_case_and_a_part_names_every_case_containing_it() {
        let ids: Vec<String> = ["raw", "py-raw", "raw-bulk", "py-seq", "py-seq-sync"]
            .map(String::from)
            .to_vec();
        let picked = |names: &[&str]| -> Vec<&str> {
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            ids.iter()
                .filter(|id| named(&names, id, &ids))
                .map(String::as_str)
                .collect()
        };
        assert_eq!(picked(&["raw"]), ["raw"]);
        assert_eq!(picked(&["py-seq"]), ["py-seq"]);
        assert_eq!(picked(&["seq"]), ["py-seq", "py-seq-sync"]);
        assert_eq!(picked(&["bulk", "py-raw"]), ["py-raw", "raw-bulk"]);
    }
}
