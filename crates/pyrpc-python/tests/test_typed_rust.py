"""A typed Rust service (``#[service]`` in examples/greeter.rs) and Python
peers, in both directions, over TCP and a Unix socket: a Python client calls
the Rust server (positional and keyword arguments, the Rust errors raised as
the builtin exceptions they are declared as), and the Rust typed client calls
a Python server of the same methods (the Python exceptions come back as the
trait's error type). docs/guide-rust.md shows these files as they are.

The Rust example is built with cargo (a no-op when ``cargo test`` built it).
"""

import json
import os
import subprocess
import sys

import pytest

from conftest import free_port, wait_connected

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
EXAMPLES = os.path.join(ROOT, "examples", "python")
LIMIT = 60


@pytest.fixture(scope="module")
def greeter():
    """The path of the built ``greeter`` example."""
    cargo = os.environ.get("CARGO", "cargo")
    out = subprocess.run(
        [cargo, "build", "--quiet", "-p", "pyrpc-examples", "--example", "greeter", "--message-format=json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr
    for line in out.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "greeter" and msg.get("executable"):
            return msg["executable"]
    raise AssertionError("cargo built no greeter executable")


def address(transport, tmp_path):
    """The address as the peers' command lines take it, and as Python's pyrpc does."""
    if transport == "tcp":
        port = free_port()
        return "127.0.0.1:%d" % port, ("127.0.0.1", port)
    path = str(tmp_path / "greeter.sock")
    return path, path


def run_pair(server_cmd, client_cmd, text, addr, tmp_path):
    """Starts the server, runs the client to completion, and requires the
    server to exit by itself after the client's shutdown."""
    server = subprocess.Popen(server_cmd + [text], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_connected(addr, server)
        out = subprocess.run(client_cmd + [text], capture_output=True, text=True, timeout=LIMIT)
        assert out.returncode == 0, out.stdout + out.stderr
        assert out.stdout.strip().endswith("all calls returned what they should"), out.stdout
        server.wait(LIMIT)
        assert server.returncode == 0, server.stderr.read()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    if isinstance(addr, str):
        assert not os.path.exists(addr), "the server left its socket file"


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_python_client_calls_the_rust_service(greeter, transport, tmp_path):
    text, addr = address(transport, tmp_path)
    client = [sys.executable, os.path.join(EXAMPLES, "greeter_client.py")]
    run_pair([greeter, "serve"], client, text, addr, tmp_path)


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_rust_typed_client_calls_the_python_service(greeter, transport, tmp_path):
    text, addr = address(transport, tmp_path)
    server = [sys.executable, os.path.join(EXAMPLES, "greeter_server.py")]
    run_pair(server, [greeter, "call"], text, addr, tmp_path)
