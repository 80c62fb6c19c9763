"""Calls, values and their shapes, and what is (not) callable."""

import pytest

import pyrpc
from pyrpc import Client, NoSocket, RemoteError


def test_public_names():
    for name in ["Client", "Server", "Timeout", "NoSocket", "ProtocolError", "RemoteError"]:
        assert hasattr(pyrpc, name)
    assert issubclass(pyrpc.Timeout, TimeoutError)
    assert issubclass(pyrpc.Timeout, pyrpc.RpcError)
    assert issubclass(pyrpc.NoSocket, ConnectionError)
    assert issubclass(pyrpc.RemoteError, pyrpc.RpcError)
    assert issubclass(pyrpc.ProtocolError, pyrpc.RpcError)


def test_echo(client):
    assert client.echo(1, foo="foo") == ((1,), {"foo": "foo"})


def test_client_defaults_are_the_originals():
    c = Client()
    assert c.address is None
    assert c.call_timeout is None
    assert (c.socket_connect_timeout, c.socket_send_timeout, c.socket_recv_timeout) == (10, 10, 0.1)
    assert (c.nb_fetch_timeout, c.nb_fetch_tick) == (5, 1)
    assert c.nolog_methods is None


def test_client_settings_by_subclass_and_keyword(server):
    class MyClient(Client):
        address = server.address
        call_timeout = 7

    c = MyClient(call_timeout=3, nolog_methods=["echo"])
    assert c.address == server.address
    assert c.call_timeout == 3
    assert c.nolog_methods == ["echo"]
    assert MyClient().call_timeout == 7
    assert c.echo(2) == ((2,), {})


NESTED = {
    "none": None,
    "bools": [True, False],
    "ints": (0, -1, 2**63 - 1, -(2**63)),
    "float": 1.5,
    "str": "héllo \u2603",
    "bytes": b"\x00\xff",
    "list": [1, [2, [3, (4,)]]],
    "tuple": (1, (2,), ()),
    "set": {1, "a", (2, 3)},
    "frozenset": frozenset({1, frozenset({2})}),
    (1, "tuple key"): {"nested": {frozenset({1}): [None]}},
    3: "int key",
    None: "none key",
    2.5: "float key",
}


def test_nested_values_keep_their_shapes(client):
    args, kwargs = client.echo(NESTED, [NESTED], kw=NESTED)
    assert args == (NESTED, [NESTED])
    assert kwargs == {"kw": NESTED}
    assert type(args) is tuple
    assert type(args[0]["tuple"]) is tuple
    assert type(args[0]["list"]) is list
    assert type(args[0]["set"]) is set
    assert type(args[0]["frozenset"]) is frozenset


def test_bool_stays_bool_and_int_stays_int(client):
    types, kw = client.types_of(True, 1, 1.0, False, 0, b=True)
    assert types == ["bool", "int", "float", "bool", "int"]
    assert kw == {"b": "bool"}
    args, _ = client.echo(True, 1)
    assert args[0] is True and type(args[1]) is int


@pytest.mark.parametrize(
    "n",
    [2**63, -(2**63) - 1, 2**64, 2**200, -(2**1000), 10**300, 2**63 - 1, -(2**63)],
)
def test_big_ints(client, n):
    assert client.echo(n) == ((n,), {})
    assert client.add(n, 1) == n + 1


def test_bytearray_keeps_its_type(client):
    assert client.types_of(bytearray(b"ab"), b"ab") == (["bytearray", "bytes"], {})
    (got,), _ = client.echo(bytearray(b"ab"))
    assert type(got) is bytearray and got == b"ab"


def test_records_of_classes_the_server_lacks_fall_back_to_plain_values(client):
    # Both classes exist only here: the server gets the documented fallbacks
    # (the Enum's value, the NamedTuple's items) and echoes those back.
    import collections
    import enum

    class Color(enum.IntEnum):
        RED = 1

    Point = collections.namedtuple("Point", "x y")
    args, _ = client.echo(Color.RED, Point(1, 2), collections.OrderedDict(a=1))
    assert args == (1, (1, 2), {"a": 1})
    assert client.types_of(Color.RED, Point(1, 2)) == (["int", "tuple"], {})


class Foo:
    pass


def test_unsupported_type_names_type_and_place(client):
    with pytest.raises(TypeError) as e:
        client.echo(1, {"x": Foo()})
    assert str(e.value).startswith("cannot send object of type Foo at args[1]['x']: ")
    with pytest.raises(TypeError, match=r"at kwargs\['k'\]\[0\]\[2\]"):
        client.echo(k=[(1, 2, Foo())])
    with pytest.raises(TypeError, match=r"type Foo at args\[0\]"):
        client.echo({Foo(): 1})


def test_too_deep_is_refused_before_sending(client):
    v = []
    for _ in range(1100):
        v = [v]
    with pytest.raises(TypeError, match="nested deeper than"):
        client.echo(v)
    loop = []
    loop.append(loop)
    with pytest.raises(TypeError, match="nested deeper than"):
        client.echo(loop)


