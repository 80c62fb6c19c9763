"""Uses of pyrpc that `mypy --strict` must accept (tests/test_typing.py)."""

import asyncio
import pathlib
from typing import Protocol

import pyrpc
from pyrpc import Client, Server


class Echo(Protocol):
    def echo(self, text: str) -> str: ...

    def add(self, a: int, b: int = 1) -> int: ...

    async def slow(self, seconds: float) -> None: ...


class MyServer(Server):
    address = ("127.0.0.1", 0)
    nonblocking = True

    def echo(self, text: str) -> str:
        return text


def settings() -> None:
    Client(address=("127.0.0.1", 1), call_timeout=0.2, secret=b"k")
    Client(address="tcp://127.0.0.1:1", call_timeout=None, allow_pickle=True)
    Client(address=pathlib.Path("/tmp/s"), nolog_methods=["echo"])
    Server(address="unix:/tmp/s", nonblocking=True, workers=4, idle_timeout=None)
    Server(address=("", 0), unix_mode=0o600, tls_cert="c.pem", tls_key="k.pem")
    Client(address=("h", 1), tls_ca="ca.pem", tls_server_name="h")


def calls(client: Client) -> None:
    untyped = client.anything(1, call_timeout=pyrpc.NO_TIMEOUT)  # Any, unchecked
    print(untyped)
    echo = pyrpc.typed(Echo, client)
    text: str = echo.echo("hi")
    n: int = echo.add(1) + echo.add(1, b=2)
    print(text, n)


async def async_calls(client: Client) -> None:
    echo = pyrpc.typed(Echo, client)
    await echo.slow(0.1)
    await client.co_nb_anything(1)


def lifecycle() -> None:
    with MyServer() as server:
        address = server.bound_address()
        assert address is not None
        with Client(address=address) as client:
            client.echo("x")
        pyrpc.close(client)
        stats = pyrpc.stats(client)
        methods = [m.name for m in pyrpc.list_methods(client)]
        print(stats, methods)
    asyncio.run(async_calls(Client(address=("127.0.0.1", 1))))


def errors(client: Client) -> None:
    try:
        client.echo(1)
    except ConnectionError as exc:
        assert isinstance(exc, pyrpc.NoSocket)
    except pyrpc.Timeout as exc:
        print(exc.stage)
    except pyrpc.RemoteError as exc:
        print(exc.kind, exc.type_name)
