"""A server object is freed once it stopped, however it stopped; a running
one stays alive while it serves, even when nothing else refers to it."""

import gc
import threading
import time
import weakref

import pytest

from conftest import wait_connected
from pyrpc import Client, Server


class Echo(Server):
    def echo(self, *args, **kwargs):
        return args, kwargs


class Target:
    def whoami(self):
        return "target"


def freed_within(ref, seconds=10.0):
    """Collect until ``ref`` is dead or ``seconds`` passed."""
    deadline = time.monotonic() + seconds
    while True:
        gc.collect()
        if ref() is None:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def test_stopped_server_is_freed(tmp_path):
    server = Echo(address=str(tmp_path / "s"))
    server.start_in_thread()
    assert Client(address=server.address).echo(1) == ((1,), {})
    server.shutdown_sync()
    ref = weakref.ref(server)
    del server
    gc.collect()
    assert ref() is None


def test_stopped_server_and_its_callee_are_freed(tmp_path):
    target = Target()
    server = Server(address=str(tmp_path / "s"), callee=target)
    server.start_in_thread()
    assert Client(address=server.address).whoami() == "target"
    server.shutdown_sync()
    refs = weakref.ref(server), weakref.ref(target)
    del server, target
    gc.collect()
    assert [r() for r in refs] == [None, None]


def test_server_stopped_by_a_client_after_start_returns_is_freed(tmp_path):
    address = str(tmp_path / "s")
    server = Echo(address=address)
    thread = threading.Thread(target=server.start, daemon=True)
    thread.start()
    wait_connected(address)
    Client(address=address).shutdown()
    thread.join(15)
    assert not thread.is_alive()
    ref = weakref.ref(server)
    del server, thread
    assert freed_within(ref)


def test_unreferenced_running_server_serves_until_shut_down_then_is_freed(tmp_path):
    address = str(tmp_path / "s")
    server = Echo(address=address)
    server.start_in_thread()
    ref = weakref.ref(server)
    del server
    gc.collect()
    # Still alive and serving: the running server holds it.
    assert ref() is not None
    c = Client(address=address)
    assert c.echo(2) == ((2,), {})
    c.shutdown()
    assert freed_within(ref)


def test_server_that_failed_to_bind_is_freed():
    first = Echo(address=("127.0.0.1", 0))
    first.start_in_thread()
    try:
        second = Echo(address=first.bound_address())
        with pytest.raises(OSError):
            second.start_in_thread()
        ref = weakref.ref(second)
        del second
        gc.collect()
        assert ref() is None
    finally:
        first.shutdown_sync()


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/fd"), reason="needs /proc")
def test_dropped_client_closes_its_connection_at_once(server):
    # Blocking calls' connections live on a runtime only calls drive:
    # dropping the client must still close the socket (and free its buffers)
    # without waiting for another call.
    import os

    def sockets():
        out = set()
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink("/proc/self/fd/" + fd)
            except OSError:  # closed meanwhile
                continue
            if target.startswith("socket:"):
                out.add(target)
        return out

    gc.collect()
    before = sockets()
    c = Client(address=server.address)
    assert c.echo(1) == ((1,), {})
    mine = sockets() - before
    assert len(mine) == 1
    del c
    gc.collect()
    assert not (mine & sockets())


class Freed:
    """Records, when freed, whether the client had its reply by then: its
    ``__del__`` waits (up to 10 s) for the test to say the reply arrived."""

    def __init__(self, reply_arrived, log):
        self.reply_arrived = reply_arrived
        self.freed_log = log

    def __del__(self):
        self.freed_log.append("after the reply" if self.reply_arrived.wait(10) else "before the reply")


class Keeper(Server):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reply_arrived = threading.Event()
        self.freed_log = []

    def fill(self, box):
        # `box` is the call's decoded argument: it lives as long as the call.
        box.append(Freed(self.reply_arrived, self.freed_log))
        return len(box)


@pytest.mark.parametrize("synchronous", [False, True])
def test_a_calls_arguments_are_freed_after_its_reply_is_sent(tmp_path, synchronous):
    # Freeing a big argument or result takes about as long as decoding it:
    # the caller gets its reply first. (Freed before the reply, the __del__
    # would wait its 10 s for a reply that waits for it.)
    server = Keeper(address=str(tmp_path / "s"), synchronous=synchronous)
    server.start_in_thread()
    try:
        assert Client(address=server.address).fill([1, 2]) == 3
        server.reply_arrived.set()
        deadline = time.monotonic() + 10
        while not server.freed_log and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.freed_log == ["after the reply"]
    finally:
        server.reply_arrived.set()
        server.shutdown_sync()
