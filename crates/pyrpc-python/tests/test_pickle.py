"""Other objects travel pickled only when both sides opted in."""

import collections
import fractions

import pytest

from pyrpc import Client, RemoteError


@pytest.fixture(scope="module")
def pickle_server(spawn_server):
    return spawn_server("unix", kind="pickle")


def test_both_opted_in(pickle_server):
    c = Client(address=pickle_server.address, allow_pickle=True)
    f = fractions.Fraction(2, 7)
    assert c.roundtrip(f) == f
    assert type(c.roundtrip(f)) is fractions.Fraction
    assert c.make_fraction() == fractions.Fraction(1, 3)
    assert c.roundtrip(collections.deque([2])) == collections.deque([2])
    assert c.make_deque() == collections.deque([1, 3])
    assert c.server_info()["pickle"] is True
    # Builtin shapes still travel natively.
    assert c.echo(1, foo="foo") == ((1,), {"foo": "foo"})


def test_client_not_opted_in(pickle_server):
    c = Client(address=pickle_server.address)
    with pytest.raises(TypeError, match="cannot send object of type deque at args\\[0\\]"):
        c.roundtrip(collections.deque([1]))
    with pytest.raises(TypeError, match="pickle"):
        c.make_deque()


def test_server_not_opted_in(server):
    c = Client(address=server.address, allow_pickle=True)
    c.echo(1)  # learn the server's capabilities
    assert c.server_info()["pickle"] is False
    with pytest.raises(TypeError, match="type deque"):
        c.echo(collections.deque([1]))


def test_server_refuses_pickles_it_did_not_opt_in_to(server):
    # A client that sends a pickle before it knows the server's capabilities.
    c = Client(address=server.address, allow_pickle=True)
    with pytest.raises(RemoteError) as e:
        c.echo(collections.deque([1]))
    assert e.value.kind == "UNSUPPORTED_VALUE"
    assert "pickle" in str(e.value).lower()
