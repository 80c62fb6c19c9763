"""A client over several servers (issue 15): ``Client(address=[a, b, c])``,
with real server processes."""

import concurrent.futures
import json
import os
import subprocess
import sys

import pytest

import pyrpc
from pyrpc import Client

from conftest import free_port, wait_connected

HERE = os.path.dirname(os.path.abspath(__file__))
FLEET_SERVER = os.path.join(HERE, "fleet_server.py")


class FleetProcess:
    def __init__(self, runs):
        self.address = ("127.0.0.1", free_port())
        env = dict(os.environ)
        env["PYTHONPATH"] = HERE + os.pathsep + env.get("PYTHONPATH", "")
        config = {"address": list(self.address), "runs": str(runs)}
        self.proc = subprocess.Popen(
            [sys.executable, FLEET_SERVER, json.dumps(config)],
            cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        wait_connected(self.address, self.proc)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def fleet(tmp_path):
    servers = []

    def start(n):
        for _ in range(n):
            servers.append(FleetProcess(tmp_path / "runs"))
        return servers[-n:]

    yield start
    for s in servers:
        s.stop()


def runs(tmp_path):
    path = tmp_path / "runs"
    return path.read_text().split("\n")[:-1] if path.exists() else []


def test_calls_spread_over_three_servers(fleet):
    servers = fleet(3)
    client = Client(address=[s.address for s in servers], call_timeout=10)
    assert client.address == [s.address for s in servers]
    pids = [client.pid() for _ in range(30)]
    # Ties (no call waiting) are taken in turn: every server serves some.
    assert {s.proc.pid for s in servers} == set(pids)
    # Threads at once: still all three, and every call answered.
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        got = list(pool.map(lambda _: client.pid(0.02), range(60)))
    assert set(got) == {s.proc.pid for s in servers}
    assert sum(client._core().served()) == 90
    assert client.connected()


def test_a_server_down_from_the_start_is_skipped(fleet):
    servers = fleet(2)
    dead = ("127.0.0.1", free_port())  # nothing listens there
    client = Client(address=[dead] + [s.address for s in servers], call_timeout=10)
    pids = [client.pid() for _ in range(20)]
    assert set(pids) == {s.proc.pid for s in servers}
    assert client.nb_pid() in {s.proc.pid for s in servers}
    assert client._core().served()[0] == 0


def test_every_server_down_is_a_clear_error_without_hanging():
    client = Client(address=[("127.0.0.1", free_port()), ("127.0.0.1", free_port())], call_timeout=10)
    with pytest.raises(pyrpc.NoSocket):
        client.pid()
    assert not client.connected()


def test_a_blocking_call_is_not_retried_unless_marked_idempotent(fleet, tmp_path):
    servers = fleet(2)
    client = Client(address=[s.address for s in servers], call_timeout=10)
    # The server running it dies mid-call: a clear error, and the call ran
    # once (not retried on the other server).
    with pytest.raises(pyrpc.NoSocket) as info:
        client.die()
    assert "closed" in str(info.value).lower(), info.value
    assert len(runs(tmp_path)) == 1
    # Marked safe to run twice: it moves on to the other server, which dies too.
    with pytest.raises(pyrpc.NoSocket):
        client.die(idempotent=True)
    assert len(runs(tmp_path)) == 2
    ran_on = {int(line.split()[1]) for line in runs(tmp_path)}
    assert ran_on == {s.proc.pid for s in servers}


def test_an_idempotent_call_moves_to_a_live_server(fleet, tmp_path):
    a, b = fleet(2)
    client = Client(address=[a.address, b.address], call_timeout=10)
    a.proc.kill()
    a.proc.communicate()
    # Refused connections never count as a run: plain calls go to b.
    assert client.pid() == b.proc.pid
    assert client.pid(idempotent=True) == b.proc.pid


def test_a_list_of_addresses_is_checked():
    with pytest.raises(ValueError, match="empty"):
        Client(address=[])
    with pytest.raises(ValueError, match="bad address"):
        Client(address=[("127.0.0.1", 1), ("127.0.0.1", 70000)])


def test_co_calls_spread_too(fleet):
    import asyncio

    servers = fleet(2)
    client = Client(address=[s.address for s in servers], call_timeout=10)

    async def main():
        return await asyncio.gather(*(client.co_pid() for _ in range(10)))

    assert set(asyncio.run(main())) == {s.proc.pid for s in servers}
    assert asyncio.run(client.co_nb_pid()) in {s.proc.pid for s in servers}
