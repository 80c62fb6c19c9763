"""The worker that answered a call waits a few milliseconds for its
connection's next request and runs it itself (issue 11, decision 0074): what
must still hold while it does, over real sockets and real threads."""

import os
import subprocess
import sys
import threading
import time

import pytest

import pyrpc
from pyrpc import Client, Server, Timeout

# Calls that must run at once on the server in test_concurrent_calls_of_one_connection_all_run_at_once.
MEETING = 8


class Worker(Server):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.barrier = threading.Barrier(MEETING, timeout=20)

    def echo(self, x):
        return x

    def meet(self, i):
        # Returns once MEETING calls are in here at the same time; a call
        # left waiting behind another raises BrokenBarrierError after 20 s.
        self.barrier.wait()
        return i

    def thread(self):
        return threading.get_ident()

    def wait_for_cancel(self, marker):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if pyrpc.cancelled():
                with open(marker, "w") as f:
                    f.write("cancelled")
                return "cancelled"
            time.sleep(0.005)
        with open(marker, "w") as f:
            f.write("not cancelled")
        return "not cancelled"

    def started_then_wait_for_cancel(self, started, marker):
        with open(started, "w") as f:
            f.write("started")
        return self.wait_for_cancel(marker)


@pytest.fixture(params=["tcp", "unix"])
def address(request, tmp_path):
    if request.param == "tcp":
        return ("127.0.0.1", 0)
    return str(tmp_path / "s")


def started(address, **attrs):
    server = Worker(address=address, **attrs)
    server.start_in_thread()
    return server


def wait_for_file(path, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and open(path).read():
            return open(path).read()
        time.sleep(0.01)
    return None


def test_a_call_read_by_the_waiting_worker_can_still_be_cancelled(address, tmp_path):
    # The first call leaves its worker waiting on the connection; the
    # second is read by that worker, which then runs it: the client's
    # Cancel (sent at its timeout) must still reach the running call.
    server = started(address)
    try:
        c = Client(address=server.bound_address())
        marker = str(tmp_path / "outcome")
        for _ in range(3):
            assert c.echo(1) == 1
            with pytest.raises(Timeout):
                c.wait_for_cancel(marker, call_timeout=0.2)
            assert wait_for_file(marker) == "cancelled"
            os.remove(marker)
        assert c.echo(2) == 2
    finally:
        server.shutdown_sync()


def test_a_long_call_read_by_the_waiting_worker_sees_its_caller_go(address, tmp_path):
    # The worker runs the call it read with nothing watching the socket at
    # first (decision 0077); once the call has run for a moment its read is
    # watched again, so the caller's going away (a killed process: its
    # socket closes) still cancels it while it runs.
    server = started(address)
    try:
        started_file = str(tmp_path / "started")
        marker = str(tmp_path / "outcome")
        code = (
            "import pyrpc\n"
            "c = pyrpc.Client(address=%r)\n"
            "assert c.echo(1) == 1\n"
            "c.started_then_wait_for_cancel(%r, %r)\n"
        ) % (server.bound_address(), started_file, marker)
        proc = subprocess.Popen([sys.executable, "-c", code])
        try:
            assert wait_for_file(started_file) == "started"
        finally:
            proc.kill()
            proc.wait(20)
        assert wait_for_file(marker) == "cancelled"
        assert Client(address=server.bound_address()).echo(3) == 3
    finally:
        server.shutdown_sync()


def test_concurrent_calls_of_one_connection_all_run_at_once(address):
    # Threads sharing one Client: a worker that reads the connection's next
    # request itself (after sequential calls, the usual state) runs only
    # that one; the others that came meanwhile must still reach other
    # workers, or a method that waits for its siblings never returns. The
    # method returns only once all MEETING calls are inside it at once.
    server = started(address)
    try:
        c = Client(address=server.bound_address())
        for rnd in range(10):
            for i in range(20):
                assert c.echo(i) == i
            results = [None] * MEETING
            errors = []

            def caller(k):
                try:
                    results[k] = c.meet(k)
                except Exception as e:  # pragma: no cover - reported below
                    errors.append(repr(e))

            threads = [threading.Thread(target=caller, args=(k,)) for k in range(MEETING)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert not any(t.is_alive() for t in threads)
            assert errors == [], "round %d" % rnd
            assert results == list(range(MEETING))
    finally:
        server.shutdown_sync()


def test_other_connections_are_served_while_a_worker_waits_on_one(address):
    # One worker for four busy connections: a worker waiting on one
    # connection holds up no other (their calls go to other threads).
    server = started(address, workers=1)
    try:
        addr = server.bound_address()
        errors = []

        def caller(k):
            try:
                c = Client(address=addr)
                for i in range(200):
                    assert c.echo((k, i)) == (k, i)
            except Exception as e:  # pragma: no cover - reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=caller, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
        assert errors == []
    finally:
        server.shutdown_sync()


def test_requests_that_are_not_calls_between_calls_are_answered(address):
    # A worker waiting on the connection reads whatever comes next: a
    # built-in, a call of a missing method and a closed connection
    # go to the connection's reader, which answers them as before.
    server = started(address)
    try:
        addr = server.bound_address()
        with Client(address=addr) as c:
            for i in range(50):
                assert c.echo(i) == i
                assert c.connected(5)
                with pytest.raises(AttributeError):
                    c.no_such_method()
        c = Client(address=addr)
        assert c.echo("again") == "again"
    finally:
        server.shutdown_sync()


def _runtime_switches():
    """Voluntary context switches of the process's tokio runtime threads."""
    total = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open("/proc/self/task/%s/comm" % tid) as f:
                name = f.read().strip()
            if name != "pyrpc":
                continue
            with open("/proc/self/task/%s/status" % tid) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs /proc")
def test_sequential_calls_wake_the_worker_not_the_runtime(address):
    # Over a plain socket, one call after another: each request wakes the
    # worker that waits for it, not the runtime's thread too. Counted from
    # the threads' own switch counters (best of three rounds, so that a
    # round where the machine stalled the client past the worker's wait
    # does not decide it).
    server = started(address)
    try:
        c = Client(address=server.bound_address())
        for _ in range(20):
            c.echo(0)
        best = None
        for _ in range(3):
            before = _runtime_switches()
            for i in range(300):
                c.echo(i)
            per_call = (_runtime_switches() - before) / 300
            best = per_call if best is None else min(best, per_call)
        # The blocking client drives its own runtime on the calling thread
        # (decision 0085): the "pyrpc" threads are the server's. Measured:
        # 0.06-0.09 per call; before this change 1.0 (TCP) and 1.9 (Unix).
        assert best < 0.5, "server runtime wakes per call: %.2f" % best
    finally:
        server.shutdown_sync()
