"""Exceptions as ``pyrpc.v1.Error`` messages (PROTOCOL.md section 6).

Part of the independent peer (``tests/interop/independent_peer.py``): it shares
no code with pyrpc.
"""

import traceback

from .messages import pb
from .values import to_value


def error(kind, type_name, message, args=None, module="builtins", tb=""):
    e = pb.RemoteError(
        kind=kind, type_name=type_name, module=module, message=message, traceback=tb
    )
    for a in (args if args is not None else (message,)):
        e.args.append(to_value(a))
    return e


def exception_error(exc):
    """The RemoteError for an exception a method raised."""
    try:
        args = [to_value(a) for a in exc.args]
    except (TypeError, ValueError):
        args = [to_value(str(a)) for a in exc.args]
    e = pb.RemoteError(
        kind=pb.EXCEPTION,
        type_name=type(exc).__name__,
        module=type(exc).__module__,
        message=str(exc),
        traceback="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    )
    e.args.extend(args)
    return e
