"""Addresses, TLS, and length-prefixed frames on a blocking socket (PROTOCOL.md sections 1-2).

Part of the independent peer (``tests/interop/independent_peer.py``): it shares
no code with pyrpc.
"""

import os
import socket
import ssl
import struct

from .messages import MAX_FRAME_LEN


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
