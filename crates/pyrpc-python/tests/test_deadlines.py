"""docs/PROTOCOL.md, "Deadlines", on the Python server: a call that waited
for the GIL past its deadline is not started."""

import os
import threading
import time

import pytest

import pyrpc
from pyrpc import Client, Timeout


def test_a_call_that_waited_for_the_gil_past_its_deadline_does_not_run(spawn_server, tmp_path):
    server = spawn_server("unix", kind="gil")
    fifo = str(tmp_path / "held")
    os.mkfifo(fifo)
    marker = tmp_path / "ran"
    holder = Client(address=server.address)
    caller = Client(address=server.address)
    before = pyrpc.stats(caller)

    held = []
    t = threading.Thread(target=lambda: held.append(holder.hold_gil(fifo, 0.5)))
    t.start()
    with open(fifo, "rb") as f:
        assert f.read(1) == b"x"
    # The server's GIL is taken for 0.5 s from now: mark() is read and
    # dispatched (in Rust, no GIL needed), then waits for the GIL past its
    # 0.1 s deadline.
    with pytest.raises(Timeout):
        caller.mark(str(marker), call_timeout=0.1)
    t.join()
    assert held == ["held"]
    # The Stats request needs no GIL; mark()'s outcome is counted once known.
    limit = time.monotonic() + 10
    while pyrpc.stats(caller)["calls"] < before["calls"] + 2:
        assert time.monotonic() < limit, "mark() got no outcome within 10 s"
        time.sleep(0.02)
    after = pyrpc.stats(caller)
    assert after["errors"] - before["errors"] == 1, "mark() ended in DEADLINE_EXCEEDED"
    assert not marker.exists(), "mark() ran after its deadline"
    # The server goes on serving.
    caller.mark(str(marker))
    assert marker.exists()
