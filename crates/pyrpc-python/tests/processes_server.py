"""A server run with ``processes=N``, for test_processes.py and the scaling
benchmark: ``python processes_server.py CONFIG_JSON`` with ``{"address": ...,
"processes": N, "result_store": URL or null}``."""

import json
import os
import sys
import time

from pyrpc import Server


class WorkerServer(Server):
    nonblocking = False

    def pid(self):
        return os.getpid()

    def crash(self):
        os._exit(3)

    def sleep(self, seconds, marker):
        """Creates ``marker`` (the call is running), then sleeps."""
        open(marker, "w").close()
        time.sleep(seconds)
        return seconds

    def spin(self, n):
        """CPU-bound pure Python: about 1 ms per n=20_000 here."""
        total = 0
        for i in range(n):
            total += i * i
        return total


if __name__ == "__main__":
    config = json.loads(sys.argv[1])
    address = config["address"]
    if isinstance(address, list):
        address = tuple(address)
    store = config.get("result_store")
    server = WorkerServer(
        address=address,
        processes=config["processes"],
        nonblocking=bool(store),
        result_store=store,
        shutdown_grace=2,
    )
    try:
        server.start()
    except KeyboardInterrupt:
        pass
