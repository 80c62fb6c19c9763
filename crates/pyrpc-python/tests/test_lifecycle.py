"""Lifecycle (issue #14 point 4): context managers, a close that cannot
collide with a remote method, dropped clients closing at once (no reference
cycle), and non-blocking calls from asyncio."""

import asyncio
import gc
import os
import time
import weakref

import pytest

import pyrpc
from pyrpc import Client, NoSocket, Server


class Svc(Server):
    nonblocking = True

    def echo(self, x):
        return x

    def close(self):
        return "the remote close"


def connections(watcher):
    """Open connections of the server, the watcher's own not counted."""
    return pyrpc.stats(watcher)["connections"] - 1


def wait_for(predicate, what, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


@pytest.fixture
def svc(tmp_path):
    with Svc(address=str(tmp_path / "s")) as server:
        yield server


def test_with_server_serves_then_shuts_down(tmp_path):
    path = str(tmp_path / "s")
    with Svc(address=path) as server:
        assert server is not None and os.path.exists(path)
        assert Client(address=path).echo(1) == 1
    assert not os.path.exists(path)  # stopped, socket file removed
    with pytest.raises(NoSocket):
        Client(address=path).echo(1)


def test_with_client_closes_at_exit(svc):
    watcher = Client(address=svc.address)
    with Client(address=svc.address) as client:
        assert client.echo(1) == 1
        assert connections(watcher) == 1
    wait_for(lambda: connections(watcher) == 0, "the connection stayed open")
    # A call after closing connects again.
    assert client.echo(2) == 2


def test_close_is_a_function_and_client_close_is_remote(svc):
    client = Client(address=svc.address)
    assert client.close() == "the remote close"
    watcher = Client(address=svc.address)
    assert connections(watcher) == 1
    pyrpc.close(client)
    wait_for(lambda: connections(watcher) == 0, "pyrpc.close left the connection open")
    pyrpc.close(client)  # closing twice is fine


def test_dropped_clients_close_without_the_cycle_collector(svc):
    watcher = Client(address=svc.address)
    gc.disable()
    try:
        clients = [Client(address=svc.address) for _ in range(20)]
        for c in clients:
            assert c.echo(1) == 1
            c.nb_echo, c.co_echo  # noqa: B018 - method lookups must not make cycles
        assert connections(watcher) == 20
        refs = [weakref.ref(c) for c in clients]
        del clients, c
        assert [r() for r in refs] == [None] * 20  # freed by reference counting
        wait_for(lambda: connections(watcher) == 0, "dropped clients kept their connections")
    finally:
        gc.enable()


def test_co_nb_calls_from_asyncio(svc):
    client = Client(address=svc.address, nb_fetch_tick=0.05)
    assert repr(client.co_nb_echo).startswith("<remote method co_nb_echo")

    async def main():
        return await asyncio.gather(*(client.co_nb_echo(i) for i in range(5)))

    assert asyncio.run(main()) == list(range(5))
    # A non-blocking call reached the server as `echo`, not `nb_echo`.
    assert pyrpc.stats(client)["errors"] == 0


def test_clients_past_a_bound_share_one_runtime(server):
    # Each client runs its blocking calls on a runtime of its own (decision
    # 0085), which holds a few descriptors; past 64 clients alive at once
    # the next ones share one runtime, so each adds just its connection.
    def fds():
        return len(os.listdir("/proc/self/fd"))

    before = fds()
    first = [Client(address=server.address) for _ in range(64)]
    for c in first:
        assert c.echo(1) == ((1,), {})
    at_bound = fds()
    more = [Client(address=server.address) for _ in range(100)]
    for c in more:
        assert c.echo(2) == ((2,), {})
    # 100 connections, and the shared runtime if it was not made before.
    assert fds() - at_bound <= 100 + 8
    del first, more, c
    gc.collect()
    assert fds() <= before + 8  # every client's runtime and socket closed
