"""Non-blocking results in a shared Redis store (issue 15), with real
``redis-server`` and server processes.

``cargo xtask test`` / ``python-test`` start a Redis and export
``PYRPC_TEST_REDIS_URL``, ``PYRPC_REDIS_SERVER`` and ``PYRPC_REQUIRE_REDIS=1``
(then a missing Redis fails these tests). Run alone, they start their own
``redis-server`` if one is on PATH, else they are skipped.
"""

import concurrent.futures
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from pyrpc import Client, RemoteError

from conftest import free_port, wait_connected

HERE = os.path.dirname(os.path.abspath(__file__))
STORE_SERVER = os.path.join(HERE, "store_server.py")


def redis_binary():
    binary = os.environ.get("PYRPC_REDIS_SERVER") or shutil.which("redis-server")
    if binary:
        return binary
    if os.environ.get("PYRPC_REQUIRE_REDIS"):
        pytest.fail("PYRPC_REQUIRE_REDIS is set but no redis-server was found")
    pytest.skip("no redis-server (cargo xtask test installs one)")


class RedisServer:
    """A private redis-server on a free loopback port, no persistence."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pyrpc-redis-")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [redis_binary(), "--bind", "127.0.0.1", "--port", str(self.port),
             "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL,
        )
        self.url = "redis://127.0.0.1:%d/0" % self.port
        deadline = time.monotonic() + 10
        while not self._pong():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("redis-server did not come up")
            time.sleep(0.02)

    def _pong(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(7) == b"+PONG\r\n"
        except OSError:
            return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def redis_url():
    url = os.environ.get("PYRPC_TEST_REDIS_URL")
    if url:
        yield url
        return
    server = RedisServer()
    yield server.url
    server.stop()


class StoreServerProcess:
    def __init__(self, address, redis, runs, lease=10.0):
        config = {"address": address, "redis": redis, "runs": str(runs), "lease": lease}
        env = dict(os.environ)
        env["PYTHONPATH"] = HERE + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, STORE_SERVER, json.dumps(config)],
            cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        wait_connected(tuple(address) if isinstance(address, list) else address, self.proc)

    def kill(self):
        self.proc.kill()
        self.proc.communicate()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.communicate()


def runs_of(path):
    starts, ends = {}, {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.split()
                table = starts if parts[0] == "start" else ends
                table[int(parts[1])] = table.get(int(parts[1]), 0) + 1
    return starts, ends


def runs_with_pids(path):
    """``{call: [pid, ...]}`` of every start in the runs file."""
    pids = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if parts[0] == "start":
                    pids.setdefault(int(parts[1]), []).append(int(parts[2]))
    return pids


def test_a_killed_server_is_followed_to_the_other_and_nothing_runs_twice(redis_url, tmp_path):
    """Two servers sharing Redis, one client over both
    (``Client(address=[a, b])``), 100 non-blocking calls; one server is
    killed (SIGKILL) mid-run and stays dead. The client follows each call to
    the other server: every call ends with its result or a clear CALL_LOST
    error, and no call runs twice."""
    runs = tmp_path / "runs"
    a_addr, b_addr = ["127.0.0.1", free_port()], ["127.0.0.1", free_port()]
    a = StoreServerProcess(a_addr, redis_url, runs, lease=0.5)
    b = StoreServerProcess(b_addr, redis_url, runs, lease=0.5)
    a_pid = a.proc.pid
    client = Client(address=[tuple(a_addr), tuple(b_addr)], nb_fetch_tick=0.05, nb_fetch_timeout=1)
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=100) as pool:
            futures = {
                i: pool.submit(lambda i=i: client.nb_work(i, 0.3, call_timeout=60))
                for i in range(100)
            }
            # Kill A once calls are running on it; it is not restarted.
            deadline = time.monotonic() + 30
            while sum(1 for pids in runs_with_pids(runs).values() if a_pid in pids) < 10:
                assert time.monotonic() < deadline, "calls did not start on A"
                time.sleep(0.01)
            a.kill()
            outcomes = {}
            for i, fut in futures.items():
                try:
                    outcomes[i] = ("ok", fut.result(timeout=90))
                except RemoteError as e:
                    outcomes[i] = ("lost", e)
        # Calls made after the kill go to B alone.
        assert client.nb_work(1000, 0, call_timeout=30) == 2000
        assert client.pid() == b.proc.pid
    finally:
        a.stop()
        b.stop()

    starts, ends = runs_of(runs)
    assert all(n == 1 for n in starts.values()), "a call ran twice: %r" % starts
    pids = runs_with_pids(runs)
    lost = [i for i, (how, _) in outcomes.items() if how == "lost"]
    for i, (how, got) in outcomes.items():
        if how == "ok":
            assert got == 2 * i
            assert starts.get(i) == 1 and ends.get(i) == 1
        else:
            assert got.kind == "CALL_LOST", got
            assert "lost" in str(got)
            # Only calls on the killed server (or never started) are lost.
            assert pids.get(i, [a_pid]) == [a_pid], (i, pids.get(i))
    # The kill caught calls in flight: they are reported, not hidden.
    assert lost, "no call was lost although the server was killed mid-run"
    # Every call B ran came back.
    assert all(outcomes[i][0] == "ok" for i, p in pids.items() if p == [b.proc.pid] and i < 100)


def test_redis_stopped_mid_run_gives_clear_errors_and_no_hang(tmp_path):
    redis = RedisServer()
    runs = tmp_path / "runs"
    address = ["127.0.0.1", free_port()]
    server = StoreServerProcess(address, redis.url, runs, lease=0.5)
    client = Client(address=tuple(address), nb_fetch_tick=0.05, call_timeout=30)
    try:
        assert client.nb_work(1, 0) == 2
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            running = pool.submit(client.nb_work, 2, 0.5)
            deadline = time.monotonic() + 10
            while 2 not in runs_of(runs)[0]:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            redis.stop()
            with pytest.raises(RemoteError) as info:
                running.result(timeout=30)
        assert info.value.kind == "STORE_UNAVAILABLE", info.value
        assert redis.url in str(info.value)
        # New non-blocking calls fail at once, with the same clear error...
        with pytest.raises(RemoteError) as info:
            client.nb_work(3, 0)
        assert info.value.kind == "STORE_UNAVAILABLE"
        assert 3 not in runs_of(runs)[0]
        # ...and blocking calls keep working.
        assert client.work(4, 0) == 8
        assert client.pid() == server.proc.pid
    finally:
        server.stop()
        redis.stop()


def test_an_unknown_store_scheme_is_refused_at_start():
    from pyrpc import Server

    class S(Server):
        nonblocking = True

    with pytest.raises(Exception) as info:
        S(address=("127.0.0.1", free_port()), result_store="memcached://x").start_in_thread()
    assert "result_store" in str(info.value)