def test_per_call_options_are_stripped(client):
    ret = client.echo(
        1,
        foo="foo",
        call_timeout=5,
        socket_connect_timeout=5,
        socket_send_timeout=5,
        socket_recv_timeout=0.5,
        nb_fetch_tick=0.5,
        nb_fetch_timeout=5,
        nolog=True,
    )
    assert ret == ((1,), {"foo": "foo"})
    assert client.nb_echo(1, foo="foo", nb_fetch_tick=0.1, call_timeout=5) == ((1,), {"foo": "foo"})


def test_unknown_method_is_attribute_error(client):
    with pytest.raises(AttributeError, match="nope"):
        client.nope()


def test_private_and_non_callable_are_not_callable(client, server):
    with pytest.raises(AttributeError):
        client._private()
    # The server refuses them too, whatever the client does.
    core = client._core()
    with pytest.raises(AttributeError):
        core.call("_private", ())
    with pytest.raises(AttributeError):
        core.call("__init__", ())
    with pytest.raises(AttributeError, match="value"):
        client.value()


def test_server_machinery_is_not_callable(client):
    core = client._core()
    for name in ["start", "start_in_thread", "shutdown_sync", "log_call", "get_call_logging_func"]:
        with pytest.raises(AttributeError):
            core.call(name, ())


def test_wrong_argument_count_is_type_error(client):
    with pytest.raises(TypeError, match="add"):
        client.add(1)
    with pytest.raises(TypeError):
        client.add(1, 2, c=3)


def test_connected(client, fresh_address):
    assert client.connected() is True
    import time

    t = time.monotonic()
    assert Client(address=fresh_address).connected() is False
    assert time.monotonic() - t < 1.0


def test_nothing_listening_raises_no_socket(fresh_address):
    with pytest.raises(NoSocket) as e:
        Client(address=fresh_address).echo(1)
    assert isinstance(e.value, ConnectionError)


def test_nb_call_spanning_several_ticks(client):
    start, end = client.nb_sleep(0.5, nb_fetch_tick=0.1)
    assert end - start >= 0.5


def test_nb_call_on_blocking_server_errors_clearly(spawn_server, transport):
    blocking = spawn_server(transport, nonblocking=False)
    c = Client(address=blocking.address)
    with pytest.raises(RemoteError) as e:
        c.nb_echo(1)
    assert e.value.kind == "NOT_NONBLOCKING"
    assert "nonblocking" in str(e.value).lower().replace("-", "").replace("_", "")
    assert c.echo(1) == ((1,), {})


def test_one_client_many_calls(client):
    for i in range(200):
        assert client.add(i, 1) == i + 1


def test_client_address_str_is_unix_and_tuple_tcp(server):
    c = Client(address=server.address)
    assert c.connected()
    if isinstance(server.address, tuple):
        assert Client(address=("", server.address[1])).connected()


def test_bad_address_type():
    with pytest.raises(TypeError, match="address"):
        Client(address=12).echo()


def test_remote_methods_are_not_kept_and_call_options_still_stripped(client):
    import pickle

    echo = client.echo
    # Nothing kept on the instance: a method there would refer back to the
    # client, a cycle that keeps a dropped client's connection open.
    assert not any(isinstance(v, pyrpc._client._Method) for v in vars(client).values())
    assert client.nb_echo is not echo
    assert echo(1, foo="foo") == ((1,), {"foo": "foo"})
    # Options never reach the server, with or without other keywords.
    assert echo(call_timeout=5, nolog=True) == ((), {})
    assert echo(2, call_timeout=5, bar=1) == ((2,), {"bar": 1})
    # A settings change after the method was cached still applies.
    client.call_timeout = 7
    assert echo(x=1) == ((), {"x": 1})
    # The cached methods stay behind when a client is pickled.
    state = pickle.loads(pickle.dumps(client)).__dict__
    assert not any(isinstance(v, pyrpc._client._Method) for v in state.values())


def test_the_core_takes_a_calls_settings_by_position_or_keyword(client):
    # `Client` passes them by position (cheaper to parse): each must land in
    # its own place. A call timeout in the wrong slot would not fire here.
    core = client._core()
    names = ("call_timeout", "socket_connect_timeout", "socket_send_timeout",
             "socket_recv_timeout", "nb_fetch_tick", "nb_fetch_timeout")
    settings = (0.3, 10, 10, 0.1, 1, 5)
    with pytest.raises(pyrpc.Timeout):
        core.call("sleep", (1,), None, False, *settings)
    with pytest.raises(pyrpc.Timeout):
        core.call("sleep", (1,), None, nonblocking=False, **dict(zip(names, settings)))
    assert core.call("echo", (1,), {"a": 2}, False, None, 10, 10, 0.1, 1, 5) == ((1,), {"a": 2})
    # Through the client: a setting changed between calls applies to the next.
    client.call_timeout = 0.3
    with pytest.raises(pyrpc.Timeout):
        client.sleep(1)
    client.call_timeout = None
    assert client.echo(3) == ((3,), {})
