"""Streamed replies: the object ``client.co_method(...)`` returns (awaitable
for a value, async-iterable for a stream), and the driver that runs a
server's async generator methods on its event loop.

A blocking call of a streaming method returns a ``StreamIterator`` (from
Rust) directly: ``for item in client.method(...)``.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, AsyncIterator, Awaitable, Callable, Generator, Optional

from . import _pyrpc


class CoCall:
    """What ``client.co_method(...)`` returns.

    ``await`` it for the method's value; ``async for item in`` it for the
    items of a streaming method (a generator on the server). The call starts
    when it is first awaited or iterated. It is a coroutine in asyncio's eyes
    (``asyncio.create_task``, ``wait_for`` and ``gather`` take it).
    """

    __slots__ = ("_start", "_method", "_coro")

    def __init__(self, start: Callable[[], Awaitable[Any]], value: Callable[[], Any], method: str) -> None:
        # `start()` makes the call and returns what the core answered: a
        # value or an AsyncStreamIterator; `value()` is a coroutine that
        # awaits a value (and logs it).
        self._start = start
        self._method = method
        self._coro: Any = value

    def _value(self) -> Any:
        coro = self._coro
        if callable(coro):
            coro = self._coro = coro()
        return coro

    def __await__(self) -> Generator[Any, None, Any]:
        waiting: Generator[Any, None, Any] = self._value().__await__()
        return waiting

    def send(self, value: Any) -> Any:
        return self._value().send(value)

    def throw(self, *args: Any) -> Any:
        return self._value().throw(*args)

    def close(self) -> None:
        if not callable(self._coro):
            self._coro.close()

    def __aiter__(self) -> "AsyncStream":
        return AsyncStream(self._start(), self._method)

    def __repr__(self) -> str:
        return "<pyrpc call of %s()>" % self._method


def not_a_value(method: str, it: Any) -> TypeError:
    """The error for awaiting a streaming method (the stream is closed)."""
    it.close()
    return TypeError(
        "%s() streams its reply: iterate it with `async for item in client.co_%s(...)`"
        % (method, method)
    )


class AsyncStream:
    """The items of a streamed reply, for ``async for``. Leaving the loop
    early (or ``await stream.aclose()``) stops the generator on the server."""

    __slots__ = ("_start", "_method", "_it")

    def __init__(self, start: Awaitable[Any], method: str) -> None:
        self._start: Optional[Awaitable[Any]] = start
        self._method = method
        self._it: Any = None

    def __aiter__(self) -> "AsyncStream":
        return self

    async def __anext__(self) -> Any:
        it = self._it
        if it is None:
            start, self._start = self._start, None
            if start is None:
                raise StopAsyncIteration
            ret = await start
            if not isinstance(ret, _pyrpc.AsyncStreamIterator):
                raise TypeError(
                    "%s() returned a value, not a stream: use `await client.co_%s(...)`"
                    % (self._method, self._method)
                )
            self._it = it = ret
        hit, item = it.try_next()
        if hit:
            return item
        return await it.next_future(asyncio.get_running_loop())

    async def aclose(self) -> None:
        """Stops the stream (the server closes its generator)."""
        start, self._start = self._start, None
        if start is not None and hasattr(start, "close"):
            start.close()
        if self._it is not None:
            self._it.close()

    def __del__(self) -> None:
        start = self._start
        if start is not None and hasattr(start, "close"):
            start.close()


# ===== server side =====


def _wake(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)


def _room(loop: asyncio.AbstractEventLoop, feed: Any) -> "asyncio.Future[None]":
    future = loop.create_future()
    feed.when_room(loop, functools.partial(_wake, future))
    return future


async def drive(agen: AsyncIterator[Any], feed: Any) -> None:
    """Runs a served async generator, sending its items through ``feed``
    (a ``pyrpc._pyrpc.Feed``) at the pace the client reads them. Cancelled
    when the client leaves the stream; the generator is closed either way,
    so its ``finally`` runs."""
    loop = asyncio.get_running_loop()
    try:
        async for item in agen:
            while True:
                sent = feed.push(item)
                if sent == 1:
                    break
                if sent < 0:
                    return  # the client left: close the generator
                await _room(loop, feed)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        while feed.fail(exc) == 0:
            await _room(loop, feed)
    finally:
        feed.close()
        await agen.aclose()  # type: ignore[attr-defined]
