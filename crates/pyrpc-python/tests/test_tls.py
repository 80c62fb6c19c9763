"""TLS (Server tls_cert/tls_key/tls_client_ca, Client tls_ca/tls_cert/
tls_key/tls_server_name), the remote-shutdown policy, and the logs the Rust
core sends to Python logging. Certificates are made at test time."""

import logging
import time

import pytest

from certs import make_pki
from pyrpc import AuthError, Client, Server, TlsError

FAST = 3.0  # seconds: far below the 10 s connect and handshake timeouts


class Echo(Server):
    def echo(self, *args, **kwargs):
        return args, kwargs


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def started(**kwargs):
    kwargs.setdefault("address", ("127.0.0.1", 0))
    server = Echo(**kwargs)
    server.start_in_thread()
    return server


@pytest.fixture
def tls_server(pki):
    server = started(tls_cert=pki["server_cert"], tls_key=pki["server_key"])
    yield server
    server.shutdown_sync()


@pytest.fixture
def mtls_server(pki):
    server = started(
        tls_cert=pki["server_cert"], tls_key=pki["server_key"], tls_client_ca=pki["ca"]
    )
    yield server
    server.shutdown_sync()


def fails_fast(client, exc_type):
    start = time.monotonic()
    with pytest.raises(exc_type) as info:
        client.echo(1)
    assert time.monotonic() - start < FAST
    return str(info.value)


def test_tls_calls_work_with_keywords_and_class_attributes(tls_server, pki):
    addr = tls_server.bound_address()
    c = Client(address=addr, tls_ca=pki["ca"])
    assert c.echo(1, foo="foo") == ((1,), {"foo": "foo"})

    class Named(Client):
        tls_ca = pki["ca"]
        tls_server_name = "localhost"

    assert Named(address=addr).echo(big=b"x" * (1 << 20)) == ((), {"big": b"x" * (1 << 20)})


def test_mutual_tls_and_the_secret_compose(pki):
    server = started(
        tls_cert=pki["server_cert"],
        tls_key=pki["server_key"],
        tls_client_ca=pki["ca"],
        secret="s3cret",
    )
    try:
        addr = server.bound_address()
        c = Client(
            address=addr,
            tls_ca=pki["ca"],
            tls_cert=pki["client_cert"],
            tls_key=pki["client_key"],
            secret="s3cret",
        )
        assert c.echo(3) == ((3,), {})
        no_secret = Client(
            address=addr, tls_ca=pki["ca"], tls_cert=pki["client_cert"], tls_key=pki["client_key"]
        )
        fails_fast(no_secret, AuthError)
    finally:
        server.shutdown_sync()


def test_plain_client_of_a_tls_server(tls_server, pki):
    msg = fails_fast(Client(address=tls_server.bound_address()), TlsError)
    assert "requires TLS" in msg
    assert Client(address=tls_server.bound_address(), tls_ca=pki["ca"]).echo(1) == ((1,), {})


def test_tls_client_of_a_plain_server(pki):
    server = started()
    try:
        msg = fails_fast(Client(address=server.bound_address(), tls_ca=pki["ca"]), TlsError)
        assert "may not speak TLS" in msg
        assert Client(address=server.bound_address()).echo(1) == ((1,), {})
    finally:
        server.shutdown_sync()


def test_wrong_ca(tls_server, pki):
    c = Client(address=tls_server.bound_address(), tls_ca=pki["other_ca"])
    assert "not signed by a CA this client trusts" in fails_fast(c, TlsError)
    assert isinstance(TlsError("x"), ConnectionError)


def test_expired_certificate(pki):
    server = started(tls_cert=pki["expired_cert"], tls_key=pki["expired_key"])
    try:
        c = Client(address=server.bound_address(), tls_ca=pki["ca"])
        assert "certificate has expired" in fails_fast(c, TlsError)
    finally:
        server.shutdown_sync()


def test_mutual_tls_without_a_client_certificate(mtls_server, pki):
    addr = mtls_server.bound_address()
    c = Client(address=addr, tls_ca=pki["ca"])
    assert "requires a client certificate" in fails_fast(c, TlsError)
    good = Client(address=addr, tls_ca=pki["ca"], tls_cert=pki["client_cert"], tls_key=pki["client_key"])
    assert good.echo(1) == ((1,), {})


