"""The original tests/test.py scenario: a 500 MiB result times out with
call_timeout=0.1 and arrives whole with call_timeout=10 (release builds)."""

import pytest

from pyrpc import Client, Timeout

SIZE = 500 * 1024**2


@pytest.fixture(scope="module")
def sync_server(spawn_server):
    # As the original test: a synchronous server (TCP, like its ADDRESS).
    return spawn_server("tcp", synchronous=True)


def test_big_result_times_out_then_arrives_whole(sync_server):
    client = Client(address=sync_server.address)
    assert client.echo(1, foo=2) == ((1,), {"foo": 2})
    with pytest.raises(Timeout):
        client.big(SIZE, call_timeout=0.1)
    ret = client.big(SIZE, call_timeout=10)
    assert len(ret) == SIZE
    assert ret[:3] == b"111" and ret[-3:] == b"111"
    del ret
    # The connection is fine afterwards.
    assert client.echo(3) == ((3,), {})
