"""The Rust core of pyrpc. Use :class:`pyrpc.Client` and :class:`pyrpc.Server`;
these classes are their halves in Rust and may change between versions."""

import asyncio
import os
from typing import Any, Dict, FrozenSet, List, Optional, Tuple, Union, final, type_check_only

from typing_extensions import TypeAlias

__all__ = [
    "ClientCore",
    "MultiClientCore",
    "ServerCore",
    "ConnectionBalancer",
    "__version__",
    "parse_address",
    "cli_main",
    "call_cancelled",
    "_dumps",
    "_loads",
    "StreamIterator",
    "AsyncStreamIterator",
    "Feed",
]

__version__: str

#: ``(host, port)`` for TCP, a ``str`` path for a Unix socket.
_Address: TypeAlias = Union[Tuple[str, int], str]

def parse_address(address: Union[_Address, "os.PathLike[str]"]) -> _Address:
    """Check an address in any of Python's forms and return it in the
    canonical one: ``(host, port)`` for TCP, the path for a Unix socket.
    Strings use the syntax shared with the ``pyrpc`` command
    (``tcp://host:port``, ``host:port``, ``unix:/path``, a path with a
    ``/``). Raises ``ValueError`` (a port out of range, not an address) or
    ``TypeError`` saying what is wrong."""

def _quiesce_at_exit() -> None:
    """The ``atexit`` hook (registered on import): keeps the runtime's threads
    out of Python from now on and waits for those inside to leave."""

def _dumps(obj: Any) -> bytes:
    """The bytes of ``obj`` as a ``pyrpc.v1.Value`` message, as a call sends
    it (for tests and benchmarks; pickles are refused)."""

def _loads(data: bytes) -> Any:
    """The object the bytes of a ``pyrpc.v1.Value`` message decode to, as a
    call's result does (for tests and benchmarks)."""

def cli_main(argv: List[str]) -> int:
    """Run the ``pyrpc`` command with ``argv`` (program name first), printing
    to the process's stdout and stderr; return its exit code."""

@type_check_only
class _ClientCoreBase:
    """What :class:`ClientCore` and :class:`MultiClientCore` both offer (a
    stub-only base: at run time they are unrelated classes)."""

    def limits(self) -> Dict[str, Any]:
        """The limits in force: ``{'max_frame_len': int}``."""
    def call(
        self,
        method: str,
        args: Tuple[Any, ...],
        kwargs: Optional[Dict[str, Any]] = None,
        nonblocking: bool = False,
        call_timeout: Optional[float] = None,
        socket_connect_timeout: Optional[float] = None,
        socket_send_timeout: Optional[float] = None,
        socket_recv_timeout: Optional[float] = None,
        nb_fetch_tick: Optional[float] = None,
        nb_fetch_timeout: Optional[float] = None,
    ) -> Any:
        """Call ``method(*args, **kwargs)`` on the server (non-blocking:
        submit, then poll) and return its result, with the GIL released while
        waiting. Timeouts are seconds; ``call_timeout`` None or 0 means no
        limit, the other Nones keep the defaults.

        Raises the remote exception, ``pyrpc.Timeout``, ``pyrpc.NoSocket``,
        ``pyrpc.ProtocolError``, ``pyrpc.RemoteError``, or ``TypeError`` for
        arguments that cannot be sent."""
    def co_call(
        self,
        event_loop: asyncio.AbstractEventLoop,
        method: str,
        args: Tuple[Any, ...],
        kwargs: Optional[Dict[str, Any]] = None,
        *,
        nonblocking: bool = False,
        call_timeout: Optional[float] = None,
        socket_connect_timeout: Optional[float] = None,
        socket_send_timeout: Optional[float] = None,
        socket_recv_timeout: Optional[float] = None,
        nb_fetch_tick: Optional[float] = None,
        nb_fetch_timeout: Optional[float] = None,
    ) -> "asyncio.Future[Any]":
        """As :meth:`call`, but return at once a future of ``event_loop``
        completed with the result. Cancelling the future cancels the call."""
    def connected(self, timeout: float = 0.1) -> bool:
        """True when the server (any, over several) answers a ping within
        ``timeout`` seconds."""
    def shutdown(self) -> None:
        """Ask the server (every one, over several) to shut down."""
    def list_methods(self) -> List[Tuple[str, Optional[str], Optional[str]]]:
        """The server's methods (one that answers, over several) as
        ``(name, signature, doc)``, sorted by name, the built-ins
        ``connected`` and ``shutdown`` last. Raises as :meth:`call` does."""
    def stats(self) -> Dict[str, Any]:
        """The server's statistics (one that answers, over several):
        ``calls``, ``errors``, ``in_flight``, ``kept_results``,
        ``connections`` (ints), ``uptime``,
        ``latency_p50``, ``latency_p90``, ``latency_p99``, ``latency_max``
        (seconds). Raises as :meth:`call` does."""
    def server_info(self) -> Optional[Dict[str, Any]]:
        """What the server (the first met, over several) announced in its
        last hello, or None before the first connection."""

