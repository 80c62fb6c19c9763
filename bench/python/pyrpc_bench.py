"""pyrpc's Python side under measurement: a server and the client's modes.

    python pyrpc_bench.py serve ADDR [--synchronous]
    python pyrpc_bench.py seq ADDR [--secs S]          # echo(1, foo='foo'), one at a time
    python pyrpc_bench.py threads ADDR --threads 8     # 8 threads sharing one Client
    python pyrpc_bench.py nb-fast ADDR                 # blocking echo, then nb_echo: both p50s
    python pyrpc_bench.py nb-slow ADDR --sleep 0.2 --tick 1 --count N
    python pyrpc_bench.py big ADDR --size BYTES --count N

ADDR is ``host:port`` or ``unix:/path``. The server serves ``echo``,
``sleep(seconds)`` and ``big(n)`` (a fresh ``bytes`` of n bytes per call),
non-blocking calls enabled.
"""

import sys
import threading
import time
import traceback

import common
from pyrpc import Client, Server

FILL = 0x5A


class BenchServer(Server):
    nonblocking = True

    def echo(self, *args, **kwargs):
        return args, kwargs

    def sleep(self, seconds):
        time.sleep(min(max(seconds, 0.0), 60.0))
        return seconds

    def big(self, n):
        return bytes([FILL]) * n


def check_echo(ret):
    if ret != ((1,), {"foo": "foo"}):
        raise AssertionError("echo returned %r" % (ret,))


def seq(opts, report):
    client = Client(address=common.address(opts.address))
    lat, secs = common.sequential(opts, lambda: check_echo(client.echo(1, foo="foo")))
    report.rate(lat, secs)


def threads(opts, report):
    client = Client(address=common.address(opts.address))
    check_echo(client.echo(1, foo="foo"))
    results = [None] * opts.threads
    start = time.perf_counter_ns()
    limit = start + int(opts.secs * 1e9)
    share = opts.max // opts.threads

    def work(i):
        lat = []
        try:
            now = time.perf_counter_ns
            while len(lat) < share:
                t = now()
                check_echo(client.echo(1, foo="foo"))
                t2 = now()
                lat.append(t2 - t)
                if t2 >= limit:
                    break
            results[i] = lat
        except BaseException as exc:  # reported below
            results[i] = exc

    ts = [threading.Thread(target=work, args=(i,)) for i in range(opts.threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(opts.secs + 60)
    secs = (time.perf_counter_ns() - start) / 1e9
    lat = []
    for r in results:
        if not isinstance(r, list):
            raise RuntimeError("a thread failed: %r" % (r,))
        lat.extend(r)
    report.rate(lat, secs)
    report["concurrency"] = opts.threads


def nb_fast(opts, report):
    client = Client(address=common.address(opts.address))
    blocking, _ = common.sequential(opts, lambda: check_echo(client.echo(1, foo="foo")))
    nb, secs = common.sequential(opts, lambda: check_echo(client.nb_echo(1, foo="foo")))
    report.rate(nb, secs)
    report["echo_p50_us"] = common.quantile_us(blocking, 0.5)


def nb_slow(opts, report):
    client = Client(address=common.address(opts.address))
    check_echo(client.echo(1, foo="foo"))
    lat = []
    start = time.perf_counter_ns()
    for _ in range(opts.count):
        t = time.perf_counter_ns()
        client.nb_sleep(opts.sleep, nb_fetch_tick=opts.tick, call_timeout=30)
        lat.append(time.perf_counter_ns() - t)
    report.rate(lat, (time.perf_counter_ns() - start) / 1e9)
    report["sleep_ms"] = opts.sleep * 1000
    report["overshoot_ms"] = max(lat) / 1e6 - opts.sleep * 1000


def big(opts, report):
    client = Client(address=common.address(opts.address))
    check_echo(client.echo(1, foo="foo"))
    report["rss_idle_kb"] = common.proc_status_kb("VmRSS")
    lat = []
    start = time.perf_counter_ns()
    for _ in range(opts.count):
        t = time.perf_counter_ns()
        b = client.big(opts.size)
        if len(b) != opts.size or (b and b[0] != FILL):
            raise AssertionError("big returned %d bytes" % len(b))
        del b
        lat.append(time.perf_counter_ns() - t)
    secs = (time.perf_counter_ns() - start) / 1e9
    report.rate(lat, secs)
    report["bytes"] = opts.size
    report["mbps"] = opts.size * opts.count / secs / 1e6


def main():
    p = common.parser(__doc__, ["serve", "seq", "threads", "nb-fast", "nb-slow", "big"])
    p.add_argument("--synchronous", action="store_true")
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--sleep", type=float, default=0.2)
    p.add_argument("--tick", type=float, default=1.0)
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--size", type=int, default=1 << 20)
    opts = p.parse_args()
    if opts.verb == "serve":
        BenchServer(
            address=common.address(opts.address), synchronous=opts.synchronous
        ).start()
        return
    report = common.Report(opts.verb)
    try:
        {"seq": seq, "threads": threads, "nb-fast": nb_fast, "nb-slow": nb_slow, "big": big}[
            opts.verb
        ](opts, report)
    except Exception as exc:
        traceback.print_exc()
        report.fail("%s: %s" % (type(exc).__name__, exc))
    report.print()


if __name__ == "__main__":
    sys.exit(main())
