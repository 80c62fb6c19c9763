"""numpy arrays next to bytes, the client's peak for a large return, and idle
memory after a soak (issue 10, points 3 and 7).

Run by `cargo xtask bench` (xtask/src/bench_memory.rs), or by hand with the
release build::

    target/venv/bin/python bench/python/memory_and_arrays.py [--quick] [--json] \
        [--rust-server target/release/examples/echo_server] [--soak-seconds N] [--soak-only]

Cases (one JSON object per line with --json):

- ``ndarray``: echo of a 100 MiB float64 array and of 100 MiB of bytes through
  a Python server on a Unix socket, medians; goal: array <= 1.5x bytes.
- ``client_peak``: a 100 MiB bytes return; the client's peak resident size
  above idle (VmHWM after resetting it, minus VmRSS before), as a multiple of
  the payload; goal <= 1.3x.
- ``soak``: a Python server (and the Rust example server when given) idle,
  then a load of small calls and 1-8 MiB payloads from 4 threads, then idle
  again (one call each second for 4 s); idle RSS before and after; goal:
  after <= 2x before. 40 s per server (5 with --quick); ``--soak-seconds 300``
  is issue 10's 5-minute soak (``cargo xtask bench --case memory --soak 300``),
  ``--soak-only`` skips the other cases.
"""

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from pyrpc import Client, Server

MIB = 1 << 20


class Echo(Server):
    def echo(self, x):
        return x

    def big(self, n):
        return bytes(n)


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def start_python_server(address):
    pid = os.fork()
    if pid == 0:
        try:
            Echo(address=address).start()
        finally:
            os._exit(0)
    return pid


def wait_up(address):
    client = Client(address=address)
    deadline = time.monotonic() + 30
    while not client.connected(0.2):
        assert time.monotonic() < deadline, f"no server at {address}"
    return client


def case_ndarray(client, repeats):
    import numpy

    array = numpy.random.default_rng(1).random(100 * MIB // 8)
    data = bytes(100 * MIB)
    assert numpy.array_equal(client.echo(array), array)
    t_bytes = median_time(lambda: client.echo(data), repeats)
    t_array = median_time(lambda: client.echo(array), repeats)
    return {"case": "100 MiB float64 array vs 100 MiB bytes (echo)", "ratio": t_array / t_bytes,
            "goal": 1.5, "summary": f"array {t_array * 1e3:.0f} ms, bytes {t_bytes * 1e3:.0f} ms, "
            f"medians of {repeats}"}


def case_client_peak(client):
    client.big(MIB)  # connection and buffers warm
    idle = status_kb("self", "VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    got = client.big(100 * MIB)
    peak = status_kb("self", "VmHWM")
    assert len(got) == 100 * MIB
    del got
    return {"case": "Python client peak above idle, 100 MiB bytes return (x payload)",
            "ratio": (peak - idle) * 1024 / (100 * MIB), "goal": 1.3,
            "summary": f"idle {idle // 1024} MiB, peak {peak // 1024} MiB"}


def echoed(got):
    """What echo(x) returned: x from the Python server here, ((x,), {}) from
    the Rust example server."""
    if isinstance(got, tuple) and len(got) == 2 and got[1] == {} and len(got[0]) == 1:
        return got[0][0]
    return got


def load(address, seconds, threads=4):
    """Small calls and 1-8 MiB payloads from `threads` clients for `seconds`."""
    stop = time.monotonic() + seconds
    counts = []

    def worker(seed):
        rnd = random.Random(seed)
        c = Client(address=address)
        n = 0
        while time.monotonic() < stop:
            if rnd.random() < 0.05:
                payload = bytes(rnd.randint(1, 8) * MIB)
                assert echoed(c.echo(payload)) == payload
            else:
                value = [n, "x" * rnd.randint(0, 200)]
                assert echoed(c.echo(value)) == value
            n += 1
        counts.append(n)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts)


def soak(name, address, pid, seconds):
    client = wait_up(address)
    client.echo(1)
    time.sleep(1.5)  # the server's own idle handling, as after the load
    before = status_kb(pid, "VmRSS")
    calls = load(address, seconds)
    loaded = status_kb(pid, "VmRSS")
    # Idle: a light call each second (as a health check would), 4 s.
    for _ in range(4):
        time.sleep(1)
        client.echo(1)
    time.sleep(1.5)
    after = status_kb(pid, "VmRSS")
    return {"case": f"idle RSS after / before a soak, {name}", "ratio": after / before, "goal": 2.0,
            "summary": f"{calls} calls in {seconds} s (5% of 1-8 MiB); idle {before / 1024:.1f} MiB "
            f"before, {loaded / 1024:.1f} MiB as the load ends, {after / 1024:.1f} MiB idle after"}


def main():
    as_json = "--json" in sys.argv
    quick = "--quick" in sys.argv
    rust = None
    if "--rust-server" in sys.argv:
        rust = sys.argv[sys.argv.index("--rust-server") + 1]
    repeats = 1 if quick else 5
    seconds = 5 if quick else 40
    if "--soak-seconds" in sys.argv:
        seconds = int(sys.argv[sys.argv.index("--soak-seconds") + 1])
    soak_only = "--soak-only" in sys.argv
    tmp = tempfile.mkdtemp()
    rows = []

    if not soak_only:
        address = os.path.join(tmp, "py.sock")
        pid = start_python_server(address)
        client = wait_up(address)
        try:
            try:
                import numpy  # noqa: F401
            except ImportError:
                print("numpy is not installed: the ndarray case is skipped", file=sys.stderr)
            else:
                rows.append(case_ndarray(client, repeats))
            rows.append(case_client_peak(client))
        finally:
            client.shutdown()
            os.waitpid(pid, 0)

    address = os.path.join(tmp, "soak-py.sock")
    pid = start_python_server(address)
    try:
        rows.append(soak("python server", address, pid, seconds))
    finally:
        Client(address=address).shutdown()
        os.waitpid(pid, 0)

    if rust:
        address = os.path.join(tmp, "soak-rust.sock")
        proc = subprocess.Popen([rust, "unix:" + address], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            rows.append(soak("rust example server", address, proc.pid, seconds))
        finally:
            Client(address=address).shutdown()
            proc.wait(timeout=30)

    load_avg = os.getloadavg()[0]
    for row in rows:
        row["summary"] += f"; load {load_avg:.1f}"
        if as_json:
            print(json.dumps(row), flush=True)
        else:
            met = "met" if row["ratio"] <= row["goal"] else "NOT met"
            print(f"{row['case']}: {row['ratio']:.2f} (goal <= {row['goal']}, {met}); {row['summary']}")


if __name__ == "__main__":
    main()
