"""The server half of pyrpc: :class:`Server`."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Tuple, Type, Union

from . import _processes, _pyrpc
from ._types import safe_repr as _safe_repr
from ._settings import SERVER_SETTINGS, Address, AddressLike, apply, check_address, check_subclass

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

    from ._settings import ServerSettings

logger = logging.getLogger("pyrpc")
class Server:
    """Serves the public methods of an object over TCP or a Unix socket.

    Subclass it and define methods, or assign functions to an instance
    (``server.echo = echo``; methods are looked up on every call), or
    redirect calls to another object with ``callee`` / ``callee_type``.
    Names starting with ``_``, attributes that are not callable, properties
    (whose getters never run for a client) and this class's own machinery
    (``start``, ``log_call``, ...) are never callable remotely; ``connected``
    and ``shutdown`` are built in. ``async def`` methods run on an asyncio
    loop of the server's own (or the caller's, with :meth:`serve`); a client
    that goes away cancels its running coroutine.

    Settings are class attributes, overridable by subclassing or by keyword
    arguments to the constructor::

        server = Server(address='/tmp/echo_server_socket', nonblocking=True)

    An unknown keyword (``nonblokcing=True``) raises ``TypeError`` naming the
    closest setting, as does a subclass attribute that looks like a misspelt
    setting (methods and other callables are never taken for settings). The
    address is checked when the server is made.

    ``with Server(...) as server:`` serves in the background (as
    :meth:`start_in_thread`) for the block and shuts down at its end (as
    :meth:`shutdown_sync`).

    Attributes:
        address: ``(host, port)`` for TCP (host ``''``: all interfaces; port
            0: a free one, see :meth:`bound_address`), or a string or path as
            for :class:`Client` (``'tcp://host:port'``, ``'unix:/path'``, a
            path containing ``/``). Kept in canonical form.
        callee: the object whose methods are served; defaults to
            ``callee_type()`` if that is set, else the server itself.
        callee_type: a class to instantiate as the callee.
        nonblocking: accept non-blocking (``nb_``) calls.
        synchronous: run one call at a time (for callees that are not
            thread-safe); by default calls run concurrently.
        workers: Python worker threads kept for running calls (default 16;
            started as calls need them, ended when the server stops). They
            keep their Python thread state between calls, which saves
            creating one per call. Calls beyond ``workers`` at once still run
            concurrently, on threads attached for that call only; 0 runs
            every call that way. How many calls run at once is bounded by
            the limits below, not by this.
        request_clean_interval: seconds between sweeps of non-blocking results
            nobody fetched.
        retype_exceptions: accepted for compatibility and ignored: exceptions
            always travel as type name, module, args and traceback (never
            pickled), and come back as :class:`RemoteError` when the client
            cannot rebuild their class.
        allow_pickle: accept pickled arguments and pickle results of other
            types (the client must allow pickles too). Unpickling runs
            arbitrary code: allow it only between trusted peers.
        unix_mode: permission bits of the Unix socket file (e.g. ``0o600``);
            None leaves them to the umask.
        secret: a shared secret (``bytes``, or ``str`` taken as UTF-8)
            clients must prove they hold (HMAC-SHA256 challenge-response in
            the hello; the secret never travels); None (the default) lets
            anyone who reaches the socket call. A TCP server on all
            interfaces without one logs a warning on the ``pyrpc`` logger.
        tls_cert, tls_key: TLS on TCP: the certificate chain and its private
            key (PEM file paths). Clients without TLS are refused with an
            error that says the server requires TLS.
        tls_client_ca: with TLS, require client certificates signed by this
            CA bundle (PEM file path): mutual TLS.
        allow_remote_shutdown: whether clients may call ``shutdown()``. None
            (the default): yes on Unix sockets and loopback addresses; on
            other interfaces only clients that proved the ``secret`` or
            presented a client certificate. True: anyone; False: no one. A
            refused shutdown raises :class:`AuthError` in the client and the
            server keeps serving.

    Limits (the defaults are those of the Rust ``ServerConfig``):

    Attributes:
        max_frame_len: the longest frame, in bytes, accepted or sent (default
            640 MiB); announced to clients, which refuse to send longer
            arguments. A result that does not fit (this limit, or the
            client's) is answered with an error (``'FRAME_TOO_LARGE'``)
            instead; the connection and the server carry on.
        max_connections: connections served at once (default 10 000); one
            more is refused (``'OVERLOADED'``) and closed.
        max_in_flight_per_connection: calls of one connection running at once
            (default 256); past it the server reads no more requests from
            that connection until a call finishes.
        max_kept_results: non-blocking results kept at once, running or not
            yet fetched (default 100 000); more are answered ``'OVERLOADED'``.
            With a shared ``result_store``: the calls this server runs at once.
        result_store: where non-blocking results live: None (the default)
            keeps them in this process; ``"redis://host:port/db"`` keeps them
            in Redis, shared by every server using it: a call id submitted to
            several of them runs once, any of them answers the fetch, and a
            call whose server died is reported lost (``RuntimeError``, kind
            ``'CALL_LOST'``). Redis unreachable: ``nb_`` calls fail
            (``'STORE_UNAVAILABLE'``), blocking calls work. See
            docs/guide-scaling.md.
        processes: worker processes serving the address (default 1: this
            process). With N > 1, ``start()`` binds the socket (TCP or Unix)
            and starts N fresh interpreters (``multiprocessing`` spawn; the
            server object must be picklable and its class importable, so
            guard a script's start with ``if __name__ == "__main__":``) that
            share it, each with its own GIL, so CPU-bound methods use N
            cores. A worker that crashes is replaced; ``shutdown()``, a
            client's ``shutdown()``, SIGTERM and Ctrl-C stop them all
            gracefully. Only ``start()`` serves several processes. With
            ``nonblocking=True`` it needs a shared ``result_store`` (else
            ``ValueError``): a fetch may reach another worker.
        result_lease: with a shared ``result_store``, seconds a running
            ``nb_`` call's lease lasts (default 10; renewed every third of
            it): how soon a dead server's calls are reported lost.
        idle_timeout: seconds a connection may stay silent before it is
            closed (default 300); None or 0 for never. Clients reconnect by
            themselves.
        shutdown_grace: seconds running calls get to finish when the server
            shuts down (default 10).
        handshake_timeout: seconds a new connection has to send its hello
            (default 10).
    """

    address: Optional[AddressLike] = None
    callee: Any = None
    callee_type: Optional[type] = None
    nonblocking: bool = False
    synchronous: bool = False
    request_clean_interval: float = 60
    retype_exceptions: bool = False
    allow_pickle: bool = False
    unix_mode: Optional[int] = None
    secret: Optional[Union[bytes, str]] = None
    max_frame_len: int = 640 * 1024 * 1024
    max_connections: int = 10_000
    max_in_flight_per_connection: int = 256
    max_kept_results: int = 100_000
    result_store: Optional[str] = None
    result_lease: float = 10
    processes: int = 1
    idle_timeout: Optional[float] = 300
    shutdown_grace: float = 10
    handshake_timeout: float = 10
    workers: int = 16
    tls_cert: Optional[str] = None
    tls_key: Optional[str] = None
    tls_client_ca: Optional[str] = None
    allow_remote_shutdown: Optional[bool] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        check_subclass(cls, SERVER_SETTINGS, _SERVER_MACHINERY)
        if "address" in vars(cls):
            check_address(cls.__name__, cls.address)

    def __init__(self, address: Optional[AddressLike] = None, **settings: Unpack[ServerSettings]) -> None:
        apply(self, SERVER_SETTINGS, settings)
        self.address = check_address(type(self).__name__, address or self.address)
        if self.callee is None:
            if self.callee_type is not None:
                self.callee = self.callee_type()
            else:
                self.callee = self
        self._pyrpc_core: Optional[_pyrpc.ServerCore] = None

    # ----- running -----

    def _bind(self, event_loop: Any = None, handoff_on_stdin: Any = None) -> "_pyrpc.ServerCore":
        if self._pyrpc_core is not None and self._pyrpc_core.running():
            raise RuntimeError("%s is already running" % type(self).__name__)
        address = check_address(type(self).__name__, self.address)
        if address is None:
            raise ValueError("%s has no address" % type(self).__name__)
        core = _pyrpc.ServerCore(
            self,
            self.callee,
            address,
            nonblocking=bool(self.nonblocking),
            synchronous=bool(self.synchronous),
            request_clean_interval=float(self.request_clean_interval),
            allow_pickle=bool(self.allow_pickle),
            unix_mode=self.unix_mode,
            reserved=_SERVER_MACHINERY if isinstance(self.callee, Server) else None,
            max_frame_len=int(self.max_frame_len),
            max_connections=int(self.max_connections),
            max_in_flight_per_connection=int(self.max_in_flight_per_connection),
            max_kept_results=int(self.max_kept_results),
            result_store=self.result_store,
            result_lease=float(self.result_lease),
            idle_timeout=float(self.idle_timeout or 0),
            shutdown_grace=float(self.shutdown_grace),
            handshake_timeout=float(self.handshake_timeout),
            secret=self.secret,
            workers=int(self.workers),
            tls_cert=self.tls_cert,
            tls_key=self.tls_key,
            tls_client_ca=self.tls_client_ca,
            allow_remote_shutdown=self.allow_remote_shutdown,
        )
        core.bind(event_loop, handoff_on_stdin=handoff_on_stdin)
        self._pyrpc_core = core
        # A server on all interfaces without a secret or client certificates
        # warns through the Rust core's log (the ``pyrpc.server`` logger).
        return core

    def start(self) -> None:
        """Serve until shut down; blocks.

        Ctrl-C (``KeyboardInterrupt``) shuts the server down cleanly (running
        calls get their grace period, the Unix socket file is removed) and then
        propagates. Returns normally after :meth:`shutdown` or a client's
        ``shutdown()``.

        SIGTERM stops it gracefully too (when called from the main thread
        and SIGTERM has no handler of the program's): no new connections,
        running calls get their grace period, then ``start()`` returns.
        With ``processes=N`` (N > 1), serves from N worker processes (see
        the ``processes`` setting); SIGTERM then stops them all.
        """
        if _processes.check(self) > 1:
            _processes.serve(self)
            return
        with _processes.sigterm_stops_gracefully():
            core = self._bind()
            try:
                core.wait()
            except BaseException:
                # Ctrl-C between the bind and the wait (wait() handles the
                # ones after it): stop here too, so the Unix socket file goes.
                core.shutdown_sync()
                raise

    async def serve(self) -> None:
        """Serve from inside asyncio until shut down (``await server.serve()``).

        ``async def`` methods run on the running event loop (the caller's)
        instead of a loop of the server's own; plain methods still run on
        worker threads. Cancelling the awaiting task shuts the server down
        gracefully, then lets ``CancelledError`` propagate.
        """
        loop = asyncio.get_running_loop()
        core = self._bind(event_loop=loop)
        try:
            await core.wait_async(loop)
        except asyncio.CancelledError:
            core.shutdown()
            await core.wait_async(loop)
            raise

    def start_in_thread(self) -> None:
        """Start serving in the background and return once the socket is
        bound, so a client can connect right away. The server runs on the
        pyrpc runtime's threads, not on a Python thread; it stops with
        :meth:`shutdown` or when the process exits."""
        self._bind()

    def shutdown(self, delay: float = 0.1) -> None:
        """Ask the server to stop and return at once (the original waited
        ``delay`` seconds in a thread before stopping; accepted, ignored)."""
        _processes.stop(self)
        core = self._pyrpc_core
        if core is not None:
            core.shutdown()

    def shutdown_sync(self) -> None:
        """Stop the server and return once it stopped and its Unix socket
        file is removed."""
        core = self._pyrpc_core
        if core is not None:
            core.shutdown_sync()

    def __enter__(self) -> Self:
        self.start_in_thread()
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.shutdown_sync()

    def connected(self) -> bool:
        """True: a server that answers is connected (also built in remotely)."""
        return True

    def bound_address(self) -> Optional[Address]:
        """The address the server listens on (with the real port when
        ``address`` asked for port 0), or None when not started."""
        core = self._pyrpc_core
        return None if core is None else core.local_address()

    # ----- hooks (override in subclasses) -----

    def get_call_logging_func(self) -> Optional[Callable[[str], Any]]:
        """Return a function to call with a one-line summary of each call that
        returned (``'echo(args=(1,), kwargs={}) -> ((1,), {})'``), or None."""
        return None

    def get_exception_logging_func(self) -> Optional[Callable[[str], Any]]:
        """Return a function to call with a one-line summary of each call that
        raised, or None."""
        return None

    @staticmethod
    def _summary(ret_or_exc: Any, method: str, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> str:
        prefix = "{}(args={}, kwargs={})".format(method, _safe_repr(args), _safe_repr(kwargs))
        if len(prefix) > 60:
            prefix = prefix[:60] + "...)"
        suffix = " -> {}".format(_safe_repr(ret_or_exc))[: 120 - len(prefix)]
        return prefix + suffix

    def log_call(self, ret: Any, method: str, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
        """Called by the runtime after each call that returned: logs at DEBUG
        on the ``pyrpc`` logger and passes the summary to the call-logging
        function."""
        log = self.get_call_logging_func()
        if log or logger.isEnabledFor(logging.DEBUG):
            msg = self._summary(ret, method, args, kwargs)
            logger.debug("%s", msg)
            if log:
                log(msg)

    def log_exception(self, exc: BaseException, method: str, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
        """Called by the runtime after each call that raised: logs at WARNING
        on the ``pyrpc`` logger and passes the summary to the
        exception-logging function."""
        msg = self._summary(exc, method, args, kwargs)
        logger.warning("%s", msg)
        log = self.get_exception_logging_func()
        if log:
            log(msg)


# The public names of the Server class itself (start, log_call, ...): never
# callable remotely when the callee is a server, unlike the methods subclasses
# add. `connected` and `shutdown` are answered by the runtime before this.
_SERVER_MACHINERY = frozenset(
    name for name in vars(Server) if not name.startswith("_")
)


def cancelled() -> bool:
    """True when the call that the current thread is running (a plain method
    of a :class:`Server`) was cancelled: its caller gave up (timed out, was
    interrupted, cancelled its asyncio task), its deadline passed, or its
    client went away. A long method can check it and stop early; its result
    is not sent anyway. False outside a call. (``async def`` methods get
    ``CancelledError`` at their ``await`` instead.)"""
    return _pyrpc.call_cancelled()
