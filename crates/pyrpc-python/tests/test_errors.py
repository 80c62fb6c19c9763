"""Remote exceptions come back as themselves, or as RemoteError."""

import builtins
import sys

import pytest

import shared_errors
from pyrpc import RemoteError, Timeout


@pytest.mark.parametrize(
    "name,args",
    [
        ("ValueError", ("bad", 3)),
        ("KeyError", ("k",)),
        ("ZeroDivisionError", ()),
        ("RuntimeError", ({"a": [1]},)),
        ("OSError", (2, "no such file")),
    ],
)
def test_builtin_exception_same_type_args_traceback(client, name, args):
    with pytest.raises(Exception) as e:
        client.raise_builtin(name, *args)
    # OSError(2, ...) is a FileNotFoundError on both sides.
    local = getattr(builtins, name)(*args)
    assert type(e.value) is type(local)
    assert e.value.args == args
    assert "Traceback (most recent call last)" in e.value.traceback
    assert "raise_builtin" in e.value.traceback
    assert type(local).__name__ in e.value.traceback.splitlines()[-1]


def test_custom_exception_rebuilt_when_imported(client):
    assert "shared_errors" in sys.modules
    with pytest.raises(shared_errors.CustomError) as e:
        client.raise_custom("x", 1)
    assert e.value.args == ("x", 1)
    assert "raise_custom" in e.value.traceback


def test_unknown_exception_class_is_remote_error(client):
    assert "server_only_errors" not in sys.modules
    with pytest.raises(RemoteError) as e:
        client.raise_server_only("y", 2)
    err = e.value
    assert err.type_name == "ServerOnlyError"
    assert err.module == "server_only_errors"
    assert err.args == ("y", 2)
    assert err.message == "('y', 2)"
    assert err.kind == "EXCEPTION"
    assert "raise_server_only" in err.traceback
    assert "server_only_errors.ServerOnlyError" in str(err)
    # The network never makes the client import a module.
    assert "server_only_errors" not in sys.modules


def test_unconvertible_exception_args_become_reprs(client):
    with pytest.raises(ValueError) as e:
        client.raise_unconvertible()
    assert e.value.args == ("<Unsendable>", "plain")


def test_unconvertible_result_is_unsupported_value(client):
    # As a Rust server answers a result it cannot send (docs/PROTOCOL.md,
    # "Calls"): UNSUPPORTED_VALUE, the same kind whatever the server.
    with pytest.raises(RemoteError) as e:
        client.bad_result()
    assert e.value.kind == "UNSUPPORTED_VALUE"
    assert "cannot send object of type Unsendable at result['ok'][1]" in str(e.value)


def test_too_deep_result_is_unsupported_value(client):
    # echo returns ((args), kwargs): two levels more than its argument. The
    # argument (checked on its own) passes; the result must fit the server's
    # max depth too.
    client.connected()
    limit = client.server_info()["max_value_depth"]
    v = 1
    for _ in range(limit - 3):
        v = [v]
    # Comparing values this deep recurses in Python itself.
    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, 4 * limit))
    try:
        assert client.echo(v) == ((v,), {})  # (limit - 2) + 2 = limit: fits
    finally:
        sys.setrecursionlimit(old_limit)
    with pytest.raises(RemoteError) as e:
        client.echo([v])  # one more
    assert e.value.kind == "UNSUPPORTED_VALUE"
    assert "nested deeper than %d" % limit in str(e.value)


def test_type_error_inside_method_keeps_its_traceback(client):
    with pytest.raises(TypeError) as e:
        client.inner_type_error()
    assert "inner_type_error" in e.value.traceback


def test_call_timeout_raises_timeout(client):
    with pytest.raises(Timeout) as e:
        client.sleep(2, call_timeout=0.1)
    assert isinstance(e.value, TimeoutError)
    assert e.value.stage == "reply"
    # The client still works after a timed-out call.
    assert client.echo(1) == ((1,), {})


def test_client_call_timeout_attribute(server):
    from pyrpc import Client

    class Impatient(Client):
        call_timeout = 0.1

    with pytest.raises(Timeout):
        Impatient(address=server.address).sleep(2)


def test_nb_timeout_stage(client):
    with pytest.raises(Timeout) as e:
        client.nb_sleep(2, call_timeout=0.3, nb_fetch_tick=0.05)
    assert e.value.stage == "nb"


def test_errors_pickle():
    import pickle

    t = pickle.loads(pickle.dumps(Timeout("slow", "reply")))
    assert (str(t), t.stage) == ("slow", "reply")
    r = RemoteError("E", "m", (1,), "1", "tb", "EXCEPTION")
    r2 = pickle.loads(pickle.dumps(r))
    assert (r2.type_name, r2.module, r2.args, r2.message, r2.traceback) == ("E", "m", (1,), "1", "tb")


def test_bad_arguments_carry_no_traceback(client):
    # A refusal (any kind but EXCEPTION) has an empty traceback
    # (docs/PROTOCOL.md, "Errors"); a TypeError raised inside a method keeps
    # its own (test_type_error_inside_method_keeps_its_traceback).
    with pytest.raises(TypeError) as e:
        client.add()
    assert e.value.traceback == ""