@final
class ClientCore(_ClientCoreBase):
    """One connection to a server, shared by threads and tasks, re-made after
    ``fork()``. Connects on first use."""

    def __new__(
        cls,
        address: Union[_Address, "os.PathLike[str]"],
        *,
        allow_pickle: bool = False,
        name: Optional[str] = None,
        max_frame_len: Optional[int] = None,
        secret: Optional[Union[bytes, str]] = None,
        tls_ca: Optional[Union[str, "os.PathLike[str]", bool]] = None,
        tls_cert: Optional[Union[str, "os.PathLike[str]"]] = None,
        tls_key: Optional[Union[str, "os.PathLike[str]"]] = None,
        tls_server_name: Optional[str] = None,
    ) -> "ClientCore":
        """Prepare a client of the server at ``address``. ``allow_pickle``
        sends other objects pickled (if the server allows) and unpickles
        pickled results. ``name`` is announced in the hello.
        ``max_frame_len`` is the longest reply accepted, in bytes; None keeps
        the Rust ``ClientConfig`` default (640 MiB). ``secret`` (bytes, or
        str as UTF-8; not empty) answers the server's challenge; a refusal
        either way raises ``pyrpc.AuthError``."""
    @property
    def address(self) -> _Address:
        """The server's address."""

@final
class MultiClientCore(_ClientCoreBase):
    """A client over several servers (``pyrpc.Client(address=[a, b, c])``):
    calls spread over those that answer, a refusing one skipped with
    backoff, non-blocking calls followed to any server that knows them."""

    def __new__(
        cls,
        addresses: List[Union[_Address, "os.PathLike[str]"]],
        *,
        allow_pickle: bool = False,
        name: Optional[str] = None,
        max_frame_len: Optional[int] = None,
        secret: Optional[Union[bytes, str]] = None,
        tls_ca: Optional[Union[str, "os.PathLike[str]", bool]] = None,
        tls_cert: Optional[Union[str, "os.PathLike[str]"]] = None,
        tls_key: Optional[Union[str, "os.PathLike[str]"]] = None,
        tls_server_name: Optional[str] = None,
    ) -> "MultiClientCore":
        """As :class:`ClientCore`, over ``addresses`` (not empty)."""
    @property
    def address(self) -> List[_Address]:
        """The servers' addresses."""
    def served(self) -> List[int]:
        """How many calls each server answered, in address order."""
    def call(
        self,
        method: str,
        args: Tuple[Any, ...],
        kwargs: Optional[Dict[str, Any]] = None,
        nonblocking: bool = False,
        call_timeout: Optional[float] = None,
        socket_connect_timeout: Optional[float] = None,
        socket_send_timeout: Optional[float] = None,
        socket_recv_timeout: Optional[float] = None,
        nb_fetch_tick: Optional[float] = None,
        nb_fetch_timeout: Optional[float] = None,
        idempotent: bool = False,
    ) -> Any:
        """As :meth:`ClientCore.call` on one of the servers; ``idempotent``
        lets a blocking call run again on the next server after a broken
        connection."""
    def co_call(
        self,
        event_loop: asyncio.AbstractEventLoop,
        method: str,
        args: Tuple[Any, ...],
        kwargs: Optional[Dict[str, Any]] = None,
        *,
        nonblocking: bool = False,
        idempotent: bool = False,
        call_timeout: Optional[float] = None,
        socket_connect_timeout: Optional[float] = None,
        socket_send_timeout: Optional[float] = None,
        socket_recv_timeout: Optional[float] = None,
        nb_fetch_tick: Optional[float] = None,
        nb_fetch_timeout: Optional[float] = None,
    ) -> "asyncio.Future[Any]":
        """As :meth:`call`, returning a future of ``event_loop``."""

