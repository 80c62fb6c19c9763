"""The original pyrpc README's echo client; prints ((1,), {'foo': 'foo'}).

Run:    python examples/python/echo_client.py [ADDRESS]

against examples/python/echo_server.py. ADDRESS defaults to ('', 50300) (TCP,
this machine); give a port number, "host:port", or a Unix socket path.
"""

import sys

from pyrpc import Client


def parse_address(text):
    """'50301' or 'host:port' -> (host, port); a path -> the path."""
    if "/" in text:
        return text
    host, _, port = text.rpartition(":")
    return (host, int(port))


if __name__ == '__main__':
    address = parse_address(sys.argv[1]) if len(sys.argv) > 1 else ('', 50300)
    client = Client(address=address)
    ret = client.echo(1, foo='foo')
    print(ret)
