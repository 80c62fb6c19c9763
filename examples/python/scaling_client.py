"""A client for docs/guide-scaling.md: shows which worker processes answer,
then (with --nb) runs non-blocking calls.

    python examples/python/scaling_client.py --port 50400
    python examples/python/scaling_client.py --port 50401 --nb
    python examples/python/scaling_client.py --port 50402 --port 50403 --nb

With several ``--port``, one client is made over all those servers
(``Client(address=[...])``).
"""

import argparse

from pyrpc import Client

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, action="append")
    p.add_argument("--nb", action="store_true")
    args = p.parse_args()
    ports = args.port or [50400]
    address = [(args.host, port) for port in ports] if len(ports) > 1 else (args.host, ports[0])
    pids = set()
    for _ in range(50):
        with Client(address=address) as c:  # a new connection each time
            pids.add(c.pid())
    print("worker processes that answered:", len(pids))
    if len(ports) > 1:
        # One client over all the servers: calls spread over them.
        with Client(address=address) as c:
            print("servers that answered one client:", len({c.pid() for _ in range(10)}))
    if args.nb:
        with Client(address=address) as c:
            print("nb_slow_square(7) =", c.nb_slow_square(7, 0.2))
