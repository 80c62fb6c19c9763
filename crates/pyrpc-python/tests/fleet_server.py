"""A server for test_multi_client.py: ``python fleet_server.py CONFIG_JSON``,
CONFIG_JSON being ``{"address": [host, port], "runs": PATH}``. Each run of
``die`` is written to the ``runs`` file before the process ends, so a test
can count how often a call ran across servers."""

import json
import os
import sys
import time

from pyrpc import Server

CONFIG = json.loads(sys.argv[1])


class FleetServer(Server):
    nonblocking = True

    def pid(self, seconds=0):
        time.sleep(seconds)
        return os.getpid()

    def die(self):
        """Notes the run, then ends the process mid-call: the caller's
        connection breaks before any reply."""
        with open(CONFIG["runs"], "a") as f:
            f.write("die %d\n" % os.getpid())
        os._exit(3)


if __name__ == "__main__":
    FleetServer(address=tuple(CONFIG["address"]), shutdown_grace=0.5).start()
