"""A server whose non-blocking results live in Redis, for test_result_store.py.

``python store_server.py CONFIG_JSON``, CONFIG_JSON being ``{"address": ...,
"redis": URL, "runs": PATH, "lease": SECONDS}``. Every run of ``work`` is
written to the ``runs`` file (``start I PID`` and ``end I``; small appends are
atomic), so a test can count executions across processes.
"""

import json
import os
import sys
import time

from pyrpc import Server

CONFIG = json.loads(sys.argv[1])
RUNS = CONFIG["runs"]


def note(line):
    with open(RUNS, "a") as f:
        f.write(line + "\n")


class StoreServer(Server):
    nonblocking = True
    workers = 64

    def work(self, i, seconds):
        note("start %d %d" % (i, os.getpid()))
        time.sleep(seconds)
        note("end %d" % i)
        return i * 2

    def pid(self):
        return os.getpid()


if __name__ == "__main__":
    address = CONFIG["address"]
    if isinstance(address, list):
        address = tuple(address)
    StoreServer(
        address=address,
        result_store=CONFIG["redis"],
        result_lease=CONFIG.get("lease", 10),
        shutdown_grace=0.5,
    ).start()
