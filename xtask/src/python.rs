//! `cargo xtask python-setup`: a virtualenv under `target/venv` with maturin,
//! pytest and mypy from PyPI, and the `pyrpc` package installed into it from
//! the release wheel of `cargo xtask wheel` (built once, used by the tests,
//! the interop matrix and the benchmark; `maturin develop` is the quicker
//! loop while editing).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::util::{run, run_logged, step};
use crate::wheel;

/// What the venv needs besides the package itself. Bumping this reinstalls.
const TOOLS: &[&str] = &["maturin>=1.9,<2", "pip>=23"];

/// A virtualenv made by [`setup`].
pub(crate) struct Venv {
    dir: PathBuf,
}

impl Venv {
    /// `target/venv` as it is, without creating or updating it.
    pub(crate) fn existing(root: &Path) -> Venv {
        Venv {
            dir: root.join("target").join("venv"),
        }
    }

    /// The venv's `python`.
    pub(crate) fn python(&self) -> PathBuf {
        self.dir.join("bin").join("python")
    }

    /// A command run with the venv active (VIRTUAL_ENV set, its bin first on PATH).
    pub(crate) fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![self.dir.join("bin")];
        paths.extend(std::env::split_paths(&path));
        cmd.env("VIRTUAL_ENV", &self.dir)
            .env("PATH", std::env::join_paths(paths).unwrap_or(path))
            .env_remove("PYTHONHOME");
        cmd
    }
}

impl Venv {
    /// Installs the requirements file `reqs` (relative to `root`) into the
    /// venv from PyPI, unless the marker file `marker` (in the venv) says this
    /// exact file was installed already. `what` is said while installing.
    pub(crate) fn install_requirements(
        &self,
        root: &Path,
        reqs: &str,
        marker: &str,
        what: &str,
    ) -> Result<()> {
        let reqs_file = root.join(reqs);
        let wanted = std::fs::read_to_string(&reqs_file)
            .with_context(|| format!("reading {}", reqs_file.display()))?;
        let marker = self.dir.join(marker);
        if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
            return Ok(());
        }
        step(what);
        run(
            self.command(self.python())
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(&reqs_file),
            root,
        )?;
        std::fs::write(&marker, wanted)?;
        Ok(())
    }
}

/// Creates (or reuses) `target/venv` and installs the tools and test
/// requirements when they changed; the package itself is not installed.
pub(crate) fn venv(root: &Path) -> Result<Venv> {
    let venv = Venv {
        dir: root.join("target").join("venv"),
    };
    if !venv.python().exists() {
        step("creating the Python virtualenv target/venv");
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        run(
            Command::new(&python).args(["-m", "venv"]).arg(&venv.dir),
            root,
        )
        .context("python3 with the venv module is needed (Debian: apt-get install python3-venv)")?;
    }
    let reqs_file = root.join("crates/pyrpc-python/requirements-test.txt");
    let reqs = std::fs::read_to_string(&reqs_file).unwrap_or_default();
    let wanted = format!("{}\n{reqs}", TOOLS.join("\n"));
    let marker = venv.dir.join(".pyrpc-installed");
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(wanted.as_str()) {
        step("installing maturin and the test requirements from PyPI");
        let mut pip = venv.command(venv.python());
        pip.args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(TOOLS);
        if reqs_file.exists() {
            pip.arg("-r").arg(&reqs_file);
        }
        run(&mut pip, root)?;
        std::fs::write(&marker, wanted)?;
    }
    Ok(venv)
}

/// [`venv`], then the release wheel (`cargo xtask wheel`) installed into it.
pub(crate) fn setup(root: &Path) -> Result<Venv> {
    Ok(setup_with_wheel(root)?.0)
}

/// [`setup`], also returning the wheel and sdist it built.
pub(crate) fn setup_with_wheel(root: &Path) -> Result<(Venv, wheel::Built)> {
    let venv = venv(root)?;
    let built = wheel::build(root, &venv)?;
    step("installing the wheel into target/venv");
    venv.install_wheel(root, &built.wheel, &root.join("target/pip-venv.log"))?;
    Ok((venv, built))
}

impl Venv {
    /// Installs `wheel` (re-installing the package, not its dependencies).
    pub(crate) fn install_wheel(&self, root: &Path, wheel: &Path, log: &Path) -> Result<()> {
        run_logged(
            self.command(self.python())
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--force-reinstall",
                    "--no-deps",
                ])
                .arg(wheel),
            root,
            log,
        )
    }

    /// Makes a virtualenv at `dir` with `python` unless one is there.
    pub(crate) fn create(root: &Path, python: &Path, dir: PathBuf) -> Result<Venv> {
        let venv = Venv { dir };
        if !venv.python().exists() {
            run(
                Command::new(python).args(["-m", "venv"]).arg(&venv.dir),
                root,
            )?;
        }
        Ok(venv)
    }
}
