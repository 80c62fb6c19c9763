"""pyrpc.typed at run time: the protocol's methods are called remotely
(`async def` ones from asyncio), other names fail without a call."""

import asyncio
from typing import Protocol

import pytest

import pyrpc
from pyrpc import Client


class Echo(Protocol):
    def echo(self, x: int) -> object: ...

    async def add(self, a: int, b: int) -> int: ...


class Base(Protocol):
    def pid(self) -> int: ...


class Derived(Base, Protocol):
    def echo(self, x: int) -> object: ...


def test_typed_calls(server):
    client = Client(address=server.address)
    echo = pyrpc.typed(Echo, client)
    assert echo.echo(3) == ((3,), {})
    assert asyncio.run(echo.add(2, 3)) == 5
    assert "echo" in dir(echo) and "add" in dir(echo)
    with pytest.raises(AttributeError, match="Echo has no method 'sleep'"):
        echo.sleep  # noqa: B018
    derived = pyrpc.typed(Derived, client)
    assert isinstance(derived.pid(), int)


def test_typed_refuses_what_is_not_a_protocol(server):
    client = Client(address=server.address)
    with pytest.raises(TypeError, match="typing.Protocol"):
        pyrpc.typed(int, client)
    with pytest.raises(TypeError, match="pyrpc.Client"):
        pyrpc.typed(Echo, object())
