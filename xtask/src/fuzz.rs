//! `cargo xtask fuzz [SECONDS]`: a bounded cargo-fuzz run of every target in
//! `fuzz/` (installing cargo-fuzz from crates.io if it is missing).
//!
//! Runs on stable Rust with `--sanitizer none` (see ../shared/NOTES.md); for
//! AddressSanitizer run `RUSTC_BOOTSTRAP=1 cargo fuzz run <target>` by hand.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::util::{cargo, run, run_logged, step};

/// The fuzz targets, one per decoder.
const TARGETS: &[&str] = &[
    "frame_decoder",
    "messages",
    "flat_values",
    "direct_values",
    "request_frame",
    "server_frame",
];

/// Runs each target for `seconds`.
pub(crate) fn run_targets(root: &Path, seconds: u64) -> Result<()> {
    let have = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have {
        step("installing cargo-fuzz 0.13.2 from crates.io");
        run(
            cargo().args([
                "install",
                "--quiet",
                "--locked",
                "cargo-fuzz",
                "--version",
                "0.13.2",
            ]),
            root,
        )?;
    }
    let fuzz = root.join("fuzz");
    for target in TARGETS {
        step(&format!("fuzzing {target} for {seconds} s"));
        // New inputs go to a scratch corpus; the committed corpus only seeds.
        let scratch = root.join("target").join("fuzz-corpus").join(target);
        std::fs::create_dir_all(&scratch)?;
        // libFuzzer's progress lines go to a log; its final stats are shown.
        let log = root.join("target").join(format!("fuzz-{target}.log"));
        run_logged(
            cargo()
                .args(["fuzz", "run", "--sanitizer", "none", target])
                .arg(&scratch)
                .arg(fuzz.join("corpus").join(target))
                .arg("--")
                .arg(format!("-max_total_time={seconds}"))
                .arg("-rss_limit_mb=4096")
                .arg("-print_final_stats=1"),
            &fuzz,
            &log,
        )?;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        for line in text.lines().filter(|l| {
            l.starts_with("Done ")
                || l.starts_with("stat::number_of_executed_units")
                || l.starts_with("stat::new_units_added")
        }) {
            println!("    {line}");
        }
    }
    Ok(())
}
