"""What a client can and cannot reach: private and special names, non-callables,
properties, pickles, the Unix socket file."""

import collections
import os
import socket
import stat

import pytest

import callee_module
import pyrpc
from conftest import wait_connected
from pyrpc import Client, RemoteError, Server


def raw_call(client, method, *args, **kwargs):
    """Call through the core, past the Client's own refusal of ``_`` names."""
    return client._core().call(method, args, kwargs)


SPECIAL = ["__class__", "__init__", "__reduce__", "__reduce_ex__", "__getattribute__",
           "__setattr__", "__delattr__", "__dict__", "__subclasshook__", "__init_subclass__",
           "__new__", "__call__", "__del__", "__getstate__", "_private", "_bind", "_summary",
           "_pyrpc_core", "__module__", "__doc__"]


@pytest.mark.parametrize("name", SPECIAL)
def test_private_and_special_names_are_never_called(server, name):
    c = Client(address=server.address)
    with pytest.raises(AttributeError, match="no callable public method"):
        raw_call(c, name)


def test_client_refuses_private_names_locally(server):
    c = Client(address=server.address)
    for name in ["_private", "__deepcopy__", "_anything"]:
        with pytest.raises(AttributeError):
            getattr(c, name)  # never becomes a network call


@pytest.mark.parametrize("name", ["value", "address", "nonblocking", "callee", "callee_type",
                                  "secret", "max_frame_len", "no_such_thing"])
def test_non_callable_and_absent_attributes_are_not_methods(server, name):
    with pytest.raises(AttributeError, match="no callable public method"):
        raw_call(Client(address=server.address), name)


@pytest.mark.parametrize("name", ["start", "start_in_thread", "shutdown_sync", "bound_address",
                                  "log_call", "log_exception", "get_call_logging_func"])
def test_server_machinery_is_not_callable(server, name):
    with pytest.raises(AttributeError, match="no callable public method"):
        raw_call(Client(address=server.address), name)


class WithProperties(Server):
    getter_runs = 0

    @property
    def handler(self):
        # Would hand back a callable; its getter must not even run.
        WithProperties.getter_runs += 1
        return print

    @property
    def failing(self):
        WithProperties.getter_runs += 1
        raise RuntimeError("must not run")

    def echo(self, x):
        return x


def test_properties_are_not_methods_and_their_getters_never_run(tmp_path):
    server = WithProperties(address=str(tmp_path / "s"))
    server.start_in_thread()
    try:
        c = Client(address=server.address)
        for name in ["handler", "failing"]:
            with pytest.raises(AttributeError, match="no callable public method"):
                getattr(c, name)()
        names = [m.name for m in pyrpc.list_methods(c)]
        assert "handler" not in names and "failing" not in names
        assert WithProperties.getter_runs == 0
        assert c.echo(1) == 1
    finally:
        server.shutdown_sync()


def test_a_module_callee_serves_its_public_functions_only(tmp_path):
    server = Server(address=str(tmp_path / "s"), callee=callee_module)
    server.start_in_thread()
    try:
        c = Client(address=server.address)
        assert c.double(21) == 42
        for name in ["os", "LIMIT", "__builtins__", "__loader__", "__spec__", "getcwd", "run"]:
            with pytest.raises(AttributeError, match="no callable public method"):
                raw_call(c, name)
        for name in ["_hidden", "__import__", "__getattribute__"]:
            with pytest.raises(AttributeError, match="no callable public method"):
                raw_call(c, name)
        listed = {m.name: m for m in pyrpc.list_methods(c)}
        assert listed["double"].doc == "Return 2 * x."
        assert "os" not in listed and "LIMIT" not in listed and "_hidden" not in listed
        assert "run" not in listed and "getcwd" not in listed
        assert sorted(listed) == ["connected", "double", "shutdown"]
    finally:
        server.shutdown_sync()


