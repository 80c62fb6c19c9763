"""Uses of pyrpc that `mypy --strict` must refuse: every line marked
`# error` must have an error, and no other line (tests/test_typing.py)."""

from typing import Protocol

import pyrpc
from pyrpc import Client, Server


class Echo(Protocol):
    def echo(self, text: str) -> str: ...


def settings() -> None:
    Client(address=("127.0.0.1", 1), call_timout=0.2)  # error
    Client(address=("127.0.0.1", 1), timeout=0.2)  # error
    Server(address=("127.0.0.1", 1), nonblokcing=True)  # error
    Client(address=12345)  # error
    Client(address=("127.0.0.1", "80"))  # error
    Client(address=("127.0.0.1", 1), call_timeout="soon")  # error
    Server(address=("127.0.0.1", 1), workers="many")  # error


def calls(client: Client) -> None:
    echo = pyrpc.typed(Echo, client)
    echo.echo(1)  # error
    n: int = echo.echo("x")  # error
    echo.missing()  # error
    print(n)


def lifecycle(server: Server) -> None:
    address: tuple[str, int] = server.bound_address()  # error
    print(address)
