"""The interop peer built on the ``pyrpc`` Python package (``cargo xtask interop-test``).

Usage::

    pyrpc_peer.py serve ADDRESS   # serve the interop test service (non-blocking enabled)
    pyrpc_peer.py check ADDRESS   # run the interop checks against a server

ADDRESS is ``HOST:PORT`` (TCP; port 0 for a free one) or ``unix:/path`` (Unix
socket); ``serve`` prints ``listening on ADDRESS`` with the address it bound. The service and
the checks are the same as those of ``examples/interop_peer.rs`` (Rust) and
``independent_peer.py`` (the protocol alone, no pyrpc code); ``check`` prints one
line per check and exits with 0 only if all pass. Its last check shuts the
server down.

With ``PYRPC_INTEROP_TLS_CA``, ``PYRPC_INTEROP_TLS_CERT`` and
``PYRPC_INTEROP_TLS_KEY`` set (the interop test's ``tls`` cells), the server
speaks TLS with that certificate and key and the client verifies it against
that CA.
"""

import asyncio
import builtins
import os
import signal
import socket
import sys
import time

from pyrpc import Client, RemoteError, Server, Timeout


def parse_address(text):
    """'unix:/path' -> '/path' (pyrpc's Unix address); 'host:port' -> (host, port)."""
    if text.startswith("unix:"):
        return text[len("unix:"):]
    host, _, port = text.rpartition(":")
    return (host, int(port))


def format_address(address):
    """pyrpc's (host, port) -> 'host:port' ('[host]:port' for IPv6); a path -> 'unix:/path'."""
    if isinstance(address, tuple):
        host, port = address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return "unix:" + address


async def serve(server):
    """Serve until a client shuts the server down, printing ``listening on ADDRESS``
    (the address bound: with port 0, the port the OS chose) once bound."""
    # Server.serve() binds first thing, then waits for the shutdown.
    serving = asyncio.ensure_future(server.serve())
    # SIGTERM stops it gracefully, as Server.start() would: cancelling
    # serve() shuts the server down (running calls get their grace period,
    # a Unix socket file is removed). Ctrl-C cancels it through asyncio.run.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, serving.cancel)
    while server.bound_address() is None and not serving.done():
        await asyncio.sleep(0.01)
    if not serving.done():
        print("listening on " + format_address(server.bound_address()), flush=True)
    try:
        await serving  # raises if the bind failed
    except asyncio.CancelledError:
        pass  # SIGTERM: the server has stopped


TLS_CA = os.environ.get("PYRPC_INTEROP_TLS_CA")


class PeerClient(Client):
    """pyrpc's Client, over TLS in the tls cells."""

    tls_ca = TLS_CA


class InteropServer(Server):
    """The interop test service."""

    nonblocking = True
    tls_cert = os.environ.get("PYRPC_INTEROP_TLS_CERT") if TLS_CA else None
    tls_key = os.environ.get("PYRPC_INTEROP_TLS_KEY") if TLS_CA else None

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

    def count(self, n):
        """Streams the items 0 .. n-1."""
        yield from range(n)


# The same nested value as the other peers' echo check.
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


def shape(obj):
    """A text that differs whenever two objects differ in value or in type, at any depth."""
    if isinstance(obj, (list, tuple)):
        return f"{type(obj).__name__}[{', '.join(shape(i) for i in obj)}]"
    if isinstance(obj, (set, frozenset)):
        return f"{type(obj).__name__}{{{', '.join(sorted(shape(i) for i in obj))}}}"
    if isinstance(obj, dict):
        return "dict{" + ", ".join(f"{shape(k)}: {shape(v)}" for k, v in obj.items()) + "}"
    return f"{type(obj).__name__}:{obj!r}"


def nowhere(address):
    """An address of the same kind where surely nobody listens."""
    if isinstance(address, str):
        return address + ".nobody"
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return ("127.0.0.1", port)


def run_checks(address):
    client = PeerClient(address=address)
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
        assert client.connected(timeout=1.0) is True, "connected() is not True"
        info = client.server_info()
        assert info and info.get("nonblocking"), f"server did not announce nonblocking: {info}"
        assert PeerClient(address=nowhere(address)).connected(timeout=0.5) is False, (
            "connected() to an address nobody listens on is not False"
        )
        return f"server {info.get('name') or info.get('peer_name')!r}"

    def call_timeout():
        start = time.monotonic()
        try:
            value = client.sleep(2, call_timeout=0.2)
        except Timeout as exc:
            elapsed = time.monotonic() - start
            assert elapsed < 1.5, f"timed out only after {elapsed:.2f} s"
            return f"Timeout(stage={exc.stage!r}) after {elapsed:.2f} s"
        raise AssertionError(f"sleep(2) with call_timeout=0.2 returned {value!r}")

    def echo():
        got = client.echo(*NESTED_ARGS, **NESTED_KWARGS)
        want = (NESTED_ARGS, NESTED_KWARGS)
        assert shape(got) == shape(want), f"echo returned\n  {shape(got)}\nnot\n  {shape(want)}"

    def remote_exception():
        try:
            value = client.raise_("KeyError", "k")
        except KeyError as exc:
            assert type(exc) is KeyError, f"raised {type(exc).__name__}, not KeyError"
            assert exc.args == ("k",), f"args {exc.args!r}"
            return f"KeyError{exc.args!r}"
        except RemoteError as exc:
            raise AssertionError(f"a builtin KeyError came back as RemoteError: {exc!r}") from None
        raise AssertionError(f"raise_ returned {value!r}")

    def big_bytes():
        n = 3 * 1024 * 1024
        got = client.big(n)
        assert type(got) is bytes and got == b"1" * n, f"got {type(got).__name__} of length {len(got)}"

    def nb_call():
        start = time.monotonic()
        value = client.nb_sleep(0.6, nb_fetch_tick=0.1)
        elapsed = time.monotonic() - start
        assert type(value) is float and value == 0.6, f"returned {value!r}"
        assert elapsed >= 0.6, f"returned after {elapsed:.2f} s, before the call could end"
        return f"returned after {elapsed:.2f} s"

    def stream():
        assert list(client.count(300)) == list(range(300)), "count(300) did not stream 0..299"
        assert list(client.count(0)) == [], "count(0) is not an empty stream"
        for item in client.count(10**9):  # leaving early cancels it on the server
            if item == 2:
                break
        assert client.echo(1) == ((1,), {}), "the client serves on after leaving a stream"
        return "300 items, an empty stream, one left early"

    def shutdown():
        client.shutdown()
        deadline = time.monotonic() + 10
        while PeerClient(address=address).connected(timeout=0.5):
            assert time.monotonic() < deadline, "the server still answers 10 s after shutdown"
            time.sleep(0.05)
        return "acked, server gone"

    check("connected", connected)
    check("timeout", call_timeout)
    check("echo", echo)
    check("exception", remote_exception)
    check("big", big_bytes)
    check("nb", nb_call)
    check("stream", stream)
    check("shutdown", shutdown)
    return all(results)


def main(argv):
    if len(argv) != 3 or argv[1] not in ("serve", "check"):
        print(__doc__, file=sys.stderr)
        return 2
    address = parse_address(argv[2])
    if argv[1] == "serve":
        asyncio.run(serve(InteropServer(address=address)))
        print("pyrpc interop server stopped", flush=True)
        return 0
    return 0 if run_checks(address) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
