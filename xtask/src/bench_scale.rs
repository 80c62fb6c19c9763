//! Issue 15's scaling case of `cargo xtask bench`: a CPU-bound pure-Python
//! method (about 1 ms) called from 8 client threads, served by
//! `Server(processes=1)` then `processes=2` (`bench/scale.py` does the work).
//! The goal on a 2-core machine is a ratio of at least 1.7; the ratio is
//! reported with the goal, never asserted (timing goals are not tests).

use std::path::Path;

use anyhow::Result;

use crate::python::Venv;
use crate::util::{run, step};

/// Runs the case with `venv`'s Python; writes `scale.json` into `out_dir`.
pub(crate) fn run_case(root: &Path, venv: &Venv, quick: bool, out_dir: &Path) -> Result<()> {
    step("scaling: CPU-bound ~1 ms method, 8 client threads, processes=1 vs processes=2");
    // Full: 3 interleaved pairs of 4 s, the median ratio reported.
    let (secs, repeats) = if quick { ("1", "1") } else { ("4", "3") };
    run(
        venv.command(venv.python())
            .arg("bench/scale.py")
            .args([
                "--secs",
                secs,
                "--repeats",
                repeats,
                "--threads",
                "8",
                "--out",
            ])
            .arg(out_dir.join("scale.json")),
        root,
    )
}
