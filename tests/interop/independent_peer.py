"""An independent pyrpc peer: client and server written from the protocol docs alone.

This file shares no code with pyrpc. It uses only the Python standard library and
the official ``protobuf`` runtime with messages generated from
``proto/pyrpc/v1/rpc.proto`` (``python -m grpc_tools.protoc -Iproto
--python_out=GEN proto/pyrpc/v1/rpc.proto``), and follows ``docs/PROTOCOL.md``.
It is what a user of another language would write, and the interop test
(``cargo xtask interop-test``) pairs it with the Rust and Python pyrpc peers.

Usage::

    independent_peer.py --gen GEN golden TESTDATA_DIR   # check the golden vectors
    independent_peer.py --gen GEN serve ADDRESS          # serve the test service
    independent_peer.py --gen GEN check ADDRESS          # run the checks against a server

ADDRESS is ``HOST:PORT`` (TCP) or ``unix:/path`` (Unix socket).

TLS (the interop test's ``tls`` cells): with ``PYRPC_INTEROP_TLS_CA``,
``PYRPC_INTEROP_TLS_CERT`` and ``PYRPC_INTEROP_TLS_KEY`` set, TCP connections
use TLS through Python's ``ssl`` module (docs/PROTOCOL.md: TLS wraps the TCP
stream, frames are unchanged inside it; ALPN ``pyrpc/1``). The server presents
that certificate and key; the client verifies the server against that CA and
the address's host.

The test service: ``echo(*args, **kwargs) -> (args, kwargs)``, ``sleep(seconds)
-> seconds``, ``raise_(type_name, *args)`` raises that builtin exception,
``big(n) -> b'1' * n``, ``count(n)`` streams the items ``0 .. n-1`` (a streamed
reply, PROTOCOL.md "Streamed replies"); non-blocking calls are enabled.

Besides the checks every interop client runs, ``check`` holds the server to the
rules of docs/PROTOCOL.md a client can observe (section 8 lists them), on raw
connections where the rule is about frames.
"""

import argparse
import builtins
import datetime
import decimal
import fractions
import hashlib
import hmac
import importlib.util
import math
import os
import socket
import ssl
import struct
import sys
import threading
import time
import traceback
import uuid

pb = None  # the generated module, loaded by load_messages()

PROTOCOL_VERSION = 1
MAX_FRAME_LEN = 640 * 1024 * 1024
MAX_DEPTH = 1024  # what pyrpc accepts by default
NESTED_MAX = 32  # deeper values travel flat (PROTOCOL.md section 5)
PEER_NAME = "pyrpc-independent-peer/1"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def load_messages(gen_dir):
    """Imports GEN/pyrpc/v1/rpc_pb2.py by path.

    Importing it as ``pyrpc.v1.rpc_pb2`` would collide with the ``pyrpc`` package
    installed in the same environment, and the generated module imports nothing
    but the protobuf runtime, so loading the file directly is enough.
    """
    global pb
    path = os.path.join(gen_dir, "pyrpc", "v1", "rpc_pb2.py")
    spec = importlib.util.spec_from_file_location("independent_rpc_pb2", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pb = module


# ===== addresses and frames =====


def parse_address(text):
    """'unix:/path' -> (AF_UNIX, '/path'); 'host:port' -> (AF_INET, (host, port))."""
    if text.startswith("unix:"):
        return socket.AF_UNIX, text[len("unix:"):]
    if text.startswith("tcp://"):
        text = text[len("tcp://"):]
    host, _, port = text.rpartition(":")
    return socket.AF_INET, (host or "127.0.0.1", int(port))


def tls_context(server_side):
    """An ``ssl.SSLContext`` from the PYRPC_INTEROP_TLS_* variables, or None."""
    ca = os.environ.get("PYRPC_INTEROP_TLS_CA")
    if not ca:
        return None
    if server_side:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.environ["PYRPC_INTEROP_TLS_CERT"], os.environ["PYRPC_INTEROP_TLS_KEY"])
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the host name
        ctx.load_verify_locations(ca)
    ctx.set_alpn_protocols(["pyrpc/1"])
    return ctx


class ConnectionClosed(Exception):
    """The peer closed the connection (or broke the framing rules)."""


def send_frame(sock, message):
    body = message.SerializeToString()
    sock.sendall(struct.pack(">I", len(body)) + body)


def recv_exactly(sock, n):
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise ConnectionClosed("connection closed by the peer")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def recv_body(sock):
    """The body of the next frame."""
    (length,) = struct.unpack(">I", recv_exactly(sock, 4))
    if length == 0 or length > MAX_FRAME_LEN:
        # Refused from the header alone: nothing of that size is read.
        raise ConnectionClosed(f"bad frame length {length}")
    return recv_exactly(sock, length)


def recv_frame(sock, message_type):
    return message_type.FromString(recv_body(sock))


def read_varint(data, pos):
    """(value, next position) of the varint at data[pos:]; ValueError if malformed."""
    value = 0
    for shift in range(0, 70, 7):
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    raise ValueError("varint longer than 10 bytes")


def fields(data):
    """(field number, wire type, value) of each field of an encoded message, not recursing."""
    pos = 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = read_varint(data, pos)
        elif wire_type == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire_type == 2:
            length, pos = read_varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire_type == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"wire type {wire_type}")
        if pos > len(data):
            raise ValueError("a field runs past the end")
        yield number, wire_type, value


def request_id_of(body):
    """The id of an undecodable ClientFrame (field 2 request -> field 1 id), or None."""
    try:
        request_id = None
        for number, wire_type, value in fields(body):
            if number == 2 and wire_type == 2:
                for n, w, v in fields(value):
                    if n == 1 and w == 0:
                        request_id = v
        return request_id
    except ValueError:
        return None


# ===== values =====


