"""Record types both the test server and the test client import, so each side
rebuilds the other's records as these very classes."""

import dataclasses
import enum
from typing import List, NamedTuple

import pyrpc


@dataclasses.dataclass
class Order:
    id: int
    items: List[str]
    note: str = ""
    total: float = dataclasses.field(init=False, default=0.0)

    def __post_init__(self):
        self.total = 1.5 * len(self.items)


@dataclasses.dataclass(frozen=True)
class Frozen:
    x: int


class Point(NamedTuple):
    x: int
    y: int


class Color(enum.Enum):
    RED = "red"
    GREEN = 2


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Money:
    """A type pyrpc knows nothing of, sent through register_type."""

    def __init__(self, cents):
        self.cents = cents

    def __eq__(self, other):
        return isinstance(other, Money) and other.cents == self.cents

    def __repr__(self):
        return f"Money({self.cents})"


pyrpc.register_type(Money, lambda m: {"cents": m.cents}, lambda d: Money(d["cents"]), name="test:Money")
