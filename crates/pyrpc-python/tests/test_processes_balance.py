"""How ``Server(processes=2)`` balances connections over its workers (issue
15): the supervisor accepts every connection and hands it to the worker with
the fewest open ones (docs/decisions/0084-balanced-hand-off.md). Real worker
processes, over TCP and Unix sockets; the supervisor runs in a thread of the
test so that its balancer's counts can be read."""

import collections
import concurrent.futures
import os
import socket
import threading
import time

import pytest

from certs import make_pki
from conftest import free_port
from processes_server import WorkerServer
from pyrpc import AuthError, Client, TlsError, _processes, _pyrpc
from pyrpc import close as close_client


class Supervised:
    """``WorkerServer(processes=2).start()`` in a thread, started once every
    worker has told the balancer it serves."""

    def __init__(self, address, **settings):
        self.server = WorkerServer(address=address, processes=2, shutdown_grace=5, **settings)
        self.error = None
        self.thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self.thread.start()
        self.supervisor = None
        self.wait(lambda: self._ready(), "the workers did not start")
        self.balancer = self.supervisor.balancer
        self.address = self.balancer.local_address()

    def _run(self):
        try:
            self.server.start()
        except BaseException as e:  # reported by wait()
            self.error = e

    def _ready(self):
        self.supervisor = _processes._RUNNING.get(id(self.server))
        balancer = self.supervisor and self.supervisor.balancer
        return balancer is not None and None not in balancer.open_counts()

    def wait(self, condition, what, within=60):
        deadline = time.monotonic() + within
        while not condition():
            assert self.error is None, self.error
            assert time.monotonic() < deadline, what
            time.sleep(0.01)

    def wait_counts(self, want):
        self.wait(lambda: self.balancer.open_counts() == want,
                  "open connections never became %r" % (want,))

    def stop(self):
        self.server.shutdown()
        self.thread.join(60)
        assert not self.thread.is_alive(), "the supervisor did not stop"
        assert self.error is None, self.error


@pytest.fixture(params=["tcp", "unix"])
def address(request, tmp_path):
    if request.param == "tcp":
        return ("127.0.0.1", free_port())
    return str(tmp_path / "s")


def burst(address, n=8, **settings):
    """``n`` clients connecting at the same moment; their workers' pids."""
    clients = [Client(address=address, **settings) for _ in range(n)]
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        pids = list(pool.map(lambda c: c.pid(), clients))
    return clients, pids


def split(pids):
    return sorted(collections.Counter(pids).values())


def test_eight_connections_at_once_split_four_four_and_closes_are_counted(address):
    s = Supervised(address)
    try:
        for _ in range(2):
            clients, pids = burst(s.address)
            assert split(pids) == [4, 4], pids
            assert s.balancer.open_counts() == [4, 4]
            for c in clients:
                close_client(c)
            # The workers report each close: the next burst splits 4/4 again.
            s.wait_counts([0, 0])
    finally:
        s.stop()


def test_a_replaced_worker_gets_its_share_of_new_connections(tmp_path):
    s = Supervised(str(tmp_path / "s"))
    try:
        before = dict(s.supervisor.pids)
        with Client(address=s.address) as c:
            with pytest.raises(Exception):
                c.crash()
        s.wait(lambda: s.supervisor.pids != before and s._ready(),
               "the crashed worker was not replaced")
        new = set(s.supervisor.pids.values()) - set(before.values())
        assert len(new) == 1
        clients, pids = burst(s.address)
        assert split(pids) == [4, 4], pids
        assert new <= set(pids)
        for c in clients:
            close_client(c)
    finally:
        s.stop()


def test_tls_and_the_secret_are_checked_by_the_workers(tmp_path):
    pki = make_pki(tmp_path)
    s = Supervised(("127.0.0.1", free_port()), tls_cert=pki["server_cert"],
                   tls_key=pki["server_key"], secret="s3cret")
    try:
        clients, pids = burst(s.address, tls_ca=pki["ca"], secret="s3cret")
        assert split(pids) == [4, 4], pids
        for c in clients:
            close_client(c)
        # The admission of a worker's own accepts: a plain client is told
        # TLS is required, a wrong secret is refused.
        with pytest.raises(TlsError, match="requires TLS"):
            Client(address=s.address, secret="s3cret").pid()
        with pytest.raises(AuthError):
            Client(address=s.address, tls_ca=pki["ca"], secret="wrong").pid()
    finally:
        s.stop()


def test_shutdown_lets_a_running_call_finish(tmp_path):
    s = Supervised(("127.0.0.1", free_port()))
    marker = str(tmp_path / "running")
    try:
        with Client(address=s.address) as c, concurrent.futures.ThreadPoolExecutor(1) as pool:
            running = pool.submit(c.sleep, 1.0, marker)
            s.wait(lambda: os.path.exists(marker), "the call did not start")
            s.server.shutdown()
            assert running.result(timeout=30) == 1.0
    finally:
        s.stop()
    assert not Client(address=s.address).connected()


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_a_connection_made_before_the_workers_start_waits_for_them(transport, tmp_path):
    """The balancer accepts from the moment it binds, before the supervisor
    has started any worker. A connection made then waits in a worker's
    channel for it. It used to be closed, and the warning saying so was
    logged under the balancer's lock: with the supervisor holding the GIL
    in ``attach`` and the log line waiting for the GIL, the supervisor hung
    before starting its workers (seen as a server that never came up)."""
    address = ("127.0.0.1", 0) if transport == "tcp" else str(tmp_path / "s")
    balancer = _pyrpc.ConnectionBalancer(address, 2)
    try:
        bound = balancer.local_address()
        family = socket.AF_INET if transport == "tcp" else socket.AF_UNIX
        with socket.socket(family, socket.SOCK_STREAM) as early:
            early.connect(tuple(bound) if transport == "tcp" else bound)
            early.sendall(b"early")
            # The first worker's channel, as the supervisor takes it to
            # start worker 0: the connection is (or will be) in it.
            with socket.socket(fileno=balancer.attach(0)) as channel:
                channel.settimeout(30)
                msg, fds, _, _ = socket.recv_fds(channel, 1, 1)
                assert msg == b"C" and len(fds) == 1
                with socket.socket(fileno=fds[0]) as handed:
                    handed.settimeout(30)
                    assert handed.recv(5) == b"early"
            # Worker 1's first channel too is the one made up front; later
            # attaches (a replaced worker) make new ones.
            os.close(balancer.attach(1))
    finally:
        balancer.close()
