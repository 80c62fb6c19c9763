//! `cargo xtask wheel`: the release wheel and sdist of the Python package.
//!
//! One abi3 wheel (CPython 3.9 and later) built by maturin with zig as the
//! linker against glibc 2.17, so it is tagged `manylinux2014` /
//! `manylinux_2_17` and installs on any Linux of the last decade; the `.so`
//! without debug info (the workspace's `[profile.release] debug = 1` is for
//! profiling the benchmarks, overridden here) and stripped; build paths
//! remapped out of the binary, and no SBOM (maturin's records the crates'
//! `path+file://` URLs of the build machine). The tools (maturin, ziglang,
//! auditwheel) come from PyPI into `target/venv`; their output goes to
//! `target/wheel-build.log`. A separate target directory keeps these flags
//! from invalidating the other release builds.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::python::Venv;
use crate::util::{run_logged, step};

/// Where the wheel and the sdist go.
const OUT_DIR: &str = "target/wheels";

/// The built files.
pub(crate) struct Built {
    /// The `.whl`.
    pub(crate) wheel: PathBuf,
    /// The `.tar.gz` source distribution.
    pub(crate) sdist: PathBuf,
}

/// Builds the wheel and the sdist into `target/wheels` with the tools of
/// `venv`.
pub(crate) fn build(root: &Path, venv: &Venv) -> Result<Built> {
    venv.install_requirements(
        root,
        "crates/pyrpc-python/requirements-build.txt",
        ".pyrpc-build-tools",
        "installing maturin, ziglang and auditwheel from PyPI",
    )?;
    let out = root.join(OUT_DIR);
    std::fs::create_dir_all(&out)?;
    for entry in std::fs::read_dir(&out)? {
        let path = entry?.path();
        if file_name(&path).starts_with("pyrpc-") {
            std::fs::remove_file(&path)?;
        }
    }
    step("building the release wheel and sdist (maturin, zig, manylinux2014)");
    let home = std::env::var("HOME").unwrap_or_default();
    let cargo_home = std::env::var("CARGO_HOME").unwrap_or_else(|_| format!("{home}/.cargo"));
    let rustup_home = std::env::var("RUSTUP_HOME").unwrap_or_else(|_| format!("{home}/.rustup"));
    // zig substitutes its own (static, LLVM) libunwind for `-lgcc_s`; the
    // system's libgcc_s, named by path, keeps the one unwinder glibc uses
    // (docs/decisions/0032-python-wheel.md).
    let gcc_s = system_libgcc_s()?;
    let rustflags = format!(
        "--remap-path-prefix={}=. --remap-path-prefix={cargo_home}=cargo \
         --remap-path-prefix={rustup_home}=rustup -C link-arg={}",
        root.display(),
        gcc_s.display()
    );
    // The wheel from the working tree, the sdist separately: `maturin build
    // --sdist` builds the wheel from the unpacked sdist in a temporary
    // directory, whose old file times make cargo reuse a stale build.
    run_logged(
        venv.command("maturin")
            .args([
                "build",
                "--release",
                "--strip",
                "--zig",
                "--compatibility",
                "manylinux2014",
                "--out",
            ])
            .arg(&out)
            .arg("--manifest-path")
            .arg(root.join("crates/pyrpc-python/Cargo.toml"))
            .env("CARGO_TARGET_DIR", root.join("target/wheel-build"))
            .env("CARGO_PROFILE_RELEASE_DEBUG", "0")
            .env("CARGO_PROFILE_RELEASE_STRIP", "symbols")
            .env("RUSTFLAGS", rustflags),
        root,
        &root.join("target/wheel-build.log"),
    )?;
    run_logged(
        venv.command("maturin")
            .args(["sdist", "--out"])
            .arg(&out)
            .arg("--manifest-path")
            .arg(root.join("crates/pyrpc-python/Cargo.toml")),
        root,
        &root.join("target/sdist-build.log"),
    )?;
    let find = |suffix: &str| -> Result<PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&out)? {
            let path = entry?.path();
            let name = file_name(&path);
            if name.starts_with("pyrpc-") && name.ends_with(suffix) {
                found.push(path);
            }
        }
        match found.as_slice() {
            [one] => Ok(one.clone()),
            _ => bail!(
                "expected one pyrpc-*{suffix} in {}, found {found:?}",
                out.display()
            ),
        }
    };
    let built = Built {
        wheel: find(".whl").context("the wheel")?,
        sdist: find(".tar.gz").context("the sdist")?,
    };
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len() / 1024).unwrap_or(0);
    println!(
        "wheel: {} ({} KiB)\nsdist: {} ({} KiB)",
        built.wheel.display(),
        size(&built.wheel),
        built.sdist.display(),
        size(&built.sdist)
    );
    Ok(built)
}

/// The system's `libgcc_s.so.1` (every glibc Linux has it; manylinux allows
/// linking it).
fn system_libgcc_s() -> Result<PathBuf> {
    let multiarch = format!("{}-linux-gnu", std::env::consts::ARCH);
    let dirs = [
        format!("/lib/{multiarch}"),
        format!("/usr/lib/{multiarch}"),
        "/lib64".to_owned(),
        "/usr/lib64".to_owned(),
        "/lib".to_owned(),
        "/usr/lib".to_owned(),
    ];
    dirs.iter()
        .map(|d| Path::new(d).join("libgcc_s.so.1"))
        .find(|p| p.exists())
        .with_context(|| format!("no libgcc_s.so.1 in {}", dirs.join(", ")))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
