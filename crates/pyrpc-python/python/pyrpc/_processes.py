"""``Server(processes=N)``: N worker processes serving one address.

The parent (the supervisor) binds the address (TCP or Unix) and starts N
workers with ``multiprocessing``'s *spawn* method: each is a fresh
interpreter (no ``fork()`` of a process that runs a tokio runtime and
threads; see docs/decisions/0081-server-processes.md) and receives the
server object (pickled) and its end of a hand-off channel. The supervisor's
Rust core accepts every connection (on the pyrpc runtime, without the GIL)
and hands it to the worker with the fewest open connections; the worker
serves it as one of its own: TLS, limits, hello and authentication
(docs/decisions/0084-balanced-hand-off.md).

The parent supervises: a worker that dies with an error (a crash, a kill) is
replaced; a worker that stops cleanly (a client's ``shutdown()``) stops them
all; ``server.shutdown()``, SIGTERM and Ctrl-C stop accepting, send SIGTERM
to every worker, each shuts down gracefully (``shutdown_grace``), and the
Unix socket file is removed.
"""

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import threading
import time
from typing import Any, Dict, Iterator, Optional

from . import _pyrpc

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


def worker_main(server: Any, channel: socket.socket, local_address: Any) -> None:
    """A worker: serves the connections the supervisor hands over through
    ``channel`` (the supervisor listens at ``local_address``) until stopped.
    SIGTERM and SIGINT shut it down gracefully."""
    signal.signal(signal.SIGTERM, _terminate)
    # The Rust core takes the channel from file descriptor 0 (see
    # ServerCore.bind); stdin is put back right after.
    saved = os.dup(0)
    try:
        os.dup2(channel.fileno(), 0)
        core = server._bind(handoff_on_stdin=local_address)
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        channel.close()
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
        self.balancer: Optional[_pyrpc.ConnectionBalancer] = None

    def stop(self) -> None:
        """Asks the supervisor to stop every worker (from any thread)."""
        self.stopping.set()

    def run(self) -> None:
        server = self.server
        ctx = multiprocessing.get_context("spawn")
        # Binds now: a taken port or socket path fails here, in the caller.
        balancer = self.balancer = _pyrpc.ConnectionBalancer(
            server.address, self.n, server.unix_mode
        )
        workers: Dict[int, Any] = {}
        started: Dict[int, float] = {}
        old_handler = None
        in_main = threading.current_thread() is threading.main_thread()
        if in_main:
            old_handler = signal.signal(signal.SIGTERM, lambda *_: self.stop())
        interrupted = False
        try:
            for i in range(self.n):
                workers[i] = self._spawn(ctx, i)
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
                    workers[i] = self._spawn(ctx, i)
                    started[i] = time.monotonic()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            # Stop accepting first (this removes the Unix socket file), so
            # no connection is handed to a worker that is stopping.
            balancer.close()
            self._stop_all(workers)
            if in_main:
                signal.signal(signal.SIGTERM, old_handler)
        if interrupted:
            raise KeyboardInterrupt

    def _spawn(self, ctx: Any, i: int) -> Any:
        assert self.balancer is not None
        # A new channel: the balancer counts this worker's connections from 0.
        channel = socket.socket(fileno=self.balancer.attach(i))
        try:
            p = ctx.Process(
                target=worker_main,
                args=(self.server, channel, self.balancer.local_address()),
                name="pyrpc-worker-%d" % i,
                daemon=False,
            )
            p.start()
        finally:
            # The worker has its own copy now; ours would keep the channel
            # open after the worker died.
            channel.close()
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
