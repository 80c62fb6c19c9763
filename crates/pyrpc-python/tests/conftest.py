"""Fixtures: test servers in subprocesses, over TCP and Unix sockets."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from pyrpc import Client

# Tests send SIGINT to child processes as Ctrl-C would. A test run started
# with SIGINT ignored (`nohup ... &` from a script, which ignores it) passes
# that on to every child, whose Python then raises no KeyboardInterrupt and
# the test waits forever. A handler here is reset to the default across
# exec, so the children get SIGINT's default back.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

HERE = os.path.dirname(os.path.abspath(__file__))
SERVE = os.path.join(HERE, "serve.py")


def free_port():
    """A port that was free a moment ago (bind and release): only for servers
    that must come back on the same port after a restart, or several server
    processes sharing one; anything else binds port 0 and reads the bound
    address back (see ``ServerProcess``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_address(transport, tmp_path_factory):
    """A TCP address on port 0 (the server picks a free port; read it back
    with ``bound_address()``, or ``ServerProcess.address``), or a fresh Unix
    socket path."""
    if transport == "tcp":
        return ("127.0.0.1", 0)
    # Unix socket paths are limited to ~107 bytes: keep them short.
    d = tmp_path_factory.mktemp("sock")
    return str(d / "s")


def wait_connected(address, proc=None, timeout=20.0, secret=None):
    """Poll until a server answers at ``address`` (no blind sleeping)."""
    client = Client(address=address, secret=secret)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.connected(0.2):
            return
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise RuntimeError("server exited early: %s %s" % (out, err))
        time.sleep(0.02)
    raise RuntimeError("server at %r did not come up" % (address,))


class ServerProcess:
    """A test server (tests/serve.py) running in a subprocess."""

    def __init__(self, address, kind="test", **attrs):
        config = {"kind": kind, "address": address, "attrs": attrs}
        env = dict(os.environ)
        env["PYTHONPATH"] = HERE + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, SERVE, json.dumps(config)],
            cwd=HERE,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # serve.py says where it listens once bound ("serving <address>"):
        # with port 0, that is where the port comes from.
        line = self.proc.stdout.readline()
        if not line.startswith("serving "):
            out, err = self.proc.communicate()
            raise RuntimeError("server did not start: %s %s %s" % (line, out, err))
        bound = json.loads(line[len("serving "):])
        self.address = tuple(bound) if isinstance(bound, list) else bound
        wait_connected(self.address, self.proc, secret=attrs.get("secret"))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture(scope="session")
def spawn_server(tmp_path_factory):
    """Start a server: ``spawn_server(transport, kind='test', **attrs)``."""
    started = []

    def spawn(transport, kind="test", **attrs):
        server = ServerProcess(make_address(transport, tmp_path_factory), kind, **attrs)
        started.append(server)
        return server

    yield spawn
    for server in started:
        server.stop()


@pytest.fixture(scope="session", params=["tcp", "unix"])
def transport(request):
    return request.param


@pytest.fixture(scope="session")
def server(spawn_server, transport):
    """The shared TestServer (nonblocking) for this transport."""
    return spawn_server(transport)


@pytest.fixture
def client(server):
    return Client(address=server.address)


@pytest.fixture
def fresh_address(transport, tmp_path_factory):
    """An address nothing listens on, for this transport. For TCP, a port held
    bound but not listening while the test runs: connecting is refused, and no
    other process can start listening there meanwhile."""
    if transport != "tcp":
        yield make_address(transport, tmp_path_factory)
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()
