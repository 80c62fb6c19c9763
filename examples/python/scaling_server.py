"""A server for docs/guide-scaling.md: CPU-bound and non-blocking methods,
served by one or several processes, with results in memory or in Redis.

    python examples/python/scaling_server.py --port 50400 --processes 2
    python examples/python/scaling_server.py --port 50401 --processes 2 \\
        --result-store redis://127.0.0.1:6379/0
"""

import argparse
import os
import time

from pyrpc import Server


class Work(Server):
    def pid(self):
        """Which worker process answered."""
        return os.getpid()

    def spin(self, n):
        """Pure-Python CPU work: holds this process's GIL."""
        total = 0
        for i in range(n):
            total += i * i
        return total

    def slow_square(self, x, seconds):
        """A long call, for nb_slow_square(...)."""
        time.sleep(seconds)
        return x * x


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=50400)
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--result-store", default=None)
    args = p.parse_args()
    server = Work(
        address=(args.host, args.port),
        processes=args.processes,
        nonblocking=True if args.result_store or args.processes == 1 else False,
        result_store=args.result_store,
    )
    try:
        server.start()
    except KeyboardInterrupt:
        pass
