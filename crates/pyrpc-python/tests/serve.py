"""Runs one test server in the foreground: ``python serve.py CONFIG_JSON``.

CONFIG_JSON is ``{"kind": ..., "address": ..., "attrs": {...}}``; a list
address is a (host, port) tuple. The server runs with ``start()`` in the main
thread, so SIGINT stops it as Ctrl-C would.
"""

import asyncio
import builtins
import json
import os
import sys
import threading
import time

from pyrpc import Server

import server_only_errors
import shared_errors
import shared_types  # noqa: F401  (imported so that its records are rebuilt here)

LOG = []


class Unsendable:
    """An object pyrpc cannot send without pickling."""

    def __repr__(self):
        return "<Unsendable>"


class TestServer(Server):
    """The server most tests talk to."""

    nonblocking = True
    value = 42  # an attribute, not callable

    def echo(self, *args, **kwargs):
        return args, kwargs

    def add(self, a, b):
        """Return a + b."""
        return a + b

    def arange(self, n, dtype, shape=None):
        """A numpy array (numpy imported here only: test_ndarray.py)."""
        import numpy

        a = numpy.arange(n).astype(dtype)
        return a.reshape(shape) if shape is not None else a

    def stats(self):
        # Same name as pyrpc.stats(): still an ordinary remote method.
        return "the server's own stats"

    @property
    def prop(self):
        raise RuntimeError("properties are not listed by running them")

    def sleep(self, seconds):
        start = time.time()
        time.sleep(seconds)
        return start, time.time()

    def raise_builtin(self, name, *args):
        raise getattr(builtins, name)(*args)

    def raise_custom(self, *args):
        raise shared_errors.CustomError(*args)

    def raise_server_only(self, *args):
        raise server_only_errors.ServerOnlyError(*args)

    def raise_app_error(self, message, code):
        raise shared_errors.AppError(message, code=code)

    def raise_server_only_app_error(self, message, code):
        raise server_only_errors.ServerOnlyAppError(message, code=code)

    def raise_unconvertible(self):
        raise ValueError(Unsendable(), "plain")

    def bad_result(self):
        return {"ok": [1, Unsendable()]}

    def inner_type_error(self):
        return len(5)

    def big(self, n):
        return b"1" * n

    def pid(self):
        return os.getpid()

    def thread_count(self):
        return threading.active_count()

    def types_of(self, *args, **kwargs):
        return [type(a).__name__ for a in args], {k: type(v).__name__ for k, v in kwargs.items()}

    def touch(self, path):
        """Create the file at path: proof that a call ran."""
        with open(path, "w") as f:
            f.write("ran")
        return True

    def _private(self):
        return "secret"


class LoggingServer(TestServer):
    """Records the original's log summaries; ``logs()`` returns them."""

    def get_call_logging_func(self):
        return lambda msg: LOG.append("call: " + msg)

    def get_exception_logging_func(self):
        return lambda msg: LOG.append("exc: " + msg)

    def logs(self):
        return list(LOG)


class Target:
    """A callee other than the server."""

    def whoami(self):
        return "target"

    def echo(self, *args, **kwargs):
        return "target", args, kwargs


class PickleServer(TestServer):
    allow_pickle = True

    def roundtrip(self, obj):
        return obj

    def make_fraction(self):
        import fractions

        return fractions.Fraction(1, 3)

    def make_deque(self):
        import collections

        return collections.deque([1, 3])

    def bomb(self, path):
        """A result that creates ``path`` when unpickled."""
        return Bomb(path)


class GilServer(TestServer):
    """Holds the GIL on purpose, for the deadline tests (test_deadlines.py)."""

    def hold_gil(self, fifo, seconds):
        """Holds the GIL for ``seconds``, and says so through ``fifo`` once it
        does. libc's write and usleep are called through ctypes.PyDLL, which
        keeps the GIL during the call, and the switch interval (set long by
        main() for this kind) keeps another thread from taking it between
        them: from the byte's arrival on, no other Python code runs here."""
        import ctypes

        libc = ctypes.PyDLL(None)
        fd = os.open(fifo, os.O_WRONLY)  # waits for the reader, GIL released
        try:
            libc.write(fd, b"x", 1)
            libc.usleep(int(seconds * 1_000_000))
        finally:
            os.close(fd)
        return "held"

    def mark(self, path):
        """Creates ``path``: proof that the call ran."""
        with open(path, "w"):
            pass