def test_bad_settings_are_clear_errors(pki, tmp_path):
    with pytest.raises(ValueError, match="needs both tls_cert"):
        Echo(address=("127.0.0.1", 0), tls_cert=pki["server_cert"]).start_in_thread()
    with pytest.raises(ValueError, match="cannot read"):
        Echo(
            address=("127.0.0.1", 0), tls_cert=str(tmp_path / "none.pem"), tls_key=pki["server_key"]
        ).start_in_thread()
    with pytest.raises(ValueError, match="needs both"):
        Client(address=("127.0.0.1", 1), tls_cert=pki["client_cert"]).echo()


# ----- remote shutdown -----


def test_shutdown_is_refused_on_all_interfaces_by_default_and_the_server_keeps_serving():
    server = started(address=("0.0.0.0", 0))
    try:
        port = server.bound_address()[1]
        c = Client(address=("127.0.0.1", port))
        with pytest.raises(AuthError, match="remote shutdown refused"):
            c.shutdown()
        assert c.echo(1) == ((1,), {})
    finally:
        server.shutdown_sync()


def test_shutdown_with_the_secret_or_when_allowed(tmp_path):
    server = started(address=("0.0.0.0", 0), secret="s3cret")
    port = server.bound_address()[1]
    Client(address=("127.0.0.1", port), secret="s3cret").shutdown()
    assert not Client(address=("127.0.0.1", port), secret="s3cret").connected(0.2)

    server = started(address=("0.0.0.0", 0), allow_remote_shutdown=True)
    port = server.bound_address()[1]
    Client(address=("127.0.0.1", port)).shutdown()
    assert not Client(address=("127.0.0.1", port)).connected(0.2)

    server = started(address=str(tmp_path / "s"), allow_remote_shutdown=False)
    try:
        c = Client(address=str(tmp_path / "s"))
        with pytest.raises(AuthError, match="remote shutdown refused"):
            c.shutdown()
        assert c.echo(2) == ((2,), {})
    finally:
        server.shutdown_sync()


# ----- logs -----


def test_logs_reach_python_logging_by_concern(caplog, pki):
    with caplog.at_level(logging.DEBUG, logger="pyrpc"):
        server = started(tls_cert=pki["server_cert"], tls_key=pki["server_key"])
        try:
            addr = server.bound_address()
            assert Client(address=addr, tls_ca=pki["ca"]).echo(1) == ((1,), {})
            with pytest.raises(TlsError):
                Client(address=addr, tls_ca=pki["other_ca"]).echo(1)
            with pytest.raises(TlsError):
                Client(address=addr).echo(1)
            # The server logs the failed handshake once its task has run.
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not any(
                r.name == "pyrpc.auth" and "TLS handshake failed" in r.getMessage()
                for r in caplog.records
            ):
                time.sleep(0.02)
        finally:
            server.shutdown_sync()
    by = {}
    for r in caplog.records:
        by.setdefault(r.name, []).append((r.levelno, r.getMessage()))
    server_lines = by.get("pyrpc.server", [])
    startup = [m for lvl, m in server_lines if lvl == logging.INFO and "listening on" in m]
    assert len(startup) == 1, server_lines
    assert "TLS on" in startup[0] and "auth off" in startup[0] and "nonblocking off" in startup[0]
    assert any(lvl == logging.DEBUG and "connection" in m for lvl, m in server_lines), server_lines
    auth = by.get("pyrpc.auth", [])
    assert any(lvl == logging.WARNING and "TLS handshake failed" in m for lvl, m in auth), auth
    assert any(lvl == logging.WARNING and "requires TLS" in m for lvl, m in auth), auth
    client = by.get("pyrpc.client", [])
    assert any(lvl == logging.WARNING and "not signed by a CA" in m for lvl, m in client), client


def test_the_client_logs_its_reconnects(caplog, tmp_path):
    path = str(tmp_path / "s")
    server = started(address=path)
    c = Client(address=path)
    assert c.echo(1) == ((1,), {})
    server.shutdown_sync()
    server = started(address=path)
    try:
        with caplog.at_level(logging.INFO, logger="pyrpc"):
            # The first try may still find the old connection, closed by the
            # old server; the client then drops it and connects again.
            deadline = time.monotonic() + 5
            while not c.connected(0.5):
                assert time.monotonic() < deadline
            assert c.echo(2) == ((2,), {})
        lines = [r.getMessage() for r in caplog.records if r.name == "pyrpc.client"]
        assert any("reconnecting to" in m for m in lines), lines
    finally:
        server.shutdown_sync()
