"""The exceptions pyrpc raises.

They are plain Python classes (not made in Rust) because ``Timeout``,
``NoSocket`` and ``AuthError`` have two bases each: ``RpcError`` and the
builtin ``TimeoutError`` / ``ConnectionError`` / ``PermissionError``. The Rust core only raises them; all the
mapping from Rust errors lives in ``src/errors.rs``.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

__all__ = [
    "RpcError",
    "Timeout",
    "NoSocket",
    "ProtocolError",
    "RemoteError",
    "AuthError",
    "TlsError",
]


class RpcError(Exception):
    """Base class of the errors pyrpc itself raises.

    ``traceback`` is the remote traceback text; empty for errors raised on
    this side (a timeout, an unreachable server).
    """

    traceback: str = ""


class Timeout(RpcError, TimeoutError):
    """A call did not finish in time.

    ``stage`` names the timeout that passed: ``'connect'``
    (``socket_connect_timeout``), ``'send'`` (``socket_send_timeout``),
    ``'reply'`` (``call_timeout``) or ``'nb'`` (``call_timeout`` of a
    non-blocking call). Also a ``TimeoutError``, as the original's
    ``socket.timeout`` subclass was.
    """

    def __init__(self, message: str = "timed out", stage: Optional[str] = None) -> None:
        super().__init__(message)
        self.stage = stage

    def __reduce__(self) -> Any:
        return (type(self), (str(self), self.stage), self.__dict__)


class NoSocket(RpcError, ConnectionError):
    """The server cannot be reached or the connection to it was lost:
    nothing listens at the address, the socket file does not exist, the host
    is unreachable, the connection was reset or closed before the reply
    arrived (the server died or shut down mid-call).

    The one class for every such failure, the first after the server died as
    well as the later ones, so ``except ConnectionError`` (or ``except
    NoSocket``) catches them all. The next call connects again."""

    def __init__(self, message: str = "cannot connect") -> None:
        super().__init__(message)

    def __reduce__(self) -> Any:
        return (type(self), (str(self),), self.__dict__)


class AuthError(RpcError, PermissionError):
    """The shared-secret authentication in the hello failed: the client has
    no secret or the wrong one for a server that requires one, or the client
    has a secret and the server could not prove it holds the same. No call
    ran. Also a ``PermissionError`` (the type the Rust side names).
    """

    def __init__(self, message: str = "authentication failed") -> None:
        super().__init__(message)

    def __reduce__(self) -> Any:
        return (type(self), (str(self),), self.__dict__)


class TlsError(RpcError, ConnectionError):
    """TLS failed, and the message says why: the server's certificate has
    expired or is not signed by a CA in ``tls_ca``, the server requires a
    client certificate (``tls_cert``/``tls_key``) and none was given, the
    server does not speak TLS, or the server requires TLS and the client
    was given no ``tls_*`` setting. Trying again does not help until the settings
    change. Also a ``ConnectionError``.
    """

    def __init__(self, message: str = "TLS failed") -> None:
        super().__init__(message)

    def __reduce__(self) -> Any:
        return (type(self), (str(self),), self.__dict__)


class ProtocolError(RpcError):
    """The peer broke the protocol (a frame that does not decode, an
    unexpected message), or a request is larger than the server accepts. A
    lost connection is :class:`NoSocket`, not this."""


class RemoteError(RpcError):
    """A remote exception that cannot be raised here as itself, or a refusal by
    the remote runtime.

    Raised when the remote exception's class is not a builtin and its module is
    not already imported on this side (pyrpc never imports a module named by
    the network), or when rebuilding it failed.

    Attributes:
        type_name: the remote exception's class name, e.g. ``'MyError'``.
        module: the module defining it, e.g. ``'myapp.errors'``.
        args: the remote exception's args (converted; unconvertible ones are
            their ``repr`` strings).
        message: ``str()`` of the remote exception.
        traceback: the remote traceback text.
        kind: why it failed: ``'EXCEPTION'`` for an exception raised by the
            method, else the runtime refusal (``'NOT_NONBLOCKING'``,
            ``'OVERLOADED'``, ``'SHUTTING_DOWN'``, ...).
    """

    def __init__(
        self,
        type_name: str,
        module: str,
        args: Tuple[Any, ...],
        message: str,
        traceback: str = "",
        kind: str = "EXCEPTION",
    ) -> None:
        super().__init__(*args)
        self.type_name = type_name
        self.module = module
        self.message = message
        self.traceback = traceback
        self.kind = kind

    def __str__(self) -> str:
        name = self.type_name
        if self.module and self.module != "builtins":
            name = "%s.%s" % (self.module, self.type_name)
        return "%s: %s" % (name, self.message) if self.message else name

    def __reduce__(self) -> Any:
        return (
            type(self),
            (self.type_name, self.module, self.args, self.message, self.traceback, self.kind),
        )


# Shown (and pickled) as pyrpc.Timeout etc., where users import them from.
for _cls in (RpcError, Timeout, NoSocket, ProtocolError, RemoteError, AuthError):
    _cls.__module__ = "pyrpc"
del _cls
