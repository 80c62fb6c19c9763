"""Remote exceptions keep their instance attributes and show the server's traceback."""

import os
import subprocess
import sys
import textwrap

import pytest

import shared_errors
from pyrpc import RemoteError

HERE = os.path.dirname(os.path.abspath(__file__))


def test_attributes_come_back_on_a_rebuilt_exception(client):
    with pytest.raises(shared_errors.AppError) as e:
        client.raise_app_error("disk full", 28)
    assert e.value.args == ("disk full",)
    assert e.value.code == 28
    assert "raise_app_error" in e.value.traceback


def test_attributes_of_an_unknown_class_are_in_remote_error_attributes(client):
    with pytest.raises(RemoteError) as e:
        client.raise_server_only_app_error("disk full", 28)
    err = e.value
    assert err.type_name == "ServerOnlyAppError"
    # Values travel; the object() attribute cannot and is left out.
    assert err.attributes == {"code": 28, "details": {"disk": "/dev/sda1", "when": (1, 2)}}


def test_remote_traceback_is_the_cause(client):
    with pytest.raises(shared_errors.AppError) as e:
        client.raise_app_error("x", 1)
    cause = e.value.__cause__
    assert type(cause).__name__ == "RemoteTraceback"
    assert "raise_app_error" in str(cause)


@pytest.mark.parametrize("method", ["raise_app_error", "raise_server_only_app_error"])
def test_an_uncaught_remote_exception_prints_the_servers_traceback(server, method):
    script = textwrap.dedent(
        f"""
        import shared_errors
        from pyrpc import Client
        Client(address={server.address!r}).{method}("disk full", 28)
        """
    )
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    err = proc.stderr
    # The server's frames (serve.py, the method), then the client's.
    assert f"in {method}" in err and "serve.py" in err, err
    assert "The above exception was the direct cause of the following exception" in err, err
    assert err.index("serve.py") < err.index("direct cause"), err
    assert "disk full" in err.splitlines()[-1], err
