"""The original pyrpc README's echo server.

Run:    python examples/python/echo_server.py [ADDRESS]
Then:   python examples/python/echo_client.py [ADDRESS]

ADDRESS defaults to ('', 50300) (TCP, all interfaces). Give a port number
("50301"), "host:port", or a Unix socket path (anything containing a '/').
Once bound, the server prints ``listening on ADDRESS``, the address it got:
with port 0 ("127.0.0.1:0") the OS picks a free port and that line tells
which (``cargo xtask demo`` starts it so). Ctrl-C stops the server.
"""

import asyncio
import signal
import sys

from pyrpc import Server


def parse_address(text):
    """'50301' or 'host:port' -> (host, port); a path -> the path."""
    if "/" in text:
        return text
    host, _, port = text.rpartition(":")
    return (host, int(port))


def format_address(address):
    """(host, port) -> 'host:port' ('[host]:port' for IPv6); a path -> 'unix:path'."""
    if isinstance(address, tuple):
        host, port = address
        return "{}:{}".format("[%s]" % host if ":" in host else host, port)
    return "unix:" + address


async def serve(server):
    """Serve until shut down, printing where once bound."""
    # Server.serve() binds first thing, then waits for the shutdown.
    serving = asyncio.ensure_future(server.serve())
    # SIGTERM stops it gracefully, as Server.start() would: cancelling
    # serve() shuts the server down (running calls get their grace period,
    # a Unix socket file is removed). Ctrl-C cancels it through asyncio.run.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, serving.cancel)
    while server.bound_address() is None and not serving.done():
        await asyncio.sleep(0.01)
    if not serving.done():
        print("listening on " + format_address(server.bound_address()), flush=True)
    try:
        await serving  # raises if the bind failed
    except asyncio.CancelledError:
        pass  # SIGTERM: the server has stopped


class EchoServer(Server):
    address = ('', 50300)  # can also be a unix socket (e. g. '/tmp/echo_server_socket')

    def echo(self, *args, **kwargs):
        return args, kwargs


if __name__ == '__main__':
    if len(sys.argv) > 1:
        EchoServer.address = parse_address(sys.argv[1])
    try:
        asyncio.run(serve(EchoServer()))
    except KeyboardInterrupt:
        pass
