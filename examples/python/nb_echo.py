"""The original pyrpc README's non-blocking example: a server and a client in
one process, over a Unix socket. Prints (1, {'foo': 'foo'}) after 10 seconds
(this echo takes its positional arguments as one parameter, `args`).

Run:    python examples/python/nb_echo.py [SOCKET_PATH]

SOCKET_PATH defaults to /tmp/echo_server_socket. The environment variable
PYRPC_ECHO_SLEEP sets how long echo sleeps (default 10 seconds, as in the
README).
"""

import os
import sys
import time

from pyrpc import Client, Server

SLEEP = float(os.environ.get("PYRPC_ECHO_SLEEP", "10"))
ADDRESS = sys.argv[1] if len(sys.argv) > 1 else '/tmp/echo_server_socket'


def echo(args, **kwargs):
    time.sleep(SLEEP)
    return args, kwargs

server = Server(address=ADDRESS, nonblocking=True)
server.echo = echo
server.start_in_thread()

client = Client(address=ADDRESS)

# will poll every 500 ms and in 10 sec it will return
ret = client.nb_echo(1, foo='foo', nb_fetch_tick=0.5)
print(ret)
