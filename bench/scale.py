"""Issue 15's scaling benchmark: a CPU-bound pure-Python method (about 1 ms)
called from 8 client threads, served by ``Server(processes=1)`` and
``Server(processes=2)``. Run by ``cargo xtask bench`` (xtask/src/bench_scale.rs):

    python bench/scale.py --secs 5 --repeats 3 --out target/bench/scale.json

Repeats alternate processes=1 and processes=2; the figure is the median of
the per-pair ratios, with the load averages before and after (other work on
the machine skews a single pair).

``python bench/scale.py serve ADDRESS_JSON N`` is the server side.
"""

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import threading
import time

from pyrpc import Client, Server

#: Loop length of ``spin`` taking about 1 ms; calibrated at start.
SPIN_N = 20_000


class SpinServer(Server):
    def pid(self):
        return os.getpid()

    def spin(self, n):
        total = 0
        for i in range(n):
            total += i * i
        return total


def spin_local(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


def calibrate():
    """The loop length that takes about 1 ms in this interpreter."""
    n = 20_000
    for _ in range(3):
        # The fastest of several runs: other load only ever slows a run down.
        took = min(_timed(n) for _ in range(7))
        n = max(1000, int(n * 0.001 / max(took, 1e-6)))
    return n


def _timed(n):
    t = time.perf_counter()
    spin_local(n)
    return time.perf_counter() - t


def serve(address, processes):
    server = SpinServer(address=tuple(address), processes=processes, shutdown_grace=2)
    try:
        server.start()
    except KeyboardInterrupt:
        pass


def measure(processes, secs, threads, n):
    port = _free_port()
    address = ("127.0.0.1", port)
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "serve", json.dumps(list(address)), str(processes)]
    )
    try:
        with Client(address=address) as probe:
            deadline = time.monotonic() + 30
            while not probe.connected(0.2):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the server did not come up")
                time.sleep(0.05)
        # The supervisor hands each connection to the worker with the fewest
        # open ones, as the workers report them: give the probe's close time
        # to be reported, so the 8 connections below start from 0/0.
        time.sleep(0.5)
        counts = [0] * threads
        pids = [0] * threads
        start_stop = [0.0, 0.0]

        cpu_start = {}

        def go():
            # Runs once all are at the barrier, before any is released.
            cpu_start.update(_cpu_seconds(set(pids)))
            start_stop[0] = time.monotonic()
            start_stop[1] = start_stop[0] + secs

        ready = threading.Barrier(threads + 1, action=go)

        def run(k):
            with Client(address=address) as c:
                pids[k] = c.pid()  # which worker this connection landed on
                for _ in range(5):
                    c.spin(n)  # warm up this connection's worker
                ready.wait()
                while time.monotonic() < start_stop[1]:
                    c.spin(n)
                    counts[k] += 1

        ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
        for t in ts:
            t.start()
        ready.wait()  # every connection made and warm
        for t in ts:
            t.join()
        took = time.monotonic() - start_stop[0]
        cpu_end = _cpu_seconds(set(pids))
        split = sorted(collections.Counter(pids).values())
        # Cores used over the timed window: each worker, and this client
        # process (8 threads under one GIL, on the same 2 cores).
        cpu = {
            "workers": sorted(
                round((cpu_end[p] - cpu_start[p]) / took, 2) for p in cpu_end if p != "client"
            ),
            "client": round((cpu_end["client"] - cpu_start["client"]) / took, 2),
        }
        return sum(counts) / took, split, cpu
    finally:
        with Client(address=address) as c:
            try:
                c.shutdown()
            except Exception:
                pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _cpu_seconds(worker_pids):
    """CPU seconds (user + system) used so far by each worker process and by
    this process (``"client"``), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in worker_pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    t = os.times()
    out["client"] = t.user + t.system
    return out


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(json.loads(sys.argv[2]), int(sys.argv[3]))
        return
    p = argparse.ArgumentParser()
    p.add_argument("--secs", type=float, default=5)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out")
    args = p.parse_args()
    n = calibrate()
    load_before = os.getloadavg()
    # Interleaved (1, 2, 1, 2, ...): other load on the machine hits both
    # alike; the figure is the median of the ratios of each pair.
    ones, twos, ratios, splits, cpus = [], [], [], [], []
    for _ in range(max(1, args.repeats)):
        one, _, cpu1 = measure(1, args.secs, args.threads, n)
        two, split, cpu2 = measure(2, args.secs, args.threads, n)
        splits.append(split)
        cpus.append({"processes_1": cpu1, "processes_2": cpu2})
        ones.append(round(one, 1))
        twos.append(round(two, 1))
        ratios.append(round(two / one, 2) if one else 0.0)
    result = {
        "spin_n": n,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "processes_1_calls_per_s": statistics.median(ones),
        "processes_2_calls_per_s": statistics.median(twos),
        "ratio": statistics.median(ratios),
        "ratios": ratios,
        # Connections per worker with processes=2, per pair.
        "splits": splits,
        # Cores used per pair: each worker and the client process.
        "cpu": cpus,
        "goal": 1.7,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
