"""Settings that catch mistakes (issue #14 point 1): unknown keywords and
misspelt subclass attributes raise TypeError naming the closest setting;
addresses are checked when the object is made, in the syntax shared with the
CLI and Rust; one call may lift the client's timeout."""

import pathlib
import time

import pytest

import pyrpc
from pyrpc import Client, Server, Timeout
from pyrpc._settings import CLIENT_SETTINGS, SERVER_SETTINGS


@pytest.mark.parametrize(
    "cls, kwargs, closest",
    [
        (Client, {"call_timout": 0.2}, "call_timeout"),
        (Client, {"timeout": 0.2}, "call_timeout"),
        (Client, {"alow_pickle": True}, "allow_pickle"),
        (Server, {"nonblokcing": True}, "nonblocking"),
        (Server, {"max_conections": 3}, "max_connections"),
    ],
)
def test_unknown_keyword_names_the_closest_setting(cls, kwargs, closest):
    with pytest.raises(TypeError, match="did you mean %r" % closest) as e:
        cls(address=("127.0.0.1", 1), **kwargs)
    assert repr(next(iter(kwargs))) in str(e.value)


def test_a_keyword_far_from_every_setting_lists_them():
    with pytest.raises(TypeError, match="the settings are: .*call_timeout"):
        Client(address=("127.0.0.1", 1), zzzzzz=1)


def test_misspelt_subclass_attributes_are_caught():
    with pytest.raises(TypeError, match="Slow.nonblokcing .*did you mean 'nonblocking'"):

        class Slow(Server):
            nonblokcing = True

    with pytest.raises(TypeError, match="did you mean 'call_timeout'"):

        class Impatient(Client):
            call_timout = 1


def test_methods_and_unrelated_attributes_are_not_settings():
    class Mine(Server):
        greeting = "hello"  # data, far from every setting
        counter = 0

        def nonblockin(self):  # a method, however close to a setting
            return 1

        @property
        def workerz(self):
            return 2

    assert Mine(address=("127.0.0.1", 1)).greeting == "hello"


def test_every_setting_has_a_default_on_its_class():
    for cls, names in ((Client, CLIENT_SETTINGS), (Server, SERVER_SETTINGS)):
        for name in names:
            assert hasattr(cls, name), (cls, name)
    # TLS settings (issue #13) are accepted and kept even where the core
    # does not use them.
    c = Client(address=("127.0.0.1", 1), tls_ca="/ca.pem", tls_server_name="x")
    assert (c.tls_ca, c.tls_server_name) == ("/ca.pem", "x")
    s = Server(address=("127.0.0.1", 1), tls_cert="c", tls_key="k", tls_client_ca="ca")
    assert (s.tls_cert, s.tls_key, s.tls_client_ca) == ("c", "k", "ca")


@pytest.mark.parametrize(
    "given, canonical",
    [
        (("127.0.0.1", 5), ("127.0.0.1", 5)),
        ("tcp://127.0.0.1:5", ("127.0.0.1", 5)),
        ("localhost:50399", ("localhost", 50399)),
        ("tcp://[::1]:7", ("::1", 7)),
        ("unix:/tmp/pyrpc-s", "/tmp/pyrpc-s"),
        ("/tmp/pyrpc-s", "/tmp/pyrpc-s"),
        ("./sock", "./sock"),
        (pathlib.Path("/tmp/p"), "/tmp/p"),
    ],
)
def test_addresses_in_the_shared_syntax(given, canonical):
    assert Client(address=given).address == canonical
    assert Server(address=given).address == canonical


@pytest.mark.parametrize(
    "bad, error, words",
    [
        (("127.0.0.1", 99999), ValueError, "port 99999 is out of range (0-65535)"),
        (("127.0.0.1", -1), ValueError, "out of range (0-65535)"),
        ("127.0.0.1:99999", ValueError, "out of range (0-65535)"),
        ("http://example.com:1", ValueError, "unknown scheme"),
        ("sock", ValueError, "./name"),
        ("host:port", ValueError, "not a number"),
        (12345, TypeError, "(host, port) tuple"),
        ((1, 2), TypeError, "host of a (host, port) address is a str"),
        (("h", "80"), TypeError, "port of a (host, port) address is an int"),
    ],
)
def test_bad_addresses_fail_at_construction(bad, error, words):
    for cls in (Client, Server):
        with pytest.raises(error) as e:
            cls(address=bad)
        assert words in str(e.value)
        assert "%s: bad address" % cls.__name__ in str(e.value)


def test_bad_class_address_fails_at_class_creation():
    with pytest.raises(ValueError, match="out of range"):

        class Far(Client):
            address = ("127.0.0.1", 70000)


def test_host_port_string_reaches_a_tcp_server(server, transport):
    if transport != "tcp":
        pytest.skip("TCP only")
    host, port = server.address
    assert Client(address="%s:%d" % (host, port)).echo(1) == ((1,), {})
    assert Client(address="tcp://%s:%d" % (host, port)).echo(2) == ((2,), {})


def test_no_timeout_for_one_call_on_a_client_that_has_one(server):
    client = Client(address=server.address, call_timeout=0.2)
    with pytest.raises(Timeout):
        client.sleep(0.6)
    start = time.monotonic()
    client.sleep(0.6, call_timeout=pyrpc.NO_TIMEOUT)
    assert time.monotonic() - start >= 0.6
