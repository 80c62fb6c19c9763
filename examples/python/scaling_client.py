"""A client for docs/guide-scaling.md: shows which worker processes answer,
then (with --nb) runs non-blocking calls.

    python examples/python/scaling_client.py --port 50400
    python examples/python/scaling_client.py --port 50401 --nb
"""

import argparse

from pyrpc import Client

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=50400)
    p.add_argument("--nb", action="store_true")
    args = p.parse_args()
    address = (args.host, args.port)
    pids = set()
    for _ in range(50):
        with Client(address=address) as c:  # a new connection each time
            pids.add(c.pid())
    print("worker processes that answered:", len(pids))
    if args.nb:
        with Client(address=address) as c:
            print("nb_slow_square(7) =", c.nb_slow_square(7, 0.2))
