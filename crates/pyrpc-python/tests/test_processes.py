"""``Server(processes=N)``: worker processes serving one address (issue 15
point 1), over TCP and Unix sockets, with real processes."""

import concurrent.futures
import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import pyrpc
from pyrpc import Client, Server

from conftest import free_port, wait_connected

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "processes_server.py")


class Workers:
    def __init__(self, address, processes=2, result_store=None):
        self.address = tuple(address) if isinstance(address, list) else address
        config = {"address": address, "processes": processes, "result_store": result_store}
        env = dict(os.environ)
        env["PYTHONPATH"] = HERE + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, SCRIPT, json.dumps(config)],
            cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )
        wait_connected(self.address, self.proc)

    def pids(self, want, within=60):
        """Worker pids seen over fresh connections, until ``want`` distinct
        ones answered or ``within`` seconds passed (a worker can take
        seconds to start on a loaded machine; its connections wait for it)."""
        seen = set()
        deadline = time.monotonic() + within
        while len(seen) < want and time.monotonic() < deadline:
            with Client(address=self.address) as c:
                seen.add(c.pid())
        return seen

    def wait_exit(self, timeout=30):
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err

    def stop(self):
        # The whole session: workers too (they hold stdout and stderr).
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.communicate(timeout=30)


def gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie not yet reaped counts as gone.
    with open("/proc/%d/stat" % pid) as f:
        return f.read().split(")")[-1].split()[0] == "Z"


@pytest.fixture(params=["tcp", "unix"])
def address(request, tmp_path):
    if request.param == "tcp":
        return ["127.0.0.1", free_port()]
    return str(tmp_path / "s")


def test_two_workers_serve_one_address_and_sigterm_stops_both(address):
    w = Workers(address, processes=2)
    try:
        pids = w.pids(2)
        assert len(pids) == 2 and w.proc.pid not in pids
        w.proc.send_signal(signal.SIGTERM)
        code, err = w.wait_exit()
        assert code == 0, err
        for pid in pids:
            assert gone(pid)
        if isinstance(address, str):
            assert not os.path.exists(address), "the socket file was left behind"
    finally:
        w.stop()


def test_one_process_stops_gracefully_on_sigterm(address, tmp_path):
    """processes=1: SIGTERM stops accepting, lets the running call finish
    (within shutdown_grace), and the process exits 0."""
    w = Workers(address, processes=1)
    marker = str(tmp_path / "running")
    try:
        with Client(address=w.address) as c, concurrent.futures.ThreadPoolExecutor(1) as pool:
            running = pool.submit(c.sleep, 1.0, marker)
            deadline = time.monotonic() + 30
            while not os.path.exists(marker):
                assert time.monotonic() < deadline, "the call did not start"
                time.sleep(0.01)
            w.proc.send_signal(signal.SIGTERM)
            assert running.result(timeout=30) == 1.0
        code, err = w.wait_exit()
        assert code == 0, err
        assert not Client(address=w.address).connected()
        if isinstance(address, str):
            assert not os.path.exists(address), "the socket file was left behind"
    finally:
        w.stop()


def test_a_second_server_on_a_taken_port_is_refused():
    """A second processes=N server started on the port of a running one
    fails as a plain bind would, in the caller of ``start()``. (How
    connections spread over the workers: test_processes_balance.py.)"""
    w = Workers(["127.0.0.1", free_port()], processes=2)
    try:
        with pytest.raises(OSError) as info:
            Server(address=w.address, processes=2).start()
        assert info.value.errno == errno.EADDRINUSE
    finally:
        w.stop()


def test_a_crashed_worker_is_replaced(address):
    w = Workers(address, processes=2)
    try:
        before = w.pids(2)
        with Client(address=w.address) as c:
            with pytest.raises(Exception):
                c.crash()
        deadline = time.monotonic() + 30
        while True:
            now = w.pids(2)
            if len(now) == 2 and now != before:
                break
            assert time.monotonic() < deadline, "the crashed worker was not replaced"
        assert len(now - before) == 1
    finally:
        w.stop()


