"""Python echo on two builds of pyrpc, side by side in one run (issue 11).

    python side_by_side.py --venv NAME=PATH [--venv NAME=PATH ...] [--secs S] [--repeats N]

For each transport (TCP, Unix) and repeat, in turn for every venv: starts
``pyrpc_bench.py serve`` with that venv's Python, runs its ``seq`` client
(``echo(1, foo='foo')`` one call at a time), and reads the server's CPU time
(user + system, from ``/proc/<pid>/stat``) over the client's run. Also runs the
raw Python ping-pong server (``raw_echo.py``) against a raw Python client, the
yardstick of server CPU per call. Prints one JSON line per sample and a table
of medians. The machine's load average is printed before and after.
"""

import argparse
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TICK = os.sysconf("SC_CLK_TCK")


def cpu_secs(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(addr, proc, secs=30.0):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("server exited: %s" % proc.returncode)
        try:
            if addr.startswith("unix:"):
                s = socket.socket(socket.AF_UNIX)
                s.connect(addr[5:])
            else:
                host, port = addr.rsplit(":", 1)
                s = socket.create_connection((host, int(port)), timeout=1)
            s.close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not listen on %s" % addr)


def raw_client(addr, secs):
    """The raw ping-pong protocol: 4-byte length, body, echoed back."""
    if addr.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX)
        s.connect(addr[5:])
    else:
        host, port = addr.rsplit(":", 1)
        s = socket.create_connection((host, int(port)))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    body = b"x" * 32
    msg = struct.pack(">I", len(body)) + body
    calls = 0
    start = time.perf_counter()
    end = start + secs
    while True:
        s.sendall(msg)
        got = 0
        while got < len(msg):
            chunk = s.recv(len(msg) - got)
            if not chunk:
                raise RuntimeError("raw server closed")
            got += len(chunk)
        calls += 1
        if calls % 64 == 0 and time.perf_counter() >= end:
            break
    s.close()
    return calls, time.perf_counter() - start


def sample(python, case, transport, secs, tmp):
    addr = (
        "unix:%s/%s.sock" % (tmp, case)
        if transport == "unix"
        else "127.0.0.1:%d" % free_port()
    )
    script = "raw_echo.py" if case == "raw-python" else "pyrpc_bench.py"
    server = subprocess.Popen(
        [python, os.path.join(HERE, script), "serve", addr], cwd=HERE
    )
    try:
        wait_listening(addr, server)
        before = cpu_secs(server.pid)
        if case == "raw-python":
            calls, took = raw_client(addr, secs)
        else:
            out = subprocess.run(
                [python, os.path.join(HERE, "pyrpc_bench.py"), "seq", addr,
                 "--secs", str(secs)],
                cwd=HERE, check=True, capture_output=True, text=True,
            ).stdout
            rep = json.loads(out.strip().splitlines()[-1])
            calls, took = rep["calls"], rep["secs"]
        cpu = cpu_secs(server.pid) - before
    finally:
        server.kill()
        server.wait()
    return {
        "case": case,
        "transport": transport,
        "rate": calls / took,
        "server_cpu_us_per_call": cpu * 1e6 / calls,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--venv", action="append", required=True, help="NAME=PATH")
    p.add_argument("--secs", type=float, default=3.0)
    p.add_argument("--repeats", type=int, default=3)
    opts = p.parse_args()
    venvs = [v.split("=", 1) for v in opts.venv]
    print("load before: %s" % (os.getloadavg(),), flush=True)
    samples = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(opts.repeats):
            for transport in ("tcp", "unix"):
                runs = [(name, os.path.join(path, "bin", "python")) for name, path in venvs]
                runs.append(("raw-python", sys.executable))
                for name, python in runs:
                    s = sample(python, name, transport, opts.secs, tmp)
                    print(json.dumps(s), flush=True)
                    samples.append(s)
    print("load after: %s" % (os.getloadavg(),))
    print("| case | tcp calls/s | unix calls/s | server CPU us/call tcp / unix |")
    print("|---|--:|--:|--:|")
    names = [n for n, _ in venvs] + ["raw-python"]
    for name in names:
        def med(transport, key):
            return statistics.median(
                s[key] for s in samples if s["case"] == name and s["transport"] == transport
            )
        print("| %s | %.0f | %.0f | %.1f / %.1f |" % (
            name, med("tcp", "rate"), med("unix", "rate"),
            med("tcp", "server_cpu_us_per_call"), med("unix", "server_cpu_us_per_call")))


if __name__ == "__main__":
    main()