def int_bytes(n):
    """Two's complement, big-endian, fewest bytes (the big_int rule)."""
    magnitude = n if n >= 0 else ~n
    return n.to_bytes(magnitude.bit_length() // 8 + 1, "big", signed=True)


def offset_us(delta):
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def zone(value):
    """The fixed-offset tzinfo of a DateTime or Time message (None if naive)."""
    if not value.HasField("utc_offset_us"):
        return None
    return datetime.timezone(datetime.timedelta(microseconds=value.utc_offset_us))


class Record:
    """A typed record (dataclass, NamedTuple, Enum, registered type) kept as data:
    this peer has none of the sender's classes, so it echoes records unchanged."""

    def __init__(self, type_name, kind, names, values):
        self.type_name, self.kind, self.names, self.values = type_name, kind, tuple(names), tuple(values)

    def __eq__(self, other):
        return isinstance(other, Record) and vars(self) == vars(other)

    def __hash__(self):
        return hash((self.type_name, self.kind, self.names, self.values))

    def __repr__(self):
        return f"Record({self.type_name!r}, {self.kind}, {self.names!r}, {self.values!r})"


# NdArray element types (the Dtype enum) -> bytes per element.
ITEM_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 2, 8: 4, 9: 8, 10: 2, 11: 4, 12: 8, 13: 8, 14: 16}


class NdArray:
    """An n-d array (Value.ndarray) kept as data: element type (the Dtype
    enum's number), shape, the raw little-endian elements in C order, and
    whether it is a numpy scalar. This peer needs no numpy: it compares bytes."""

    def __init__(self, dtype, shape, data, scalar=False):
        self.dtype, self.shape, self.data, self.scalar = dtype, tuple(shape), bytes(data), bool(scalar)
        if dtype not in ITEM_SIZE:
            raise ValueError(f"ndarray of unknown element type {dtype}")
        if len(self.shape) > 64:
            raise ValueError(f"ndarray of {len(self.shape)} dimensions")
        want = ITEM_SIZE[dtype]
        for n in self.shape:
            want *= n
        if want != len(self.data):
            raise ValueError(f"ndarray of shape {self.shape} needs {want} bytes of data, not {len(self.data)}")
        if self.scalar and self.shape:
            raise ValueError("a scalar ndarray with a shape")

    def __eq__(self, other):
        return isinstance(other, NdArray) and vars(self) == vars(other)

    def __hash__(self):
        return hash((self.dtype, self.shape, self.data, self.scalar))

    def __repr__(self):
        return f"NdArray({self.dtype}, {self.shape}, {self.data!r}, scalar={self.scalar})"


def deeper_than(obj, limit):
    """True if obj nests deeper than limit levels (a scalar is 1), without recursion."""
    stack = [(obj, 1)]
    while stack:
        item, level = stack.pop()
        if level > limit:
            return True
        if isinstance(item, dict):
            stack.extend((x, level + 1) for kv in item.items() for x in kv)
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend((x, level + 1) for x in item)
        elif isinstance(item, Record):
            stack.extend((x, level + 1) for x in item.values)
    return False


HEADERS = {list: "list_len", tuple: "tuple_len", set: "set_len", frozenset: "frozenset_len", dict: "dict_len"}


def to_flat(obj):
    """A deep object -> Value.flat: pre-order nodes, containers as headers."""
    v = pb.Value()
    v.flat.SetInParent()
    nodes = v.flat.nodes
    stack = [iter([obj])]
    while stack:
        item = next(stack[-1], stack)  # the stack itself marks the end
        if item is stack:
            stack.pop()
            continue
        if len(stack) > MAX_DEPTH:
            raise ValueError("value nested too deep")
        header = HEADERS.get(type(item))
        if header == "dict_len":
            setattr(nodes.add(), header, len(item))
            stack.append(iter([x for kv in item.items() for x in kv]))
        elif header:
            setattr(nodes.add(), header, len(item))
            stack.append(iter(list(item)))
        elif isinstance(item, Record):
            h = nodes.add().record_header
            h.type_name, h.kind = item.type_name, item.kind
            h.field_names.extend(item.names)
            stack.append(iter(item.values))
        else:
            nodes.append(to_value(item))
    return v


def from_flat(nodes, depth):
    """Value.flat -> a Python object, with an explicit stack (no recursion)."""
    makers = {"list_len": list, "tuple_len": tuple, "set_len": set, "frozenset_len": frozenset}
    stack = []  # [kind, items, remaining, header]
    root = []
    for node in nodes:
        if root:
            raise ValueError("nodes after the end of a flat value")
        if len(stack) >= depth:
            raise ValueError("value nested too deep")
        kind = node.WhichOneof("kind")
        if kind in makers or kind == "dict_len":
            n = getattr(node, kind)
            open_ = [kind, [], n * 2 if kind == "dict_len" else n, None]
        elif kind == "record_header":
            h = node.record_header
            open_ = [kind, [], len(h.field_names), h]
        elif kind == "flat":
            raise ValueError("a flat value inside a flat value")
        else:
            open_ = None
            value = from_value(node, depth - len(stack))
        if open_ is not None:
            if open_[2] != 0:
                stack.append(open_)
                continue
            value = finish(open_, makers)
        while True:  # hand the value to the innermost container, closing what completes
            if not stack:
                root.append(value)
                break
            top = stack[-1]
            top[1].append(value)
            top[2] -= 1
            if top[2]:
                break
            value = finish(stack.pop(), makers)
    if stack or not root:
        raise ValueError("a flat value that ends inside a container")
    return root[0]


def finish(open_, makers):
    kind, items, _, header = open_
    if kind == "dict_len":
        return dict(zip(items[::2], items[1::2]))
    if kind == "record_header":
        return Record(header.type_name, header.kind, header.field_names, items)
    return makers[kind](items)


def packable(items):
    """Whether a list is sent packed: non-empty, all exact ints in i64 or all floats."""
    if not items:
        return False
    if type(items[0]) is int:
        return all(type(x) is int and INT64_MIN <= x <= INT64_MAX for x in items)
    return type(items[0]) is float and all(type(x) is float for x in items)


