"""Shared-secret authentication: Server(secret=...) and Client(secret=...)."""

import logging
import os

import pytest

import pyrpc
from pyrpc import AuthError, Client, RpcError, Server

SECRET = b"correct horse battery staple"


@pytest.fixture(scope="module")
def secured(spawn_server, transport):
    return spawn_server(transport, secret=SECRET.decode())


def test_right_secret_works(secured, tmp_path):
    for secret in (SECRET, SECRET.decode()):  # bytes or str, either side
        c = Client(address=secured.address, secret=secret)
        assert c.echo(1, foo="foo") == ((1,), {"foo": "foo"})
        assert c.nb_echo(2, nb_fetch_tick=0.05) == ((2,), {})
        assert c.touch(str(tmp_path / "ran"))
        assert c.connected()
        assert pyrpc.list_methods(c)
    assert os.path.exists(tmp_path / "ran")


@pytest.mark.parametrize("secret", [None, b"wrong", "correct horse battery stapl"])
def test_wrong_or_missing_secret_is_refused_and_nothing_runs(secured, tmp_path, secret):
    c = Client(address=secured.address, secret=secret)
    target = tmp_path / "must-not-exist"
    with pytest.raises(AuthError) as e:
        c.touch(str(target))
    assert isinstance(e.value, RpcError) and isinstance(e.value, PermissionError)
    with pytest.raises(AuthError):
        c.nb_touch(str(target))
    with pytest.raises(AuthError):
        pyrpc.stats(c)
    with pytest.raises(AuthError):
        c.shutdown()
    assert not c.connected()
    assert not target.exists()
    # The server still serves those who know the secret.
    assert Client(address=secured.address, secret=SECRET).echo(3) == ((3,), {})


def test_client_with_a_secret_refuses_a_server_without_one(server, tmp_path):
    c = Client(address=server.address, secret=SECRET)
    target = tmp_path / "must-not-exist"
    with pytest.raises(AuthError, match=".+"):
        c.touch(str(target))
    assert not target.exists()


def test_auth_error_pickles():
    import pickle

    e = pickle.loads(pickle.dumps(AuthError("no")))
    assert type(e) is AuthError and str(e) == "no"


def test_empty_or_odd_secrets_are_refused():
    with pytest.raises(ValueError, match="empty"):
        Server(address=("127.0.0.1", 0), secret=b"").start_in_thread()
    with pytest.raises(TypeError, match="bytes or str"):
        Client(address=("127.0.0.1", 1), secret=1234).echo()


class Echo(Server):
    def echo(self, *args, **kwargs):
        return args, kwargs


def warnings_when_started(caplog, **kwargs):
    server = Echo(**kwargs)
    with caplog.at_level(logging.WARNING, logger="pyrpc"):
        caplog.clear()
        server.start_in_thread()
    try:
        return [
            r.getMessage()
            for r in caplog.records
            if r.name.startswith("pyrpc") and r.levelno >= logging.WARNING
        ]
    finally:
        server.shutdown_sync()


@pytest.mark.parametrize("host", ["", "0.0.0.0"])
def test_all_interfaces_without_a_secret_warns(caplog, host):
    (msg,) = warnings_when_started(caplog, address=(host, 0))
    assert "all network interfaces" in msg and "without a shared secret" in msg


def test_no_warning_with_a_secret_or_on_loopback_or_unix(caplog, tmp_path):
    assert warnings_when_started(caplog, address=("", 0), secret=SECRET) == []
    assert warnings_when_started(caplog, address=("127.0.0.1", 0)) == []
    assert warnings_when_started(caplog, address=str(tmp_path / "s")) == []
