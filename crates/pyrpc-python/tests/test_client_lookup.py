"""How ``client.method`` is found: after the first lookup of a name, a
``_RemoteName`` on the client's class answers it (no failed lookup and
``__getattr__`` per call), and nothing of it changes what a name means:
instance attributes, properties and subclass ``__getattr__`` still win, the
class itself still has no such attribute, and the client is not kept alive
by its methods."""

import gc
import weakref

import pytest

import pyrpc
from pyrpc import Client
from pyrpc._client import _RemoteName


def on_class(cls, name):
    """What the class (or the first base with it) holds under ``name``,
    without running a descriptor; None when no class has it."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    return None


def fresh_class():
    """A new Client subclass: what earlier tests installed is not on it."""

    class C(Client):
        pass

    return C


def test_a_name_looked_up_once_is_found_on_the_class_after(server):
    C = fresh_class()
    client = C(address=server.address)
    # A name no test used before: nothing of it on any class yet.
    assert on_class(C, "lookup_echo") is None
    # (The server has no such method: the lookup, not the call, matters.)
    with pytest.raises(AttributeError, match="lookup_echo"):
        client.lookup_echo()
    assert isinstance(vars(C)["lookup_echo"], _RemoteName)
    assert client.echo(1, foo="foo") == ((1,), {"foo": "foo"})
    assert isinstance(on_class(C, "echo"), _RemoteName)
    # Found there now: each access makes a new method of this client, and
    # the calls work the same, per-call options stripped.
    assert client.echo is not client.echo
    assert client.echo(2, call_timeout=5) == ((2,), {})
    assert client.nb_echo(3) == ((3,), {})
    assert repr(client.nb_echo).startswith("<remote method nb_echo of")
    # Another client of the class uses it too; the class has no attribute.
    other = C(address=server.address)
    assert other.echo(4) == ((4,), {})
    with pytest.raises(AttributeError):
        C.echo
    assert not any(isinstance(v, pyrpc._client._Method) for v in vars(client).values())


def test_a_method_found_on_the_class_does_not_keep_its_client_alive(server):
    C = fresh_class()
    client = C(address=server.address)
    client.echo(1)
    method = client.echo  # now from the class's _RemoteName
    assert method(2) == ((2,), {})
    del method
    ref = weakref.ref(client)
    gc.disable()
    try:
        del client
        # Freed by its reference count alone: no cycle through the class.
        assert ref() is None
    finally:
        gc.enable()


def test_instance_attributes_and_properties_keep_their_names(server):
    class C(Client):
        @property
        def status(self):
            raise AttributeError("not yet")

    client = C(address=server.address)
    client.echo(1)
    client.echo = lambda *a: "local"
    assert client.echo(1) == "local"
    del client.echo
    assert client.echo(5) == ((5,), {})
    # A property that raised reached __getattr__ (a remote method), and is
    # not replaced on the class.
    assert repr(client.status).startswith("<remote method status")
    assert isinstance(vars(C)["status"], property)


def test_a_subclass_with_its_own_getattr_still_decides(server):
    Base = fresh_class()
    base = Base(address=server.address)
    assert base.echo(1) == ((1,), {})
    assert isinstance(on_class(Base, "echo"), _RemoteName)

    class Picky(Base):
        def __getattr__(self, name):
            if name == "echo":
                raise AttributeError("echo is off here")
            return super().__getattr__(name)

    picky = Picky(address=server.address)
    with pytest.raises(AttributeError, match="off here"):
        picky.echo
    assert picky.nb_echo(2) == ((2,), {})
    # Its own lookups add nothing to its class.
    assert "nb_echo" not in vars(Picky)
