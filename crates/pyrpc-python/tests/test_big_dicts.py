"""Big dicts (a dict message over 512 bytes, made at their final size:
decision 0018) decode as inserting each pair as it comes gives: the same
order, key types and values as the small-dict path, the first key object and
the last value of a repeated key, keys and values that come apart still
paired, the first error in the bytes' order (bad bytes or an unhashable key),
and nothing held after a failure. (Written for decision 0023's queued
inserts, which were dropped; they hold for any change to this path.)"""

import struct
import sys
import tracemalloc

import pytest

from pyrpc import _pyrpc

KEY, VALUE = 0x0A, 0x12


def _varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag, body):
    return bytes([tag]) + _varint(len(body)) + body


def _str(s):
    return _field(0x32, s.encode())


def _int(i):
    return b"\x18" + _varint((i << 1) ^ (i >> 63))


def _dict(fields):
    return _field(0x62, b"".join(fields))


def _pair(k, v):
    return _field(KEY, k) + _field(VALUE, v)


class Name(str):
    pass


def test_keys_of_every_kind_come_back_in_order_as_a_small_dict_gives_them():
    big = {}
    for i in range(3000):
        if i % 97 == 0:
            big[i] = i
        elif i % 101 == 0:
            big[(i, "t")] = [i]
        elif i % 103 == 0:
            big[Name(f"sub{i}")] = i
        elif i % 107 == 0:
            big[2.5 * i] = None
        else:
            big[f"key{i}"] = i * 0.5
    back = _pyrpc._loads(_pyrpc._dumps(big))
    assert back == big and list(back) == list(big)
    # Each key's type as the small-dict path (no queue) decodes it.
    for k, b in zip(big, back):
        small = next(iter(_pyrpc._loads(_pyrpc._dumps({k: 0}))))
        assert type(b) is type(small), k


def test_a_key_repeated_within_a_few_pairs_keeps_its_first_place_and_last_value():
    pairs = [(f"k{i % 5}", i) for i in range(400)] + [(f"u{i}", i) for i in range(100)]
    pairs += [(f"k{i % 3}", -i) for i in range(7)]
    back = _pyrpc._loads(_dict(_pair(_str(k), _int(v)) for k, v in pairs))
    want = {}
    for k, v in pairs:
        want[k] = v
    assert back == want and list(back) == list(want)


def test_keys_then_values_and_stray_fields_still_pair_up():
    keys = [f"key{i}" for i in range(300)]
    fields = [_pair(_str(k), _int(i)) for i, k in enumerate(keys[:100])]
    fields.append(b"\x78\x05")  # field 15, a varint: skipped
    fields += [_pair(_str(k), _int(i + 100)) for i, k in enumerate(keys[100:200])]
    fields += [_field(KEY, _str(k)) for k in keys[200:]]
    fields += [_field(VALUE, _int(i + 200)) for i in range(100)]
    back = _pyrpc._loads(_dict(fields))
    assert back == dict(zip(keys, range(300))) and list(back) == keys


def test_reference_counts_stay_exact():
    big = {f"key{i}": i * 0.5 for i in range(2000)}
    back = _pyrpc._loads(_pyrpc._dumps(big))
    assert back == big
    k, v = next(iter(back.items()))
    # The dict, `k` (or `v`) and getrefcount's argument.
    assert sys.getrefcount(k) == 3 and sys.getrefcount(v) == 3


GOOD = [_pair(_str(f"key{i}"), _int(i)) for i in range(1000)]
UNHASHABLE = _pair(_field(0x42, b""), _int(1))  # a list as the key
BAD_VALUE = _pair(_str("x"), b"\x29\x00")  # a truncated float


@pytest.mark.parametrize(
    "fields, error",
    [
        (GOOD[:500] + [UNHASHABLE] + GOOD[500:], TypeError),
        # The unhashable key fails before the bad bytes after it are read.
        (GOOD[:500] + [UNHASHABLE, BAD_VALUE] + GOOD[500:], TypeError),
        (GOOD[:500] + [BAD_VALUE, UNHASHABLE] + GOOD[500:], ValueError),
        (GOOD + [BAD_VALUE], ValueError),
        (GOOD + [_field(KEY, _str("last"))[:-1]], ValueError),
    ],
    ids=["unhashable", "unhashable-then-bad", "bad-then-unhashable", "bad-last", "truncated"],
)
def test_a_big_dict_that_fails_halfway_fails_as_before_and_leaks_nothing(fields, error):
    data = _dict(fields)
    for _ in range(5):
        with pytest.raises(error):
            _pyrpc._loads(data)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(100):
            with pytest.raises(error):
                _pyrpc._loads(data)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # 100 leaked decodes would hold 100 x 500 keys and values.
    assert grown < 50_000, grown


def test_float_values_come_back_bit_for_bit():
    values = [0.0, -0.0, float("inf"), float("-inf"), float("nan"), 5e-324, 1.7976931348623157e308]
    big = {f"f{i}": v for i, v in enumerate(values * 100)}
    back = _pyrpc._loads(_pyrpc._dumps(big))
    assert [struct.pack("<d", v) for v in back.values()] == [
        struct.pack("<d", v) for v in big.values()
    ]
