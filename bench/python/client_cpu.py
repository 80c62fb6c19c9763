"""The Python client's CPU time per call, old build against new, alternately.

    python bench/python/client_cpu.py --python old=/venv-a/bin/python \\
        --python new=/venv-b/bin/python --repeats 5 --secs 4

For each case, one server runs (with ``--server-python``, default: this
interpreter) and a client process of each ``--python`` in turn (old, new,
old, new, ...) calls it for ``--secs``; each client reports its calls/s and,
from its own counters over the timed window, the CPU time (user + system,
every thread) and the context switches per call. The figures are medians
over the repeats, with the load average before and after.

Cases (``--case``, repeatable; default all):

* ``seq``: one thread calling ``echo(1, foo='foo')`` on a Python server
  (``pyrpc_bench.py serve``), as ``cargo xtask bench --case py-seq``.
* ``threads``: 8 threads, each with its own ``Client``, calling ``echo``.
* ``scale``: 8 threads, each with its own ``Client``, calling the ~1 ms
  ``spin`` of ``bench/scale.py`` on ``Server(processes=2)``: the client of
  issue 15's scaling benchmark.

``python client_cpu.py client CASE ADDR --secs S [--spin N]`` is one client.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
CASES = ("seq", "threads", "scale")


def _counters():
    t = os.times()
    r = resource.getrusage(resource.RUSAGE_SELF)
    return t.user + t.system, r.ru_nvcsw + r.ru_nivcsw


def client(case, address, secs, spin_n, threads):
    from pyrpc import Client

    if case == "seq":
        threads = 1
    stop = [0.0]
    counts = [0] * threads

    def call_of(c):
        if case == "scale":
            return lambda: c.spin(spin_n)
        return lambda: c.echo(1, foo="foo")

    def go():
        stop[0] = time.monotonic() + secs
        marks.append((time.monotonic(),) + _counters())

    marks = []
    ready = threading.Barrier(threads + 1, action=go)

    errors = []

    def run(k):
        try:
            with Client(address=address) as c:
                call = call_of(c)
                for _ in range(200 if case != "scale" else 5):
                    call()
                ready.wait()
                n = 0
                while time.monotonic() < stop[0]:
                    call()
                    n += 1
                counts[k] = n
        except BaseException as exc:  # reported below; the others stop too
            errors.append(exc)
            ready.abort()

    ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        pass
    for t in ts:
        t.join()
    if errors:
        raise RuntimeError("a client thread failed: %r" % (errors[0],))
    end = (time.monotonic(),) + _counters()
    took = end[0] - marks[0][0]
    calls = sum(counts)
    return {
        "calls": calls,
        "rate": round(calls / took, 1),
        "cpu_us_per_call": round((end[1] - marks[0][1]) / calls * 1e6, 1),
        "cores": round((end[1] - marks[0][1]) / took, 3),
        "ctxsw_per_call": round((end[2] - marks[0][2]) / calls, 2),
    }


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(python, address, proc):
    probe = (
        "import sys, time\nfrom pyrpc import Client\n"
        "c = Client(address=%r)\n"
        "deadline = time.monotonic() + 30\n"
        "while not c.connected(0.2):\n"
        "    if time.monotonic() > deadline: sys.exit(1)\n"
        "    time.sleep(0.05)\n" % (address,)
    )
    subprocess.run([python, "-c", probe], check=True, timeout=60)
    if proc.poll() is not None:
        raise RuntimeError("the server exited")


def _server(case, python, port):
    address = ("127.0.0.1", port)
    if case == "scale":
        cmd = [python, os.path.join(BENCH, "scale.py"), "serve", json.dumps(list(address)), "2"]
    else:
        cmd = [python, os.path.join(HERE, "pyrpc_bench.py"), "serve", "127.0.0.1:%d" % port]
    proc = subprocess.Popen(cmd)
    _wait_up(python, address, proc)
    # scale.py's balancer: let the probe's close be reported (0/0 split).
    time.sleep(0.5)
    return address, proc


def _stop(python, address, proc):
    stop = "from pyrpc import Client\ntry:\n    Client(address=%r).shutdown()\nexcept Exception:\n    pass\n"
    subprocess.run([python, "-c", stop % (address,)], timeout=60)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def drive(args):
    pythons = [p.split("=", 1) for p in args.python] or [["this", sys.executable]]
    server_python = args.server_python or sys.executable
    spin_n = 0
    if "scale" in args.case:
        sys.path.insert(0, BENCH)
        import scale

        spin_n = scale.calibrate()
    out = {"load_before": [round(x, 2) for x in os.getloadavg()], "spin_n": spin_n, "cases": {}}
    for case in args.case:
        address, proc = _server(case, server_python, _free_port())
        runs = {name: [] for name, _ in pythons}
        try:
            for _ in range(args.repeats):
                for name, python in pythons:
                    got = subprocess.run(
                        [python, os.path.abspath(__file__), "client", case, json.dumps(list(address)),
                         "--secs", str(args.secs), "--spin", str(spin_n), "--threads", str(args.threads)],
                        check=True, capture_output=True, text=True, timeout=args.secs + 120,
                    )
                    runs[name].append(json.loads(got.stdout.strip().splitlines()[-1]))
        finally:
            _stop(server_python, address, proc)
        summary = {}
        for name, rs in runs.items():
            summary[name] = {
                key: statistics.median(r[key] for r in rs)
                for key in ("rate", "cpu_us_per_call", "cores", "ctxsw_per_call")
            }
            summary[name]["cpu_us_per_call_all"] = [r["cpu_us_per_call"] for r in rs]
        out["cases"][case] = summary
        print(case, json.dumps(summary), flush=True)
    out["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        p = argparse.ArgumentParser()
        p.add_argument("verb")
        p.add_argument("case", choices=CASES)
        p.add_argument("address")
        p.add_argument("--secs", type=float, default=4)
        p.add_argument("--spin", type=int, default=20000)
        p.add_argument("--threads", type=int, default=8)
        a = p.parse_args()
        print(json.dumps(client(a.case, tuple(json.loads(a.address)), a.secs, a.spin, a.threads)))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--python", action="append", default=[], help="NAME=PATH of a client interpreter")
    p.add_argument("--server-python")
    p.add_argument("--case", action="append", choices=CASES)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--secs", type=float, default=4)
    p.add_argument("--threads", type=int, default=8)
    args = p.parse_args()
    args.case = args.case or list(CASES)
    drive(args)


if __name__ == "__main__":
    main()
