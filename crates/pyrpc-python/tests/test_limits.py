"""Server and client limits set from Python (class attributes or keywords)."""

import time

import pytest

import pyrpc
import rawwire
from pyrpc import Client, ProtocolError, RemoteError, Server, _pyrpc

MIB = 1024 * 1024


def test_python_defaults_are_the_rust_defaults():
    rust = _pyrpc.ServerCore(None, None, ("127.0.0.1", 0)).limits()
    for name in ["max_frame_len", "max_connections", "max_in_flight_per_connection",
                 "max_kept_results", "idle_timeout", "shutdown_grace", "handshake_timeout",
                 "request_clean_interval"]:
        assert getattr(Server, name) == rust[name], name
    assert Client.max_frame_len == _pyrpc.ClientCore(("127.0.0.1", 1)).limits()["max_frame_len"]


def test_limits_reach_the_core(tmp_path):
    class Limited(Server):
        max_frame_len = MIB
        max_kept_results = 7

    server = Limited(address=str(tmp_path / "s"), max_connections=3, idle_timeout=None,
                     shutdown_grace=0.5)
    server.start_in_thread()
    try:
        limits = server._pyrpc_core.limits()
        assert limits["max_frame_len"] == MIB
        assert limits["max_kept_results"] == 7
        assert limits["max_connections"] == 3
        assert limits["idle_timeout"] is None
        assert limits["shutdown_grace"] == 0.5
        c = Client(address=server.address)
        c.connected()
        assert c.server_info()["max_frame_len"] == MIB
    finally:
        server.shutdown_sync()


def test_zero_limits_are_refused():
    with pytest.raises(ValueError, match="max_frame_len"):
        Server(address=("127.0.0.1", 0), max_frame_len=0).start_in_thread()
    with pytest.raises(ValueError, match="max_frame_len"):
        Client(address=("127.0.0.1", 1), max_frame_len=0).echo()


def test_frame_limits_under_the_protocol_minimum_are_refused():
    for limit in (1, 100, 1023):
        with pytest.raises(ValueError, match="at least 1024 bytes"):
            Server(address=("127.0.0.1", 0), max_frame_len=limit).start_in_thread()
        with pytest.raises(ValueError, match="at least 1024 bytes"):
            Client(address=("127.0.0.1", 1), max_frame_len=limit).echo()


def raw_hello(address, max_frame_len, then_read=True):
    """Send a ClientHello (protocol 1, ``max_frame_len``) on a plain socket
    and return the body of the server's answer and (``then_read``) the next
    byte it sends: ``b""`` when it closes the connection."""
    with rawwire.connect(address, timeout=10) as s:
        s.sendall(rawwire.hello(max_frame_len))
        answer = rawwire.recv_frame(s)
        return answer, s.recv(1) if then_read else None


def test_a_client_announcing_a_limit_under_the_minimum_is_refused_and_serving_goes_on(server):
    # Such a client could not be sent even a FRAME_TOO_LARGE error: its calls
    # would go unanswered, so the hello is refused, with the reason.
    answer, after = raw_hello(server.address, 50)
    assert b"max_frame_len of 50 bytes is under the protocol's minimum of 1024" in answer
    assert after == b"", "the connection is closed after the refusal"
    answer, _ = raw_hello(server.address, 1024, then_read=False)
    assert b"minimum" not in answer
    assert Client(address=server.address).echo(1) == ((1,), {})


@pytest.fixture(scope="module")
def small_frames(spawn_server):
    return spawn_server("unix", max_frame_len=MIB)


def test_result_over_the_servers_frame_limit_is_an_error_and_serving_goes_on(small_frames):
    c = Client(address=small_frames.address)
    assert len(c.big(MIB - 1024)) == MIB - 1024  # just under fits
    with pytest.raises(RemoteError) as e:
        c.big(MIB + 1)
    assert e.value.kind == "FRAME_TOO_LARGE"
    assert "larger than the limit of %d bytes" % MIB in str(e.value)
    # The same connection (no reconnection) and the server carry on.
    assert pyrpc.stats(c)["connections"] == 1
    assert c.echo(1) == ((1,), {})
    assert c.nb_big(10, nb_fetch_tick=0.05) == b"1" * 10


def test_argument_over_the_servers_frame_limit_is_refused_before_sending(small_frames):
    c = Client(address=small_frames.address)
    c.connected()  # learn the server's limit
    with pytest.raises(ProtocolError, match="larger than the server's limit of %d bytes" % MIB):
        c.echo(b"x" * (MIB + 1))
    assert c.echo(b"x" * 10) == ((b"x" * 10,), {})


def test_result_over_the_clients_frame_limit_is_an_error(server):
    c = Client(address=server.address, max_frame_len=64 * 1024)
    with pytest.raises(RemoteError) as e:
        c.big(64 * 1024)
    assert e.value.kind == "FRAME_TOO_LARGE"
    assert c.big(10) == b"1" * 10
    # Another client of the same server is not limited.
    assert len(Client(address=server.address).big(64 * 1024)) == 64 * 1024


def test_idle_connections_are_closed_after_idle_timeout(spawn_server):
    s = spawn_server("unix", idle_timeout=0.3)
    idle = Client(address=s.address)
    idle.echo(1)
    watcher = Client(address=s.address)
    assert pyrpc.stats(watcher)["connections"] >= 2  # idle and watcher
    deadline = time.monotonic() + 10
    while pyrpc.stats(watcher)["connections"] > 1:
        assert time.monotonic() < deadline, "the idle connection was not closed"
        time.sleep(0.05)
    # The closed client reconnects by itself: no thread drove its runtime
    # since the server closed the connection (each client has its own), so
    # the call must notice the close before it sends.
    assert idle.echo(2) == ((2,), {})


class Echo(Server):
    def echo(self, *args, **kwargs):
        return args, kwargs


def test_max_connections_refuses_one_more(tmp_path):
    # In process: no readiness probe holds a connection.
    server = Echo(address=str(tmp_path / "s"), max_connections=1)
    server.start_in_thread()
    try:
        first = Client(address=server.address)
        assert first.echo(1) == ((1,), {})
        with pytest.raises(RemoteError) as e:
            Client(address=server.address).echo(2)
        assert e.value.kind == "OVERLOADED"
        assert "already serves 1 connections" in str(e.value)
        assert first.echo(3) == ((3,), {})
    finally:
        server.shutdown_sync()