def test_a_module_callee_with_all_serves_exactly_all(tmp_path):
    import types

    mod = types.ModuleType("callee_with_all")
    exec(
        "from os import getcwd\n"
        "def a():\n    return 'a'\n"
        "def b():\n    return 'b'\n"
        "__all__ = ['a', 'getcwd']\n",
        mod.__dict__,
    )
    server = Server(address=str(tmp_path / "s"), callee=mod)
    server.start_in_thread()
    try:
        c = Client(address=server.address)
        assert c.a() == "a"
        assert isinstance(c.getcwd(), str)  # listed in __all__: the module offers it
        with pytest.raises(AttributeError, match="no callable public method"):
            raw_call(c, "b")
    finally:
        server.shutdown_sync()


# ----- pickles -----


@pytest.fixture(scope="module")
def pickle_server(spawn_server):
    return spawn_server("unix", kind="pickle")


class Bomb:
    """Creates a file when unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_server_not_opted_in_never_unpickles(server, tmp_path):
    target = tmp_path / "unpickled"
    # allow_pickle on this side, sent before the hello told it the server
    # refuses pickles: the pickle travels, and the server refuses it.
    c = Client(address=server.address, allow_pickle=True)
    with pytest.raises(RemoteError) as e:
        c.echo(Bomb(str(target)))
    assert e.value.kind == "UNSUPPORTED_VALUE"
    assert not target.exists()
    # Once it knows, the client refuses before sending.
    with pytest.raises(TypeError, match="type Bomb"):
        c.echo(Bomb(str(target)))
    assert not target.exists()


def test_client_not_opted_in_never_unpickles(pickle_server, tmp_path):
    target = tmp_path / "unpickled"
    c = Client(address=pickle_server.address)
    with pytest.raises(TypeError, match="pickle"):
        c.bomb(str(target))
    assert not target.exists()
    with pytest.raises(TypeError, match="type deque"):
        c.roundtrip(collections.deque([1]))


def test_both_opted_in_unpickle(pickle_server, tmp_path):
    target = tmp_path / "unpickled"
    c = Client(address=pickle_server.address, allow_pickle=True)
    f = c.bomb(str(target))  # unpickling runs open(): what opting in means
    f.close()
    assert target.exists()
    assert c.roundtrip(collections.deque([1])) == collections.deque([1])


# ----- the Unix socket file -----


class Echo(Server):
    def echo(self, *args, **kwargs):
        return args, kwargs


@pytest.mark.parametrize("mode", [0o600, 0o660, 0o666])
def test_unix_socket_mode(tmp_path, mode):
    path = str(tmp_path / "s")
    server = Echo(address=path, unix_mode=mode)
    server.start_in_thread()
    try:
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == mode
        assert Client(address=path).echo(1) == ((1,), {})
    finally:
        server.shutdown_sync()
    assert not os.path.exists(path)


def test_regular_file_at_the_socket_path_is_an_error_and_left_alone(tmp_path):
    path = tmp_path / "s"
    path.write_text("precious")
    with pytest.raises(OSError):
        Echo(address=str(path)).start_in_thread()
    assert path.read_text() == "precious"
    assert stat.S_ISREG(os.stat(path).st_mode)


def test_directory_at_the_socket_path_is_an_error_and_left_alone(tmp_path):
    path = tmp_path / "s"
    path.mkdir()
    (path / "keep").write_text("x")
    with pytest.raises(OSError):
        Echo(address=str(path)).start_in_thread()
    assert (path / "keep").read_text() == "x"


def test_live_socket_is_not_taken_over(tmp_path):
    path = str(tmp_path / "s")
    first = Echo(address=path)
    first.start_in_thread()
    try:
        with pytest.raises(OSError):
            Echo(address=path).start_in_thread()
        assert Client(address=path).echo(1) == ((1,), {})
    finally:
        first.shutdown_sync()


def test_stale_socket_nobody_listens_on_is_replaced(tmp_path):
    path = str(tmp_path / "s")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    server = Echo(address=path)
    server.start_in_thread()
    try:
        wait_connected(path)
        assert Client(address=path).echo(1) == ((1,), {})
    finally:
        server.shutdown_sync()
