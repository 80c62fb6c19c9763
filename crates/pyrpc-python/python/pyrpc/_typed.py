""":func:`typed`: a client whose remote calls ``mypy`` checks against a
``typing.Protocol`` describing the server's methods.
(docs/decisions/0031-python-typed-client.md)"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, TypeVar

from ._client import Client, _Method

T = TypeVar("T")

# Names every class has; never remote methods of a protocol.
_IGNORED = frozenset(dir(object)) | {"_is_protocol", "_is_runtime_protocol"}


def _methods(protocol: type) -> Dict[str, str]:
    """The methods a protocol declares (its bases' too), each with its call
    mode: ``'co'`` for ``async def``, else ``'call'``."""
    out: Dict[str, str] = {}
    for klass in reversed(protocol.__mro__):
        if klass is object or getattr(klass, "_is_protocol", False) is False:
            continue
        if klass.__module__ == "typing" or klass.__module__ == "typing_extensions":
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") or name in _IGNORED:
                continue
            func = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
            if inspect.isfunction(func):
                out[name] = "co" if inspect.iscoroutinefunction(func) else "call"
    return out


class _TypedClient:
    """What :func:`typed` returns: the protocol's methods, called remotely."""

    __slots__ = ("_client", "_protocol", "_modes")

    def __init__(self, protocol: type, client: Client) -> None:
        self._client = client
        self._protocol = protocol
        self._modes = _methods(protocol)

    def __getattr__(self, name: str) -> Any:
        mode = self._modes.get(name)
        if mode is None:
            raise AttributeError(
                "%s has no method %r (the typed client calls only the protocol's methods)"
                % (self._protocol.__name__, name)
            )
        return _Method(self._client, name, mode)

    def __dir__(self) -> Any:
        return sorted(self._modes)

    def __repr__(self) -> str:
        return "<typed %s client of %r>" % (self._protocol.__name__, self._client)


def typed(protocol: Callable[..., T], client: Client) -> T:
    """``client`` seen through ``protocol``, a ``typing.Protocol`` class that
    describes the server's methods: ``mypy`` then checks each remote call's
    arguments and result type against it. A method declared ``async def``
    is called from asyncio (as ``client.co_method``); the others block. A
    name the protocol does not declare raises ``AttributeError`` without a
    call. Per-call options (``call_timeout=...``) still work at run time but
    are not part of the protocol's signatures.

    ::

        class Echo(typing.Protocol):
            def echo(self, text: str) -> str: ...
            async def slow(self, seconds: float) -> None: ...

        echo = pyrpc.typed(Echo, pyrpc.Client(address))
        n: str = echo.echo('hi')          # checked: echo.echo(1) is a type error

    (Typed ``Callable[..., T]`` rather than ``type[T]``: mypy refuses a
    protocol class where ``type[T]`` is expected.)
    """
    if not isinstance(protocol, type) or not getattr(protocol, "_is_protocol", False):
        raise TypeError("typed() takes a typing.Protocol class, not %r" % (protocol,))
    if not isinstance(client, Client):
        raise TypeError("typed() takes a pyrpc.Client, not %r" % (client,))
    proxy: Any = _TypedClient(protocol, client)
    return proxy  # type: ignore[no-any-return]
