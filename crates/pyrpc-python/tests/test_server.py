"""Server features: redirection, assignment, logging hooks, lifecycle, Ctrl-C."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import HERE, make_address, wait_connected
from pyrpc import Client, Server


def test_assigned_function_is_served(spawn_server, transport):
    plain = spawn_server(transport, kind="plain", nonblocking=True)
    c = Client(address=plain.address)
    assert c.echo(1, foo="foo") == ((1,), {"foo": "foo"})
    assert c.nb_echo(1, foo="foo", nb_fetch_tick=0.05) == ((1,), {"foo": "foo"})


def test_callee_redirection(spawn_server, transport):
    s = spawn_server(transport, kind="callee")
    c = Client(address=s.address)
    assert c.whoami() == "target"
    assert c.echo(1) == ("target", (1,), {})
    # The server's own methods are not served: only the callee's.
    with pytest.raises(AttributeError):
        c.start_in_thread()
    assert c.connected()


def test_callee_type_redirection(spawn_server, transport):
    s = spawn_server(transport, kind="callee_type")
    c = Client(address=s.address)
    assert c.whoami() == "target"


def test_server_defaults_are_the_originals():
    s = Server()
    assert s.address is None
    assert s.callee is s
    assert (s.nonblocking, s.synchronous, s.retype_exceptions) == (False, False, False)
    assert s.request_clean_interval == 60
    assert (s.allow_pickle, s.unix_mode) == (False, None)
    assert s.connected() is True

    class T:
        pass

    class WithType(Server):
        callee_type = T

    assert isinstance(WithType().callee, T)
    target = T()
    assert Server(callee=target).callee is target


def test_server_logging_hooks_get_the_original_summaries(spawn_server, transport):
    s = spawn_server(transport, kind="logging")
    c = Client(address=s.address)
    c.echo(1, foo="foo")
    c.echo("x" * 100)
    with pytest.raises(ValueError):
        c.raise_builtin("ValueError", "bad")
    logs = c.logs()
    assert logs[0] == "call: echo(args=(1,), kwargs={'foo': 'foo'}) -> ((1,), {'foo': 'foo'})"
    long_prefix = "echo(args=({!r},), kwargs={{}})".format("x" * 100)[:60] + "...)"
    assert logs[1].startswith("call: " + long_prefix + " -> ")
    assert len(logs[1]) == len("call: ") + 120
    assert logs[2] == "exc: raise_builtin(args=('ValueError', 'bad'), kwargs={}) -> ValueError('bad')"


def test_client_logging_hooks(server):
    lines = []

    class LoggingClient(Client):
        nolog_methods = ["add"]

        def get_call_logging_func(self):
            return lines.append

        def get_exception_logging_func(self):
            return lines.append

    c = LoggingClient(address=server.address)
    c.echo(1, foo="foo")
    c.add(1, 2)
    c.echo(2, nolog=True)
    c.connected()
    with pytest.raises(KeyError):
        c.raise_builtin("KeyError", "k")
    assert lines[0] == "    echo -> ((1,), {'foo': 'foo'})"
    assert len(lines) == 2
    head, _, tb = lines[1].partition("\n")
    assert head == "LoggingClient: raise_builtin(args=('KeyError', 'k'), kwargs={})"[:60]
    assert tb.startswith("Traceback (most recent call last)")
    assert "KeyError: 'k'" in tb


def test_client_logging_hooks_set_late_are_seen(server, monkeypatch):
    # A call with the default hooks skips logging altogether; hooks set on
    # the instance or the class after the client made calls still log.
    c = Client(address=server.address)
    assert c.echo(0) == ((0,), {})
    on_instance = []
    c.get_call_logging_func = lambda: on_instance.append
    c.echo(1)
    assert on_instance == ["    echo -> ((1,), {})"]
    del c.get_call_logging_func
    c.echo(2)
    assert len(on_instance) == 1
    seen = []
    c.log_call = lambda callmsg, result: seen.append((callmsg[0], result))
    c.echo(3)
    assert seen == [("echo", ((3,), {}))]
    del c.log_call
    on_class = []
    monkeypatch.setattr(Client, "get_call_logging_func", lambda self: on_class.append)
    c.echo(4)
    assert on_class == ["    echo -> ((4,), {})"]


def test_hooks_default_to_none():
    assert Client().get_call_logging_func() is None
    assert Client().get_exception_logging_func() is None
    assert Server().get_call_logging_func() is None
    assert Server().get_exception_logging_func() is None


def test_client_shutdown_stops_the_server(spawn_server, transport):
    s = spawn_server(transport)
    c = Client(address=s.address)
    c.shutdown()
    assert s.proc.wait(timeout=15) == 0
    assert "stopped" in s.proc.stdout.read()
    assert not c.connected()
    if isinstance(s.address, str):
        assert not os.path.exists(s.address)


class InProcess(Server):
    nonblocking = True

    def echo(self, *args, **kwargs):
        return args, kwargs


def test_in_process_server_start_in_thread_and_shutdown_sync(transport, tmp_path_factory):
    address = make_address(transport, tmp_path_factory)
    server = InProcess(address=address)
    server.start_in_thread()
    # Bound on return: no waiting needed (TCP asked for port 0).
    bound = server.bound_address()
    assert bound == address if transport == "unix" else bound[1] != 0
    c = Client(address=bound)
    assert c.echo(1, foo="foo") == ((1,), {"foo": "foo"})
    assert c.nb_echo(2, nb_fetch_tick=0.05) == ((2,), {})
    server.shutdown_sync()
    assert not c.connected()
    if transport == "unix":
        assert not os.path.exists(address)


def test_in_process_port_zero(tmp_path):
    server = InProcess(address=("127.0.0.1", 0))
    server.start_in_thread()
    try:
        host, port = server.bound_address()
        assert port != 0
        assert Client(address=(host, port)).echo(3) == ((3,), {})
    finally:
        server.shutdown_sync()


def test_shutdown_is_non_blocking(tmp_path):
    server = InProcess(address=str(tmp_path / "s"))
    server.start_in_thread()
    server.shutdown()
    deadline = time.monotonic() + 15
    while Client(address=server.address).connected(0.05) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not Client(address=server.address).connected()


def test_start_returns_after_remote_shutdown(tmp_path):
    import threading

    address = str(tmp_path / "s")
    server = InProcess(address=address)
    done = threading.Event()

    def serve():
        server.start()
        done.set()

    threading.Thread(target=serve, daemon=True).start()
    wait_connected(address)
    Client(address=address).shutdown()
    assert done.wait(15)


def test_address_in_use_is_os_error():
    first = InProcess(address=("127.0.0.1", 0))
    first.start_in_thread()
    try:
        with pytest.raises(OSError):
            InProcess(address=first.bound_address()).start_in_thread()
    finally:
        first.shutdown_sync()


def test_ctrl_c_stops_start_cleanly(spawn_server, tmp_path):
    s = spawn_server("unix")
    assert os.path.exists(s.address)
    s.proc.send_signal(signal.SIGINT)
    assert s.proc.wait(timeout=15) == 130
    assert "interrupted" in s.proc.stdout.read()
    assert not os.path.exists(s.address)


def test_ctrl_c_between_bind_and_wait_still_removes_the_socket_file(tmp_path_factory):
    # A Ctrl-C can land after start() bound the socket and before wait()
    # took over: simulated by a core whose wait() is interrupted at once.
    address = make_address("unix", tmp_path_factory)

    class Interrupted:
        def __init__(self, core):
            self.core = core

        def wait(self):
            raise KeyboardInterrupt

        def shutdown_sync(self):
            self.core.shutdown_sync()

    class Echo(Server):
        def echo(self, x):
            return x

    s = Echo(address=address)
    bind = s._bind
    s._bind = lambda: Interrupted(bind())
    with pytest.raises(KeyboardInterrupt):
        s.start()
    assert not os.path.exists(address)
    assert not Client(address=address).connected()


def test_ctrl_c_interrupts_a_waiting_call(server, tmp_path):
    script = tmp_path / "waiter.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, time
            from pyrpc import Client
            c = Client(address=%r)
            c.echo(1)
            print("calling", flush=True)
            t = time.monotonic()
            try:
                c.sleep(30)
            except KeyboardInterrupt:
                print("interrupted after %%.2f" %% (time.monotonic() - t), flush=True)
                sys.exit(3)
            """
            % (server.address,)
        )
    )
    p = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=HERE
    )
    assert p.stdout.readline().strip() == "calling"
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=10) == 3, p.stderr.read()
    out = p.stdout.read()
    assert float(out.split()[-1]) < 5


