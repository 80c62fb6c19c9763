"""The raw Python baseline: a persistent ping-pong server in plain Python.

    python raw_echo.py serve ADDR

Speaks ``bench-raw``'s echo protocol (a 4-byte big-endian length, then the
body, echoed back whole) on one persistent connection per client, a thread
each, with blocking sockets: the least CPU per call a Python server can spend
on a round trip. The bench runs it against ``bench-raw pingpong`` and reads
the server's CPU time per call, the yardstick of the Python server's.
"""

import os
import socket
import struct
import threading

import common


def recv_exactly(conn, n):
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = conn.recv_into(view[got:])
        if k == 0:
            return None
        got += k
    return buf


def serve_conn(conn):
    with conn:
        while True:
            head = recv_exactly(conn, 4)
            if head is None:
                return
            (n,) = struct.unpack(">I", head)
            if n > 1 << 20:
                return
            body = recv_exactly(conn, n)
            if body is None:
                return
            conn.sendall(bytes(head) + bytes(body))


def main():
    p = common.parser(__doc__, ["serve"])
    opts = p.parse_args()
    addr = common.address(opts.address)
    if isinstance(addr, str):
        if os.path.exists(addr):
            os.unlink(addr)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(addr)
    sock.listen(128)
    while True:
        conn, _ = sock.accept()
        if conn.family == socket.AF_INET:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve_conn, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
