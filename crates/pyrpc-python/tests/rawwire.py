"""Frames written and read by hand on a plain socket, for tests that play a
client our own code would never be: only the few messages they need, encoded
from proto/pyrpc/v1/rpc.proto's field numbers."""

import socket
import struct


def varint(n):
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def field(number, payload):
    """A length-delimited field (wire type 2)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def framed(body):
    return struct.pack(">I", len(body)) + body


def hello(max_frame_len=0):
    """ClientFrame { hello: ClientHello { protocol_version: 1, max_frame_len } }."""
    h = bytes([0x08, 0x01])
    if max_frame_len:
        h += bytes([0x18]) + varint(max_frame_len)
    return framed(field(1, h))


def call(request_id, method, text):
    """ClientFrame { request: Request { id, call: Call { method, args: [str text] } } }."""
    value = field(6, text.encode())
    c = field(1, method.encode()) + field(2, value)
    request = bytes([0x08]) + varint(request_id) + field(2, c)
    return framed(field(2, request))


def connect(address, timeout=20):
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    s = socket.socket(family)
    s.settimeout(timeout)
    s.connect(address)
    return s


def recv_exactly(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        assert chunk, "connection closed after %d of %d bytes" % (len(data), n)
        data += chunk
    return data


def recv_frame(s):
    """The body of the next frame."""
    (n,) = struct.unpack(">I", recv_exactly(s, 4))
    return recv_exactly(s, n)


def closed_by_peer(s):
    """True when the peer closed the connection (what is left unread is
    dropped)."""
    try:
        while True:
            if not s.recv(65536):
                return True
    except ConnectionResetError:
        return True


def int_value(n):
    """Value { int: n } (sint64, zigzag)."""
    return varint(3 << 3) + varint((n << 1) ^ (n >> 63))


def stream_call(request_id, method, args, window):
    """ClientFrame { request: Request { id, call: Call { method, args (encoded
    Values), stream_window: window } } }."""
    c = field(1, method.encode()) + b"".join(field(2, a) for a in args)
    c += varint(5 << 3) + varint(window)
    request = bytes([0x08]) + varint(request_id) + field(2, c)
    return framed(field(2, request))


def credit(request_id, items):
    """ClientFrame { credit: Credit { id, items } }."""
    body = bytes([0x08]) + varint(request_id) + bytes([0x10]) + varint(items)
    return framed(field(4, body))


def fields(buf):
    """The fields of a message: [(number, value)], a varint's value an int,
    a length-delimited one's its bytes (no other wire types are read)."""
    out, i = [], 0

    def read_varint():
        nonlocal i
        n = shift = 0
        while True:
            b = buf[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n

    while i < len(buf):
        key = read_varint()
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            out.append((number, read_varint()))
        elif wire_type == 2:
            n = read_varint()
            out.append((number, bytes(buf[i : i + n])))
            i += n
        else:
            raise ValueError("wire type %d not read here" % wire_type)
    return out
