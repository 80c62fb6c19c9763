"""Streamed replies at the edge of the client's credit, against a Python
server, from a raw client over real sockets: the client offers a window of 3
and grants one more item only once every granted item came and more are
expected, never for the end. The end (`stream_end`, or the generator's error)
is no item and must come without more credit (docs/PROTOCOL.md, "Streamed
replies"; decision 0064). Generators and async generators of 0, 2, 3 and 4
items, small and 1 MiB, on a fresh connection and on one where calls came
before (a worker then waits on the connection, decision 0074). A hang is a
failure after 10 s."""

import socket

import pytest

import rawwire
from pyrpc import Server

W = 3
MIB = 1024 * 1024
T = 10


class Streams(Server):
    def echo(self, x):
        return x

    def items(self, n, size):
        for i in range(n):
            yield bytes([i % 256]) * size

    async def aitems(self, n, size):
        for i in range(n):
            yield bytes([i % 256]) * size

    def items_then_fail(self, n):
        yield from range(n)
        raise ValueError("after the items")


@pytest.fixture(scope="module", params=["tcp", "unix"])
def server(request, tmp_path_factory):
    if request.param == "tcp":
        address = ("127.0.0.1", 0)
    else:
        address = str(tmp_path_factory.mktemp("s") / "s")
    s = Streams(address=address)
    s.start_in_thread()
    yield s
    s.shutdown_sync()


def opened(server):
    bound = server.bound_address()
    s = rawwire.connect(tuple(bound) if isinstance(bound, list) else bound, timeout=T)
    s.sendall(rawwire.hello())
    rawwire.recv_frame(s)  # the server's hello
    return s


def next_frame(s, awaiting):
    """(kind field number, message fields) of the next ServerFrame."""
    try:
        body = rawwire.recv_frame(s)
    except socket.timeout:
        pytest.fail("no frame within %d s; awaiting %s: the server hangs" % (T, awaiting))
    [(kind, payload)] = rawwire.fields(body)
    return kind, dict(rawwire.fields(payload))


def read_stream(s, request_id, expect):
    """The items (each Value's fields) and the ending Response's fields of
    request `request_id`'s stream, granting as described above."""
    granted, items = W, []
    while True:
        awaiting = "item %d or the end of request %d (%d items expected, %d granted)" % (
            len(items) + 1,
            request_id,
            expect,
            granted,
        )
        kind, msg = next_frame(s, awaiting)
        assert msg.get(1, 0) == request_id, (kind, msg)
        if kind == 3:  # StreamItem
            assert len(items) < granted, "item %d beyond the %d granted" % (len(items) + 1, granted)
            items.append(dict(rawwire.fields(msg[2])))
            if len(items) == granted and len(items) < expect:
                s.sendall(rawwire.credit(request_id, 1))
                granted += 1
        else:
            assert kind == 2, (kind, msg)  # Response
            return items, msg


def stream_end_items(response):
    """`items` of the response's stream_end (field 8); fails on any other kind."""
    assert 8 in response, "not a stream_end: %r" % response
    return dict(rawwire.fields(response[8])).get(1, 0)


def echo(s, request_id, text):
    s.sendall(rawwire.call(request_id, "echo", text))
    kind, msg = next_frame(s, "the answer to echo(%r)" % text)
    assert kind == 2 and msg[1] == request_id and text.encode() in msg[2]


def stream_call(request_id, method, n, size):
    """A call of `method(n, size)` offering a window of W."""
    return rawwire.stream_call(request_id, method, [rawwire.int_value(n), rawwire.int_value(size)], W)


def bytes_items(n, size):
    """The fields of `items(n, size)`'s items: Value { bytes: ... }."""
    return [{7: bytes([i % 256]) * size} for i in range(n)]


@pytest.mark.parametrize("busy", [False, True], ids=["fresh", "busy"])
@pytest.mark.parametrize("size", [16, MIB])
@pytest.mark.parametrize("method", ["items", "aitems"])
def test_the_end_of_a_stream_needs_no_credit(server, method, size, busy):
    with opened(server) as s:
        if busy:
            echo(s, 1, "before")
            # The reported case: two large items at window 3.
            s.sendall(stream_call(2, method, 2, MIB))
            items, end = read_stream(s, 2, 2)
            assert items == bytes_items(2, MIB)
            assert stream_end_items(end) == 2
        for i, n in enumerate([0, W - 1, W, W + 1]):
            request_id = 10 + i
            s.sendall(stream_call(request_id, method, n, size))
            items, end = read_stream(s, request_id, n)
            assert items == bytes_items(n, size)
            assert stream_end_items(end) == n
        echo(s, 3, "after")


@pytest.mark.parametrize("n", [0, W - 1, W])
def test_a_final_error_needs_no_credit(server, n):
    with opened(server) as s:
        s.sendall(rawwire.stream_call(5, "items_then_fail", [rawwire.int_value(n)], W))
        items, end = read_stream(s, 5, n)
        assert len(items) == n
        assert 3 in end, "not an error: %r" % end  # Response.error
        error = dict(rawwire.fields(end[3]))
        assert error[2] == b"ValueError", error
        echo(s, 6, "after")
