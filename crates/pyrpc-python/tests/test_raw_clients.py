"""Clients that do not behave, against a Python server, over real sockets: a
request trickled in a byte at a time, many requests in one write, garbage
after a call, a frame cut short. A Python server's worker reads a busy
connection's next request itself (decision 0074), so each of these can land
while a worker, not the runtime's reader, owns the connection: the request
must be answered as usual, a broken connection closed alone, and every other
client served."""

import time

import pytest

import rawwire
from pyrpc import Client, Server


class Echo(Server):
    def echo(self, x):
        return x


@pytest.fixture(params=["tcp", "unix"])
def server(request, tmp_path):
    address = ("127.0.0.1", 0) if request.param == "tcp" else str(tmp_path / "s")
    s = Echo(address=address)
    s.start_in_thread()
    yield s
    s.shutdown_sync()


def address_of(server):
    bound = server.bound_address()
    return tuple(bound) if isinstance(bound, list) else bound


def opened(server):
    s = rawwire.connect(address_of(server))
    s.sendall(rawwire.hello())
    rawwire.recv_frame(s)  # the server's hello
    return s


def still_serving(server):
    assert Client(address=address_of(server)).echo("still here") == "still here"


def test_a_request_trickled_in_a_byte_at_a_time_is_answered(server):
    with opened(server) as s:
        # A first call leaves a worker waiting on this connection; the next
        # arrives a byte at a time, with pauses longer than that wait.
        s.sendall(rawwire.call(1, "echo", "first"))
        assert b"first" in rawwire.recv_frame(s)
        for byte in rawwire.call(2, "echo", "trickled"):
            s.sendall(bytes([byte]))
            time.sleep(0.005)
        assert b"trickled" in rawwire.recv_frame(s)
        s.sendall(rawwire.call(3, "echo", "after"))
        assert b"after" in rawwire.recv_frame(s)
    still_serving(server)


def test_many_requests_in_one_write_are_all_answered(server):
    with opened(server) as s:
        s.sendall(rawwire.call(1, "echo", "warm-up"))
        assert b"warm-up" in rawwire.recv_frame(s)
        texts = ["call-%03d" % i for i in range(200)]
        s.sendall(b"".join(rawwire.call(i + 2, "echo", t) for i, t in enumerate(texts)))
        replies = [rawwire.recv_frame(s) for _ in texts]
        got = sorted(t for t in texts for r in replies if t.encode() in r)
        assert got == texts
    still_serving(server)


def test_garbage_after_a_call_closes_only_that_connection(server):
    other = opened(server)
    with opened(server) as s:
        s.sendall(rawwire.call(1, "echo", "before"))
        assert b"before" in rawwire.recv_frame(s)
        # A frame whose body is not a ClientFrame, right behind a good call.
        s.sendall(rawwire.call(2, "echo", "last good") + rawwire.framed(b"\xff" * 16))
        assert rawwire.closed_by_peer(s)
    with other:
        other.sendall(rawwire.call(1, "echo", "other"))
        assert b"other" in rawwire.recv_frame(other)
    still_serving(server)


def test_a_frame_cut_short_by_the_client_leaves_the_server_serving(server):
    with opened(server) as s:
        s.sendall(rawwire.call(1, "echo", "whole"))
        assert b"whole" in rawwire.recv_frame(s)
        frame = rawwire.call(2, "echo", "cut short")
        s.sendall(frame[: len(frame) // 2])
    still_serving(server)


def test_a_header_announcing_more_than_the_limit_closes_the_connection(server):
    with opened(server) as s:
        s.sendall(rawwire.call(1, "echo", "fine"))
        assert b"fine" in rawwire.recv_frame(s)
        s.sendall(b"\xff\xff\xff\xf0")  # ~4 GiB: over any limit, from the header
        assert rawwire.closed_by_peer(s)
    still_serving(server)
