"""Typed records: dataclasses, NamedTuples, Enums and registered types.

A record travels as its type name (``"module:qualname"``, or the name given
to :func:`register_type`), its kind, and its fields by name (decision 0010).
The receiver rebuilds the same class only when it is already imported there:
it never imports a module, and it calls nothing but the class itself (a
dataclass or NamedTuple), ``EnumClass[member]``, or a registered decoder.
When it cannot, it falls back to a plain value and never raises:

=============  ==========================================
kind           fallback
=============  ==========================================
dataclass      a ``dict`` of the fields
NamedTuple     a ``tuple`` of the items
Enum member    the member's value
registered     the value the sender's encoder returned
=============  ==========================================
"""

from __future__ import annotations

import dataclasses
import enum
import sys
import threading
from typing import Any, Callable, Dict, Optional, Tuple

__all__ = ["register_type"]

# Record kinds, as in proto/pyrpc/v1/rpc.proto (RecordKind).
_DATACLASS, _NAMED_TUPLE, _ENUM, _REGISTERED = 1, 2, 3, 4

_lock = threading.Lock()
#: class -> (name, encode)
_encoders: Dict[type, Tuple[str, Callable[[Any], Any]]] = {}
#: name -> decode
_decoders: Dict[str, Callable[[Any], Any]] = {}


def register_type(
    cls: type,
    encode: Callable[[Any], Any],
    decode: Callable[[Any], Any],
    name: Optional[str] = None,
) -> None:
    """Sends instances of ``cls`` as ``encode(obj)`` and rebuilds them with ``decode``.

    ``encode`` returns any value pyrpc can send; the receiver that registered
    the same ``name`` (by default ``"module:qualname"`` of ``cls``) calls
    ``decode`` on it, and a receiver that did not gets the encoded value
    itself. Register on both sides, before the first call that needs it.
    Registered types take precedence over dataclass, NamedTuple and Enum
    handling (not over the builtin and standard types pyrpc sends itself).

    >>> import pyrpc
    >>> class Money:
    ...     def __init__(self, cents):
    ...         self.cents = cents
    >>> pyrpc.register_type(Money, lambda m: m.cents, Money, name="shop:Money")
    """
    if not isinstance(cls, type):
        raise TypeError(f"register_type needs a class, not {type(cls).__name__}")
    if not (callable(encode) and callable(decode)):
        raise TypeError("register_type needs callable encode and decode functions")
    name = name or _type_name(cls)
    with _lock:
        _encoders[cls] = (name, encode)
        _decoders[name] = decode


def _type_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _encode(obj: Any) -> Optional[Tuple[str, int, Tuple[str, ...], Tuple[Any, ...]]]:
    """(type name, kind, field names, field values) for a record, else None."""
    cls = type(obj)
    registered = _encoders.get(cls)
    if registered is not None:
        name, encode = registered
        return name, _REGISTERED, ("value",), (encode(obj),)
    if isinstance(obj, enum.Enum):
        return _type_name(cls), _ENUM, (obj.name,), (obj.value,)
    if isinstance(obj, tuple) and hasattr(cls, "_fields"):
        return _type_name(cls), _NAMED_TUPLE, tuple(cls._fields), tuple(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        names = tuple(f.name for f in dataclasses.fields(obj))
        return _type_name(cls), _DATACLASS, names, tuple(getattr(obj, n) for n in names)
    return None


def _find_class(type_name: str) -> Optional[type]:
    """The class named ``module:qualname`` if its module is already imported."""
    module_name, sep, qualname = type_name.partition(":")
    module = sys.modules.get(module_name) if sep else None
    if module is None or "<locals>" in qualname:
        return None
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj if isinstance(obj, type) else None


def _decode(type_name: str, kind: int, names: Tuple[str, ...], values: Tuple[Any, ...]) -> Any:
    """Rebuilds a record, or returns its documented plain fallback."""
    if kind == _REGISTERED:
        fallback = values[0] if values else None
        decode = _decoders.get(type_name)
        return _try(lambda: decode(fallback), fallback) if decode else fallback
    if kind == _ENUM:
        fallback = values[0] if values else None
        cls = _find_class(type_name)
        if cls is not None and issubclass(cls, enum.Enum) and names:
            members: Any = cls  # narrowed here, not inside the lambda
            return _try(lambda: members[names[0]], fallback)
        return fallback
    if kind == _NAMED_TUPLE:
        fallback = tuple(values)
        cls = _find_class(type_name)
        if cls is not None and issubclass(cls, tuple) and tuple(getattr(cls, "_fields", ())) == names:
            named: Any = cls  # narrowed here, not inside the lambda
            return _try(lambda: named(*values), fallback)
        return fallback
    fields = dict(zip(names, values))
    cls = _find_class(type_name)
    if kind == _DATACLASS and cls is not None and dataclasses.is_dataclass(cls):
        return _try(lambda: _build_dataclass(cls, fields), fields)
    return fields


def _build_dataclass(cls: type, fields: Dict[str, Any]) -> Any:
    own = dataclasses.fields(cls)
    if {f.name for f in own} != set(fields):
        raise TypeError("fields differ")
    obj = cls(**{f.name: fields[f.name] for f in own if f.init})
    for f in own:
        if not f.init:  # set by __post_init__ or a default on the sender's side
            object.__setattr__(obj, f.name, fields[f.name])
    return obj


def _try(build: Callable[[], Any], fallback: Any) -> Any:
    try:
        return build()
    except Exception:  # a class that changed shape: the plain value, never an error
        return fallback


def safe_repr(obj: Any) -> str:
    """``repr(obj)``, or an abbreviated one for a value nested too deep for
    Python's recursion limit (pyrpc sends values 1,000 levels deep)."""
    try:
        return repr(obj)
    except RecursionError:
        import reprlib

        return reprlib.repr(obj)