def test_pyrpc_logger_gets_debug_per_call_and_warning_per_exception(tmp_path, caplog):
    import logging

    class Failing(InProcess):
        def fail(self):
            raise ValueError("nope")

    server = Failing(address=str(tmp_path / "s"))
    server.start_in_thread()
    try:
        c = Client(address=server.address)
        with caplog.at_level(logging.DEBUG, logger="pyrpc"):
            c.echo(1)
            with pytest.raises(ValueError):
                c.fail()
        records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "pyrpc"]
        assert ("DEBUG", "echo(args=(1,), kwargs={}) -> ((1,), {})") in records
        assert ("WARNING", "fail(args=(), kwargs={}) -> ValueError('nope')") in records
    finally:
        server.shutdown_sync()


def test_debug_turned_on_after_calls_logs_the_calls_after_it(tmp_path, caplog):
    # With DEBUG off, the server learns per call from the logger's own
    # cache that no call is logged; turning DEBUG on later (which clears
    # that cache) logs the calls that follow.
    import logging

    server = InProcess(address=str(tmp_path / "s"))
    server.start_in_thread()
    try:
        c = Client(address=server.address)
        for i in range(3):
            assert c.echo(i) == ((i,), {})
        assert not [r for r in caplog.records if r.name == "pyrpc"]
        with caplog.at_level(logging.DEBUG, logger="pyrpc"):
            c.echo(7)
        records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "pyrpc"]
        assert ("DEBUG", "echo(args=(7,), kwargs={}) -> ((7,), {})") in records
    finally:
        server.shutdown_sync()


def test_call_logging_func_set_on_the_instance_is_used(tmp_path):
    # Whether `log_call` must run is decided once, when the server starts
    # (a server without a hook skips it): a hook set on the instance before
    # that counts as much as one in a subclass.
    lines = []
    server = InProcess(address=str(tmp_path / "s"))
    server.get_call_logging_func = lambda: lines.append
    server.start_in_thread()
    try:
        assert Client(address=server.address).echo(1) == ((1,), {})
        assert lines == ["echo(args=(1,), kwargs={}) -> ((1,), {})"]
    finally:
        server.shutdown_sync()