def to_value(obj, depth=MAX_DEPTH):
    """A Python object -> pyrpc.v1.Value."""
    if depth == 0:
        raise ValueError("value nested too deep")
    if depth == MAX_DEPTH and deeper_than(obj, NESTED_MAX):
        return to_flat(obj)
    v = pb.Value()
    if obj is None:
        v.none.SetInParent()
    elif isinstance(obj, bool):  # before int: bool is an int subclass
        v.bool = obj
    elif isinstance(obj, int):
        if INT64_MIN <= obj <= INT64_MAX:
            v.int = obj
        else:
            v.big_int = int_bytes(obj)
    elif isinstance(obj, float):
        v.float = obj
    elif isinstance(obj, str):
        v.str = obj
    elif isinstance(obj, bytearray):
        v.bytearray = bytes(obj)
    elif isinstance(obj, bytes):
        v.bytes = obj
    elif isinstance(obj, datetime.datetime):  # before date: a datetime is a date
        v.datetime.SetInParent()
        d = v.datetime
        d.year, d.month, d.day = obj.year, obj.month, obj.day
        d.hour, d.minute, d.second, d.microsecond = obj.hour, obj.minute, obj.second, obj.microsecond
        d.fold = obj.fold
        if obj.utcoffset() is not None:
            d.utc_offset_us = offset_us(obj.utcoffset())
    elif isinstance(obj, datetime.date):
        v.date.SetInParent()
        v.date.year, v.date.month, v.date.day = obj.year, obj.month, obj.day
    elif isinstance(obj, datetime.time):
        v.time.SetInParent()
        t = v.time
        t.hour, t.minute, t.second, t.microsecond, t.fold = obj.hour, obj.minute, obj.second, obj.microsecond, obj.fold
        if obj.utcoffset() is not None:
            t.utc_offset_us = offset_us(obj.utcoffset())
    elif isinstance(obj, datetime.timedelta):
        v.timedelta.SetInParent()
        v.timedelta.days, v.timedelta.seconds, v.timedelta.microseconds = obj.days, obj.seconds, obj.microseconds
    elif isinstance(obj, decimal.Decimal):
        v.decimal = str(obj)
    elif isinstance(obj, uuid.UUID):
        v.uuid = obj.bytes
    elif isinstance(obj, complex):
        v.complex.SetInParent()
        v.complex.real, v.complex.imag = obj.real, obj.imag
    elif isinstance(obj, fractions.Fraction):
        v.fraction.numerator = int_bytes(obj.numerator)
        v.fraction.denominator = int_bytes(obj.denominator)
    elif isinstance(obj, NdArray):
        v.ndarray.SetInParent()
        v.ndarray.dtype = obj.dtype
        v.ndarray.shape.extend(obj.shape)
        v.ndarray.data = obj.data
        v.ndarray.scalar = obj.scalar
    elif isinstance(obj, Record):
        v.record.SetInParent()
        v.record.type_name, v.record.kind = obj.type_name, obj.kind
        v.record.field_names.extend(obj.names)
        for item in obj.values:
            v.record.fields.append(to_value(item, depth - 1))
    elif type(obj) is list and depth > 1 and packable(obj):
        # PROTOCOL.md §5 "Packed lists": all exact ints in i64, or all floats.
        if type(obj[0]) is int:
            v.int_list.items.extend(obj)
        else:
            v.float_list.items.extend(obj)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        field = {list: "list", tuple: "tuple", set: "set", frozenset: "frozenset"}[type(obj)]
        items = getattr(v, field)
        items.SetInParent()  # an empty container is still a container
        for item in obj:
            items.items.append(to_value(item, depth - 1))
    elif isinstance(obj, dict):
        v.dict.SetInParent()
        for key, value in obj.items():
            v.dict.keys.append(to_value(key, depth - 1))
            v.dict.values.append(to_value(value, depth - 1))
    else:
        raise TypeError(f"cannot send a {type(obj).__name__}")
    return v


def from_value(v, depth=MAX_DEPTH):
    """A pyrpc.v1.Value -> a Python object."""
    if depth == 0:
        raise ValueError("value nested too deep")
    kind = v.WhichOneof("kind")
    if kind is None or kind == "none":
        return None
    if kind in ("bool", "int", "float", "str", "bytes"):
        return getattr(v, kind)
    if kind == "big_int":
        if not v.big_int:
            raise ValueError("big_int with no bytes")
        return int.from_bytes(v.big_int, "big", signed=True)
    if kind in ("list", "tuple", "set", "frozenset"):
        items = [from_value(i, depth - 1) for i in getattr(v, kind).items]
        return {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}[kind](items)
    if kind in ("int_list", "float_list"):
        items = list(getattr(v, kind).items)
        if items and depth == 1:
            raise ValueError("value nested too deep")
        return items
    if kind == "dict":
        if len(v.dict.keys) != len(v.dict.values):
            raise ValueError("dict with different numbers of keys and values")
        return {
            from_value(k, depth - 1): from_value(x, depth - 1)
            for k, x in zip(v.dict.keys, v.dict.values)
        }
    if kind == "flat":
        return from_flat(v.flat.nodes, depth)
    if kind == "bytearray":
        return bytearray(v.bytearray)
    if kind == "datetime":
        d = v.datetime
        return datetime.datetime(
            d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond, tzinfo=zone(d), fold=d.fold
        )
    if kind == "date":
        return datetime.date(v.date.year, v.date.month, v.date.day)
    if kind == "time":
        t = v.time
        return datetime.time(t.hour, t.minute, t.second, t.microsecond, tzinfo=zone(t), fold=t.fold)
    if kind == "timedelta":
        return datetime.timedelta(v.timedelta.days, v.timedelta.seconds, v.timedelta.microseconds)
    if kind == "decimal":
        return decimal.Decimal(v.decimal)
    if kind == "uuid":
        if len(v.uuid) != 16:
            raise ValueError("uuid of %d bytes" % len(v.uuid))
        return uuid.UUID(bytes=v.uuid)
    if kind == "complex":
        return complex(v.complex.real, v.complex.imag)
    if kind == "fraction":
        n, d = (int.from_bytes(b, "big", signed=True) for b in (v.fraction.numerator, v.fraction.denominator))
        return fractions.Fraction(n, d)
    if kind == "ndarray":
        a = v.ndarray
        return NdArray(a.dtype, a.shape, a.data, a.scalar)
    if kind == "record":
        r = v.record
        if len(r.field_names) != len(r.fields):
            raise ValueError("record with different numbers of field names and fields")
        return Record(r.type_name, r.kind, r.field_names, [from_value(f, depth - 1) for f in r.fields])
    raise ValueError(f"unsupported value kind {kind}")  # pickle: we never opt in


