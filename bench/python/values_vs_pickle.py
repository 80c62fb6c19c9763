"""Value round trips through pyrpc vs pickle over a plain Unix socket (issue 10, item 6).

Run by `cargo xtask bench` (xtask/src/bench_values.rs), or by hand with the
release build: ``target/venv/bin/python bench/python/values_vs_pickle.py
[repeats] [--json]``. Each case echoes one value (the server returns it) and
prints the median round trip of pyrpc, of pickle (their repeats interleaved) (protocol 5, 4-byte length,
``loads``/``dumps`` on the other side, one persistent connection) and their
ratio (goal: <= 0.8); with ``--json``, one JSON object per case instead.
"""

import json
import os
import pickle
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time

from pyrpc import Client, Server

CASES = {
    "1M ints": lambda: list(range(1_000_000)),
    "100k str->float dict": lambda: {f"key{i}": i * 0.5 for i in range(100_000)},
    "100k small records (4-key dicts)": lambda: [
        {"id": i, "name": f"n{i}", "score": i * 1.5, "ok": True} for i in range(100_000)
    ],
}


def recv_exactly(sock, n):
    buf = bytearray(n)
    view = memoryview(buf)
    while n:
        got = sock.recv_into(view, n)
        if not got:
            raise EOFError
        view, n = view[got:], n - got
    return buf


def pickle_server(listener):
    conn, _ = listener.accept()
    while True:
        try:
            (n,) = struct.unpack(">I", recv_exactly(conn, 4))
        except EOFError:
            return
        obj = pickle.loads(recv_exactly(conn, n))
        body = pickle.dumps(obj, protocol=5)
        conn.sendall(struct.pack(">I", len(body)) + body)


def pickle_roundtrip(sock, obj):
    body = pickle.dumps(obj, protocol=5)
    sock.sendall(struct.pack(">I", len(body)) + body)
    (n,) = struct.unpack(">I", recv_exactly(sock, 4))
    return pickle.loads(recv_exactly(sock, n))


class Echo(Server):
    def echo(self, x):
        return x


def median_times(fns, repeats):
    """The median time of each function, run in turn (a, b, a, b, ...) so
    that load from other processes falls on both alike."""
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


class Servers:
    """The pyrpc echo server and the pickle server, each in a forked process
    (as in the issue's measurement), with a client of each: ``client`` (pyrpc)
    and ``sock`` (the pickle socket); ``pids`` are the servers' processes."""

    def __init__(self):
        tmp = tempfile.mkdtemp()
        pyrpc_addr = os.path.join(tmp, "pyrpc.sock")
        pickle_addr = os.path.join(tmp, "pickle.sock")
        pid = os.fork()
        if pid == 0:
            Echo(address=pyrpc_addr).start()
            os._exit(0)
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(pickle_addr)
        listener.listen(1)
        pid2 = os.fork()
        if pid2 == 0:
            pickle_server(listener)
            os._exit(0)
        listener.close()
        self.pids = (pid, pid2)
        self.client = Client(address=pyrpc_addr)
        deadline = time.monotonic() + 20
        while not self.client.connected(0.2):
            assert time.monotonic() < deadline, "pyrpc server did not start"
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(pickle_addr)

    def close(self):
        self.sock.close()
        self.client.shutdown()
        for pid in self.pids:
            os.waitpid(pid, 0)


def main():
    as_json = "--json" in sys.argv
    numbers = [a for a in sys.argv[1:] if not a.startswith("--")]
    repeats = int(numbers[0]) if numbers else 5
    servers = Servers()
    client, sock = servers.client, servers.sock
    try:
        for name, make in CASES.items():
            value = make()
            assert client.echo(value) == value and pickle_roundtrip(sock, value) == value
            t_pyrpc, t_pickle = median_times(
                [lambda: client.echo(value), lambda: pickle_roundtrip(sock, value)], repeats
            )
            if as_json:
                print(json.dumps({"case": name, "pyrpc_s": t_pyrpc, "pickle_s": t_pickle,
                                  "repeats": repeats}), flush=True)
                continue
            print(f"{name:36s} pyrpc {t_pyrpc * 1000:7.1f} ms  pickle {t_pickle * 1000:7.1f} ms  "
                  f"ratio {t_pyrpc / t_pickle:4.2f}", flush=True)
    finally:
        servers.close()


if __name__ == "__main__":
    main()
