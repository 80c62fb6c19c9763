"""Standard types and typed records travel as themselves, over real sockets."""

import collections
import dataclasses
import datetime
import decimal
import enum
import fractions
import uuid
from typing import NamedTuple

import pytest

import pyrpc
import shared_types
from shared_types import Color, Frozen, Level, Money, Order, Point

UTC = datetime.timezone.utc
IST = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
ODD = datetime.timezone(-datetime.timedelta(hours=3, seconds=7, microseconds=11))

STANDARD = [
    datetime.datetime(2024, 2, 29, 23, 59, 58, 123456),
    datetime.datetime(1, 1, 1),
    datetime.datetime.max,
    datetime.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=IST),
    datetime.datetime(2024, 1, 2, 3, 4, 5, 999999, tzinfo=ODD),
    datetime.datetime(2024, 11, 3, 1, 30, fold=1),
    datetime.date(2024, 2, 29),
    datetime.date.min,
    datetime.time(23, 59, 59, 999999),
    datetime.time(1, 2, tzinfo=IST),
    datetime.timedelta(0),
    datetime.timedelta(microseconds=-1),
    datetime.timedelta.max,
    datetime.timedelta.min,
    decimal.Decimal("1.50"),
    decimal.Decimal("-0"),
    decimal.Decimal("1E+999999999"),
    decimal.Decimal("-1.2345678901234567890123456789E-999999"),
    decimal.Decimal("Infinity"),
    decimal.Decimal("-Infinity"),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    uuid.uuid4(),
    complex(1.5, -2),
    complex(0, float("inf")),
    fractions.Fraction(-2**100, 3),
    fractions.Fraction(0),
    bytearray(b"\x00ab"),
    bytearray(),
]


