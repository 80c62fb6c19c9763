"""Values convert straight to and from their wire bytes (issue 10, point 6):
the bytes are a valid ``pyrpc.v1.Value``, every shape comes back as itself,
and what is malformed is refused clearly. The calls over real sockets are in
test_values.py, test_depth.py and the rest; these look at the conversion."""

import datetime
import enum
import decimal
import struct
import sys
import uuid

import pytest

import pyrpc
from pyrpc import _pyrpc

SHAPES = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    2**63,
    -(2**200),
    1.5,
    float("inf"),
    "",
    "é\u20ac\U0001f600",
    b"",
    b"\x00\xff",
    bytearray(b"ab"),
    [],
    (),
    {},
    set(),
    frozenset(),
    [1, "a", (2, [3, {"k": None}])],
    {1: "a", "b": 2.5, (1, 2): frozenset({3}), None: [b"x"]},
    {"nested": {"deeper": {"deepest": [1, 2, 3]}}},
    list(range(300)),  # a container longer than 127 bytes: a two-byte length
    [datetime.datetime(2024, 1, 2, 3, 4, 5, 6), decimal.Decimal("-0"), uuid.UUID(int=7), 1 + 2j],
]


@pytest.mark.parametrize("value", SHAPES, ids=lambda v: type(v).__name__)
def test_every_shape_comes_back_as_itself(value):
    back = _pyrpc._loads(_pyrpc._dumps(value))
    assert back == value
    assert type(back) is type(value)


def test_packed_lists_are_lists_that_can_grow_and_shrink():
    # The decoder fills a new list's slots directly (decision 0014): the list
    # must be an ordinary one afterwards.
    back = _pyrpc._loads(_pyrpc._dumps(list(range(-50, 50))))
    back.append(7)
    back.extend([1.5] * 100)
    del back[:150]
    assert back == [1.5] * 51
    floats = _pyrpc._loads(_pyrpc._dumps([0.5] * 9))
    floats.insert(0, "x")
    assert floats == ["x"] + [0.5] * 9


def test_records_share_their_key_objects():
    records = [{"id": i, "name": f"n{i}"} for i in range(1000)]
    back = _pyrpc._loads(_pyrpc._dumps(records))
    assert back == records
    assert len({id(k) for d in back for k in d}) == 2


def test_a_key_near_the_end_of_the_bytes_is_still_shared():
    # The key cache reads 8 bytes at a time where the buffer has them and
    # copies near its end; both must file the same key alike.
    for last in (None, 0, ""):
        back = _pyrpc._loads(_pyrpc._dumps([{"k": 1}, {"k": 2}, {"k": last}]))
        assert back == [{"k": 1}, {"k": 2}, {"k": last}]
        assert len({id(k) for d in back for k in d}) == 1


def test_cached_keys_that_look_alike_stay_apart():
    # Keys the cache files under the same length, first and last 8 bytes
    # (long ones differ only in the middle; short ones by one byte), mixed in
    # records of one list: each must come back as itself.
    long = [f"prefix__{c}__suffix" for c in "ABCDEFGH"]
    short = ["k", "k2", "kk", "key_0123456789", "key_0123456789x"]
    records = [{k: i for k in long + short} for i in range(50)]
    records += [{long[i % 8]: i, short[i % 5]: -i} for i in range(200)]
    got = _pyrpc._loads(_pyrpc._dumps(records))
    assert got == records
    assert [list(r) for r in got] == [list(r) for r in records]



class StrKey(str, enum.Enum):
    """A key equal to a str (same hash, same text) that is not one."""

    A = "a"


def _key_types(records):
    return [[(type(k), k) for k in r] for r in records]


