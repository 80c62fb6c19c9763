"""``Server(processes=N)``: N worker processes serving one listening socket.

The parent binds the socket (TCP or Unix) and starts N workers with
``multiprocessing``'s *spawn* method: each is a fresh interpreter (no
``fork()`` of a process that runs a tokio runtime and threads; see
docs/decisions/0081-server-processes.md), receives the server object
(pickled) and the listening socket, and serves it with its own runtime and
GIL. The kernel spreads incoming connections over the workers' ``accept``.

The parent supervises: a worker that dies with an error (a crash, a kill) is
replaced; a worker that stops cleanly (a client's ``shutdown()``) stops them
all; ``server.shutdown()``, SIGTERM and Ctrl-C send SIGTERM to every worker,
each shuts down gracefully (``shutdown_grace``), and the parent removes the
Unix socket file.
"""

import contextlib
import errno
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import stat
import sys
import threading
import time
from typing import Any, Dict, Iterator, Optional

logger = logging.getLogger("pyrpc")

#: A worker that died sooner than this after its start is replaced only after
#: this long (so a worker that crashes at once does not spin).
RESTART_BACKOFF = 1.0


def check(server: Any) -> int:
    """The number of processes asked for, refused when it cannot work."""
    n = int(server.processes)
    if n < 1:
        raise ValueError("processes must be at least 1, got %d" % n)
    if n > 1 and server.nonblocking and not server.result_store:
        raise ValueError(
            "processes=%d with nonblocking=True needs a shared result_store "
            "(e.g. result_store='redis://127.0.0.1:6379/0'): a non-blocking call's "
            "fetch may reach another worker process, which would not know it" % n
        )
    return n


#: TCP workers each listen on their own socket in one SO_REUSEPORT group
#: (Linux): the kernel spreads new connections over them by a hash of the
#: addresses. With one shared listening socket, the worker that wakes first
#: drains the accept queue: measured, 8 clients connecting at once all landed
#: on one of 2 workers (docs/decisions/0083-reuseport-workers.md).
REUSEPORT = hasattr(socket, "SO_REUSEPORT") and sys.platform.startswith("linux")


def bind_socket(address: Any, unix_mode: Optional[int], listen: bool = True) -> socket.socket:
    """A socket bound at ``address``, listening unless ``listen`` is false.
    A TCP socket joins the ``SO_REUSEPORT`` group of its port when
    :data:`REUSEPORT`."""
    if isinstance(address, tuple):
        host, port = address
        if host in ("", None):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            target: Any = ("0.0.0.0", port)
        else:
            family, kind, proto, _, target = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
            sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if REUSEPORT:
            _check_port_free(sock, target)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    else:
        _clear_stale_socket(address)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target = address
    try:
        sock.bind(target)
        if unix_mode is not None and not isinstance(address, tuple):
            os.chmod(address, unix_mode)
        if listen:
            sock.listen(1024)
    except BaseException:
        sock.close()
        raise
    return sock


def _check_port_free(like: socket.socket, target: Any) -> None:
    """Raises ``EADDRINUSE`` when something already listens at ``target``.
    Sockets with ``SO_REUSEPORT`` share a port silently, so a second server
    started there by mistake would join the first one's group; a probe bound
    without the option fails instead, as a plain bind would."""
    probe = socket.socket(like.family, like.type, like.proto)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(target)
    finally:
        probe.close()


def _clear_stale_socket(path: str) -> None:
    """Removes a socket file nobody listens on; refuses any other file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(errno.EEXIST, "%s exists and is not a socket" % path)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)
        return
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, "a server already listens on %s" % path)


#: The supervisors running, by ``id()`` of their server (not an attribute of
#: the server: the server is pickled into each worker).
_RUNNING: Dict[int, "Supervisor"] = {}


def serve(server: Any) -> None:
    """Runs ``server`` in ``server.processes`` workers until stopped."""
    supervisor = Supervisor(server, check(server))
    _RUNNING[id(server)] = supervisor
    try:
        supervisor.run()
    finally:
        _RUNNING.pop(id(server), None)


def stop(server: Any) -> None:
    """Stops the workers of ``server``, if it runs several."""
    supervisor = _RUNNING.get(id(server))
    if supervisor is not None:
        supervisor.stop()


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


class _Terminated(KeyboardInterrupt):
    """SIGTERM in a one-process server: raised where ``start()`` waits, so
    the server shuts down as for Ctrl-C (stop accepting, let running calls
    finish within ``shutdown_grace``), then ``start()`` returns."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated


