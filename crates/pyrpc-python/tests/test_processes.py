"""``Server(processes=N)``: worker processes sharing one listening socket
(issue 15 point 1), over TCP and Unix sockets, with real processes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

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

    def pids(self, want, attempts=400):
        """Worker pids seen over fresh connections, until ``want`` distinct
        ones answered (or ``attempts`` ran out)."""
        seen = set()
        for _ in range(attempts):
            with Client(address=self.address) as c:
                seen.add(c.pid())
            if len(seen) >= want:
                break
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


@pytest.mark.parametrize("step", ["one", "processes", "redis"])
def test_the_commands_of_guide_scaling_work(step):
    """docs/guide-scaling.md's commands, with a free port (and the test Redis)."""
    port = free_port()
    server_args = ["--port", str(port)]
    client_args = ["--port", str(port)]
    want = "worker processes that answered: 1"
    if step != "one":
        server_args += ["--processes", "2"]
        want = "worker processes that answered: 2"
    if step == "redis":
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
    try:
        wait_connected(("127.0.0.1", port), server)
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
        # One process keeps Python's default SIGTERM (ends at once); the
        # supervisor of several stops them gracefully and exits 0.
        assert server.returncode == (-signal.SIGTERM if step == "one" else 0), err
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()


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