def test_records_whose_keys_change_halfway_come_back_as_they_were():
    # Keys are predicted from the previous dict's key at the same position
    # (decode) and written from the previous dict's bytes when the key is the
    # same object (encode): every change of shape, order, type or object
    # halfway through a list must still come back exactly.
    same = [{"a": i, "b": -i, "c": 0.5, "d": None} for i in range(20)]
    reordered = [{"b": i, "a": i, "c": 1.5, "d": True} for i in range(5)]
    fewer = [{"a": i} for i in range(3)]
    more = [{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, **{f"x{j}": j for j in range(20)}}] * 3
    typed = [{StrKey.A: 1, "b": 2}, {"a": 1, "b": 2}, {StrKey.A: 3}, {1: "int key", "b": 2},
             {"1": "str key", "b": 2}, {b"a": "bytes key"}, {"a": 1}, {("a",): 2}]
    # Equal text, new objects each time (not the same key objects).
    fresh = [{"".join(["a"]): i, "b" + "": i} for i in range(5)]
    long = [{("k" * 40): i, "a": i} for i in range(3)]
    records = same + reordered + fewer + more + typed + fresh + long + same
    back = _pyrpc._loads(_pyrpc._dumps(records))
    assert back == records
    assert _key_types(back) == _key_types(records)
    assert [list(r.values()) for r in back] == [list(r.values()) for r in records]
    # What each record alone encodes to is what it encodes to in the list.
    assert _pyrpc._dumps(records) == _list_of([_pyrpc._dumps(r) for r in records])


def test_a_key_object_freed_between_records_is_not_mistaken_for_a_new_one():
    # The encoder remembers the previous dict's key objects: a dict emptied
    # (its keys freed) by a registered encoder while the list is sent must
    # not let a new key at a reused address be written as the old one.
    first = {"k" * 20 + "1": 1}
    items = [first, Meddler(lambda: first.clear() or 7)]
    items += [{"k" * 20 + str(i): i} for i in range(2, 200)]
    back = _pyrpc._loads(_pyrpc._dumps(items))
    assert back[1:] == [7] + [{"k" * 20 + str(i): i} for i in range(2, 200)]


def _list_of(messages):
    body = b"".join(b"\x0a" + _varint(len(m)) + m for m in messages)
    return b"\x42" + _varint(len(body)) + body


def test_a_decode_that_fails_halfway_through_records_leaks_nothing():
    import tracemalloc

    records = [{"name": f"n{i}", "score": i * 1.5} for i in range(200)]
    # The records, then a dict whose key is a list (unhashable).
    bad_dict = _msg(0x62, _msg(0x0A, _msg(0x42, b"")) + _msg(0x12, bytes([0x18, 2])))
    bad = _list_of([_pyrpc._dumps(r) for r in records] + [bad_dict])
    assert _pyrpc._loads(_list_of([_pyrpc._dumps(r) for r in records])) == records
    tracemalloc.start()
    try:
        for _ in range(5):
            with pytest.raises(TypeError):
                _pyrpc._loads(bad)
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(200):
            with pytest.raises(TypeError):
                _pyrpc._loads(bad)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # 200 leaked decodes would hold 200 x 200 records.
    assert grown < 50_000, grown


def test_decoding_keeps_reference_counts_exact():
    # Container items are counted inline where the interpreter allows it
    # (decision 0017): a shared key is held once per dict and by nothing
    # else afterwards, and the singletons' counts (mortal before 3.12) do not
    # drift over many decodes.
    records = [{"id": i, "ok": i % 2 == 0, "none": None, "f": 0.5} for i in range(100)]
    data = _pyrpc._dumps(records)
    singletons = (True, False, None)

    def counts_after(decodes):
        for _ in range(decodes):
            _pyrpc._loads(data)
        return [sys.getrefcount(o) for o in singletons]

    first = counts_after(1)
    if sys.version_info < (3, 12):
        assert counts_after(300) == first
    back = _pyrpc._loads(data)
    assert back == records
    key = next(iter(back[0]))
    # 100 dicts, `key` and getrefcount's argument.
    assert sys.getrefcount(key) == 102
    del back
    assert sys.getrefcount(key) == 2


def _msg(tag, body):
    return bytes([tag, len(body)]) + body


