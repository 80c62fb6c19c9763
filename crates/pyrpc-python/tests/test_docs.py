"""Every ```python block of the repository README and of docs/guide-python.md
runs, as written, in its own process.

README.md: the blocks that call ``.start()`` are servers, run in the background
until they answer at their ``address``; the others are clients, run once the
servers are up, and must print what the README says they print. The README's
server binds port 50300 as written; if something else holds that port the test
is skipped, saying so. The suites of several CPythons run at once in CI: a lock
file lets one of them at a time use the port.

docs/guide-python.md: each block is a whole script (it starts its own server on
a free port) and must exit 0.
"""

import ast
import fcntl
import os
import tempfile
import re
import signal
import socket
import subprocess
import sys

import pytest

from conftest import wait_connected

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
README = os.path.join(ROOT, "README.md")
GUIDE = os.path.join(ROOT, "docs", "guide-python.md")

BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def python_blocks(path):
    with open(path) as f:
        return BLOCK.findall(f.read())


def run_script(source, tmp_path, name, timeout=60):
    script = tmp_path / name
    script.write_text(source)
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=timeout, cwd=str(tmp_path)
    )


def server_address(source):
    """The ``address = ...`` literal of a server block."""
    m = re.search(r"^\s*address\s*=\s*(.+?)\s*(#.*)?$", source, re.M)
    assert m, "no address in the server block:\n" + source
    return ast.literal_eval(m.group(1))


def port_is_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
        except OSError:
            return False
    return True


def test_readme_quick_start(tmp_path):
    # Another suite running at the same time (CI runs two CPythons at once)
    # would bind the same port: its server could answer this suite's
    # clients, then stop under them.
    lock = os.path.join(tempfile.gettempdir(), "pyrpc-test-readme-port.lock")
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        run_readme_quick_start(tmp_path)


def run_readme_quick_start(tmp_path):
    blocks = python_blocks(README)
    servers = [b for b in blocks if ".start()" in b]
    clients = [b for b in blocks if ".start()" not in b]
    assert servers and clients, "README.md lost its Python quick start"
    with open(README) as f:
        printed = re.findall(r"This prints `([^`]*)`", f.read())
    assert printed, "README.md no longer says what the client prints"

    addresses = [server_address(b) for b in servers]
    for address in addresses:
        if isinstance(address, tuple) and not port_is_free(address[1]):
            pytest.skip("port %d of the README example is in use on this machine" % address[1])

    procs = []
    try:
        for i, (block, address) in enumerate(zip(servers, addresses)):
            script = tmp_path / ("server%d.py" % i)
            script.write_text(block)
            proc = subprocess.Popen(
                [sys.executable, str(script)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=str(tmp_path),
            )
            procs.append(proc)
            wait_connected(address, proc)
        for i, block in enumerate(clients):
            out = run_script(block, tmp_path, "client%d.py" % i)
            assert out.returncode == 0, out.stderr
            assert out.stdout == printed[i] + "\n"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # Ctrl-C: a clean shutdown
            try:
                proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


GUIDE_BLOCKS = python_blocks(GUIDE) if os.path.exists(GUIDE) else []


@pytest.mark.skipif(not GUIDE_BLOCKS, reason="docs/guide-python.md has no python blocks")
@pytest.mark.parametrize("index", range(len(GUIDE_BLOCKS)))
def test_guide_python_block_runs(tmp_path, index):
    out = run_script(GUIDE_BLOCKS[index], tmp_path, "guide%d.py" % index)
    assert out.returncode == 0, "block %d of docs/guide-python.md failed:\n%s\n%s" % (
        index, GUIDE_BLOCKS[index], out.stderr)
