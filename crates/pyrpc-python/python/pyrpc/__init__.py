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
for a server, the local host for a client); a ``str`` is read in the syntax
the ``pyrpc`` command and the Rust crates share: ``'tcp://host:port'`` (or
``'host:port'``) for TCP, ``'unix:/path'`` or any path containing ``/`` for a
Unix socket; a ``pathlib.Path`` is a Unix socket path.

Values travel with Python's shapes: None, bool, int (any size), float, str,
bytes (a bytearray arrives as bytes), list, tuple, dict, set, frozenset,
nested. Other objects raise ``TypeError`` at the caller, unless both the client
and the server set ``allow_pickle = True``.

:func:`typed` gives a client checked by ``mypy`` against a
``typing.Protocol`` of the server's methods.
"""

from . import _pyrpc
from ._client import NO_TIMEOUT, Client, MethodInfo, close, list_methods, stats
from ._errors import AuthError, NoSocket, ProtocolError, RemoteError, RpcError, Timeout, TlsError
from ._server import Server, cancelled
from ._settings import Address, AddressLike, ClientSettings, ServerSettings
from ._typed import typed
from ._types import register_type

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
    "register_type",
    "cancelled",
    "MethodInfo",
    "list_methods",
    "stats",
    "close",
    "typed",
    "NO_TIMEOUT",
    "Address",
    "AddressLike",
    "ClientSettings",
    "ServerSettings",
]

__version__: str = _pyrpc.__version__

# Shown (and pickled) as pyrpc.Client etc., where users import them from.
for _cls in (Client, Server, MethodInfo):
    _cls.__module__ = "pyrpc"
del _cls