def test_a_key_repeated_in_one_dict_keeps_its_last_value():
    # key "ab" twice in each of three dicts (only a hand-made message does
    # this): the dict keeps the first key object and the last value.
    key = _msg(0x0A, _msg(0x32, b"ab"))
    pair = lambda z: key + _msg(0x12, bytes([0x18, z]))  # noqa: E731
    one = _msg(0x62, pair(2) + pair(4))
    data = _msg(0x42, _msg(0x0A, one) * 3)
    back = _pyrpc._loads(data)
    assert back == [{"ab": 2}] * 3
    assert sys.getrefcount(next(iter(back[0]))) == 3 + 2


def test_an_item_message_of_two_fields_takes_the_last():
    # A Value with an int field and then a float field is the float (the
    # last field of a oneof wins), in a list and as a dict's key and value.
    two = bytes([0x18, 0x02, 0x29]) + struct.pack("<d", 1.5)
    assert _pyrpc._loads(_msg(0x42, _msg(0x0A, two))) == [1.5]
    d = _pyrpc._loads(_msg(0x62, _msg(0x0A, two) + _msg(0x12, two)))
    assert d == {1.5: 1.5} and type(next(iter(d))) is float



def test_big_dicts_made_at_their_size_keep_order_and_repeated_keys():
    # A dict message over 512 bytes is counted first and made at its final
    # size (decision 0018): order, every kind of key, and a key repeated 300
    # times (one item, its last value) all come back as before.
    big = {f"key{i}": i * 0.5 for i in range(5000)}
    big.update({i: [i] for i in range(100)})
    back = _pyrpc._loads(_pyrpc._dumps(big))
    assert back == big and list(back) == list(big)
    key = _msg(0x0A, _msg(0x32, b"ab"))
    items = b"".join(key + _msg(0x12, b"\x18" + _varint(z)) for z in range(2, 602, 2))
    data = bytes([0x62]) + _varint(len(items)) + items
    assert _pyrpc._loads(data) == {"ab": 300}


def _varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def test_deep_values_use_the_flat_encoding_and_come_back():
    v = 1
    for _ in range(500):
        v = [v]
    data = _pyrpc._dumps(v)
    # The flat encoding: Value field 25 (key 0xca 0x01).
    assert data[:2] == b"\xca\x01"
    back = _pyrpc._loads(data)
    for _ in range(500):
        assert type(back) is list and len(back) == 1
        back = back[0]
    assert back == 1


@pytest.mark.parametrize(
    "data",
    [
        b"\x32\x05ab",  # a str longer than the message
        b"\x32\x02\xff\xfe",  # a str that is not UTF-8
        b"\x18",  # an int without its varint
        b"\x62\x02\x0a\x00",  # a dict with a key and no value
    ],
)
def test_malformed_bytes_are_a_clear_error(data):
    with pytest.raises(ValueError):
        _pyrpc._loads(data)


def test_unsendable_objects_name_their_place():
    with pytest.raises(TypeError, match=r"type object at value\[1\]\['x'\]"):
        _pyrpc._dumps([1, {"x": object()}])


class Meddler:
    """Sent through a registered encoder that changes the container it is in:
    the encoder runs Python code in the middle of the container's encoding,
    while plain items are written from the container's own references."""

    def __init__(self, meddle):
        self.meddle = meddle


pyrpc.register_type(Meddler, lambda m: m.meddle(), lambda v: v, name="test_direct.Meddler")


def test_a_dict_changed_while_it_is_sent_is_refused():
    d = {}
    d.update({"first": "plain", "m": Meddler(lambda: d.clear() or 7), "after": "x" * 50})
    with pytest.raises(TypeError, match="dict changed size while it was being sent"):
        _pyrpc._dumps(d)


def test_a_list_emptied_while_it_is_sent_stops_at_its_new_end():
    # The items after the meddler are freed by the clear: they must not be
    # read from the list's old references.
    items = ["x" * 100, 2.5]
    items[1:1] = [Meddler(lambda: items.clear() or 7)]
    items += [f"freed {i}" for i in range(50)]
    assert _pyrpc._loads(_pyrpc._dumps(items)) == ["x" * 100, 7]
