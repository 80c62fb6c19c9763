"""Where a value round trip's time goes: the round trip against the four
conversions it makes (client dumps, server loads, server dumps, client loads),
for pyrpc and for pickle over a plain Unix socket (issue 10, item 6).

``python bench/python/values_overhead.py [repeats] [case]`` (``case``: part
of a case's name, e.g. ``ints``; all cases without it) prints, per case, the
median round trip, the CPU time of a round trip (client and server
processes, every thread), the least CPU time of each conversion in this
process, and what is left (round trip or its CPU minus two dumps and two
loads): the transport and framing. CPU times hold up under load better than
wall times. Uses ``bench/python/values_vs_pickle.py``'s servers.
"""

import os
import pickle
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import values_vs_pickle as vp  # noqa: E402
from pyrpc import _pyrpc  # noqa: E402


def cpu_ns(pid):
    """CPU time of every thread of `pid` so far (ns, from schedstat)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def cpu_per_call(fn, pids, repeats):
    """CPU ms per call of `fn`, summed over the processes `pids`."""
    before = sum(cpu_ns(p) for p in pids)
    for _ in range(repeats):
        fn()
    return (sum(cpu_ns(p) for p in pids) - before) / repeats / 1e6


def best(fn, repeats):
    """The least CPU time (of this thread) of `repeats` calls of `fn`, s."""
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        fn()
        times.append(time.thread_time() - start)
    return min(times)


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    only = sys.argv[2] if len(sys.argv) > 2 else ""
    servers = vp.Servers()
    client, sock = servers.client, servers.sock
    pid, pid2 = servers.pids
    try:
        for name, make in vp.CASES.items():
            if only not in name:
                continue
            value = make()
            pb, kb = _pyrpc._dumps(value), pickle.dumps(value, protocol=5)
            rt_y, rt_k = vp.median_times(
                [lambda: client.echo(value), lambda: vp.pickle_roundtrip(sock, value)], repeats
            )
            cpu_y = cpu_per_call(lambda: client.echo(value), [os.getpid(), pid], repeats)
            cpu_k = cpu_per_call(lambda: vp.pickle_roundtrip(sock, value), [os.getpid(), pid2], repeats)
            conv_y = [best(lambda: _pyrpc._dumps(value), repeats), best(lambda: _pyrpc._loads(pb), repeats)]
            conv_k = [best(lambda: pickle.dumps(value, protocol=5), repeats),
                      best(lambda: pickle.loads(kb), repeats)]
            for who, rt, cpu, (d, l) in (("pyrpc", rt_y, cpu_y, conv_y), ("pickle", rt_k, cpu_k, conv_k)):
                conv = 2 * d + 2 * l
                print(f"{name:34s} {who:6s} rt {rt * 1e3:6.1f}  cpu {cpu:6.1f}  dumps {d * 1e3:5.1f}"
                      f"  loads {l * 1e3:5.1f}  rt-conv {rt * 1e3 - conv * 1e3:5.1f}"
                      f"  cpu-conv {cpu - conv * 1e3:5.1f} ms", flush=True)
            print(f"{'':34s} ratio {rt_y / rt_k:4.2f}", flush=True)
    finally:
        servers.close()


if __name__ == "__main__":
    main()
