"""The client half of pyrpc: :class:`Client`, the remote methods it hands
out, closing, and the introspection functions."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import operator
import os
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Collection, Dict, List, NamedTuple, Optional, Tuple, Type, Union

from . import _pyrpc
from ._stream import CoCall, not_a_value
from ._types import safe_repr as _safe_repr
from ._settings import CLIENT_SETTINGS, ClientAddressLike, apply, check_client_address, check_subclass

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

    from ._settings import ClientSettings

logger = logging.getLogger("pyrpc")

#: A per-call ``call_timeout`` meaning "no limit for this call", even on a
#: client that has one: ``client.slow(call_timeout=pyrpc.NO_TIMEOUT)``.
NO_TIMEOUT: float = math.inf

#: Keyword arguments a call consumes itself; they never reach the server.
CALL_OPTIONS = (
    "call_timeout",
    "socket_connect_timeout",
    "socket_send_timeout",
    "socket_recv_timeout",
    "nb_fetch_tick",
    "nb_fetch_timeout",
    "nolog",
    "idempotent",
)
_CALL_OPTION_NAMES = frozenset(CALL_OPTIONS)
#: The options that are also Client settings (all but ``nolog`` and
#: ``idempotent``).
_SETTINGS = CALL_OPTIONS[:-2]
#: A client's settings of every call, as a tuple in ``ClientCore.call``'s
#: positional order: one C call instead of six attribute loads.
_settings_of = operator.attrgetter(*_SETTINGS)
#: The settings a client's core is made with (see ``Client._core``).
_core_key_of = operator.attrgetter(
    "address", "allow_pickle", "max_frame_len", "secret", "tls_ca", "tls_cert", "tls_key", "tls_server_name"
)

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
    """A remote method of a :class:`Client`: calling it calls the server.

    One subclass per call mode (plain, ``nb_``, ``co_``, ``co_nb_``), so a
    call does not dispatch on the mode; made by :func:`_method` without an
    ``__init__`` frame. Nothing here is kept on the client (see
    ``Client.__getattr__``)."""

    __slots__ = ("_client", "_name")
    _client: "Client"
    _name: str

    #: The attribute-name prefix of this mode, for ``repr``.
    _prefix = ""

    def __new__(cls, client: "Client", name: str, mode: str = "call") -> "_Method":
        """The remote method ``name`` of ``client`` called in ``mode``
        (``'call'``, ``'nb'``, ``'co'`` or ``'co_nb'``)."""
        m = _new_object(_MODES[mode])
        m._client = client
        m._name = name
        return m

    def __repr__(self) -> str:
        return "<remote method %s%s of %r>" % (self._prefix, self._name, self._client)


class _Call(_Method):
    """``client.method(...)``: a blocking call."""

    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # The hot path of every plain call, written out here rather than
        # through ``Client._call`` and ``Client._core`` (each a Python frame,
        # measurable against the ~50 us of the rest of a call on CPython
        # 3.11): the client's core when its settings did not change, the
        # settings by position, and the call hooks only when overridden.
        client = self._client
        if kwargs and not _CALL_OPTION_NAMES.isdisjoint(kwargs):
            return client._call_with_options(self._name, args, kwargs, False)
        d = client.__dict__
        core = d.get("_pyrpc_core")
        if core is None or d.get("_pyrpc_core_key") != _core_key_of(client):
            # First call, settings changed, or a list of addresses (whose key
            # is kept as a tuple): ``_core`` sorts it out.
            core = client._core()
        try:
            ret = core.call(self._name, args, kwargs, False, *_settings_of(client))
        except Exception as exc:
            client._failed(self._name, args, kwargs, exc)
            raise
        cls = type(client)
        if (
            cls.log_call is not _DEFAULT_LOG_CALL
            or cls.get_call_logging_func is not _DEFAULT_CALL_LOGGER
            or "log_call" in d
            or "get_call_logging_func" in d
        ) and not isinstance(ret, _pyrpc.StreamIterator):
            client.log_call((self._name, args, kwargs), ret)
        return ret


class _NbCall(_Method):
    """``client.nb_method(...)``: a non-blocking call, polled for."""

    __slots__ = ()
    _prefix = "nb_"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._client._call(self._name, args, kwargs, True)


class _CoCall(_Method):
    """``client.co_method(...)``: a call from asyncio."""

    __slots__ = ()
    _prefix = "co_"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._client._co(self._name, args, kwargs, False)


class _CoNbCall(_Method):
    """``client.co_nb_method(...)``: a non-blocking call from asyncio."""

    __slots__ = ()
    _prefix = "co_nb_"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._client._co(self._name, args, kwargs, True)


_MODES: Dict[str, Type[_Method]] = {"call": _Call, "nb": _NbCall, "co": _CoCall, "co_nb": _CoNbCall}


class _RemoteName:
    """A class attribute standing for the remote method a name calls:
    ``client.echo`` then finds it on the class instead of failing the
    ordinary lookup first (on CPython 3.11 that failure builds and drops an
    ``AttributeError`` with its message, ~1.8 us, before ``__getattr__``
    runs: a measurable part of a call). ``Client.__getattr__`` installs one
    per name it is asked for (see there). It holds no client, so it makes no
    reference cycle; like ``__getattr__``, it yields to anything the
    instance holds under that name (it is not a data descriptor)."""

    __slots__ = ("_name", "_kind", "_attr")
    _name: str
    _kind: Type[_Method]
    _attr: str

    def __init__(self, attr: str, name: str, kind: Type[_Method]) -> None:
        self._attr = attr
        self._name = name
        self._kind = kind

    def __get__(self, obj: Optional["Client"], owner: Optional[type] = None) -> Any:
        if obj is None:
            # On the class itself there is no remote method, as before.
            raise AttributeError(self._attr)
        if type(obj).__getattr__ is not _CLIENT_GETATTR:
            # A subclass with its own ``__getattr__`` decides (it may say
            # something else than this base class would).
            return type(obj).__getattr__(obj, self._attr)
        m = _new_object(self._kind)
        m._client = obj
        m._name = self._name
        return m


#: At most this many attributes in a class's namespace for
#: ``Client.__getattr__`` to add a :class:`_RemoteName` to it: a program
#: calling methods of many made-up names stays on ``__getattr__`` past it.
_CLASS_NAMES_MAX = 1024


def _install(cls: "Type[Client]", attr: str, split: Tuple[str, Type[_Method]]) -> None:
    """Adds a :class:`_RemoteName` for ``attr`` to ``cls`` unless any class
    of its MRO has that name (a property that raised ``AttributeError``
    must stay), or ``cls`` overrides ``__getattr__``."""
    if cls.__getattr__ is not _CLIENT_GETATTR or len(cls.__dict__) >= _CLASS_NAMES_MAX:
        return
    for klass in cls.__mro__:
        if attr in klass.__dict__:
            return
    type.__setattr__(cls, attr, _RemoteName(attr, split[0], split[1]))


def _split(name: str) -> Tuple[str, Type[_Method]]:
    """A remote method's name and call mode, from the attribute name's
    prefix (``co_nb_``, ``co_``, ``nb_``)."""
    if name.startswith("co_"):
        if name.startswith("co_nb_"):
            return name[6:], _CoNbCall
        return name[3:], _CoCall
    if name.startswith("nb_"):
        return name[3:], _NbCall
    return name, _Call


#: ``_split`` of the attribute names seen so far (a program uses a few
#: dozen); at most ``_SPLIT_MAX``, past which names are split every time.
_SPLITS: Dict[str, Tuple[str, Type[_Method]]] = {}
_SPLIT_MAX = 4096

_new_object = object.__new__


class Client:
    """Calls the methods of a :class:`Server` by name.

    ``client.method(*args, **kwargs)`` calls ``method`` on the server and
    returns its result or raises its exception; ``client.nb_method(...)`` makes
    the call non-blocking (submitted, then polled for, surviving dropped
    connections; the server needs ``nonblocking = True``);
    ``await client.co_method(...)`` makes it from asyncio without blocking the
    event loop, and ``await client.co_nb_method(...)`` a non-blocking call
    from asyncio.

    ``with Client(...) as client:`` closes the connection at the end of the
    block; :func:`pyrpc.close` does the same anywhere (a function, so it
    cannot collide with a remote method named ``close``). A client dropped
    without closing closes its connection at once (nothing refers back to
    it). A call after closing connects again.

    Settings are class attributes, overridable by subclassing, by keyword
    arguments to the constructor, or per call (the per-call keywords are
    stripped and never reach the server)::

        client = Client(address=('', 50300), call_timeout=5)
        client.slow(call_timeout=60)
        client.slower(call_timeout=pyrpc.NO_TIMEOUT)   # no limit for this call

    An unknown keyword (``call_timout=5``) raises ``TypeError`` naming the
    closest setting, as does a subclass attribute that looks like a misspelt
    setting. The address is checked when the client is made.

    One client may be shared by threads (their calls run concurrently over one
    connection) and survives ``os.fork()``: the child makes its own connection.

    Attributes:
        address: ``(host, port)`` for TCP (host ``''``: this machine), a
            string ``'tcp://host:port'`` (or ``'host:port'``) for TCP or
            ``'unix:/path'`` (or any path containing ``/``) for a Unix
            socket, or a path-like object. Kept in canonical form:
            ``(host, port)`` or the socket path. A **list** of addresses
            makes a client over several servers: each call goes to the
            server with the fewest calls waiting (ties in turn), a server
            that refuses connections is skipped for a while (a doubling,
            jittered pause up to 5 s), and a non-blocking call is followed to
            any server that knows it (one sharing the first one's result
            store). A blocking call runs at most once: it moves to another
            server only if it surely did not run (connection refused, server
            shutting down or overloaded), or when the call is marked safe to
            run twice with the per-call option ``idempotent=True``.
            ``connected()`` is true when any server answers; ``shutdown()``
            asks every server; :func:`stats` and :func:`list_methods` ask
            one that answers. See docs/guide-scaling.md.
        call_timeout: seconds a whole call may take, ``None`` for no limit;
            then :class:`Timeout` is raised. Per call,
            ``call_timeout=pyrpc.NO_TIMEOUT`` lifts the limit.
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

    address: Optional[ClientAddressLike] = None
    call_timeout: Optional[float] = None
    socket_connect_timeout: float = 10
    socket_send_timeout: float = 10
    socket_recv_timeout: float = 0.1
    nb_fetch_timeout: float = 5
    nb_fetch_tick: float = 1
    nolog_methods: Optional[Collection[str]] = None
    allow_pickle: bool = False
    max_frame_len: int = 640 * 1024 * 1024
    secret: Optional[Union[bytes, str]] = None
    tls_ca: Optional[Union[str, bool]] = None
    tls_cert: Optional[str] = None
    tls_key: Optional[str] = None
    tls_server_name: Optional[str] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        check_subclass(cls, CLIENT_SETTINGS, _CLIENT_MACHINERY)
        if "address" in vars(cls):
            check_client_address(cls.__name__, cls.address)

    def __init__(self, address: Optional[ClientAddressLike] = None, **settings: Unpack[ClientSettings]) -> None:
        apply(self, CLIENT_SETTINGS, settings)
        # An empty list is an error, not "no address given".
        given = address if isinstance(address, list) else (address or self.address)
        self.address = check_client_address(type(self).__name__, given)

    def __getattr__(self, name: str) -> Any:
        # Private and special names are never remote methods: the server
        # refuses them, and probes such as copy's __deepcopy__ must not
        # become network calls. Nothing is cached on the instance: a method
        # kept there would refer back to the client (a reference cycle that
        # keeps a dropped client's connection open until the cycle
        # collector runs).
        if name.startswith("_"):
            raise AttributeError(name)
        # The first time a name is asked for (of this class), a
        # ``_RemoteName`` goes on the class, so later lookups find it there
        # and this never runs for that name again.
        split = _SPLITS.get(name)
        if split is None:
            split = _split(name)
            if len(_SPLITS) < _SPLIT_MAX:
                _SPLITS[name] = split
        _install(type(self), name, split)
        m = _new_object(split[1])
        m._client = self
        m._name = split[0]
        return m

    def __repr__(self) -> str:
        return "<%s address=%r>" % (type(self).__name__, self.address)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        close(self)

    def __getstate__(self) -> Dict[str, Any]:
        # The connection stays behind: a client sent to another process
        # (multiprocessing with spawn or forkserver) connects anew there.
        state = dict(self.__dict__)
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

    def _core(self) -> "Union[_pyrpc.ClientCore, _pyrpc.MultiClientCore]":
        d = self.__dict__
        core: Optional[Union[_pyrpc.ClientCore, _pyrpc.MultiClientCore]] = d.get("_pyrpc_core")
        # The settings the core was made with, read on every call (any may
        # have been changed on the client or its class since): a plain tuple,
        # read by one C call, as cheap to build and compare as it gets.
        key = _core_key_of(self)
        if isinstance(key[0], list):
            # A copy: a list changed in place is a new key.
            key = (tuple(key[0]),) + key[1:]
        if core is not None and d.get("_pyrpc_core_key") == key:
            return core
        with _core_lock:
            core = d.get("_pyrpc_core")
            if core is None or d.get("_pyrpc_core_key") != key:
                address = check_client_address(type(self).__name__, self.address)
                if address is None:
                    raise ValueError("%s has no address" % type(self).__name__)
                make = _pyrpc.MultiClientCore if isinstance(address, list) else _pyrpc.ClientCore
                core = make(
                    address,  # type: ignore[arg-type]
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
        if opts["call_timeout"] == NO_TIMEOUT:
            opts["call_timeout"] = 0  # the core's "no limit"
        nolog = bool(kwargs.pop("nolog", None))
        if kwargs.pop("idempotent", None) and isinstance(self.address, list):
            # Only a client over several servers has another server to retry on.
            opts["idempotent"] = True
        return opts, nolog

    def _failed(self, method: str, args: Tuple[Any, ...], kwargs: Dict[str, Any], exc: BaseException) -> None:
        tb = getattr(exc, "traceback", "")
        if tb and method != "connected":
            head = "{}: {}(args={}, kwargs={})".format(
                type(self).__name__, method, _safe_repr(args), _safe_repr(kwargs)
            )[:60] + "\n"
            self.log_exception(head + tb)

    def _logs_calls(self) -> bool:
        """False when the call-logging hooks are the defaults (whose
        ``log_call`` does nothing): then no call builds its log message."""
        cls = type(self)
        if cls.log_call is not _DEFAULT_LOG_CALL or cls.get_call_logging_func is not _DEFAULT_CALL_LOGGER:
            return True
        d = self.__dict__
        return "log_call" in d or "get_call_logging_func" in d

    def _call(self, method: str, args: Tuple[Any, ...], kwargs: Dict[str, Any], nonblocking: bool) -> Any:
        # Runs on every call: no per-call option (the common case) means no
        # options dict, and the settings go straight to the core.
        if kwargs and not _CALL_OPTION_NAMES.isdisjoint(kwargs):
            return self._call_with_options(method, args, kwargs, nonblocking)
        try:
            # By position: the core takes them without matching names.
            ret = self._core().call(method, args, kwargs, nonblocking, *_settings_of(self))
        except Exception as exc:
            self._failed(method, args, kwargs, exc)
            raise
        if self._logs_calls() and not isinstance(ret, _pyrpc.StreamIterator):
            self.log_call((method, args, kwargs), ret)
        return ret

    def _call_with_options(self, method: str, args: Tuple[Any, ...], kwargs: Dict[str, Any], nonblocking: bool) -> Any:
        """``_call`` for a call given per-call options (``call_timeout=``, ...)."""
        opts, nolog = self._options(kwargs)
        try:
            ret = self._core().call(method, args, kwargs, nonblocking=nonblocking, **opts)
        except Exception as exc:
            self._failed(method, args, kwargs, exc)
            raise
        if isinstance(ret, _pyrpc.StreamIterator):
            return ret  # a streamed reply: its items are not logged
        if not nolog:
            self.log_call((method, args, kwargs), ret)
        return ret

    def _co(self, method: str, args: Tuple[Any, ...], kwargs: Dict[str, Any], nonblocking: bool) -> CoCall:
        """The object ``co_method(...)`` returns: awaitable for a value,
        async-iterable for a stream (see ``_stream.CoCall``)."""
        return CoCall(
            functools.partial(self._co_raw, method, args, kwargs, nonblocking),
            functools.partial(self._co_call, method, args, kwargs, nonblocking),
            method,
        )

    async def _co_raw(self, method: str, args: Tuple[Any, ...], kwargs: Dict[str, Any], nonblocking: bool) -> Any:
        """Makes a ``co_`` call; returns the value or the stream iterator."""
        opts, _ = self._options(dict(kwargs))
        kwargs = {k: v for k, v in kwargs.items() if k not in _CALL_OPTION_NAMES}
        loop = asyncio.get_running_loop()
        try:
            return await self._core().co_call(loop, method, args, kwargs, nonblocking=nonblocking, **opts)
        except Exception as exc:
            self._failed(method, args, kwargs, exc)
            raise

    async def _co_call(self, method: str, args: Tuple[Any, ...], kwargs: Dict[str, Any], nonblocking: bool) -> Any:
        opts, nolog = self._options(kwargs)
        loop = asyncio.get_running_loop()
        try:
            ret = await self._core().co_call(loop, method, args, kwargs, nonblocking=nonblocking, **opts)
        except Exception as exc:
            self._failed(method, args, kwargs, exc)
            raise
        if isinstance(ret, _pyrpc.AsyncStreamIterator):
            raise not_a_value(method, ret)
        if not nolog:
            self.log_call((method, args, kwargs), ret)
        return ret


_CLIENT_GETATTR = Client.__getattr__
_DEFAULT_LOG_CALL = Client.log_call
_DEFAULT_CALL_LOGGER = Client.get_call_logging_func

# The Client class's own public names (connected, shutdown, log_call, ...):
# a subclass attribute with one of these names is not a misspelt setting.
_CLIENT_MACHINERY = frozenset(name for name in vars(Client) if not name.startswith("_"))


def close(client: Client) -> None:
    """Close ``client``'s connection now (``with Client(...)`` does it at
    the end of the block). Calls running on it in other threads finish
    first: they hold the connection until they return. A streamed reply
    still being read does not hold it: its iteration ends with ``NoSocket``
    after the items already received. A later call on ``client`` connects
    again.

    A function rather than a method, so it never hides a remote method named
    ``close``: ``client.close()`` calls the server.
    """
    d = client.__dict__
    with _core_lock:
        d.pop("_pyrpc_core_key", None)
        core = d.pop("_pyrpc_core", None)
    del core  # the last reference: its Drop closes the connection


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




def _tls_settings(client: "Client") -> Dict[str, Any]:
    """A client's TLS settings, as ``ClientCore`` takes them."""
    return {
        "tls_ca": client.tls_ca,
        "tls_cert": client.tls_cert,
        "tls_key": client.tls_key,
        "tls_server_name": client.tls_server_name,
    }
