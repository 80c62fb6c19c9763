"""The original README's examples, as the scripts in examples/python/."""

import os
import subprocess
import sys

from conftest import free_port, wait_connected

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "examples", "python")


def example(name):
    return os.path.normpath(os.path.join(EXAMPLES, name))


def run_pair(server_arg, client_address):
    server = subprocess.Popen(
        [sys.executable, example("echo_server.py"), server_arg],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_connected(client_address, server)
        out = subprocess.run(
            [sys.executable, example("echo_client.py"), server_arg],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout == "((1,), {'foo': 'foo'})\n"
    finally:
        server.terminate()
        server.wait(15)


def test_echo_server_and_client_over_tcp():
    port = free_port()
    # ":port" is the README's ('', port): all interfaces for the server,
    # this machine for the client.
    run_pair(":%d" % port, ("", port))


def test_echo_server_and_client_over_unix(tmp_path):
    path = str(tmp_path / "echo_server_socket")
    run_pair(path, path)


def test_nb_echo_in_one_process(tmp_path):
    env = dict(os.environ, PYRPC_ECHO_SLEEP="1.2")
    out = subprocess.run(
        [sys.executable, example("nb_echo.py"), str(tmp_path / "echo_server_socket")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    # The README's echo(args, **kwargs) takes the positional 1 as `args`.
    assert out.stdout == "(1, {'foo': 'foo'})\n"