class Bomb:
    """Creates a file when unpickled: proof that a pickle was loaded."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def echo(*args, **kwargs):
    return args, kwargs


class AsyncServer(Server):
    """``async def`` methods next to plain ones (issue 12, point 1)."""

    nonblocking = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._inside = 0
        self._arrived = None

    async def double(self, x):
        await asyncio.sleep(0)
        return 2 * x

    def plain(self, x):
        return x

    async def fail(self, message):
        await asyncio.sleep(0)
        raise ValueError(message)

    async def rendezvous(self, n):
        """Returns once ``n`` calls are inside at the same time: only calls
        that run concurrently get there (each gives up after 20 s)."""
        if self._arrived is None:
            self._arrived = asyncio.Event()
        self._inside += 1
        if self._inside >= n:
            self._arrived.set()
        await asyncio.wait_for(self._arrived.wait(), 20)
        return self._inside

    async def wait_then_mark(self, path):
        """Waits (long) for nothing; writes what ended it to ``path`` (and
        ``started`` to ``path + ".started"`` once it runs)."""
        with open(path + ".started", "w") as f:
            f.write("started")
        try:
            await asyncio.sleep(600)
            outcome = "finished"
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            with open(path, "w") as f:
                f.write(outcome)

    def spin_until_cancelled(self, path):
        """A plain method that works until ``pyrpc.cancelled()`` says to stop
        (at most 30 s); writes what ended it to ``path``."""
        import pyrpc

        deadline = time.monotonic() + 30
        outcome = "finished"
        while time.monotonic() < deadline:
            if pyrpc.cancelled():
                outcome = "cancelled"
                break
            time.sleep(0.01)
        with open(path, "w") as f:
            f.write(outcome)
        return outcome

    async def where(self):
        import threading

        return threading.current_thread().name


class StreamServer(Server):
    """Generator and async generator methods: streamed replies (issue 12,
    point 2)."""

    nonblocking = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._produced = 0
        self._gate = threading.Event()

    def count(self, n):
        for i in range(n):
            yield i

    async def acount(self, n):
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    def fail_after(self, n):
        for i in range(n):
            yield i
        raise ValueError("boom after %d" % n)

    async def afail_after(self, n):
        for i in range(n):
            yield i
        raise ValueError("boom after %d" % n)

    def endless(self, marker):
        """Yields 0, 1, 2, ... for ever; counts what it produced; writes
        ``marker`` from its ``finally``."""
        self._produced = 0
        i = 0
        try:
            while True:
                yield i
                i += 1
                self._produced = i
        finally:
            with open(marker, "w") as f:
                f.write("closed at %d" % i)

    async def aendless(self, marker):
        self._produced = 0
        i = 0
        try:
            while True:
                await asyncio.sleep(0)
                yield i
                i += 1
                self._produced = i
        finally:
            with open(marker, "w") as f:
                f.write("closed at %d" % i)

    def produced(self):
        return self._produced

    def gated(self):
        """Yields "first", then waits (up to 20 s) for ``open_gate()``."""
        self._gate.clear()
        yield "first"
        yield "opened" if self._gate.wait(20) else "timed out"

    def open_gate(self):
        self._gate.set()

    def bad_item(self):
        yield 1
        yield object()

    def value(self):
        return "a value"


def main():
    config = json.loads(sys.argv[1])
    address = config["address"]
    if isinstance(address, list):
        address = tuple(address)
    attrs = config.get("attrs", {})
    kind = config.get("kind", "test")
    if kind == "test":
        server = TestServer(address=address, **attrs)
    elif kind == "async":
        server = AsyncServer(address=address, **attrs)
    elif kind == "stream":
        server = StreamServer(address=address, **attrs)
    elif kind == "logging":
        server = LoggingServer(address=address, **attrs)
    elif kind == "pickle":
        server = PickleServer(address=address, **attrs)
    elif kind == "gil":
        sys.setswitchinterval(60)
        server = GilServer(address=address, **attrs)
    elif kind == "plain":
        # Methods assigned after construction, as in the original README.
        server = Server(address=address, **attrs)
        server.echo = echo
    elif kind == "callee":
        server = Server(address=address, callee=Target(), **attrs)
    elif kind == "callee_type":

        class Redirected(Server):
            callee_type = Target

            def whoami(self):
                return "server"

        server = Redirected(address=address, **attrs)
    else:
        raise SystemExit("unknown kind %r" % kind)
    try:
        if attrs.get("processes", 1) > 1:
            print("serving " + json.dumps(address), flush=True)
            server.start()
        else:
            # `start()` is `_bind().wait()`; bound first, so that the real
            # address (port 0 asks for a free port) can be told.
            core = server._bind()
            try:
                print("serving " + json.dumps(server.bound_address()), flush=True)
                core.wait()
            except KeyboardInterrupt:
                # A Ctrl-C before wait() began (wait() stops the server on
                # the ones after): stopped here, as start() does.
                core.shutdown_sync()
                raise
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
