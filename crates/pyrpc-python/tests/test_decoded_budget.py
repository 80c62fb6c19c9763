"""The Python server's decoded-size budget (issue 10 point 7, decision 0019).

The Python server charges each value of a request's arguments against the
budget (4x the arguments' bytes, at least 256 MiB) while it decodes them,
instead of scanning the frame first. A 64 MB frame of empty values (over a
gigabyte once decoded) is refused with a clear error as soon as the count
passes the budget, the server's memory grows by at most 4x the frame, and
the same connection keeps serving.
"""

import sys

import pytest

from pyrpc import Client

MIB = 1024 * 1024
# 16M `None` items are 4 bytes each in the frame (the item's key and length,
# the empty value's key and length): 64 MB, 88 bytes each counted decoded.
N = 16 * 1000 * 1000

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="reads the server's memory from /proc")


def status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


def flat():
    """One list of 16M `None`: refused when the list's items are counted."""
    return [None] * N


def nested():
    """1M lists of 16 `None` each: refused part way through, after ~180k
    inner lists were made (and are freed with the error)."""
    inner = [None] * 16
    return [inner] * (N // 16)


@pytest.mark.parametrize("make", [flat, nested])
def test_a_frame_of_empty_values_is_refused_within_four_times_its_size(spawn_server, make):
    server = spawn_server("unix")
    pid = server.proc.pid
    c = Client(address=server.address)
    assert c.add(1, 2) == 3
    idle_kib = status_kib(pid, "VmRSS")
    value = make()
    with pytest.raises(Exception) as info:
        c.echo(value)
    message = str(info.value)
    assert "budget" in message, message
    assert "echo()" in message, message
    del value
    grown = (status_kib(pid, "VmHWM") - idle_kib) * 1024
    frame = 4 * N
    assert grown <= 4 * frame, "the server grew by %d MiB for a %d MiB frame" % (
        grown // MIB, frame // MIB)
    # The same connection (and the server) still answers.
    assert c.add(2, 3) == 5
    assert c.echo([None] * 1000) == (([None] * 1000,), {})


def test_arguments_within_the_budget_are_decoded(spawn_server):
    """A million empty values (a 4 MB frame, 88 MB counted) are within the
    256 MiB floor: decoded and answered."""
    server = spawn_server("unix")
    c = Client(address=server.address)
    got = c.echo([None] * 1000 * 1000, k=list(range(1000)))
    assert got == (([None] * 1000 * 1000,), {"k": list(range(1000))})
