"""pyrpc: remote procedure calls between Python processes, on a Rust core.

A :class:`Server` serves the public methods of an object (itself, or a
``callee`` it redirects to); a :class:`Client` calls them by name::

    from pyrpc import Client, Server

    class EchoServer(Server):
        address = ('', 50300)  # or a Unix socket path, '/tmp/echo_server_socket'

        def echo(self, *args, **kwargs):
            return args, kwargs

    EchoServer().start()                                   # in one process

    Client(address=('', 50300)).echo(1, foo='foo')         # in another
    # -> ((1,), {'foo': 'foo'})

Addresses: a ``(host, port)`` tuple is TCP (host ``''`` means all interfaces
for a server, the local host for a client); a ``str`` is a Unix socket path.

Values travel with Python's shapes: None, bool, int (any size), float, str,
bytes (a bytearray arrives as bytes), list, tuple, dict, set, frozenset,
nested. Other objects raise ``TypeError`` at the caller, unless both the client
and the server set ``allow_pickle = True``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple, Union

from . import _pyrpc
from ._errors import AuthError, NoSocket, ProtocolError, RemoteError, RpcError, Timeout, TlsError
from ._types import register_type, safe_repr as _safe_repr

__all__ = [
    "Client",
    "Server",
    "RpcError",
    "Timeout",
    "NoSocket",
    "ProtocolError",
    "RemoteError",
    "AuthError",
    "TlsError",
    "MethodInfo",
    "list_methods",
    "stats",
    "register_type",
]

__version__ = _pyrpc.__version__

logger = logging.getLogger("pyrpc")

#: Keyword arguments a call consumes itself; they never reach the server.
CALL_OPTIONS = (
    "call_timeout",
    "socket_connect_timeout",
    "socket_send_timeout",
    "socket_recv_timeout",
    "nb_fetch_tick",
    "nb_fetch_timeout",
    "nolog",
)
_CALL_OPTION_NAMES = frozenset(CALL_OPTIONS)
#: The options that are also Client settings (all but ``nolog``).
_SETTINGS = CALL_OPTIONS[:-1]

# Guards the lazy creation of a client's core. Re-made in a forked child, in
# case another thread of the parent held it at the moment of the fork.
_core_lock = threading.Lock()


def _reset_lock_after_fork() -> None:
    global _core_lock
    _core_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_after_fork)


# ===== Client =====


class _Method:
    """A remote method of a :class:`Client`: calling it calls the server."""

    __slots__ = ("_client", "_name", "_mode")

    def __init__(self, client: "Client", name: str, mode: str) -> None:
        self._client = client
        self._name = name
        self._mode = mode

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._mode == "co":
            return self._client._co_call(self._name, args, kwargs)
        return self._client._call(self._name, args, kwargs, self._mode == "nb")

    def __repr__(self) -> str:
        prefix = "" if self._mode == "call" else self._mode + "_"
        return "<remote method %s%s of %r>" % (prefix, self._name, self._client)


class Client:
    """Calls the methods of a :class:`Server` by name.

    ``client.method(*args, **kwargs)`` calls ``method`` on the server and
    returns its result or raises its exception; ``client.nb_method(...)`` makes
    the call non-blocking (submitted, then polled for, surviving dropped
    connections; the server needs ``nonblocking = True``);
    ``await client.co_method(...)`` makes it from asyncio without blocking the
    event loop.

    Settings are class attributes, overridable by subclassing, by keyword
    arguments to the constructor, or per call (the per-call keywords are
    stripped and never reach the server)::

        client = Client(address=('', 50300), call_timeout=5)
        client.slow(call_timeout=60)

    One client may be shared by threads (their calls run concurrently over one
    connection) and survives ``os.fork()``: the child makes its own connection.

    Attributes:
        address: ``(host, port)`` for TCP (host ``''``: this machine) or a
            Unix socket path.
        call_timeout: seconds a whole call may take, ``None`` for no limit;
            then :class:`Timeout` is raised.
        socket_connect_timeout: seconds connecting (and the hello) may take.
        socket_send_timeout: seconds writing a request may take.
        socket_recv_timeout: accepted for compatibility; replies are read as
            they arrive and only ``call_timeout`` bounds the wait.
        nb_fetch_tick: seconds between polls of a non-blocking call (the
            server holds each poll up to this long, answering as soon as the
            call finishes).
        nb_fetch_timeout: seconds past ``nb_fetch_tick`` a poll may wait for
            its answer before the connection is deemed dead and made again.
        nolog_methods: names of methods whose calls the call-logging hook
            does not see.
        allow_pickle: send other objects pickled, and unpickle pickled
            results (only if the server allows pickles too). Unpickling runs
            arbitrary code: allow it only between trusted peers.
        max_frame_len: the longest reply accepted, in bytes (default 640
            MiB). The server is told in the hello and answers a longer result
            with an error (:class:`RemoteError`, kind ``'FRAME_TOO_LARGE'``)
            instead of sending it. Arguments are bounded by the server's own
            ``max_frame_len``: longer ones raise :class:`ProtocolError`
            before anything is sent.
        secret: the shared secret (``bytes``, or ``str`` taken as UTF-8) of
            a server that requires one; None (the default) for none. A wrong
            or missing secret, or a server that cannot prove it holds the
            same one, raises :class:`AuthError` before any call runs.
        tls_ca: TLS for a TCP address: the CA bundle (PEM file path) the
            server's certificate must be signed by, or True for the system's
            root certificates. TLS is on when any ``tls_*`` setting is given;
            a failed handshake raises :class:`TlsError` saying why.
        tls_cert, tls_key: a client certificate chain and its key (PEM file
            paths), for servers that require one (mutual TLS).
        tls_server_name: the name the server's certificate is checked
            against, instead of the address's host.
    """

    address: Any = None
    call_timeout: Optional[float] = None
    socket_connect_timeout: float = 10
    socket_send_timeout: float = 10
    socket_recv_timeout: float = 0.1
    nb_fetch_timeout: float = 5
    nb_fetch_tick: float = 1
    nolog_methods: Optional[Any] = None
    allow_pickle: bool = False
    max_frame_len: int = 640 * 1024 * 1024
    secret: Optional[Union[bytes, str]] = None
    tls_ca: Optional[Union[str, os.PathLike, bool]] = None
    tls_cert: Optional[Union[str, os.PathLike]] = None
    tls_key: Optional[Union[str, os.PathLike]] = None
    tls_server_name: Optional[str] = None

    def __init__(self, address: Any = None, **kwargs: Any) -> None:
        self.address = address or self.address
        for k, v in kwargs.items():
            setattr(self, k, v)

    def __getattr__(self, name: str) -> _Method:
        # Private and special names are never remote methods: the server
        # refuses them, and probes such as copy's __deepcopy__ must not
        # become network calls.
        if name.startswith("_"):
            raise AttributeError(name)
        if name.startswith("co_"):
            method = _Method(self, name[3:], "co")
        elif name.startswith("nb_"):
            method = _Method(self, name[3:], "nb")
        else:
            method = _Method(self, name, "call")
        # Kept on the instance: the next ``client.name`` is a plain attribute
        # lookup (this method is not called again for it).
        self.__dict__[name] = method
        return method

    def __repr__(self) -> str:
        return "<%s address=%r>" % (type(self).__name__, self.address)

    def __getstate__(self) -> Dict[str, Any]:
        # The connection stays behind: a client sent to another process
        # (multiprocessing with spawn or forkserver) connects anew there.
        state = {k: v for k, v in self.__dict__.items() if not isinstance(v, _Method)}
        state.pop("_pyrpc_core", None)
        state.pop("_pyrpc_core_key", None)
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)

    # ----- hooks (override in subclasses) -----

    def get_call_logging_func(self) -> Optional[Callable[[str], Any]]:
        """Return a function to call with a one-line summary after each
        successful call (``'    method -> repr(result)[:60]'``), or None."""
        return None

    def get_exception_logging_func(self) -> Optional[Callable[[str], Any]]:
        """Return a function to call with a summary and the remote traceback
        when a call raises a remote exception, or None."""
        return None

    def log_call(self, callmsg: Tuple[str, Tuple[Any, ...], Dict[str, Any]], result: Any) -> None:
        """Pass a successful call to the call-logging function, as the
        original pyrpc did (skipping ``nolog_methods`` and ``connected``)."""
        log = self.get_call_logging_func()
        if not log:
            return
        method_name = callmsg[0]
        if self.nolog_methods and method_name in self.nolog_methods:
            return
        if method_name == "connected":
            return
        log("    %s -> %s" % (method_name, _safe_repr(result)[:60]))

    def log_exception(self, msg: str) -> None:
        """Pass an exception summary to the exception-logging function."""
        log = self.get_exception_logging_func()
        if not log:
            return
        log(msg)

    # ----- built-in calls -----

    def connected(self, timeout: float = 0.1) -> bool:
        """True when the server answers within ``timeout`` seconds; False
        (quickly, when nothing listens) otherwise. Never raises."""
        try:
            return self._core().connected(timeout)
        except Exception:
            return False

    def shutdown(self, **kwargs: Any) -> None:
        """Ask the server to shut down. Returns once the server acknowledged
        and stopped answering (or after about a second)."""
        self._options(kwargs)
        core = self._core()
        core.shutdown()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and core.connected(0.05):
            time.sleep(0.02)

    def server_info(self) -> Optional[Dict[str, Any]]:
        """What the server announced when this client last connected
        (``nonblocking``, ``pickle``, ``max_frame_len``, ...), or None before
        the first call."""
        return self._core().server_info()

    # ----- machinery -----

    def _core(self) -> "_pyrpc.ClientCore":
        d = self.__dict__
        core: Optional[_pyrpc.ClientCore] = d.get("_pyrpc_core")
        key = (
            self.address,
            bool(self.allow_pickle),
            int(self.max_frame_len),
            self.secret,
            tuple(_tls_settings(self).values()),
        )
        if core is not None and d.get("_pyrpc_core_key") == key:
            return core
        with _core_lock:
            core = d.get("_pyrpc_core")
            if core is None or d.get("_pyrpc_core_key") != key:
                if self.address is None:
                    raise ValueError("%s has no address" % type(self).__name__)
                core = _pyrpc.ClientCore(
                    self.address,
                    allow_pickle=bool(self.allow_pickle),
                    max_frame_len=int(self.max_frame_len),
                    secret=self.secret,
                    **_tls_settings(self),
                )
                d["_pyrpc_core"] = core
                d["_pyrpc_core_key"] = key
            return core

    def _options(self, kwargs: Dict[str, Any]) -> Tuple[Dict[str, Any], bool]:
        """Strip the per-call options from ``kwargs``; resolve them against
        this client's settings as the original did (a falsy value keeps the
        client's)."""
        if not kwargs or _CALL_OPTION_NAMES.isdisjoint(kwargs):
            # The common case: nothing to strip.
            return {name: getattr(self, name) for name in _SETTINGS}, False
        opts = {}
        for name in _SETTINGS:
            opts[name] = kwargs.pop(name, None) or getattr(self, name)
        nolog = bool(kwargs.pop("nolog", None))
        return opts, nolog

    def _failed(self, method: str, args: Tuple[Any, ...], kwargs: Dict[str, Any], exc: BaseException) -> None:
        tb = getattr(exc, "traceback", "")
        if tb and method != "connected":
            head = "{}: {}(args={}, kwargs={})".format(
                type(self).__name__, method, _safe_repr(args), _safe_repr(kwargs)
            )[:60] + "\n"
            self.log_exception(head + tb)

    def _call(self, method: str, args: Tuple[Any, ...], kwargs: Dict[str, Any], nonblocking: bool) -> Any:
        opts, nolog = self._options(kwargs)
        try:
            ret = self._core().call(method, args, kwargs, nonblocking=nonblocking, **opts)
        except Exception as exc:
            self._failed(method, args, kwargs, exc)
            raise
        if not nolog:
            self.log_call((method, args, kwargs), ret)
        return ret

    async def _co_call(self, method: str, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        opts, nolog = self._options(kwargs)
        loop = asyncio.get_running_loop()
        try:
            ret = await self._core().co_call(loop, method, args, kwargs, **opts)
        except Exception as exc:
            self._failed(method, args, kwargs, exc)
            raise
        if not nolog:
            self.log_call((method, args, kwargs), ret)
        return ret


# ===== Introspection =====
#
# Functions, not Client methods: every attribute of a Client is a remote
# method, and a server may well have its own `stats` or `list_methods`
# (docs/decisions/0003-python-introspection.md).


class MethodInfo(NamedTuple):
    """A method a server serves, as :func:`list_methods` reports it."""

    #: The name to call it by.
    name: str
    #: Its parameters as ``inspect.signature`` writes them, e.g.
    #: ``'(a, b=1, *args)'`` (without ``self``), or None when unknown.
    signature: Optional[str]
    #: Its docstring (``inspect.getdoc``), or None.
    doc: Optional[str]


def list_methods(client: Client) -> List[MethodInfo]:
    """The methods the server of ``client`` serves, sorted by name, then the
    built-ins ``connected`` and ``shutdown``.

    A Python server lists the public callable attributes of its callee (what
    a client may call), with signatures and docstrings; the ``Server``
    machinery (``start``, ``log_call``, ...) is never listed. Raises as a call
    would (:class:`NoSocket`, :class:`Timeout`, ...).
    """
    return [MethodInfo(*m) for m in client._core().list_methods()]


def stats(client: Client) -> Dict[str, Any]:
    """The statistics of the server of ``client``, as a dict:

    ``calls`` (calls with an outcome, refused ones included, except
    ``connected``/``shutdown``), ``errors`` (of those, the failed ones),
    ``in_flight`` (running now), ``kept_results`` (non-blocking results kept),
    ``connections`` (open now, this one included), ``uptime`` (seconds), and
    ``latency_p50``, ``latency_p90``, ``latency_p99``, ``latency_max``
    (seconds; percentiles exact to within 12.5%, 0 before the first call).
    Raises as a call would.
    """
    return client._core().stats()


# ===== Server =====


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

    Attributes:
        address: ``(host, port)`` for TCP (host ``''``: all interfaces; port
            0: a free one, see :meth:`bound_address`) or a Unix socket path.
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
            interfaces without one logs a warning on the ``pyrpc.server`` logger.
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
        idle_timeout: seconds a connection may stay silent before it is
            closed (default 300); None or 0 for never. Clients reconnect by
            themselves.
        shutdown_grace: seconds running calls get to finish when the server
            shuts down (default 10).
        handshake_timeout: seconds a new connection has to send its hello
            (default 10).
    """

    address: Any = None
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
    idle_timeout: Optional[float] = 300
    shutdown_grace: float = 10
    handshake_timeout: float = 10
    workers: int = 16
    tls_cert: Optional[Union[str, os.PathLike]] = None
    tls_key: Optional[Union[str, os.PathLike]] = None
    tls_client_ca: Optional[Union[str, os.PathLike]] = None
    allow_remote_shutdown: Optional[bool] = None

    def __init__(self, address: Any = None, **kwargs: Any) -> None:
        self.address = address or self.address
        for k, v in kwargs.items():
            setattr(self, k, v)
        if self.callee is None:
            if self.callee_type is not None:
                self.callee = self.callee_type()
            else:
                self.callee = self
        self._pyrpc_core: Optional[_pyrpc.ServerCore] = None

    # ----- running -----

    def _bind(self, event_loop: Any = None) -> "_pyrpc.ServerCore":
        if self._pyrpc_core is not None and self._pyrpc_core.running():
            raise RuntimeError("%s is already running" % type(self).__name__)
        if self.address is None:
            raise ValueError("%s has no address" % type(self).__name__)
        core = _pyrpc.ServerCore(
            self,
            self.callee,
            self.address,
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
        core.bind(event_loop)
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
        """
        self._bind().wait()

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
        core = self._pyrpc_core
        if core is not None:
            core.shutdown()

    def shutdown_sync(self) -> None:
        """Stop the server and return once it stopped and its Unix socket
        file is removed."""
        core = self._pyrpc_core
        if core is not None:
            core.shutdown_sync()

    def connected(self) -> bool:
        """True: a server that answers is connected (also built in remotely)."""
        return True

    def bound_address(self) -> Any:
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


def _tls_settings(client: "Client") -> Dict[str, Any]:
    """A client's TLS settings, as ``ClientCore`` takes them."""
    return {
        "tls_ca": client.tls_ca,
        "tls_cert": client.tls_cert,
        "tls_key": client.tls_key,
        "tls_server_name": client.tls_server_name,
    }


# The public names of the Server class itself (start, log_call, ...): never
# callable remotely when the callee is a server, unlike the methods subclasses
# add. `connected` and `shutdown` are answered by the runtime before this.
_SERVER_MACHINERY = frozenset(
    name for name in vars(Server) if not name.startswith("_")
)