@final
class ServerCore:
    """A server of ``callee``'s methods at ``address``, running on the pyrpc
    runtime once bound."""

    def __new__(
        cls,
        server: Any,
        callee: Any,
        address: _Address,
        *,
        nonblocking: bool = False,
        synchronous: bool = False,
        request_clean_interval: float = 60.0,
        allow_pickle: bool = False,
        unix_mode: Optional[int] = None,
        reserved: Optional[FrozenSet[str]] = None,
        max_frame_len: Optional[int] = None,
        max_connections: Optional[int] = None,
        max_in_flight_per_connection: Optional[int] = None,
        max_kept_results: Optional[int] = None,
        idle_timeout: Optional[float] = None,
        shutdown_grace: Optional[float] = None,
        handshake_timeout: Optional[float] = None,
        secret: Optional[Union[bytes, str]] = None,
        workers: int = 16,
        tls_cert: Optional[Union[str, "os.PathLike[str]"]] = None,
        tls_key: Optional[Union[str, "os.PathLike[str]"]] = None,
        tls_client_ca: Optional[Union[str, "os.PathLike[str]"]] = None,
        allow_remote_shutdown: Optional[bool] = None,
        result_store: Optional[str] = None,
        result_lease: Optional[float] = None,
    ) -> "ServerCore":
        """Prepare a server. ``server`` receives ``log_call(ret, method, args,
        kwargs)`` and ``log_exception(exc, method, args, kwargs)`` after each
        call; names in ``reserved`` are never served.

        The limits (see ``pyrpc.Server``) left None keep the defaults of the
        Rust ``ServerConfig``; ``idle_timeout=0`` means no idle timeout.
        Counts and sizes must be at least 1 (``ValueError``). With
        ``secret`` (bytes, or str as UTF-8; not empty) clients must prove
        they hold it. ``workers`` Python threads that keep their thread
        state run calls (0: every call on a thread attached for it only).
        ``result_store`` (e.g. ``"redis://127.0.0.1:6379/0"``) keeps
        non-blocking results in a shared store, with leases of
        ``result_lease`` seconds."""
    def limits(self) -> Dict[str, Any]:
        """The limits in force: ``max_frame_len``, ``max_connections``,
        ``max_in_flight_per_connection``, ``max_kept_results`` (ints),
        ``idle_timeout`` (seconds or None), ``shutdown_grace``,
        ``handshake_timeout``, ``request_clean_interval`` (seconds)."""
    def bind(
        self,
        event_loop: Optional[asyncio.AbstractEventLoop] = None,
        handoff_on_stdin: Optional[_Address] = None,
    ) -> None:
        """Bind the address and serve in the background; return once the
        socket listens. Raises ``OSError`` if the address cannot be bound.
        ``async def`` methods run on ``event_loop`` when given, else on an
        event loop the server starts in a thread of its own. With
        ``handoff_on_stdin`` (the address a supervisor listens on), serve
        the connections it hands over through the channel on fd 0."""
    def wait_async(self, event_loop: asyncio.AbstractEventLoop) -> "asyncio.Future[None]":
        """A future of ``event_loop`` that completes once the server stopped."""
    def wait(self) -> None:
        """Block until the server stopped. On Ctrl-C, shut it down gracefully,
        then let ``KeyboardInterrupt`` propagate."""
    def shutdown(self) -> None:
        """Start a graceful shutdown; return at once."""
    def shutdown_sync(self) -> None:
        """Shut down; return once stopped and the Unix socket file removed."""
    def running(self) -> bool:
        """True while the server runs in this process."""
    def local_address(self) -> Optional[_Address]:
        """The address listened on (the real port for port 0), or None."""

@final
class ConnectionBalancer:
    """The supervisor's side of ``Server(processes=N)``: binds the address,
    accepts, and hands each connection to the worker with the fewest open
    connections."""
    def __new__(
        cls, address: _Address, workers: int, unix_mode: Optional[int] = None
    ) -> "ConnectionBalancer": ...
    def attach(self, i: int) -> int:
        """A new channel for worker ``i``: the fd of the worker's end."""
    def open_counts(self) -> List[Optional[int]]:
        """Open connections per worker as last reported (None: not ready
        yet, or gone)."""
    def local_address(self) -> _Address:
        """The address bound (the real port for port 0)."""
    def close(self) -> None:
        """Stop accepting and close the listener."""

def call_cancelled() -> bool:
    """True when the plain method this thread runs for a server was cancelled
    (caller gave up, deadline passed, client gone); see ``pyrpc.cancelled``."""

@final
class StreamIterator:
    """The items of a streamed reply, for a blocking ``for`` loop (what a
    blocking call of a generator method returns). Closing or dropping it
    before the end stops the generator on the server."""

    def __iter__(self) -> "StreamIterator": ...
    def __next__(self) -> Any: ...
    def close(self) -> None:
        """Stop the stream now (the server closes its generator)."""

@final
class AsyncStreamIterator:
    """The items of a streamed reply of a ``co_`` call (see ``_stream.AsyncStream``)."""

    def try_next(self) -> Tuple[bool, Any]:
        """``(True, item)`` when an item has arrived, ``(False, None)`` when
        none has; raises ``StopAsyncIteration`` at the end, or the error that
        ended the stream."""
    def next_future(self, event_loop: asyncio.AbstractEventLoop) -> "asyncio.Future[Any]":
        """A future of ``event_loop`` completed with the next item."""
    def close(self) -> None:
        """Stop the stream now (the server cancels its generator)."""

@final
class Feed:
    """The sending end of a served async generator's stream (``_stream.drive``)."""

    def push(self, item: Any) -> int:
        """1: sent; 0: no room yet (see ``when_room``); -1: the client left."""
    def fail(self, exc: BaseException) -> int:
        """End the stream with ``exc``; as :meth:`push`."""
    def when_room(self, event_loop: asyncio.AbstractEventLoop, callback: Any) -> None:
        """Call ``callback()`` through ``event_loop`` once there is room."""
    def close(self) -> None:
        """End the stream (the generator finished)."""
