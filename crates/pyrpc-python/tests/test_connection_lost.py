"""One error for every failure to reach or keep the server (issue #14 point
2): refused, closed mid-call, server died -- the first failure after the
server died is the same class as the later ones, and a ConnectionError."""

import threading
import time

import pytest

import pyrpc
from conftest import ServerProcess, make_address
from pyrpc import Client, NoSocket


def test_the_class_is_a_connection_error():
    assert issubclass(NoSocket, ConnectionError)
    assert issubclass(NoSocket, pyrpc.RpcError)


@pytest.fixture
def doomed(transport, tmp_path_factory):
    """A server of its own, to kill."""
    server = ServerProcess(make_address(transport, tmp_path_factory))
    yield server
    server.stop()


def wait_in_flight(address, n):
    watcher = Client(address=address)
    deadline = time.monotonic() + 20
    while pyrpc.stats(watcher)["in_flight"] < n:
        assert time.monotonic() < deadline, "the call never started"
        time.sleep(0.01)
    pyrpc.close(watcher)


def test_server_killed_mid_call_then_later_calls(doomed):
    client = Client(address=doomed.address)
    assert client.echo(1) == ((1,), {})
    outcome = []

    def call():
        try:
            client.sleep(30)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome.append(exc)

    t = threading.Thread(target=call)
    t.start()
    wait_in_flight(doomed.address, 1)
    doomed.proc.kill()
    doomed.proc.wait()
    t.join(20)
    assert not t.is_alive()
    [first] = outcome
    assert isinstance(first, NoSocket), repr(first)
    assert isinstance(first, ConnectionError)
    for _ in range(3):
        with pytest.raises(NoSocket):
            client.echo(2)


def test_server_killed_between_calls(doomed):
    client = Client(address=doomed.address)
    assert client.echo(1) == ((1,), {})
    doomed.proc.kill()
    doomed.proc.wait()
    failures = []
    for _ in range(3):
        try:
            client.echo(2)
        except Exception as exc:  # noqa: BLE001 - checked below
            failures.append(type(exc))
    assert failures == [NoSocket] * 3


def test_refused(fresh_address):
    with pytest.raises(ConnectionError) as e:
        Client(address=fresh_address).echo()
    assert type(e.value) is NoSocket
