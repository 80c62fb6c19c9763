"""The CLI from Python (issue #14 point 5): ``python -m pyrpc`` and the
``pyrpc`` script are the Rust command itself -- same output and exit codes,
checked by running both with the same arguments.

The Rust binary is $PYRPC_CLI_BIN, else target/debug/pyrpc of this checkout
(built by ``cargo test``/``cargo build``); without it these tests skip, unless
PYRPC_CLI_BIN is set (as ``cargo xtask test`` does)."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

import pyrpc.__main__

HERE = os.path.dirname(os.path.abspath(__file__))
RUST_CLI = os.environ.get("PYRPC_CLI_BIN") or os.path.join(
    HERE, "..", "..", "..", "target", "debug", "pyrpc"
)

if not os.path.exists(RUST_CLI):
    if os.environ.get("PYRPC_CLI_BIN"):
        raise RuntimeError("PYRPC_CLI_BIN=%s does not exist" % RUST_CLI)
    pytest.skip("no Rust pyrpc binary at %s" % RUST_CLI, allow_module_level=True)


def run(argv, python):
    cmd = [sys.executable, "-m", "pyrpc", *argv] if python else [RUST_CLI, *argv]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return out.returncode, out.stdout, out.stderr


def both(argv):
    rust, py = run(argv, False), run(argv, True)
    return rust, py


def addr(server):
    a = server.address
    return "%s:%d" % a if isinstance(a, tuple) else a


CASES = [
    (["call", "{a}", "echo", "1", '"foo"', "--kw", "bar=[1, 2.5]"], 0),
    (["call", "{a}", "echo", '{{"$tuple": [1, {{"$bytes": "AAH/"}}]}}', "--repr"], 0),
    (["call", "{a}", "raise_builtin", '"ValueError"', '"bad"'], 1),
    (["call", "{a}", "nope"], 1),
    (["call", "{a}", "sleep", "1", "--timeout", "0.1"], 3),
    (["call", "{a}", "echo", "foo"], 2),
    (["methods", "{a}"], 0),
    (["ping", "127.0.0.1:1"], 4),
    (["ping", "http://example.com:1"], 2),
    (["--version"], 0),
    (["--help"], 0),
    (["call", "--help"], 0),
    ([], 2),
    (["frobnicate"], 2),
]


@pytest.mark.parametrize("argv, code", CASES, ids=[" ".join(c[0])[:40] for c in CASES])
def test_same_output_and_exit_code_as_the_rust_cli(server, argv, code):
    argv = [a.format(a=addr(server)) for a in argv]
    rust, py = both(argv)
    assert rust[0] == code, rust
    assert py == rust


def test_ping_and_stats(server):
    a = addr(server)
    for python in (False, True):
        code, out, err = run(["ping", a], python)
        assert (code, err) == (0, "") and re.fullmatch(r"ok \d+\.\d ms\n", out), out
        code, out, _ = run(["stats", a, "--json"], python)
        assert code == 0 and json.loads(out)["calls"] >= 0


def test_console_script_and_main_function(server, capfd):
    script = shutil.which("pyrpc", path=os.path.dirname(sys.executable))
    assert script, "the wheel installs a pyrpc script next to python"
    out = subprocess.run([script, "methods", addr(server)], capture_output=True, text=True)
    assert out.returncode == 0 and "echo" in out.stdout
    assert pyrpc.__main__.main(["ping", "127.0.0.1:1"]) == 4
    assert "cannot connect" in capfd.readouterr().err
