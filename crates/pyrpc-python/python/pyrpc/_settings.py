"""The settings of :class:`pyrpc.Client` and :class:`pyrpc.Server`: one
registry per class, and the checks that catch misspelt names.

Each registry is a ``TypedDict`` (:class:`ClientSettings`,
:class:`ServerSettings`): its keys are the names the constructor accepts, its
value types are what ``mypy`` checks the keywords against (the constructors
take ``**settings: Unpack[ClientSettings]``). The defaults are the class
attributes of ``Client`` and ``Server``, overridable by subclassing.

Adding a setting is two lines: a key here (with its type) and a class
attribute with its default on the class (a test checks both agree); then
pass it on to the Rust core in ``_client.py`` / ``_server.py``.
(docs/decisions/0030-python-settings-registry.md)
"""

from __future__ import annotations

import difflib
import os
from typing import Any, Collection, FrozenSet, List, Mapping, Optional, Tuple, TypedDict, Union

from . import _pyrpc

#: An address as the constructors accept it: ``(host, port)`` for TCP; a
#: ``str`` in the syntax shared with the ``pyrpc`` command and the Rust crates
#: (``'tcp://host:port'``, ``'host:port'``, ``'unix:/path'``, or a path
#: containing ``/``); or a path-like object (a Unix socket path).
AddressLike = Union[Tuple[str, int], str, "os.PathLike[str]"]

#: An address in its canonical form: ``(host, port)`` or a Unix socket path.
Address = Union[Tuple[str, int], str]

#: What a client's ``address`` accepts: one address, or a list of them (a
#: client over several servers).
ClientAddressLike = Union[AddressLike, List[AddressLike], List[Address]]

#: A client's address in canonical form: one, or a list.
ClientAddress = Union[Address, List[Address]]


class ClientSettings(TypedDict, total=False):
    """The settings of :class:`pyrpc.Client` (besides ``address``); see its
    docstring for what each means."""

    call_timeout: Optional[float]
    socket_connect_timeout: float
    socket_send_timeout: float
    socket_recv_timeout: float
    nb_fetch_timeout: float
    nb_fetch_tick: float
    nolog_methods: Optional[Collection[str]]
    allow_pickle: bool
    max_frame_len: int
    secret: Optional[Union[bytes, str]]
    # TLS (issue #13): accepted and documented here; passed to the core when
    # it supports them.
    tls_ca: Optional[Union[str, bool]]
    tls_cert: Optional[str]
    tls_key: Optional[str]
    tls_server_name: Optional[str]


class ServerSettings(TypedDict, total=False):
    """The settings of :class:`pyrpc.Server` (besides ``address``); see its
    docstring for what each means."""

    callee: Any
    callee_type: Optional[type]
    nonblocking: bool
    synchronous: bool
    request_clean_interval: float
    retype_exceptions: bool
    allow_pickle: bool
    unix_mode: Optional[int]
    secret: Optional[Union[bytes, str]]
    max_frame_len: int
    max_connections: int
    max_in_flight_per_connection: int
    max_kept_results: int
    # Shared non-blocking results (issue #15).
    result_store: Optional[str]
    result_lease: float
    processes: int
    idle_timeout: Optional[float]
    shutdown_grace: float
    handshake_timeout: float
    workers: int
    # TLS (issue #13), as for the client.
    tls_cert: Optional[str]
    tls_key: Optional[str]
    tls_client_ca: Optional[str]
    allow_remote_shutdown: Optional[bool]


def names(registry: Any) -> FrozenSet[str]:
    """The setting names of a registry (a ``TypedDict`` class)."""
    return frozenset(registry.__annotations__)


CLIENT_SETTINGS = names(ClientSettings)
SERVER_SETTINGS = names(ServerSettings)


def _suggestion(name: str, valid: Collection[str]) -> str:
    close = difflib.get_close_matches(name, sorted(valid), n=1, cutoff=0.6)
    if close:
        return "; did you mean %r?" % close[0]
    return "; the settings are: %s" % ", ".join(sorted(valid))


def apply(obj: Any, valid: FrozenSet[str], settings: Mapping[str, Any]) -> None:
    """Set each of ``settings`` on ``obj``; an unknown name raises
    ``TypeError`` naming the closest valid one."""
    for name in settings:
        if name not in valid:
            raise TypeError(
                "%s() got an unexpected keyword argument %r%s"
                % (type(obj).__name__, name, _suggestion(name, valid | {"address"}))
            )
    for name, value in settings.items():
        setattr(obj, name, value)


def _is_method_like(value: Any) -> bool:
    return callable(value) or isinstance(value, (staticmethod, classmethod, property))


def check_subclass(cls: type, valid: FrozenSet[str], machinery: Collection[str] = ()) -> None:
    """Refuse a class attribute of ``cls`` that looks like a misspelt setting:
    not a setting, not callable (methods are told apart that way), not
    private, and close to a setting name (``nonblokcing = True``)."""
    for name, value in vars(cls).items():
        if name.startswith("_") or name in valid or name == "address" or name in machinery:
            continue
        if _is_method_like(value):
            continue
        close = difflib.get_close_matches(name, sorted(valid | {"address"}), n=1, cutoff=0.8)
        if close:
            raise TypeError(
                "%s.%s is not a setting of %s; did you mean %r? (a class attribute "
                "that is meant to be something else needs a name further from the "
                "settings')"
                % (cls.__name__, name, _base_name(cls), close[0])
            )


def _base_name(cls: type) -> str:
    for base in cls.__mro__:
        if base.__module__ == "pyrpc":
            return base.__name__
    return cls.__mro__[-2].__name__


def check_address(owner: str, address: Optional[AddressLike]) -> Optional[Address]:
    """``address`` in its canonical form, or None; raises ``ValueError`` /
    ``TypeError`` naming the ``owner`` class and what is wrong."""
    if address is None:
        return None
    try:
        canonical: Address = _pyrpc.parse_address(address)
    except (ValueError, TypeError) as exc:
        raise type(exc)("%s: bad address: %s" % (owner, exc)) from None
    return canonical



def check_client_address(owner: str, address: Optional[ClientAddressLike]) -> Optional[ClientAddress]:
    """As :func:`check_address`, also accepting a list of addresses (a
    client over several servers), returned as a list of canonical ones. An
    empty list is a ``ValueError``."""
    if isinstance(address, list):
        if not address:
            raise ValueError("%s: bad address: the list of addresses is empty" % owner)
        out = []
        for a in address:
            canonical = check_address(owner, a)
            if canonical is None:
                raise ValueError("%s: bad address: None in the list of addresses" % owner)
            out.append(canonical)
        return out
    return check_address(owner, address)
