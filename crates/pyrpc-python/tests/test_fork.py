"""A client (and the module) used before fork() keeps working in the child,
and in the parent."""

import multiprocessing
import os
import pickle

import pytest

from pyrpc import Client, Server

# Forking a process that runs threads is what these tests are about: 3.12's
# warning that it may deadlock says what the tests check does not happen.
pytestmark = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning"
)


def child_calls(client, n=20):
    results = [client.add(i, 1) for i in range(n)]
    return results == [i + 1 for i in range(n)] and client.echo(os.getpid()) == ((os.getpid(),), {})


def test_os_fork(client):
    assert client.echo(1) == ((1,), {})  # connected before the fork
    pids = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:  # child
            ok = False
            try:
                ok = child_calls(client) and client.nb_echo(2, nb_fetch_tick=0.05) == ((2,), {})
            finally:
                os._exit(0 if ok else 1)
        pids.append(pid)
        assert client.add(1, 1) == 2  # the parent keeps working meanwhile
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert child_calls(client)


def test_fork_while_calls_are_in_flight(client):
    import threading

    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            client.add(1, 2)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        pid = os.fork()
        if pid == 0:
            ok = False
            try:
                ok = child_calls(client, 50)
            finally:
                os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
    finally:
        stop.set()
        for t in threads:
            t.join()


def _mp_target(client, queue):
    queue.put(child_calls(client))


def _pool_call(args):
    client, i = args
    return client.add(i, 100)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing(client, method):
    assert client.echo(1) == ((1,), {})
    ctx = multiprocessing.get_context(method)
    queue = ctx.Queue()
    procs = [ctx.Process(target=_mp_target, args=(client, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert results == [True, True]
    assert child_calls(client)


def test_multiprocessing_pool(client):
    client.echo(1)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        assert pool.map(_pool_call, [(client, i) for i in range(8)]) == [i + 100 for i in range(8)]
    assert client.add(1, 1) == 2


def test_client_pickles_without_its_connection(client):
    client.echo(1)
    copy = pickle.loads(pickle.dumps(client))
    assert copy.address == client.address
    assert "_pyrpc_core" not in copy.__dict__
    assert copy.echo(2) == ((2,), {})


class ForkServer(Server):
    def pid(self):
        return os.getpid()


def test_in_process_server_in_a_forked_child(tmp_path):
    # The module's runtime was used by the parent; the child makes its own.
    parent = ForkServer(address=str(tmp_path / "parent"))
    parent.start_in_thread()
    try:
        assert Client(address=parent.address).pid() == os.getpid()
        pid = os.fork()
        if pid == 0:
            ok = False
            try:
                child = ForkServer(address=str(tmp_path / "child"))
                child.start_in_thread()
                c = Client(address=child.address)
                ok = c.pid() == os.getpid() and Client(address=parent.address).pid() != os.getpid()
                child.shutdown_sync()
            finally:
                os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
        assert Client(address=parent.address).pid() == os.getpid()
    finally:
        parent.shutdown_sync()
