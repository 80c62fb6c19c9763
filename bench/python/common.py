"""Shared helpers of the Python bench scripts: addresses, budgets, reports.

Every client prints one JSON object on one line (the same fields as the Rust
clients: ``ok``, ``calls``, ``secs``, ``rate``, ``p50_us``, ``p99_us``,
``rss_peak_kb``, ...); every loop is bounded in count and in time.
"""

import argparse
import json
import math
import time


def address(text):
    """``unix:/path`` -> the path (pyrpc's Unix address); ``host:port`` -> a tuple."""
    if text.startswith("unix:"):
        return text[len("unix:"):]
    host, _, port = text.rpartition(":")
    return (host, int(port))


def parser(description, verbs):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("verb", choices=verbs)
    p.add_argument("address")
    p.add_argument("--secs", type=float, default=2.0)
    p.add_argument("--max", type=int, default=1_000_000)
    p.add_argument("--warmup", type=int, default=200)
    return p


def proc_status_kb(field, pid="self"):
    try:
        with open("/proc/%s/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def quantile_us(lat_ns, q):
    if not lat_ns:
        return 0.0
    lat_ns = sorted(lat_ns)
    rank = min(max(int(-(-q * len(lat_ns) // 1)), 1), len(lat_ns))
    return lat_ns[rank - 1] / 1000.0


def sequential(opts, call):
    """Calls ``call()`` until the budget is spent; returns (latencies in ns, secs)."""
    for _ in range(opts.warmup):
        call()
    lat = []
    now = time.perf_counter_ns
    start = now()
    limit = start + int(opts.secs * 1e9)
    while len(lat) < opts.max:
        t = now()
        call()
        t2 = now()
        lat.append(t2 - t)
        if t2 >= limit:
            break
    return lat, (now() - start) / 1e9


class Report(dict):
    def __init__(self, mode):
        super().__init__(mode=mode, ok=True)

    def rate(self, lat, secs):
        self.update(
            calls=len(lat),
            secs=secs,
            rate=len(lat) / secs if secs > 0 else 0.0,
            p50_us=quantile_us(lat, 0.5),
            p99_us=quantile_us(lat, 0.99),
        )

    def fail(self, why):
        self.update(ok=False, error=why)

    def print(self):
        self.update(
            rss_peak_kb=proc_status_kb("VmHWM"), rss_now_kb=proc_status_kb("VmRSS")
        )
        # Strict JSON (xtask reads it with serde_json): no NaN or Infinity.
        finite = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in self.items()
        }
        print(json.dumps(finite, allow_nan=False), flush=True)