def same(a, b):
    """Equal and of the same type (NaN-safe for Decimal)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, decimal.Decimal) and a.is_nan():
        return str(a) == str(b)
    if isinstance(a, (datetime.datetime, datetime.time)):
        return a == b and a.utcoffset() == b.utcoffset() and a.fold == b.fold
    if isinstance(a, decimal.Decimal):
        return str(a) == str(b)  # keeps -0 and trailing zeros apart
    return a == b


@pytest.mark.parametrize("value", STANDARD, ids=repr)
def test_standard_types_round_trip_as_themselves(client, value):
    (got,), _ = client.echo(value)
    assert same(got, value), f"{got!r} is not {value!r}"


def test_decimal_nans_keep_their_sign_and_payload(client):
    for text in ["NaN", "-NaN", "NaN123", "sNaN", "-sNaN45"]:
        (got,), _ = client.echo(decimal.Decimal(text))
        assert type(got) is decimal.Decimal and str(got) == text


def test_the_server_sees_the_real_types_and_computes_with_them(client):
    start = datetime.datetime(2024, 1, 31, 12, tzinfo=UTC)
    assert client.add(start, datetime.timedelta(days=1, hours=1)) == datetime.datetime(
        2024, 2, 1, 13, tzinfo=UTC
    )
    assert client.add(decimal.Decimal("0.1"), decimal.Decimal("0.2")) == decimal.Decimal("0.3")
    assert client.add(fractions.Fraction(1, 3), fractions.Fraction(1, 6)) == fractions.Fraction(1, 2)
    assert client.types_of(*STANDARD[:1], d=datetime.date.today(), u=uuid.uuid4()) == (
        ["datetime"],
        {"d": "date", "u": "UUID"},
    )


def test_zone_names_do_not_travel_but_the_instant_does(client):
    zoneinfo = pytest.importorskip("zoneinfo")
    try:
        paris = zoneinfo.ZoneInfo("Europe/Paris")
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no time zone database")
    value = datetime.datetime(2024, 7, 1, 12, tzinfo=paris)
    (got,), _ = client.echo(value)
    assert got == value and got.utcoffset() == datetime.timedelta(hours=2)
    assert type(got.tzinfo) is datetime.timezone


def test_records_of_shared_classes_are_rebuilt(client):
    order = Order(7, ["a", "b"], note="n")
    values = [order, Frozen(3), Point(1, 2), Color.RED, Color.GREEN, Level.HIGH, Money(250)]
    got, _ = client.echo(*values)
    assert list(got) == values
    assert [type(v) for v in got] == [type(v) for v in values]
    assert got[0].total == 3.0
    # The server sees the classes too (it imports shared_types).
    names, _ = client.types_of(*values)
    assert names == ["Order", "Frozen", "Point", "Color", "Color", "Level", "Money"]


def test_records_nest_in_containers_and_in_each_other(client):
    value = {"orders": [Order(1, [])], "where": (Point(0, 0), {Color.RED})}
    (got,), _ = client.echo(value)
    assert got == value


# Classes the server has not imported: it gets plain fallbacks.
@dataclasses.dataclass
class LocalOrder:
    id: int
    tags: list


class LocalPoint(NamedTuple):
    x: int
    y: int


class LocalColor(enum.Enum):
    BLUE = "blue"


class LocalMoney:
    def __init__(self, cents):
        self.cents = cents


def test_unknown_classes_fall_back_to_plain_values(client):
    pyrpc.register_type(LocalMoney, lambda m: m.cents, lambda c: LocalMoney(c))
    values = [LocalOrder(1, ["x"]), LocalPoint(3, 4), LocalColor.BLUE, LocalMoney(99)]
    got, _ = client.echo(*values)
    # The server rebuilt nothing and echoed the fallbacks: a dict, a tuple,
    # the enum's value, the encoder's value.
    assert got == ({"id": 1, "tags": ["x"]}, (3, 4), "blue", 99)
    assert client.types_of(*values) == (["dict", "tuple", "str", "int"], {})


def test_a_record_whose_class_changed_shape_falls_back(client):
    # The server's shared_types.Point has fields (x, y); this one does not match.
    Fake = collections.namedtuple("Point", "a b c")
    Fake.__module__ = "shared_types"
    (got,), _ = client.echo(Fake(1, 2, 3))
    assert got == (1, 2, 3) and type(got) is tuple


def test_register_type_checks_its_arguments():
    with pytest.raises(TypeError):
        pyrpc.register_type(Money(1), str, str)
    with pytest.raises(TypeError):
        pyrpc.register_type(Money, None, str)


def test_records_never_import_modules():
    import sys

    from pyrpc import _types

    assert "xml.dom.pulldom" not in sys.modules
    got = _types._decode("xml.dom.pulldom:PullDOM", 1, ("x",), (1,))
    assert got == {"x": 1}
    assert "xml.dom.pulldom" not in sys.modules
    # A NamedTuple or Enum of an unimported module: the fallbacks, no import.
    assert _types._decode("xml.dom.pulldom:P", 2, ("a",), (1,)) == (1,)
    assert _types._decode("xml.dom.pulldom:E", 3, ("A",), ("a",)) == "a"
    assert "xml.dom.pulldom" not in sys.modules
    # A name that is not a class (a function) is not called.
    assert _types._decode("os:system", 1, ("x",), ("true",)) == {"x": "true"}


def test_unsupported_objects_still_name_the_type(client):
    with pytest.raises(TypeError, match="cannot send object of type deque at args\\[0\\]"):
        client.echo(collections.deque())


def test_int_and_float_lists_arrive_as_plain_lists_of_their_types(client):
    """Homogeneous lists travel packed (PROTOCOL.md §5); nothing of it shows."""
    lists = [
        list(range(-1000, 1000)),
        [2**63 - 1, -(2**63), 0],
        [0.5, -0.0, float("inf"), float("-inf"), 1e308],
        [1, 2**64],  # a big int: not packed
        [True, 1],  # a bool: not packed
        [Level.HIGH, 1],  # an int subclass: not packed, still itself
        [1, 1.5],
    ]
    (got,), _ = client.echo(lists)
    assert got == lists
    assert [[type(x).__name__ for x in xs] for xs in got] == [
        [type(x).__name__ for x in xs] for xs in lists
    ]
    assert str(got[2][1]) == "-0.0"
    (nan,), _ = client.echo([float("nan"), 1.0])
    assert nan[0] != nan[0] and nan[1] == 1.0
    # The server computes with them as lists.
    assert client.types_of(list(range(5)), [1.5]) == (["list", "list"], {})


def test_packed_ints_of_every_varint_length_come_back(client):
    """The packed-int reader takes 8 bytes at a time (decision 0014): every
    varint length (1-10 bytes), both signs, and lists whose bytes end short of,
    on and past an 8-byte word."""
    ints = [0, -1, 1, 2**63 - 1, -(2**63)]
    for bits in range(6, 63, 7):
        ints += [2**bits - 1, 2**bits, -(2**bits), -(2**bits) - 1]
    lists = [ints] + [ints[:n] for n in range(1, 12)] + [list(range(n)) for n in (7, 8, 9, 100)]
    (got,), _ = client.echo(lists)
    assert got == lists
    assert all(type(x) is int for xs in got for x in xs)
