"""Streamed replies (issue 12, point 2), over real sockets (TCP and Unix) to a
server in another process: generator and async generator methods, iterated
with ``for`` (blocking client) and ``async for`` (``co_``); items as they are
produced; errors at their point of the iteration; leaving the loop stops the
generator (its ``finally`` runs); a stalled consumer stops the generator at
the credit window."""

import asyncio
import os
import threading
import time

import pytest

import pyrpc
from pyrpc import Client

# The client's window (pyrpc_client::STREAM_WINDOW) and how far a server's
# generator may run ahead of its pump (pyrpc-python's stream::AHEAD), plus
# the item being produced when the channel filled and the one in the pump.
WINDOW = 128
AHEAD = 32
SLACK = 4


@pytest.fixture(scope="module")
def stream_server(spawn_server, transport):
    return spawn_server(transport, kind="stream")


@pytest.fixture
def client(stream_server):
    with Client(address=stream_server.address) as c:
        yield c


def wait_for(check, what, timeout=20.0):
    """Polls ``check()`` until true (a bounded wait, not a timing claim)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.01)
    raise AssertionError("timed out waiting for " + what)


@pytest.mark.parametrize("method", ["count", "acount"])
def test_a_blocking_call_of_a_generator_method_iterates(client, method):
    assert list(getattr(client, method)(1000)) == list(range(1000))
    assert list(getattr(client, method)(0)) == []
    # Plain methods still return their value.
    assert client.value() == "a value"


def test_a_stream_whose_client_was_closed_ends_with_a_clear_error(stream_server):
    # A stream holds the runtime its items come through, not the connection:
    # closing the client closes the connection, and the stream ends with
    # NoSocket (after any items already received), neither hanging nor
    # crashing; the stream's own drop afterwards is harmless.
    c = Client(address=stream_server.address)
    it = c.count(1000)
    pyrpc.close(c)
    del c
    got = []
    with pytest.raises(pyrpc.NoSocket):
        for item in it:
            got.append(item)
    assert got == list(range(len(got)))
    del it
    assert list(Client(address=stream_server.address).count(300)) == list(range(300))


@pytest.mark.parametrize("method", ["count", "acount"])
def test_async_for_over_a_co_call(client, method):
    async def main():
        items = [i async for i in getattr(client, "co_" + method)(500)]
        value = await client.co_value()
        return items, value

    items, value = asyncio.run(main())
    assert items == list(range(500))
    assert value == "a value"


@pytest.mark.parametrize("method", ["fail_after", "afail_after"])
def test_an_exception_mid_stream_raises_at_that_point(client, method):
    got = []
    with pytest.raises(ValueError, match="boom after 3"):
        for item in getattr(client, method)(3):
            got.append(item)
    assert got == [0, 1, 2]

    async def main():
        seen = []
        with pytest.raises(ValueError, match="boom after 2"):
            async for item in getattr(client, "co_" + method)(2):
                seen.append(item)
        return seen

    assert asyncio.run(main()) == [0, 1]


def test_an_item_that_cannot_be_sent_ends_the_stream_with_an_error(client):
    it = client.bad_item()
    assert next(it) == 1
    with pytest.raises(pyrpc.RemoteError) as e:
        next(it)
    assert "item" in str(e.value)
    assert client.value() == "a value"


def test_items_arrive_as_they_are_produced(client, stream_server):
    # `gated` yields "first", then waits for `open_gate()`, which we can
    # only call after "first" arrived: had the first item waited for the
    # last, the gate would have timed out.
    it = client.gated()
    assert next(it) == "first"
    Client(address=stream_server.address).open_gate()
    assert next(it) == "opened"
    assert list(it) == []


def test_closing_the_iterator_from_another_thread_while_one_waits_for_an_item(client, stream_server):
    # One thread waits in next() for an item `gated` yields only once the
    # gate is opened; another closes the iterator meanwhile. close() used
    # to wait for the iterating thread while holding the GIL, which that
    # thread needs to take its item: the whole process hung. Then close()
    # waited for the item (here: forever, the gate stays shut until the
    # end). Now the waiting next() stops at once with StopIteration.
    it = client.gated()
    assert next(it) == "first"
    got = []
    waiting = threading.Event()

    def iterate():
        waiting.set()
        try:
            got.append(next(it))
        except StopIteration:
            got.append(StopIteration)

    reader = threading.Thread(target=iterate, daemon=True)
    reader.start()
    assert waiting.wait(20)
    closer = threading.Thread(target=it.close, daemon=True)
    closer.start()
    reader.join(20)
    closer.join(20)
    alive = reader.is_alive(), closer.is_alive()
    Client(address=stream_server.address).open_gate()  # frees them if they hang
    assert alive == (False, False), "close() must stop the waiting next()"
    assert got == [StopIteration]
    with pytest.raises(StopIteration):
        next(it)
    assert client.value() == "a value"


@pytest.mark.parametrize("method", ["endless", "aendless"])
def test_leaving_the_loop_runs_the_generators_finally(client, method, tmp_path):
    marker = str(tmp_path / "closed")
    for item in getattr(client, method)(marker):
        if item == 5:
            break
    wait_for(lambda: os.path.exists(marker), "the generator's finally")
    # The connection is fine and serves on.
    assert client.value() == "a value"


@pytest.mark.parametrize("method", ["endless", "aendless"])
def test_closing_the_iterator_runs_the_generators_finally(client, method, tmp_path):
    marker = str(tmp_path / "closed")
    it = getattr(client, method)(marker)
    assert next(it) == 0
    it.close()
    wait_for(lambda: os.path.exists(marker), "the generator's finally")


@pytest.mark.parametrize("method", ["endless", "aendless"])
def test_leaving_an_async_for_runs_the_generators_finally(client, method, tmp_path):
    marker = str(tmp_path / "closed")

    async def main():
        async for item in getattr(client, "co_" + method)(marker):
            if item == 3:
                break

    asyncio.run(main())
    wait_for(lambda: os.path.exists(marker), "the generator's finally")


@pytest.mark.parametrize("method", ["endless", "aendless"])
def test_a_stalled_consumer_stops_the_generator_at_the_window(client, method, stream_server, tmp_path):
    marker = str(tmp_path / "closed")
    other = Client(address=stream_server.address)
    it = getattr(client, method)(marker)
    assert next(it) == 0
    # The server fills the window (the client's connection reads whatever
    # arrives), then must stop: it may not produce more than the window,
    # plus what its generator runs ahead of the pump.
    wait_for(lambda: other.produced() >= WINDOW, "the window to fill")
    for _ in range(50):
        assert other.produced() <= WINDOW + AHEAD + SLACK
    # Reading on lets it go on.
    for expected in range(1, 2000):
        assert next(it) == expected
    it.close()
    wait_for(lambda: os.path.exists(marker), "the generator's finally")


def test_nb_calls_of_a_streaming_method_are_refused_clearly(client):
    with pytest.raises(Exception, match="nb_"):
        client.nb_count(3)


def test_awaiting_a_streaming_method_or_iterating_a_value_is_a_type_error(client):
    async def main():
        with pytest.raises(TypeError, match="async for"):
            await client.co_count(3)
        with pytest.raises(TypeError, match="await"):
            async for _ in client.co_value():
                pass
        # Still usable as a coroutine by asyncio.
        return await asyncio.wait_for(asyncio.ensure_future(client.co_value()), 20)

    assert asyncio.run(main()) == "a value"
