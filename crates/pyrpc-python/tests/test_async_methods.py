"""``async def`` methods on a Python server (issue 12, point 1), over real
sockets: blocking, ``nb_`` and ``co_`` calls; concurrency; the remote
exception; cancellation when the client goes away; ``await server.serve()``."""

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from pyrpc import Client, Server


@pytest.fixture(scope="module")
def async_server(spawn_server, transport):
    return spawn_server(transport, kind="async")


def client_for(server, **kw):
    return Client(address=server.address, **kw)


def test_blocking_nb_and_co_calls_of_async_methods(async_server):
    c = client_for(async_server)
    assert c.double(21) == 42
    assert c.nb_double(4) == 8
    assert c.plain("x") == "x"

    async def main():
        return await asyncio.gather(*(c.co_double(i) for i in range(10)))

    assert asyncio.run(main()) == [2 * i for i in range(10)]


def test_async_methods_run_on_the_servers_own_loop_thread(async_server):
    assert client_for(async_server).where() == "pyrpc-asyncio"


def test_an_async_method_that_raises_raises_on_the_client(async_server):
    c = client_for(async_server)
    with pytest.raises(ValueError, match="nope"):
        c.fail("nope")
    with pytest.raises(ValueError, match="nope too"):
        c.nb_fail("nope too")


def test_async_methods_run_concurrently(async_server):
    # Eight calls must all be inside `rendezvous` at once to return; one at a
    # time, each would give up after 20 s with TimeoutError instead.
    c = client_for(async_server)
    results = []

    def call():
        results.append(c.rendezvous(8))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and all(r >= 8 for r in results)


def wait_for_file(path, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and open(path).read():
            return open(path).read()
        time.sleep(0.02)
    return None


def test_a_client_that_goes_away_cancels_its_async_call(async_server, tmp_path):
    # The client process is killed while its call waits on the server: the
    # coroutine gets CancelledError at its `await` and its `finally` runs.
    marker = str(tmp_path / "outcome")
    address = async_server.address
    script = textwrap.dedent(
        """
        import sys
        from pyrpc import Client
        addr = {addr!r}
        print("calling", flush=True)
        Client(address=addr).wait_then_mark({marker!r})
        """
    ).format(addr=address, marker=marker)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "calling"
        # Killed once the coroutine runs (counted in flight is not enough: a
        # call cancelled before its coroutine starts never runs, rightly).
        assert wait_for_file(marker + ".started") == "started"
    finally:
        proc.kill()
        proc.wait()
    assert wait_for_file(marker) == "cancelled"


def test_serve_runs_async_methods_on_the_callers_loop(tmp_path):
    class Here(Server):
        address = ("127.0.0.1", 0)

        async def loop_id(self):
            return id(asyncio.get_running_loop())

        async def shutdown_me(self):
            # Served on the same loop as serve() itself.
            asyncio.get_running_loop().call_soon(self.shutdown)
            return True

    async def main():
        server = Here()
        serving = asyncio.ensure_future(server.serve())
        while server.bound_address() is None:
            await asyncio.sleep(0.01)
        c = Client(address=server.bound_address())
        got = await c.co_loop_id()
        assert await c.co_shutdown_me() is True
        await asyncio.wait_for(serving, 20)
        return got, id(asyncio.get_running_loop())

    got, mine = asyncio.run(main())
    assert got == mine


def test_cancelling_serve_shuts_the_server_down():
    class Here(Server):
        address = ("127.0.0.1", 0)

        async def ping(self):
            return "pong"

    async def main():
        server = Here()
        serving = asyncio.ensure_future(server.serve())
        while server.bound_address() is None:
            await asyncio.sleep(0.01)
        c = Client(address=server.bound_address())
        assert await c.co_ping() == "pong"
        serving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await serving
        return server

    server = asyncio.run(main())
    assert server.bound_address() is not None
    assert not Client(address=server.bound_address()).connected(0.5)


def test_a_timed_out_call_is_cancelled_on_the_server(async_server, tmp_path):
    # The client stays connected: only its Cancel can stop the coroutine.
    c = client_for(async_server)
    from pyrpc import Timeout

    # On a loaded machine the Cancel can come before the coroutine started
    # (then it never starts, and nothing is written): try a longer timeout.
    for attempt, timeout in enumerate([0.3, 3.0]):
        marker = str(tmp_path / ("outcome%d" % attempt))
        with pytest.raises(Timeout):
            c.wait_then_mark(marker, call_timeout=timeout)
        if os.path.exists(marker + ".started"):
            break
    assert wait_for_file(marker) == "cancelled"
    assert c.double(2) == 4


def test_a_cancelled_co_call_is_cancelled_on_the_server(async_server, tmp_path):
    marker = str(tmp_path / "outcome")
    c = client_for(async_server)

    async def main():
        task = asyncio.ensure_future(c.co_wait_then_mark(marker))
        # Cancel once the coroutine runs on the server.
        deadline = time.monotonic() + 20
        while not os.path.exists(marker + ".started") and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert wait_for_file(marker) == "cancelled"
    assert c.double(3) == 6


def test_ctrl_c_in_a_blocking_call_cancels_it_on_the_server(async_server, tmp_path):
    # A client process interrupted by SIGINT while it waits: the server's
    # coroutine is cancelled although the process (and its connection) lives on.
    import signal

    marker = str(tmp_path / "outcome")
    script = textwrap.dedent(
        """
        import sys, time
        from pyrpc import Client
        c = Client(address={addr!r})
        print("calling", flush=True)
        try:
            c.wait_then_mark({marker!r})
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        sys.stdin.readline()   # stay connected until the test is done
        """
    ).format(addr=async_server.address, marker=marker)
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "calling"
        assert wait_for_file(marker + ".started") == "started"
        proc.send_signal(signal.SIGINT)
        assert proc.stdout.readline().strip() == "interrupted"
        assert wait_for_file(marker) == "cancelled"
    finally:
        proc.kill()
        proc.wait()


def test_a_plain_method_sees_its_call_cancelled(async_server, tmp_path):
    import pyrpc
    from pyrpc import Timeout

    assert pyrpc.cancelled() is False  # outside a call
    marker = str(tmp_path / "outcome")
    c = client_for(async_server)
    with pytest.raises(Timeout):
        c.spin_until_cancelled(marker, call_timeout=0.3)
    assert wait_for_file(marker) == "cancelled"
