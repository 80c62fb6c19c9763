"""Values 1,000 levels deep round trip; deeper ones are a clear error, never a
RecursionError or a crash."""

import pytest

from pyrpc import Client, RemoteError, Server


def deep(levels):
    v = "bottom"
    for i in range(levels):
        kind = i % 3
        v = [v] if kind == 0 else {i: v} if kind == 1 else (None, v)
    return v


def same_shape(a, b, levels):
    """a == b for deep(levels), without recursion (== would hit Python's limit)."""
    for i in reversed(range(levels)):
        kind = i % 3
        assert type(a) is type(b) and len(a) == len(b)
        if kind == 0:
            a, b = a[0], b[0]
        elif kind == 1:
            assert list(a) == list(b) == [i]
            a, b = a[i], b[i]
        else:
            assert a[0] is None and b[0] is None
            a, b = a[1], b[1]
    assert a == b == "bottom"


def test_a_thousand_levels_round_trip(client):
    # echo returns (args, kwargs): the value comes back two levels deeper.
    args, kwargs = client.echo(deep(1000))
    assert kwargs == {}
    same_shape(args[0], deep(1000), 1000)


def test_past_the_limit_is_a_type_error_before_sending(client):
    with pytest.raises(TypeError, match="nested deeper than 1024 levels"):
        client.echo(deep(1100))
    assert client.echo(1) == ((1,), {})


def test_a_result_past_the_limit_is_a_clear_remote_error(client):
    # The server builds the value itself, then cannot send it.
    with pytest.raises((RemoteError, TypeError)) as e:
        client.echo(deep(1023))  # + 2 levels of (args, kwargs) > 1024
    assert "deeper than 1024" in str(e.value)
    assert client.echo(2) == ((2,), {})


def test_in_process_server_and_client_in_threads():
    class Deep(Server):
        address = ("127.0.0.1", 0)

        def make(self, levels):
            return deep(levels)

    server = Deep()
    server.start_in_thread()
    try:
        client = Client(address=server.bound_address())
        same_shape(client.make(1000), deep(1000), 1000)
        with pytest.raises((RemoteError, TypeError), match="deeper than 1024"):
            client.make(5000)
        same_shape(client.make(1000), deep(1000), 1000)
    finally:
        server.shutdown_sync()
