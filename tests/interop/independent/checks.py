"""The checks every interop client runs, and the protocol rules a client can observe.

Part of the independent peer (``tests/interop/independent_peer.py``): it shares
no code with pyrpc.
"""

import datetime
import decimal
import fractions
import socket
import struct
import sys
import time
import uuid

from .client import CallTimeout, IndependentClient, RemoteException
from .frames import parse_address, recv_frame, tls_context
from .messages import PEER_NAME, PROTOCOL_VERSION, pb
from .values import NdArray, from_value, shape


NESTED_ARGS = (
    [(1, "a"), ()],
    {"k": (1, 2), (1, (2, 3)): "tuple key", 7: None},
    2**70,
    -(2**65),
    b"\x00\xffbytes",
    {1, 2, "x"},
    frozenset({3, (4, 5)}),
    None,
    1.5,
    True,
    False,
    0,
    "h\u00e9llo",
)
NESTED_KWARGS = {"foo": "foo", "nested": {"a": [1, (2,), {b"b"}]}}

# The kinds beyond the builtin containers (PROTOCOL.md section 5). Records are
# left out: a Python server rebuilds or falls back (it never echoes a record of
# a class it lacks unchanged); golden vectors check how they are read.
KINDS_ARGS = (
    bytearray(b"\x00ab"),
    datetime.datetime(2024, 2, 29, 23, 59, 58, 123456),
    datetime.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone(datetime.timedelta(hours=-5, microseconds=7))),
    datetime.date(1, 1, 1),
    datetime.time(23, 59, 59, 999999, tzinfo=datetime.timezone.utc),
    datetime.timedelta(microseconds=-1),
    decimal.Decimal("-0"),
    decimal.Decimal("1E+999999999"),
    decimal.Decimal("NaN"),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    complex(1.5, -2.0),
    fractions.Fraction(-(2**100), 3),
)


# n-d arrays (Value.ndarray), as numpy would send np.array([[0.5, 1, 1.5],
# [2, -0.0, inf]]), np.int16(-2), np.zeros(0, bool), np.array([1.5-2j],
# complex64) and np.array([2**64-1], uint64).
ARRAY_ARGS = (
    NdArray(12, (2, 3), struct.pack("<6d", 0.5, 1.0, 1.5, 2.0, -0.0, float("inf"))),
    NdArray(3, (), struct.pack("<h", -2), scalar=True),
    NdArray(1, (0,), b""),
    NdArray(13, (1,), struct.pack("<2f", 1.5, -2.0)),
    NdArray(9, (1,), struct.pack("<Q", 2**64 - 1)),
)


def nowhere(address_text):
    """An address of the same kind where surely nobody listens."""
    family, address = parse_address(address_text)
    if family == socket.AF_UNIX:
        return "unix:" + address + ".nobody"
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return f"127.0.0.1:{port}"


def answers(address_text):
    """True if a server at the address answers a ping within 0.5 s."""
    client = IndependentClient(address_text, connect_timeout=0.5)
    try:
        return client.ping(timeout=0.5)
    finally:
        client.close()


