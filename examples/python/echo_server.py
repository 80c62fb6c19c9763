"""The original pyrpc README's echo server.

Run:    python examples/python/echo_server.py [ADDRESS]
Then:   python examples/python/echo_client.py [ADDRESS]

ADDRESS defaults to ('', 50300) (TCP, all interfaces). Give a port number
("50301"), "host:port", or a Unix socket path (anything containing a '/').
Ctrl-C stops the server.
"""

import sys

from pyrpc import Server


def parse_address(text):
    """'50301' or 'host:port' -> (host, port); a path -> the path."""
    if "/" in text:
        return text
    host, _, port = text.rpartition(":")
    return (host, int(port))


class EchoServer(Server):
    address = ('', 50300)  # can also be a unix socket (e. g. '/tmp/echo_server_socket')

    def echo(self, *args, **kwargs):
        return args, kwargs


if __name__ == '__main__':
    if len(sys.argv) > 1:
        EchoServer.address = parse_address(sys.argv[1])
    try:
        EchoServer().start()
    except KeyboardInterrupt:
        pass