@contextlib.contextmanager
def sigterm_stops_gracefully() -> Iterator[None]:
    """Within the block, SIGTERM stops a one-process server gracefully, as
    it stops the workers of ``processes=N``; the block then ends normally.
    Only in the main thread, and only when SIGTERM has Python's default
    disposition (a handler of the program's own is left alone)."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    except _Terminated:
        logger.info("pyrpc server: SIGTERM; stopped gracefully")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _own_listener(sock: socket.socket) -> socket.socket:
    """A listening socket of this worker in the ``SO_REUSEPORT`` group of
    ``sock`` (bound by the supervisor, not listening: it only holds the
    port)."""
    own = socket.socket(sock.family, sock.type, sock.proto)
    try:
        own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        own.bind(sock.getsockname())
        own.listen(1024)
    except BaseException:
        own.close()
        raise
    return own


def worker_main(server: Any, sock: socket.socket, reuseport: bool = False) -> None:
    """A worker: serves the inherited socket (or, with ``reuseport``, its
    own socket on the inherited one's port) until stopped. SIGTERM and
    SIGINT shut it down gracefully."""
    signal.signal(signal.SIGTERM, _terminate)
    if reuseport:
        held = sock
        sock = _own_listener(held)
        held.close()
    # The Rust core takes the listener from file descriptor 0 (see
    # ServerCore.bind); stdin is put back right after.
    saved = os.dup(0)
    try:
        os.dup2(sock.fileno(), 0)
        core = server._bind(listener_on_stdin=True)
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        sock.close()
    # A worker outlives no supervisor (killed with SIGKILL, say): it shuts
    # down when its parent is gone.
    parent = multiprocessing.parent_process()
    if parent is not None:

        def orphaned() -> None:
            multiprocessing.connection.wait([parent.sentinel])
            core.shutdown()

        threading.Thread(target=orphaned, name="pyrpc-parent-watch", daemon=True).start()
    try:
        core.wait()
    except KeyboardInterrupt:
        pass


class Supervisor:
    """Starts, watches and stops the workers of one server."""

    def __init__(self, server: Any, n: int) -> None:
        self.server = server
        self.n = n
        self.stopping = threading.Event()
        self.pids: Dict[int, int] = {}
        self.reuseport = False

    def stop(self) -> None:
        """Asks the supervisor to stop every worker (from any thread)."""
        self.stopping.set()

    def run(self) -> None:
        server = self.server
        ctx = multiprocessing.get_context("spawn")
        # TCP with SO_REUSEPORT: the supervisor only holds the port; each
        # worker listens on its own socket of the group.
        self.reuseport = REUSEPORT and isinstance(server.address, tuple)
        sock = bind_socket(server.address, server.unix_mode, listen=not self.reuseport)
        workers: Dict[int, Any] = {}
        started: Dict[int, float] = {}
        old_handler = None
        in_main = threading.current_thread() is threading.main_thread()
        if in_main:
            old_handler = signal.signal(signal.SIGTERM, lambda *_: self.stop())
        interrupted = False
        try:
            for i in range(self.n):
                workers[i] = self._spawn(ctx, sock, i)
                started[i] = time.monotonic()
            logger.info("pyrpc server at %r: %d worker processes", server.address, self.n)
            while not self.stopping.is_set():
                sentinels = [p.sentinel for p in workers.values()]
                multiprocessing.connection.wait(sentinels, timeout=0.1)
                for i, p in list(workers.items()):
                    if p.exitcode is None:
                        continue
                    if p.exitcode == 0:
                        # A clean stop (a client's shutdown()): stop them all.
                        self.stop()
                        break
                    logger.warning(
                        "pyrpc worker %d (pid %s) exited with %s; starting a new one",
                        i, p.pid, p.exitcode,
                    )
                    wait = started[i] + RESTART_BACKOFF - time.monotonic()
                    if wait > 0 and self.stopping.wait(wait):
                        break
                    workers[i] = self._spawn(ctx, sock, i)
                    started[i] = time.monotonic()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            self._stop_all(workers)
            sock.close()
            if not isinstance(server.address, tuple):
                try:
                    os.unlink(server.address)
                except OSError:
                    pass
            if in_main:
                signal.signal(signal.SIGTERM, old_handler)
        if interrupted:
            raise KeyboardInterrupt

    def _spawn(self, ctx: Any, sock: socket.socket, i: int) -> Any:
        p = ctx.Process(
            target=worker_main,
            args=(self.server, sock, self.reuseport),
            name="pyrpc-worker-%d" % i,
            daemon=False,
        )
        p.start()
        self.pids[i] = p.pid
        return p

    def _stop_all(self, workers: Dict[int, Any]) -> None:
        for p in workers.values():
            if p.exitcode is None:
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + float(self.server.shutdown_grace) + 5
        for p in workers.values():
            p.join(max(0.0, deadline - time.monotonic()))
            if p.exitcode is None:
                logger.warning("pyrpc worker pid %s did not stop in time; killing it", p.pid)
                p.kill()
                p.join()
