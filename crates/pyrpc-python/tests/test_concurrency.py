"""Threads sharing a client, synchronous servers, asyncio."""

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from conftest import HERE
from pyrpc import Client, Server, Timeout


def run_threads(n, target):
    results = [None] * n
    errors = []

    def run(i):
        try:
            results[i] = target()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    return results


def test_threads_sharing_one_client_run_concurrently(client):
    t0 = time.monotonic()
    spans = run_threads(8, lambda: client.sleep(0.5))
    elapsed = time.monotonic() - t0
    # Every call was running on the server while every other one was.
    assert max(s for s, _ in spans) < min(e for _, e in spans)
    assert elapsed < 8 * 0.5 * 0.75


def test_synchronous_server_serializes(spawn_server, transport):
    sync = spawn_server(transport, synchronous=True)
    c = Client(address=sync.address)
    spans = sorted(run_threads(4, lambda: c.sleep(0.1)))
    for (_, prev_end), (start, _) in zip(spans, spans[1:]):
        assert start >= prev_end


def test_many_threads_many_calls(client):
    def work():
        return [client.add(i, i) for i in range(50)]

    for r in run_threads(8, work):
        assert r == [2 * i for i in range(50)]


def test_co_calls_run_concurrently_without_blocking_the_loop(client):
    async def main():
        ticks = 0
        stop = False

        async def ticker():
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0.01)

        tick_task = asyncio.ensure_future(ticker())
        t0 = time.monotonic()
        spans = await asyncio.gather(*[client.co_sleep(0.5) for _ in range(6)])
        elapsed = time.monotonic() - t0
        stop = True
        await tick_task
        return spans, elapsed, ticks

    spans, elapsed, ticks = asyncio.run(main())
    assert max(s for s, _ in spans) < min(e for _, e in spans)
    assert elapsed < 6 * 0.5 * 0.75
    # The loop kept turning while the calls were in flight.
    assert ticks >= 10


def test_co_call_results_and_errors(client):
    async def main():
        assert await client.co_echo(1, foo="foo") == ((1,), {"foo": "foo"})
        with pytest.raises(ValueError) as e:
            await client.co_raise_builtin("ValueError", "x")
        assert "raise_builtin" in e.value.traceback
        with pytest.raises(Timeout):
            await client.co_sleep(1, call_timeout=0.1)
        # asyncio's own timeout cancels the call.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.co_sleep(1), 0.1)
        # An exception asyncio will not store in a future still arrives.
        with pytest.raises((StopIteration, TypeError, RuntimeError)):
            await client.co_raise_builtin("StopIteration", 1)
        return await client.co_add(2, 3)

    assert asyncio.run(main()) == 5


def _worker_threads():
    names = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open("/proc/self/task/%s/comm" % task) as f:
                names.append(f.read().strip())
        except OSError:  # the thread ended meanwhile
            pass
    return names.count("pyrpc-python")


class Sleeper(Server):
    def sleep(self, seconds):
        time.sleep(seconds)
        return seconds

    def big(self, n):
        return b"x" * n

    def fail(self):
        raise ValueError("nope")


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs /proc")
def test_calls_beyond_the_workers_still_run_concurrently_and_workers_end_with_the_server(tmp_path):
    server = Sleeper(address=str(tmp_path / "s"), workers=2)
    server.start_in_thread()
    try:
        c = Client(address=server.address)
        t0 = time.monotonic()
        run_threads(6, lambda: c.sleep(0.4))
        # Two on the workers, four on threads attached for the call only.
        assert time.monotonic() - t0 < 1.5
        assert _worker_threads() == 2
        # Raising and large results go through the workers as any call.
        with pytest.raises(ValueError):
            c.fail()
        assert len(c.big(20 * 1024 * 1024)) == 20 * 1024 * 1024
    finally:
        server.shutdown_sync()
    deadline = time.monotonic() + 5
    while _worker_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _worker_threads() == 0


@pytest.mark.parametrize("busy", [False, True])
def test_interpreter_exits_with_a_server_in_a_thread(tmp_path, busy):
    # Idle workers (and one still running a call) never hold up the exit.
    script = tmp_path / "exiting.py"
    script.write_text(
        textwrap.dedent(
            """
            import threading, time
            from pyrpc import Client, Server

            class S(Server):
                def sleep(self, s):
                    time.sleep(s)
                    return s

            server = S(address=%r)
            server.start_in_thread()
            c = Client(address=server.address)
            ts = [threading.Thread(target=c.sleep, args=(0.05,)) for _ in range(4)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            if %r:
                threading.Thread(target=c.sleep, args=(30,), daemon=True).start()
                time.sleep(0.2)
            print("exiting", flush=True)
            """
            % (str(tmp_path / "s"), busy)
        )
    )
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=20, cwd=HERE)
    assert p.stdout.strip() == "exiting", p.stderr
    assert p.returncode == 0, p.stderr


def test_server_info_after_co_calls_only(server):
    c = Client(address=server.address)
    assert c.server_info() is None

    async def main():
        return await c.co_echo(1)

    assert asyncio.run(main()) == ((1,), {})
    assert c.server_info()["nonblocking"] is True