def shape(obj):
    """A text that differs whenever two objects differ in value or in type, at any depth.

    Sets compare regardless of order; dicts compare in insertion order.
    """
    if isinstance(obj, (list, tuple)):
        return f"{type(obj).__name__}[{', '.join(shape(i) for i in obj)}]"
    if isinstance(obj, (set, frozenset)):
        return f"{type(obj).__name__}{{{', '.join(sorted(shape(i) for i in obj))}}}"
    if isinstance(obj, dict):
        return "dict{" + ", ".join(f"{shape(k)}: {shape(v)}" for k, v in obj.items()) + "}"
    return f"{type(obj).__name__}:{obj!r}"


# ===== errors =====


def error(kind, type_name, message, args=None, module="builtins", tb=""):
    e = pb.RemoteError(
        kind=kind, type_name=type_name, module=module, message=message, traceback=tb
    )
    for a in (args if args is not None else (message,)):
        e.args.append(to_value(a))
    return e


def exception_error(exc):
    """The RemoteError for an exception a method raised."""
    try:
        args = [to_value(a) for a in exc.args]
    except (TypeError, ValueError):
        args = [to_value(str(a)) for a in exc.args]
    e = pb.RemoteError(
        kind=pb.EXCEPTION,
        type_name=type(exc).__name__,
        module=type(exc).__module__,
        message=str(exc),
        traceback="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    )
    e.args.extend(args)
    return e


# ===== server =====


class TestService:
    """The methods every interop server exposes."""

    def echo(self, *args, **kwargs):
        return args, kwargs

    def sleep(self, seconds):
        time.sleep(seconds)
        return seconds

    def raise_(self, type_name, *args):
        exc_type = getattr(builtins, type_name, None)
        if not (isinstance(exc_type, type) and issubclass(exc_type, BaseException)):
            raise ValueError(f"no builtin exception named {type_name!r}")
        raise exc_type(*args)

    def big(self, n):
        return b"1" * n


class StreamState:
    """The credit and cancellation of one streamed reply (a `count` call)."""

    def __init__(self, window):
        self.cond = threading.Condition()
        self.credit = window
        self.cancelled = False

    def grant(self, items):
        with self.cond:
            self.credit += items
            self.cond.notify_all()

    def cancel(self):
        with self.cond:
            self.cancelled = True
            self.cond.notify_all()

    def take(self):
        """Waits for one unit of credit; False when the call was cancelled."""
        with self.cond:
            while self.credit <= 0 and not self.cancelled:
                self.cond.wait()
            if self.cancelled:
                return False
            self.credit -= 1
            return True


class NbResult:
    """A submitted call: done once the call finished; kept until released or reaped."""

    def __init__(self, keep_s):
        self.done = threading.Event()
        self.outcome = None  # ("value", pb.Value) or ("error", pb.RemoteError)
        self.keep_s = keep_s
        self.finished_at = None


class IndependentServer:
    DEFAULT_KEEP_S = 600.0
    CLEAN_INTERVAL_S = 1.0
    SHUTDOWN_GRACE_S = 5.0

    def __init__(self, address_text):
        self.family, self.address = parse_address(address_text)
        self.tls = tls_context(server_side=True)
        self.service = TestService()
        self.results = {}  # call id -> NbResult
        self.results_lock = threading.Lock()
        self.stopping = threading.Event()
        self.in_flight = 0
        self.in_flight_cond = threading.Condition()
        self.conns = set()
        self.conns_lock = threading.Lock()
        self.started = time.monotonic()
        self.stats_lock = threading.Lock()
        self.calls = self.errors = self.running = 0
        self.latencies = []  # seconds, of every counted call (a test peer: unbounded)

    def stats_now(self):
        """ServerStats, counted as docs/PROTOCOL.md says."""
        with self.stats_lock:
            lat = sorted(self.latencies)
            stats = pb.ServerStats(calls=self.calls, errors=self.errors, in_flight=self.running)
        with self.results_lock:
            stats.kept_results = len(self.results)
        with self.conns_lock:
            stats.connections = len(self.conns)
        stats.uptime_ms = int((time.monotonic() - self.started) * 1000)

        def at(q):  # the exact q-quantile (rank ceil(q * n)), in microseconds, rounded up
            if not lat:
                return 0
            return math.ceil(lat[max(1, math.ceil(q * len(lat))) - 1] * 1e6)

        stats.latency_p50_us, stats.latency_p90_us, stats.latency_p99_us = at(0.5), at(0.9), at(0.99)
        stats.latency_max_us = at(1.0)
        return stats

    # ----- lifecycle -----

    def serve(self):
        listener = socket.socket(self.family, socket.SOCK_STREAM)
        if self.family == socket.AF_INET:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(self.address)
        listener.listen(64)
        listener.settimeout(0.05)  # so the accept loop notices a shutdown
        threading.Thread(target=self.reaper, daemon=True).start()
        print(f"independent server listening on {self.address}", flush=True)
        try:
            while not self.stopping.is_set():
                try:
                    conn, _ = listener.accept()
                except socket.timeout:
                    continue
                conn.settimeout(None)
                if self.tls is not None and self.family == socket.AF_INET:
                    # The handshake runs on the connection's thread, at its first read.
                    conn = self.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
                with self.conns_lock:
                    self.conns.add(conn)
                threading.Thread(target=self.connection, args=(conn,), daemon=True).start()
        finally:
            listener.close()
            self.drain()
            if self.family == socket.AF_UNIX:
                try:
                    os.unlink(self.address)
                except FileNotFoundError:
                    pass
        print("independent server stopped", flush=True)

    def drain(self):
        """Lets running calls finish within the grace period, then closes every connection."""
        deadline = time.monotonic() + self.SHUTDOWN_GRACE_S
        with self.in_flight_cond:
            while self.in_flight and time.monotonic() < deadline:
                self.in_flight_cond.wait(deadline - time.monotonic())
        with self.conns_lock:
            for conn in self.conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()

    def reaper(self):
        while not self.stopping.wait(self.CLEAN_INTERVAL_S):
            now = time.monotonic()
            with self.results_lock:
                for call_id in [
                    cid
                    for cid, r in self.results.items()
                    if r.finished_at is not None and now - r.finished_at > r.keep_s
                ]:
                    del self.results[call_id]

    # ----- one connection -----

    def connection(self, conn):
        write_lock = threading.Lock()

        def answer(request_id, **kind):
            response = pb.Response(id=request_id, **kind)
            with write_lock:
                send_frame(conn, pb.ServerFrame(response=response))

        streams = {}  # request id -> StreamState, for Credit and Cancel

        try:
            first = recv_frame(conn, pb.ClientFrame)  # undecodable: closed without a word
            hello = pb.ServerHello(protocol_version=PROTOCOL_VERSION, peer_name=PEER_NAME)
            if first.WhichOneof("kind") != "hello":
                # Anything but a hello first: a refusing hello, then the close.
                hello.error.CopyFrom(
                    error(pb.PROTOCOL, "RuntimeError", "the first frame must be a hello")
                )
                send_frame(conn, pb.ServerFrame(hello=hello))
                return
            if first.hello.protocol_version != PROTOCOL_VERSION:
                hello.error.CopyFrom(
                    error(
                        pb.PROTOCOL,
                        "RuntimeError",
                        f"unsupported protocol version {first.hello.protocol_version}",
                    )
                )
                send_frame(conn, pb.ServerFrame(hello=hello))
                return
            caps = hello.capabilities
            caps.nonblocking = True
            caps.max_frame_len = MAX_FRAME_LEN
            caps.max_value_depth = MAX_DEPTH
            caps.pickle = False
            caps.max_in_flight_per_connection = 64  # not enforced: a thread per request
            send_frame(conn, pb.ServerFrame(hello=hello))
            while True:
                body = recv_body(conn)
                received = time.monotonic()  # a call's deadline starts here
                try:
                    frame = pb.ClientFrame.FromString(body)
                except Exception:  # DecodeError: answer it if its id can be read
                    request_id = request_id_of(body)
                    if request_id is None:
                        return
                    answer(request_id, error=error(pb.PROTOCOL, "RuntimeError", "undecodable request"))
                    continue
                if frame.WhichOneof("kind") == "credit":
                    state = streams.get(frame.credit.id)
                    if state is not None:  # one naming no running stream is ignored
                        state.grant(frame.credit.items)
                    continue
                if frame.WhichOneof("kind") != "request":
                    return  # a second hello, an auth frame, no known kind: close
                request = frame.request
                if request.WhichOneof("kind") == "cancel":
                    state = streams.get(request.cancel.id)
                    if state is not None:
                        state.cancel()
                    answer(request.id, ack=pb.Ack())
                    continue
                if (
                    request.WhichOneof("kind") == "call"
                    and request.call.method == "count"
                    and not self.stopping.is_set()
                ):
                    state = streams[request.id] = StreamState(request.call.stream_window)
                    threading.Thread(
                        target=self.stream_count,
                        args=(conn, write_lock, request, state, streams, answer),
                        daemon=True,
                    ).start()
                    continue
                # Every request runs on its own thread: answers go out by id, in
                # whatever order the requests finish. Except Submit, handled here
                # before the next frame is read (PROTOCOL.md's ordering guarantee:
                # a Fetch right behind its Submit finds the call).
                with self.in_flight_cond:
                    self.in_flight += 1
                if frame.request.WhichOneof("kind") == "submit":
                    self.run_request(frame.request, received, answer)
                    continue
                threading.Thread(
                    target=self.run_request, args=(frame.request, received, answer), daemon=True
                ).start()
        except (ConnectionClosed, OSError):
            pass
        finally:
            with self.conns_lock:
                self.conns.discard(conn)
            conn.close()

    def stream_count(self, conn, write_lock, request, state, streams, answer):
        """`count(n)`: the items 0 .. n-1 as StreamItems, each after one unit of
        the client's credit, then `stream_end`; `CANCELLED` if the client sent
        Cancel. A client that takes no streams (`stream_window` 0) is refused."""
        try:
            if request.call.stream_window == 0:
                answer(request.id, error=error(
                    pb.UNSUPPORTED_VALUE, "RuntimeError",
                    "count() streams its reply, but the client does not take streams"))
                return
            n = from_value(request.call.args[0]) if request.call.args else 0
            for i in range(n):
                if not state.take():
                    answer(request.id, error=error(
                        pb.CANCELLED, "CancelledError", "the call was cancelled by its caller",
                        module="asyncio"))
                    return
                item = pb.StreamItem(id=request.id, value=to_value(i))
                with write_lock:
                    send_frame(conn, pb.ServerFrame(item=item))
            answer(request.id, stream_end=pb.StreamEnd(items=n))
        except OSError:
            pass  # the client went away
        finally:
            streams.pop(request.id, None)

    def run_request(self, request, received, answer):
        try:
            kind = self.handle(request, received)
            try:
                answer(request.id, **kind)
            except OSError:
                pass  # the client went away; a Call's result is lost with it
            if "ack" in kind and request.WhichOneof("kind") == "shutdown":
                self.stopping.set()
        finally:
            with self.in_flight_cond:
                self.in_flight -= 1
                self.in_flight_cond.notify_all()

    def handle(self, request, received):
        """One request -> the keyword arguments of its Response (one of value/error/ack/pending)."""
        kind = request.WhichOneof("kind")
        if self.stopping.is_set():
            # Pings and a second Shutdown included: a client waiting for the
            # server to go away learns it at once, not when running calls end.
            return {"error": error(pb.SHUTTING_DOWN, "RuntimeError", "the server is shutting down")}
        if kind in ("ping", "shutdown"):
            return {"ack": pb.Ack()}
        if kind == "call":
            return self.call(request.call, received, late_is_error=True)
        if kind == "stats":
            return {"stats": self.stats_now()}
        if kind in ("submit", "fetch", "release"):
            call_id = getattr(request, kind).call_id
            if len(call_id) != 16:
                return {"error": error(pb.PROTOCOL, "RuntimeError", "a call id has 16 bytes")}
            if kind == "submit":
                return self.submit(request.submit, call_id, received)
            return getattr(self, kind)(getattr(request, kind), call_id)
        # No kind, or one this peer does not implement (e.g. from a newer .proto).
        return {"error": error(pb.PROTOCOL, "RuntimeError", f"unsupported request kind {kind}")}

    def call(self, call, received, late_is_error):
        """Runs one Call -> {'value': ...} or {'error': ...}, counted in the stats."""
        name = call.method
        if name == "connected":
            return {"value": to_value(True)}
        if name == "shutdown":
            self.stopping.set()
            return {"value": to_value(None)}
        deadline = received + call.timeout_ms / 1000 if call.timeout_ms else None
        with self.stats_lock:
            self.running += 1
        try:
            outcome = self.run_method(call, deadline)
        finally:
            with self.stats_lock:
                self.running -= 1
        if late_is_error and deadline is not None and time.monotonic() > deadline:
            if outcome.get("error") is None or outcome["error"].kind != pb.DEADLINE_EXCEEDED:
                outcome = {"error": error(pb.DEADLINE_EXCEEDED, "TimeoutError", f"{name}() finished late")}
        with self.stats_lock:
            self.calls += 1
            self.errors += "error" in outcome
            self.latencies.append(time.monotonic() - received)
        return outcome

    def run_method(self, call, deadline):
        name = call.method
        method = None if name.startswith("_") else getattr(self.service, name, None)
        if not callable(method):
            return {
                "error": error(
                    pb.NO_SUCH_METHOD, "AttributeError", f"no callable public method named {name!r}"
                )
            }
        try:
            args = [from_value(a) for a in call.args]
            kwargs = {kw.name: from_value(kw.value) for kw in call.kwargs}
        except (TypeError, ValueError) as exc:
            return {"error": error(pb.UNSUPPORTED_VALUE, "RuntimeError", str(exc))}
        if deadline is not None and time.monotonic() >= deadline:
            return {"error": error(pb.DEADLINE_EXCEEDED, "TimeoutError", f"{name}() did not run")}
        try:
            result = method(*args, **kwargs)
        except TypeError as exc:
            if exc.__traceback__.tb_next is None:  # raised by the call itself: bad arguments
                return {"error": error(pb.BAD_ARGUMENTS, "TypeError", str(exc))}
            return {"error": exception_error(exc)}
        except Exception as exc:  # the method raised: send it back as data
            return {"error": exception_error(exc)}
        try:
            return {"value": to_value(result)}
        except (TypeError, ValueError) as exc:
            return {"error": error(pb.UNSUPPORTED_VALUE, "RuntimeError", str(exc))}

    def submit(self, submit, call_id, received):
        with self.results_lock:
            if call_id in self.results:
                return {"ack": pb.Ack()}  # idempotent: the call already runs or ran
            keep_s = submit.keep_ms / 1000 if submit.keep_ms else self.DEFAULT_KEEP_S
            entry = self.results[call_id] = NbResult(keep_s)
        call = pb.Call()
        call.CopyFrom(submit.call)

        def run():
            with self.in_flight_cond:
                self.in_flight += 1
            try:
                outcome = self.call(call, received, late_is_error=False)
                entry.outcome = next(iter(outcome.items()))
                entry.finished_at = time.monotonic()
                entry.done.set()
            finally:
                with self.in_flight_cond:
                    self.in_flight -= 1
                    self.in_flight_cond.notify_all()

        threading.Thread(target=run, daemon=True).start()
        return {"ack": pb.Ack()}

    def fetch(self, fetch, call_id):
        with self.results_lock:
            entry = self.results.get(call_id)
        if entry is None:
            return {"error": error(pb.UNKNOWN_CALL, "RuntimeError", f"unknown call id {call_id.hex()}")}
        # Hold the fetch up to wait_ms for the call to finish.
        if not entry.done.wait(fetch.wait_ms / 1000):
            return {"pending": pb.Pending()}
        field, message = entry.outcome
        return {field: message}

    def release(self, release, call_id):
        with self.results_lock:
            self.results.pop(call_id, None)
        return {"ack": pb.Ack()}


# ===== client =====


class RemoteException(Exception):
    """An error response: carries the pyrpc.v1.RemoteError."""

    def __init__(self, remote):
        super().__init__(f"{remote.type_name}: {remote.message}")
        self.remote = remote


class CallTimeout(Exception):
    """No answer within the call's timeout."""


class IndependentClient:
    """A blocking client: one connection, requests matched to responses by id."""

    def __init__(self, address_text, connect_timeout=5.0):
        self.family, self.address = parse_address(address_text)
        self.connect_timeout = connect_timeout
        self.sock = None
        self.next_id = 1
        self.early = {}  # responses that arrived for other requests, by id
        self.server_hello = None

    def connect(self):
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        sock.settimeout(self.connect_timeout)
        try:
            sock.connect(self.address)
            tls = tls_context(server_side=False)
            if tls is not None and self.family == socket.AF_INET:
                sock = tls.wrap_socket(sock, server_hostname=self.address[0])
            send_frame(sock, pb.ClientFrame(hello=pb.ClientHello(
                protocol_version=PROTOCOL_VERSION, peer_name=PEER_NAME, max_frame_len=MAX_FRAME_LEN
            )))
            frame = recv_frame(sock, pb.ServerFrame)
        except BaseException:
            sock.close()
            raise
        if frame.WhichOneof("kind") != "hello":
            sock.close()
            raise ConnectionClosed("the server did not answer with a hello")
        if frame.hello.HasField("error"):
            sock.close()
            raise RemoteException(frame.hello.error)
        if frame.hello.protocol_version != PROTOCOL_VERSION:
            sock.close()
            raise ConnectionClosed(f"the server speaks protocol {frame.hello.protocol_version}")
        self.server_hello = frame.hello
        self.sock = sock
        self.early.clear()

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(self, timeout=None, **kind):
        """Sends one request, returns the Response; raises CallTimeout after `timeout` s."""
        if self.sock is None:
            self.connect()
        request_id = self.next_id
        self.next_id += 1
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            send_frame(self.sock, pb.ClientFrame(request=pb.Request(id=request_id, **kind)))
            while request_id not in self.early:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise socket.timeout()
                self.sock.settimeout(left)
                frame = recv_frame(self.sock, pb.ServerFrame)
                if frame.WhichOneof("kind") != "response":
                    raise ConnectionClosed("expected a response")
                self.early[frame.response.id] = frame.response
        except socket.timeout:
            # The answer may still come; a fresh connection keeps it from being
            # mistaken for the answer to a later request.
            self.close()
            raise CallTimeout(f"no answer within {timeout} s") from None
        except BaseException:
            self.close()
            raise
        return self.early.pop(request_id)

    @staticmethod
    def outcome(response):
        kind = response.WhichOneof("kind")
        if kind == "value":
            return from_value(response.value)
        if kind == "error":
            raise RemoteException(response.error)
        raise ConnectionClosed(f"unexpected response kind {kind}")

    @staticmethod
    def make_call(method, args, kwargs, timeout=None):
        call = pb.Call(method=method, timeout_ms=int(timeout * 1000) if timeout else 0)
        call.args.extend(to_value(a) for a in args)
        for name, value in kwargs.items():
            call.kwargs.append(pb.Kwarg(name=name, value=to_value(value)))
        return call

    def call(self, method, *args, call_timeout=None, **kwargs):
        call = self.make_call(method, args, kwargs, call_timeout)
        return self.outcome(self.request(timeout=call_timeout, call=call))

    def nb_call(self, method, *args, nb_fetch_tick=0.5, **kwargs):
        """Submit, then Fetch until done, then Release. Returns (result, pending answers)."""
        call_id = uuid.uuid4().bytes
        submit = pb.Submit(call_id=call_id, call=self.make_call(method, args, kwargs), keep_ms=60_000)
        response = self.request(timeout=10, submit=submit)
        if response.WhichOneof("kind") != "ack":
            self.outcome(response)  # raises the error
        pending = 0
        while True:
            fetch = pb.Fetch(call_id=call_id, wait_ms=int(nb_fetch_tick * 1000))
            response = self.request(timeout=nb_fetch_tick + 10, fetch=fetch)
            if response.WhichOneof("kind") != "pending":
                break
            pending += 1
        try:
            return self.outcome(response), pending
        finally:
            self.request(timeout=10, release=pb.Release(call_id=call_id))

    def stream(self, method, *args, window=8, cancel_after=None):
        """A streaming call: returns (items, final response kind, most items
        ever outstanding). Grants `window` more credit each time `window` items
        were taken; after `cancel_after` items, sends Cancel and reads on until
        the call's response (items already on the wire are counted, not kept)."""
        if self.sock is None:
            self.connect()
        call = self.make_call(method, args, {})
        call.stream_window = window
        request_id = self.next_id
        cancel_id = request_id + 1
        self.next_id += 2
        self.sock.settimeout(20)
        send_frame(self.sock, pb.ClientFrame(request=pb.Request(id=request_id, call=call)))
        items, granted, taken_since, outstanding_max = [], window, 0, 0
        cancelled = acked = False
        final = None
        try:
            while final is None or (cancelled and not acked):
                frame = recv_frame(self.sock, pb.ServerFrame)
                kind = frame.WhichOneof("kind")
                if kind == "item":
                    assert frame.item.id == request_id, f"an item for request {frame.item.id}"
                    assert final is None, "an item after the call's response"
                    outstanding_max = max(outstanding_max, len(items) + 1 - (granted - window))
                    assert len(items) < granted, f"item {len(items) + 1} beyond the {granted} granted"
                    items.append(from_value(frame.item.value))
                    if cancelled:
                        continue
                    if cancel_after is not None and len(items) >= cancel_after:
                        send_frame(self.sock, pb.ClientFrame(
                            request=pb.Request(id=cancel_id, cancel=pb.Cancel(id=request_id))))
                        cancelled = True
                        continue
                    taken_since += 1
                    if taken_since == window:
                        send_frame(self.sock, pb.ClientFrame(credit=pb.Credit(id=request_id, items=window)))
                        granted += window
                        taken_since = 0
                elif kind == "response":
                    if frame.response.id == cancel_id:
                        assert frame.response.WhichOneof("kind") == "ack", "Cancel not acked"
                        acked = True
                    elif frame.response.id == request_id:
                        final = frame.response
                    else:
                        self.early[frame.response.id] = frame.response
                else:
                    raise ConnectionClosed(f"unexpected frame {kind}")
        except BaseException:
            self.close()
            raise
        return items, final, outstanding_max

    def ping(self, timeout):
        try:
            return self.request(timeout=timeout, ping=pb.Ping()).WhichOneof("kind") == "ack"
        except (OSError, ConnectionClosed, CallTimeout, RemoteException):
            return False

    def shutdown(self):
        response = self.request(timeout=10, shutdown=pb.Shutdown())
        if response.WhichOneof("kind") != "ack":
            self.outcome(response)
            raise ConnectionClosed(f"shutdown answered with {response.WhichOneof('kind')}")


# ===== the checks =====

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
        # Without a window the client takes no streams: refused, nothing sent.
        try:
            client.call("count", 3)
        except RemoteException as exc:
            assert pb.ErrorKind.Name(exc.remote.kind) == "UNSUPPORTED_VALUE", exc.remote
        else:
            raise AssertionError("count() without a stream window returned a value")
        return "300 items in windows of 8, an empty stream, a refusal"

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


# ===== golden vectors =====

GOLDEN_CALL = (
    (1, -2, 2**64, -(2**63) - 1, -(2**71), 1.5, "h\u00e9llo", b"\x00\xff", True, False, 0,
     None, (1, ()), ["a", []], {1, 2}, frozenset({"x"}), {"a": 1, (1, 2): None}),
    {"foo": "foo", "n": None},
)


# call_kinds.bin: KINDS_ARGS, then two records (a dataclass, an Enum member).
GOLDEN_KINDS_CALL = (
    KINDS_ARGS
    + (
        Record("shop.models:Order", 1, ("id", "items"), (7, ["a"])),
        Record("shop:Color", 3, ("RED",), ("red",)),
    ),
    {},
)

# name -> (request id, call timeout in s, the call's (args, kwargs))
def golden_deep():
    value = {"k": (1,)}
    for _ in range(38):
        value = [value]
    return value


GOLDEN_CALLS = {
    "call": (7, 1.5, GOLDEN_CALL),
    "call_kinds": (13, None, GOLDEN_KINDS_CALL),
    "call_deep": (14, None, ((golden_deep(),), {})),
    "call_ndarray": (15, None, (ARRAY_ARGS, {})),
    # Packed lists (PROTOCOL.md §5): two packed, then four that are not.
    "call_packed": (15, None, (([1, -2, 300], [0.5, -1.5], [], [1, 2**64], [True, 1], [1, 1.5]), {})),
}


# The secret and nonces of the auth_* vectors (see proto/testdata/README.md).
GOLDEN_SECRET = b"golden secret"
GOLDEN_CLIENT_NONCE = bytes(range(0, 32))
GOLDEN_CHALLENGE = bytes(range(32, 64))


def auth_mac(secret, label, challenge, client_nonce):
    """HMAC-SHA256(secret, label || Ns || Nc), as docs/PROTOCOL.md describes."""
    return hmac.new(secret, label + challenge + client_nonce, hashlib.sha256).digest()


def check_golden(directory):
    from google.protobuf import text_format

    names = sorted(f[: -len(".bin")] for f in os.listdir(directory) if f.endswith(".bin"))
    if not names:
        print(f"FAIL no golden vectors in {directory}")
        return False
    ok = True
    for name in names:
        with open(os.path.join(directory, name + ".bin"), "rb") as f:
            frame = f.read()
        with open(os.path.join(directory, name + ".txtpb"), encoding="utf-8") as f:
            text = f.read()
        type_name = next(
            line.split(":", 1)[1].strip()
            for line in text.splitlines()
            if line.startswith("# proto-message:")
        )
        message_type = {"pyrpc.v1.ClientFrame": pb.ClientFrame, "pyrpc.v1.ServerFrame": pb.ServerFrame}[type_name]
        described = text_format.Parse(text, message_type())
        body = described.SerializeToString(deterministic=True)
        problems = []
        if frame[4:] != body:
            problems.append(f"encoding differs:\n    file {frame[4:].hex(' ')}\n    ours {body.hex(' ')}")
        if struct.unpack(">I", frame[:4])[0] != len(frame) - 4:
            problems.append("the header does not give the body's length")
        decoded = message_type()
        decoded.ParseFromString(frame[4:])
        if decoded != described:
            problems.append(f"decoded {decoded} is not the described message")
        if name in GOLDEN_CALLS:
            request_id, timeout, (args, kwargs) = GOLDEN_CALLS[name]
            call = decoded.request.call
            got = (tuple(from_value(a) for a in call.args), {k.name: from_value(k.value) for k in call.kwargs})
            if shape(got) != shape((args, kwargs)):
                problems.append(f"values {shape(got)} are not {shape((args, kwargs))}")
            reencoded = IndependentClient.make_call("echo", args, kwargs, timeout=timeout)
            reencoded_frame = pb.ClientFrame(request=pb.Request(id=request_id, call=reencoded))
            if reencoded_frame.SerializeToString() != frame[4:]:
                problems.append(f"our value encoder does not produce {name}.bin")
        macs = {
            "auth_response": (lambda m: m.auth.mac, b"pyrpc-v1 client"),
            "auth_server_proof": (lambda m: m.hello.auth_proof, b"pyrpc-v1 server"),
        }
        if name in macs:
            field, label = macs[name]
            want = auth_mac(GOLDEN_SECRET, label, GOLDEN_CHALLENGE, GOLDEN_CLIENT_NONCE)
            if field(decoded) != want:
                problems.append(f"the MAC is not HMAC-SHA256 of {label!r} || Ns || Nc")
        ok = ok and not problems
        print(f"{'PASS' if not problems else 'FAIL'} golden {name}.bin ({len(frame)} bytes)", flush=True)
        for p in problems:
            print(f"  {p}")
    return check_noncanonical(directory) and ok


def check_noncanonical(directory):
    """noncanonical/GOLDEN--VARIANT.bin: another valid encoding of GOLDEN.bin's message."""
    ok = True
    sub = os.path.join(directory, "noncanonical")
    for file in sorted(f for f in os.listdir(sub) if f.endswith(".bin")):
        golden = file[: -len(".bin")].split("--", 1)[0]
        with open(os.path.join(directory, golden + ".txtpb"), encoding="utf-8") as f:
            text = f.read()
        client = "# proto-message: pyrpc.v1.ClientFrame" in text
        message_type = pb.ClientFrame if client else pb.ServerFrame
        with open(os.path.join(sub, file), "rb") as f:
            frame = f.read()
        problems = []
        if struct.unpack(">I", frame[:4])[0] != len(frame) - 4:
            problems.append("the header does not give the body's length")
        with open(os.path.join(directory, golden + ".bin"), "rb") as f:
            want = message_type.FromString(f.read()[4:])
        try:
            got = message_type.FromString(frame[4:])
        except Exception as exc:  # DecodeError, by runtime
            problems.append(f"does not decode: {exc}")
        else:
            got.DiscardUnknownFields()  # kept by this runtime, compared by ==; a receiver skips them
            if got != want:
                problems.append(f"decodes to {got}, not the message of {golden}.bin")
        ok = ok and not problems
        print(f"{'PASS' if not problems else 'FAIL'} noncanonical {file} decodes as {golden}.bin", flush=True)
        for p in problems:
            print(f"  {p}")
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gen", required=True, help="directory holding the generated pyrpc/v1/rpc_pb2.py")
    parser.add_argument("command", choices=["golden", "serve", "check"])
    parser.add_argument("target", help="ADDRESS, or the testdata directory for golden")
    options = parser.parse_args()
    load_messages(options.gen)
    if options.command == "golden":
        return 0 if check_golden(options.target) else 1
    if options.command == "serve":
        IndependentServer(options.target).serve()
        return 0
    return 0 if run_checks(options.target) else 1


if __name__ == "__main__":
    sys.exit(main())
