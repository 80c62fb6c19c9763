"""The typed API (issue #14 point 3): `mypy --strict` accepts
typecheck/good.py, refuses exactly the lines of typecheck/bad.py marked
`# error`, and stubtest finds the Rust core's stub true to the module.

Needs mypy (requirements-test.txt); skipped without it unless
PYRPC_REQUIRE_MYPY=1 (set by `cargo xtask test` for the main venv)."""

import os
import re
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(HERE, "typecheck")

if os.environ.get("PYRPC_REQUIRE_MYPY") != "1":
    pytest.importorskip("mypy")


def mypy(*args, cwd=CASES):
    cache = os.environ.get("PYRPC_MYPY_CACHE")
    extra = ["--cache-dir", cache] if cache else ["--no-incremental"]
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", *extra, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
    )


def test_mypy_strict_accepts_the_good_cases():
    out = mypy("good.py")
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_strict_accepts_the_package_itself():
    out = mypy("-p", "pyrpc")
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_strict_refuses_exactly_the_bad_cases():
    with open(os.path.join(CASES, "bad.py")) as f:
        marked = {i for i, line in enumerate(f, 1) if line.rstrip().endswith("# error")}
    out = mypy("bad.py")
    errors = {
        int(m.group(1)) for m in re.finditer(r"^bad\.py:(\d+): error:", out.stdout, re.M)
    }
    assert marked, "no cases"
    assert errors == marked, out.stdout + out.stderr


def test_stubtest_finds_the_core_stub_true():
    out = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "--mypy-config-file", os.devnull, "pyrpc._pyrpc"],
        cwd=HERE,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