class Raw:
    """A bare connection for the checks of unusual input: frames in, frames out."""

    def __init__(self, address_text, hello=True):
        family, address = parse_address(address_text)
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(address)
        tls = tls_context(server_side=False)
        if tls is not None and family == socket.AF_INET:
            self.sock = tls.wrap_socket(self.sock, server_hostname=address[0])
        if hello:
            self.send(pb.ClientFrame(hello=pb.ClientHello(protocol_version=PROTOCOL_VERSION, peer_name=PEER_NAME)))
            frame = self.recv()
            assert frame.WhichOneof("kind") == "hello" and not frame.hello.HasField("error"), frame

    def send_body(self, body):
        self.sock.sendall(struct.pack(">I", len(body)) + body)

    def send(self, frame):
        self.send_body(frame.SerializeToString())

    def request(self, request_id, **kind):
        self.send(pb.ClientFrame(request=pb.Request(id=request_id, **kind)))

    def recv(self):
        return recv_frame(self.sock, pb.ServerFrame)

    def response(self):
        frame = self.recv()
        assert frame.WhichOneof("kind") == "response", f"not a response: {frame}"
        return frame.response

    def ask(self, request_id, **kind):
        self.request(request_id, **kind)
        response = self.response()
        assert response.id == request_id, f"answer for id {response.id}, not {request_id}"
        return response

    def closed(self):
        """True when the server closes the connection without sending anything more."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


def error_kind(response):
    """The ErrorKind name of an error response, or what else it was."""
    if response.WhichOneof("kind") != "error":
        return response.WhichOneof("kind")
    return pb.ErrorKind.Name(response.error.kind)


def nested_empty(depth):
    """An empty list in lists, `depth` levels in all: an empty container has depth 1."""
    v = []
    for _ in range(depth - 1):
        v = [v]
    return v


def run_checks(address_text):
    client = IndependentClient(address_text)
    results = []

    def check(name, fn):
        start = time.monotonic()
        try:
            detail = fn()
            ok = True
        except Exception as exc:  # a check failing must not stop the others
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        results.append(ok)
        print(f"{'PASS' if ok else 'FAIL'} {name} ({time.monotonic() - start:.2f}s) {detail or ''}", flush=True)

    def connected():
        assert client.ping(timeout=1.0), "ping was not acked"
        assert client.call("connected") is True, "connected() did not return True"
        assert client.server_hello.capabilities.nonblocking, "server did not announce nonblocking"
        assert not answers(nowhere(address_text)), "ping to an address nobody listens on succeeded"
        return f"server {client.server_hello.peer_name!r}"

    def call_timeout():
        start = time.monotonic()
        try:
            value = client.call("sleep", 2, call_timeout=0.2)
        except CallTimeout:
            elapsed = time.monotonic() - start
            assert elapsed < 1.5, f"timed out only after {elapsed:.2f} s"
            return f"timed out after {elapsed:.2f} s"
        except RemoteException as e:
            # The server enforces the deadline the call carries (PROTOCOL.md,
            # "Deadlines"): its DEADLINE_EXCEEDED can win the race against
            # our own timer. Either is a timeout; anything else is not.
            elapsed = time.monotonic() - start
            assert e.remote.kind == pb.DEADLINE_EXCEEDED, f"sleep(2) with a 0.2 s timeout raised {e}"
            assert elapsed < 1.5, f"the server stopped the call only after {elapsed:.2f} s"
            return f"the server stopped it at its deadline after {elapsed:.2f} s"
        raise AssertionError(f"sleep(2) with a 0.2 s timeout returned {value!r}")

    def echo():
        got = client.call("echo", *NESTED_ARGS, **NESTED_KWARGS)
        want = (NESTED_ARGS, NESTED_KWARGS)
        assert shape(got) == shape(want), f"echo returned\n  {shape(got)}\nnot\n  {shape(want)}"

    def remote_exception():
        try:
            value = client.call("raise_", "KeyError", "k")
        except RemoteException as exc:
            e = exc.remote
            got = (pb.ErrorKind.Name(e.kind), e.type_name, e.module, [from_value(a) for a in e.args], e.message)
            want = ("EXCEPTION", "KeyError", "builtins", ["k"], "'k'")  # message: str(KeyError('k'))
            assert got == want, f"got {got}, not {want}"
            # The traceback may be empty (no Python code raised); if not, it is Python's.
            assert not e.traceback or e.traceback.endswith("KeyError: 'k'\n"), repr(e.traceback)
            tb = "with" if e.traceback else "without"
            return f"{e.type_name}({', '.join(repr(from_value(a)) for a in e.args)}) {tb} traceback"
        raise AssertionError(f"raise_ returned {value!r}")

    def kinds():
        got = client.call("echo", *KINDS_ARGS)
        want = (KINDS_ARGS, {})
        assert shape(got) == shape(want), f"echo returned\n  {shape(got)}\nnot\n  {shape(want)}"

    def arrays():
        got = client.call("echo", *ARRAY_ARGS)
        want = (ARRAY_ARGS, {})
        assert shape(got) == shape(want), f"echo returned\n  {shape(got)}\nnot\n  {shape(want)}"

    def deep():
        value = "bottom"
        for i in range(1000):
            value = [value] if i % 3 == 0 else {i: value} if i % 3 == 1 else (None, value)
        got = client.call("echo", value)
        (arg,), kwargs = got
        assert kwargs == {}
        for i in reversed(range(1000)):  # compared without recursion
            assert type(arg) is [list, dict, tuple][i % 3], f"level {i}: {type(arg).__name__}"
            arg = arg[0] if i % 3 == 0 else arg[i] if i % 3 == 1 else arg[1]
        assert arg == "bottom", arg
        return "1,000 levels"

    def big_bytes():
        n = 3 * 1024 * 1024
        got = client.call("big", n)
        assert type(got) is bytes and got == b"1" * n, f"got {type(got).__name__} of length {len(got)}"

    def nb_call():
        start = time.monotonic()
        value, pending = client.nb_call("sleep", 0.6, nb_fetch_tick=0.1)
        elapsed = time.monotonic() - start
        assert value == 0.6 and type(value) is float, f"returned {value!r}"
        assert elapsed >= 0.6, f"returned after {elapsed:.2f} s, before the call could end"
        assert pending >= 2, f"only {pending} pending answers: the call did not span several polls"
        return f"{pending} polls answered pending"

    def stream():
        items, final, _ = client.stream("count", 300, window=8)
        assert items == list(range(300)), f"items {items[:5]}... ({len(items)})"
        kind = final.WhichOneof("kind")
        assert kind == "stream_end" and final.stream_end.items == 300, f"ended with {final}"
        items, final, _ = client.stream("count", 0, window=8)
        assert items == [] and final.WhichOneof("kind") == "stream_end", f"{items} {final}"
        # The end needs no credit: a stream of exactly the window ends with
        # no Credit sent (docs/PROTOCOL.md, "Streamed replies").
        items, final, _ = client.stream("count", 8, window=8, grant=False)
        assert items == list(range(8)), f"items {items}"
        assert final.WhichOneof("kind") == "stream_end", f"ended with {final}"
        # Without a window the client takes no streams: refused, nothing sent.
        try:
            client.call("count", 3)
        except RemoteException as exc:
            assert pb.ErrorKind.Name(exc.remote.kind) == "UNSUPPORTED_VALUE", exc.remote
        else:
            raise AssertionError("count() without a stream window returned a value")
        return "300 items in windows of 8, an empty stream, 8 items in a window of 8 and no credit, a refusal"

    def stream_cancel():
        items, final, _ = client.stream("count", 10**9, window=4, cancel_after=2)
        kind = final.WhichOneof("kind")
        assert kind == "error", f"a cancelled stream ended with {kind}"
        assert pb.ErrorKind.Name(final.error.kind) == "CANCELLED", final.error
        assert items == list(range(len(items))) and len(items) <= 4, items
        assert client.call("echo", 1) == ((1,), {}), "the connection serves on"
        return f"cancelled after {len(items)} items"

    def shutdown():
        client.shutdown()
        deadline = time.monotonic() + 10
        while answers(address_text):
            assert time.monotonic() < deadline, "the server still answers 10 s after shutdown"
            time.sleep(0.05)
        return "acked, server gone"

    def refusal_has_no_traceback():
        try:
            client.call("big")  # no argument: BAD_ARGUMENTS
        except RemoteException as exc:
            e = exc.remote
            assert pb.ErrorKind.Name(e.kind) == "BAD_ARGUMENTS", pb.ErrorKind.Name(e.kind)
            assert e.traceback == "", f"a refusal with a traceback: {e.traceback!r}"
            assert [from_value(a) for a in e.args] == [e.message], "a refusal's args are its message"
            return e.message
        raise AssertionError("big() without its argument returned")

    def deadline():
        r = Raw(address_text)
        try:
            start = time.monotonic()
            call = IndependentClient.make_call("sleep", (0.5,), {}, timeout=0.2)
            response = r.ask(1, call=call)
            elapsed = time.monotonic() - start
            assert error_kind(response) == "DEADLINE_EXCEEDED", f"answered {error_kind(response)}"
            # Stopped at the deadline (pyrpc's servers) or answered when the
            # call ended: never before the deadline.
            assert elapsed >= 0.2, f"answered after {elapsed:.2f} s, before the deadline"
            assert response.error.type_name == "TimeoutError", response.error.type_name
            return f"answered DEADLINE_EXCEEDED after {elapsed:.2f} s"
        finally:
            r.close()

    def depth():
        # echo returns ((args), kwargs): two levels over its argument; the
        # server's configured max depth applies to the result as a whole.
        limit = client.server_hello.capabilities.max_value_depth
        # Values this deep recurse in Python's own comparison and repr.
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * limit))
        got = client.call("echo", nested_empty(limit - 2))
        assert got == ((nested_empty(limit - 2),), {}), "echo at the limit changed the value"
        try:
            client.call("echo", nested_empty(limit - 1))
        except RemoteException as exc:
            kind = pb.ErrorKind.Name(exc.remote.kind)
            assert kind == "UNSUPPORTED_VALUE", f"a too deep result answered {kind}"
            return f"max depth {limit}: a result of depth {limit + 1} is UNSUPPORTED_VALUE"
        raise AssertionError(f"a result of depth {limit + 1} was sent")

    def nb_ids():
        r = Raw(address_text)
        try:
            for i, kind in enumerate(("submit", "fetch", "release")):
                request = {"submit": pb.Submit(call_id=b"abc", call=pb.Call(method="echo")),
                           "fetch": pb.Fetch(call_id=b"abc"), "release": pb.Release(call_id=b"abc")}[kind]
                got = error_kind(r.ask(10 + i, **{kind: request}))
                assert got == "PROTOCOL", f"{kind} of a 3-byte call id answered {got}"
            unknown = uuid.uuid4().bytes
            got = error_kind(r.ask(20, release=pb.Release(call_id=unknown)))
            assert got == "ack", f"Release of an unknown id answered {got}"
            got = error_kind(r.ask(21, fetch=pb.Fetch(call_id=unknown)))
            assert got == "UNKNOWN_CALL", f"Fetch of an unknown id answered {got}"
            call_id = uuid.uuid4().bytes
            got = error_kind(r.ask(22, submit=pb.Submit(call_id=call_id, call=pb.Call(method="nope"))))
            assert got == "ack", f"Submit of an unknown method answered {got}"
            got = error_kind(r.ask(23, fetch=pb.Fetch(call_id=call_id, wait_ms=5000)))
            assert got == "NO_SUCH_METHOD", f"its Fetch answered {got}"
            assert error_kind(r.ask(24, release=pb.Release(call_id=call_id))) == "ack"
        finally:
            r.close()

    def unusual():
        # A request before the hello: a refusing hello, then the close.
        r = Raw(address_text, hello=False)
        try:
            r.request(1, ping=pb.Ping())
            frame = r.recv()
            assert frame.WhichOneof("kind") == "hello", f"got {frame}"
            assert pb.ErrorKind.Name(frame.hello.error.kind) == "PROTOCOL", frame.hello.error
            assert r.closed(), "still open after refusing"
        finally:
            r.close()
        # After the hello, each of these closes the connection without an answer.
        closing = {
            "a zero-length frame": b"",
            "a second hello": pb.ClientFrame(hello=pb.ClientHello(protocol_version=1)).SerializeToString(),
            "an auth frame": pb.ClientFrame(auth=pb.AuthResponse(mac=bytes(32))).SerializeToString(),
            "a frame with only an unknown field": bytes.fromhex("a0 06 01"),  # field 100 = 1
        }
        for what, body in closing.items():
            r = Raw(address_text)
            try:
                r.send_body(body)
                assert r.closed(), f"{what} did not close the connection"
            finally:
                r.close()
        r = Raw(address_text)
        try:
            got = error_kind(r.ask(2))  # a request with no kind
            assert got == "PROTOCOL", f"a request without kind answered {got}"
            # Undecodable, its id readable: Call.method claims 9 bytes, 4 follow.
            r.send_body(bytes.fromhex("12 08 08 03 12 04 0a 09 65 63"))
            response = r.response()
            assert (response.id, error_kind(response)) == (3, "PROTOCOL"), response
            bad = pb.Call(method="echo")
            bad.args.add().big_int = b""
            got = error_kind(r.ask(4, call=bad))
            assert got == "UNSUPPORTED_VALUE", f"a big_int without bytes answered {got}"
            # Arrays whose data is not shape x element size, of an unknown
            # element type, or with a shape whose product overflows.
            for dtype, dims, data in [(12, [2, 3], bytes(47)), (99, [], b"x"), (1, [2**63, 4], b"")]:
                bad = pb.Call(method="echo")
                a = bad.args.add().ndarray
                a.dtype, a.data = dtype, data
                a.shape.extend(dims)
                got = error_kind(r.ask(4, call=bad))
                assert got == "UNSUPPORTED_VALUE", f"a malformed ndarray {dims} answered {got}"
            # Two outstanding requests with one id: both answered.
            r.request(5, ping=pb.Ping())
            r.request(5, ping=pb.Ping())
            ids = [r.response().id, r.response().id]
            assert ids == [5, 5], ids
            assert error_kind(r.ask(6, ping=pb.Ping())) == "ack", "the connection did not stay usable"
        finally:
            r.close()
        return f"{len(closing)} closing frames, hello refusal, PROTOCOL answers, both duplicates answered"

    def encodings():
        # Other valid encodings (proto/testdata/noncanonical/): accepted as the same request.
        r = Raw(address_text)
        try:
            for what, body in {
                "id 0 written out": "12 04 08 00 32 00",
                "kind before id": "12 04 32 00 08 07",
                "unknown fields": "12 06 08 08 32 00 78 05 a0 06 01",
                "id twice, last wins": "12 06 08 05 08 09 32 00",
            }.items():
                r.send_body(bytes.fromhex(body))
                response = r.response()
                want = {"id 0 written out": 0, "kind before id": 7, "unknown fields": 8}.get(what, 9)
                assert (response.id, error_kind(response)) == (want, "ack"), f"{what}: {response}"
        finally:
            r.close()

    def stats():
        r = Raw(address_text)
        try:
            def counts():
                s = r.ask(100, stats=pb.Stats()).stats
                return s.calls, s.errors

            before = counts()
            limit = client.server_hello.capabilities.max_value_depth
            asks = [
                ("echo", [], None),  # a value
                ("connected", [], None),  # a built-in: not counted
                ("nope", [], "NO_SUCH_METHOD"),
                ("_private", [], "NO_SUCH_METHOD"),
                ("big", [], "BAD_ARGUMENTS"),
                ("echo", [nested_empty(limit - 1)], "UNSUPPORTED_VALUE"),
                ("raise_", ["ValueError"], "EXCEPTION"),
            ]
            for i, (method, args, want) in enumerate(asks):
                response = r.ask(101 + i, call=IndependentClient.make_call(method, args, {}))
                got = None if response.WhichOneof("kind") == "value" else error_kind(response)
                assert got == want, f"{method} answered {got}, not {want}"
            after = counts()
            got = (after[0] - before[0], after[1] - before[1])
            assert got == (6, 5), f"counted (calls, errors) {got}, not (6, 5)"
            return "6 calls, 5 errors; connected() not counted"
        finally:
            r.close()

    check("connected", connected)
    check("timeout", call_timeout)
    check("echo", echo)
    check("kinds", kinds)
    check("arrays", arrays)
    check("deep", deep)
    check("exception", remote_exception)
    check("refusal", refusal_has_no_traceback)
    check("deadline", deadline)
    check("depth", depth)
    check("nb-ids", nb_ids)
    check("unusual", unusual)
    check("encodings", encodings)
    check("stats", stats)
    check("big", big_bytes)
    check("nb", nb_call)
    check("stream", stream)
    check("stream-cancel", stream_cancel)
    check("shutdown", shutdown)
    client.close()
    return all(results)
