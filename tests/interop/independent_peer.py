"""An independent pyrpc peer: client and server written from the protocol docs alone.

It shares no code with pyrpc (its modules, one per job, are in ``independent/``).
It uses only the Python standard library and the official ``protobuf`` runtime
with messages generated from ``proto/pyrpc/v1/rpc.proto`` (``python -m
grpc_tools.protoc -Iproto --python_out=GEN proto/pyrpc/v1/rpc.proto``), and
follows ``docs/PROTOCOL.md``.
It is what a user of another language would write, and the interop test
(``cargo xtask interop-test``) pairs it with the Rust and Python pyrpc peers.

Usage::

    independent_peer.py --gen GEN golden TESTDATA_DIR   # check the golden vectors
    independent_peer.py --gen GEN serve ADDRESS          # serve the test service
    independent_peer.py --gen GEN check ADDRESS          # run the checks against a server

ADDRESS is ``HOST:PORT`` (TCP) or ``unix:/path`` (Unix socket).

TLS (the interop test's ``tls`` cells): with ``PYRPC_INTEROP_TLS_CA``,
``PYRPC_INTEROP_TLS_CERT`` and ``PYRPC_INTEROP_TLS_KEY`` set, TCP connections
use TLS through Python's ``ssl`` module (docs/PROTOCOL.md: TLS wraps the TCP
stream, frames are unchanged inside it; ALPN ``pyrpc/1``). The server presents
that certificate and key; the client verifies the server against that CA and
the address's host.

The test service: ``echo(*args, **kwargs) -> (args, kwargs)``, ``sleep(seconds)
-> seconds``, ``raise_(type_name, *args)`` raises that builtin exception,
``big(n) -> b'1' * n``, ``count(n)`` streams the items ``0 .. n-1`` (a streamed
reply, PROTOCOL.md "Streamed replies"); non-blocking calls are enabled.

Besides the checks every interop client runs, ``check`` holds the server to the
rules of docs/PROTOCOL.md a client can observe (section 8 lists them), on raw
connections where the rule is about frames.
"""

import argparse
import sys

from independent.checks import run_checks
from independent.golden import check_golden
from independent.messages import load_messages
from independent.server import IndependentServer


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gen", required=True, help="directory holding the generated pyrpc/v1/rpc_pb2.py")
    parser.add_argument("command", choices=["golden", "serve", "check"])
    parser.add_argument("target", help="ADDRESS, or the testdata directory for golden")
    options = parser.parse_args()
    load_messages(options.gen)
    if options.command == "golden":
        return 0 if check_golden(options.target) else 1
    if options.command == "serve":
        IndependentServer(options.target).serve()
        return 0
    return 0 if run_checks(options.target) else 1


if __name__ == "__main__":
    sys.exit(main())