def test_ctrl_c_and_a_client_shutdown_stop_every_worker(address):
    w = Workers(address, processes=2)
    try:
        pids = w.pids(2)
        os.killpg(w.proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        code, err = w.wait_exit()
        assert code == 0, err
        assert all(gone(p) for p in pids)
    finally:
        w.stop()
    w = Workers(address, processes=2)
    try:
        pids = w.pids(2)
        with Client(address=w.address) as c:
            c.shutdown()
        code, err = w.wait_exit()
        assert code == 0, err
        assert all(gone(p) for p in pids)
    finally:
        w.stop()


def test_nonblocking_with_several_processes_needs_a_shared_store():
    class S(Server):
        nonblocking = True

    with pytest.raises(ValueError, match="result_store"):
        S(address=("127.0.0.1", free_port()), processes=2).start()
    with pytest.raises(ValueError, match="at least 1"):
        S(address=("127.0.0.1", free_port()), processes=0).start()


EXAMPLES = os.path.normpath(os.path.join(HERE, "..", "..", "..", "examples", "python"))


@pytest.mark.parametrize("step", ["one", "processes", "redis", "several"])
def test_the_commands_of_guide_scaling_work(step):
    """docs/guide-scaling.md's commands, with free ports (and the test Redis)."""
    port = free_port()
    server_args = ["--port", str(port)]
    client_args = ["--port", str(port)]
    want = "worker processes that answered: 1"
    if step in ("processes", "redis"):
        server_args += ["--processes", "2"]
        want = "worker processes that answered: 2"
    if step == "several":
        # Step 4: a second server on the same Redis; one client over both.
        second = free_port()
        client_args += ["--port", str(second)]
        want = "servers that answered one client: 2"
    if step in ("redis", "several"):
        url = os.environ.get("PYRPC_TEST_REDIS_URL")
        if not url:
            if os.environ.get("PYRPC_REQUIRE_REDIS"):
                pytest.fail("PYRPC_REQUIRE_REDIS is set but PYRPC_TEST_REDIS_URL is not")
            pytest.skip("no PYRPC_TEST_REDIS_URL (cargo xtask test starts a Redis)")
        server_args += ["--result-store", url]
    if step != "processes":
        client_args.append("--nb")
    server = subprocess.Popen(
        [sys.executable, os.path.join(EXAMPLES, "scaling_server.py")] + server_args,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    other = None
    if step == "several":
        other = subprocess.Popen(
            [sys.executable, os.path.join(EXAMPLES, "scaling_server.py"), "--port", str(second)]
            + server_args[2:],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
    try:
        wait_connected(("127.0.0.1", port), server)
        if other is not None:
            wait_connected(("127.0.0.1", second), other)
        out = subprocess.run(
            [sys.executable, os.path.join(EXAMPLES, "scaling_client.py")] + client_args,
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert want in out.stdout
        if "--nb" in client_args:
            assert "nb_slow_square(7) = 49" in out.stdout
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
        # One process or several: SIGTERM stops gracefully, exit status 0.
        assert server.returncode == 0, err
        if other is not None:
            other.send_signal(signal.SIGTERM)
            _, err = other.communicate(timeout=30)
            assert other.returncode == 0, err
    finally:
        for p in (server, other):
            if p is not None and p.poll() is None:
                p.kill()
                p.communicate()


def test_workers_stop_when_the_supervisor_is_killed(address):
    w = Workers(address, processes=2)
    try:
        pids = w.pids(2)
        w.proc.kill()  # SIGKILL: no chance to stop the workers itself
        w.proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while not all(gone(p) for p in pids):
            assert time.monotonic() < deadline, "workers outlived their supervisor"
            time.sleep(0.05)
    finally:
        w.stop()
