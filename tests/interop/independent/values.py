"""Python objects to and from ``pyrpc.v1.Value`` messages, nested and flat (PROTOCOL.md section 5).

Part of the independent peer (``tests/interop/independent_peer.py``): it shares
no code with pyrpc.
"""

import datetime
import decimal
import fractions
import math
import uuid

from .messages import INT64_MAX, INT64_MIN, MAX_DEPTH, NESTED_MAX, pb


def int_bytes(n):
    """Two's complement, big-endian, fewest bytes (the big_int rule)."""
    magnitude = n if n >= 0 else ~n
    return n.to_bytes(magnitude.bit_length() // 8 + 1, "big", signed=True)


def offset_us(delta):
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def zone(value):
    """The fixed-offset tzinfo of a DateTime or Time message (None if naive)."""
    if not value.HasField("utc_offset_us"):
        return None
    return datetime.timezone(datetime.timedelta(microseconds=value.utc_offset_us))


class Record:
    """A typed record (dataclass, NamedTuple, Enum, registered type) kept as data:
    this peer has none of the sender's classes, so it echoes records unchanged."""

    def __init__(self, type_name, kind, names, values):
        self.type_name, self.kind, self.names, self.values = type_name, kind, tuple(names), tuple(values)

    def __eq__(self, other):
        return isinstance(other, Record) and vars(self) == vars(other)

    def __hash__(self):
        return hash((self.type_name, self.kind, self.names, self.values))

    def __repr__(self):
        return f"Record({self.type_name!r}, {self.kind}, {self.names!r}, {self.values!r})"


# NdArray element types (the Dtype enum) -> bytes per element.
ITEM_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 2, 8: 4, 9: 8, 10: 2, 11: 4, 12: 8, 13: 8, 14: 16}


class NdArray:
    """An n-d array (Value.ndarray) kept as data: element type (the Dtype
    enum's number), shape, the raw little-endian elements in C order, and
    whether it is a numpy scalar. This peer needs no numpy: it compares bytes."""

    def __init__(self, dtype, shape, data, scalar=False):
        self.dtype, self.shape, self.data, self.scalar = dtype, tuple(shape), bytes(data), bool(scalar)
        if dtype not in ITEM_SIZE:
            raise ValueError(f"ndarray of unknown element type {dtype}")
        if len(self.shape) > 64:
            raise ValueError(f"ndarray of {len(self.shape)} dimensions")
        want = ITEM_SIZE[dtype]
        for n in self.shape:
            want *= n
        if want != len(self.data):
            raise ValueError(f"ndarray of shape {self.shape} needs {want} bytes of data, not {len(self.data)}")
        if self.scalar and self.shape:
            raise ValueError("a scalar ndarray with a shape")

    def __eq__(self, other):
        return isinstance(other, NdArray) and vars(self) == vars(other)

    def __hash__(self):
        return hash((self.dtype, self.shape, self.data, self.scalar))

    def __repr__(self):
        return f"NdArray({self.dtype}, {self.shape}, {self.data!r}, scalar={self.scalar})"


def deeper_than(obj, limit):
    """True if obj nests deeper than limit levels (a scalar is 1), without recursion."""
    stack = [(obj, 1)]
    while stack:
        item, level = stack.pop()
        if level > limit:
            return True
        if isinstance(item, dict):
            stack.extend((x, level + 1) for kv in item.items() for x in kv)
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend((x, level + 1) for x in item)
        elif isinstance(item, Record):
            stack.extend((x, level + 1) for x in item.values)
    return False


HEADERS = {list: "list_len", tuple: "tuple_len", set: "set_len", frozenset: "frozenset_len", dict: "dict_len"}


def to_flat(obj):
    """A deep object -> Value.flat: pre-order nodes, containers as headers."""
    v = pb.Value()
    v.flat.SetInParent()
    nodes = v.flat.nodes
    stack = [iter([obj])]
    while stack:
        item = next(stack[-1], stack)  # the stack itself marks the end
        if item is stack:
            stack.pop()
            continue
        if len(stack) > MAX_DEPTH:
            raise ValueError("value nested too deep")
        header = HEADERS.get(type(item))
        if header == "dict_len":
            setattr(nodes.add(), header, len(item))
            stack.append(iter([x for kv in item.items() for x in kv]))
        elif header:
            setattr(nodes.add(), header, len(item))
            stack.append(iter(list(item)))
        elif isinstance(item, Record):
            h = nodes.add().record_header
            h.type_name, h.kind = item.type_name, item.kind
            h.field_names.extend(item.names)
            stack.append(iter(item.values))
        else:
            nodes.append(to_value(item))
    return v


def from_flat(nodes, depth):
    """Value.flat -> a Python object, with an explicit stack (no recursion)."""
    makers = {"list_len": list, "tuple_len": tuple, "set_len": set, "frozenset_len": frozenset}
    stack = []  # [kind, items, remaining, header]
    root = []
    for node in nodes:
        if root:
            raise ValueError("nodes after the end of a flat value")
        if len(stack) >= depth:
            raise ValueError("value nested too deep")
        kind = node.WhichOneof("kind")
        if kind in makers or kind == "dict_len":
            n = getattr(node, kind)
            open_ = [kind, [], n * 2 if kind == "dict_len" else n, None]
        elif kind == "record_header":
            h = node.record_header
            open_ = [kind, [], len(h.field_names), h]
        elif kind == "flat":
            raise ValueError("a flat value inside a flat value")
        else:
            open_ = None
            value = from_value(node, depth - len(stack))
        if open_ is not None:
            if open_[2] != 0:
                stack.append(open_)
                continue
            value = finish(open_, makers)
        while True:  # hand the value to the innermost container, closing what completes
            if not stack:
                root.append(value)
                break
            top = stack[-1]
            top[1].append(value)
            top[2] -= 1
            if top[2]:
                break
            value = finish(stack.pop(), makers)
    if stack or not root:
        raise ValueError("a flat value that ends inside a container")
    return root[0]


def finish(open_, makers):
    kind, items, _, header = open_
    if kind == "dict_len":
        return dict(zip(items[::2], items[1::2]))
    if kind == "record_header":
        return Record(header.type_name, header.kind, header.field_names, items)
    return makers[kind](items)


def packable(items):
    """Whether a list is sent packed: non-empty, all exact ints in i64 or all floats."""
    if not items:
        return False
    if type(items[0]) is int:
        return all(type(x) is int and INT64_MIN <= x <= INT64_MAX for x in items)
    return type(items[0]) is float and all(type(x) is float for x in items)


def to_value(obj, depth=MAX_DEPTH):
    """A Python object -> pyrpc.v1.Value."""
    if depth == 0:
        raise ValueError("value nested too deep")
    if depth == MAX_DEPTH and deeper_than(obj, NESTED_MAX):
        return to_flat(obj)
    v = pb.Value()
    if obj is None:
        v.none.SetInParent()
    elif isinstance(obj, bool):  # before int: bool is an int subclass
        v.bool = obj
    elif isinstance(obj, int):
        if INT64_MIN <= obj <= INT64_MAX:
            v.int = obj
        else:
            v.big_int = int_bytes(obj)
    elif isinstance(obj, float):
        v.float = obj
    elif isinstance(obj, str):
        v.str = obj
    elif isinstance(obj, bytearray):
        v.bytearray = bytes(obj)
    elif isinstance(obj, bytes):
        v.bytes = obj
    elif isinstance(obj, datetime.datetime):  # before date: a datetime is a date
        v.datetime.SetInParent()
        d = v.datetime
        d.year, d.month, d.day = obj.year, obj.month, obj.day
        d.hour, d.minute, d.second, d.microsecond = obj.hour, obj.minute, obj.second, obj.microsecond
        d.fold = obj.fold
        if obj.utcoffset() is not None:
            d.utc_offset_us = offset_us(obj.utcoffset())
    elif isinstance(obj, datetime.date):
        v.date.SetInParent()
        v.date.year, v.date.month, v.date.day = obj.year, obj.month, obj.day
    elif isinstance(obj, datetime.time):
        v.time.SetInParent()
        t = v.time
        t.hour, t.minute, t.second, t.microsecond, t.fold = obj.hour, obj.minute, obj.second, obj.microsecond, obj.fold
        if obj.utcoffset() is not None:
            t.utc_offset_us = offset_us(obj.utcoffset())
    elif isinstance(obj, datetime.timedelta):
        v.timedelta.SetInParent()
        v.timedelta.days, v.timedelta.seconds, v.timedelta.microseconds = obj.days, obj.seconds, obj.microseconds
    elif isinstance(obj, decimal.Decimal):
        v.decimal = str(obj)
    elif isinstance(obj, uuid.UUID):
        v.uuid = obj.bytes
    elif isinstance(obj, complex):
        v.complex.SetInParent()
        # A part is written unless it is +0.0, so -0.0 keeps its sign.
        for name, part in (("real", obj.real), ("imag", obj.imag)):
            if part != 0 or math.copysign(1.0, part) < 0:
                setattr(v.complex, name, part)
    elif isinstance(obj, fractions.Fraction):
        v.fraction.numerator = int_bytes(obj.numerator)
        v.fraction.denominator = int_bytes(obj.denominator)
    elif isinstance(obj, NdArray):
        v.ndarray.SetInParent()
        v.ndarray.dtype = obj.dtype
        v.ndarray.shape.extend(obj.shape)
        v.ndarray.data = obj.data
        v.ndarray.scalar = obj.scalar
    elif isinstance(obj, Record):
        v.record.SetInParent()
        v.record.type_name, v.record.kind = obj.type_name, obj.kind
        v.record.field_names.extend(obj.names)
        for item in obj.values:
            v.record.fields.append(to_value(item, depth - 1))
    elif type(obj) is list and depth > 1 and packable(obj):
        # PROTOCOL.md §5 "Packed lists": all exact ints in i64, or all floats.
        if type(obj[0]) is int:
            v.int_list.items.extend(obj)
        else:
            v.float_list.items.extend(obj)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        field = {list: "list", tuple: "tuple", set: "set", frozenset: "frozenset"}[type(obj)]
        items = getattr(v, field)
        items.SetInParent()  # an empty container is still a container
        for item in obj:
            items.items.append(to_value(item, depth - 1))
    elif isinstance(obj, dict):
        v.dict.SetInParent()
        for key, value in obj.items():
            v.dict.keys.append(to_value(key, depth - 1))
            v.dict.values.append(to_value(value, depth - 1))
    else:
        raise TypeError(f"cannot send a {type(obj).__name__}")
    return v


def from_value(v, depth=MAX_DEPTH):
    """A pyrpc.v1.Value -> a Python object."""
    if depth == 0:
        raise ValueError("value nested too deep")
    kind = v.WhichOneof("kind")
    if kind is None or kind == "none":
        return None
    if kind in ("bool", "int", "float", "str", "bytes"):
        return getattr(v, kind)
    if kind == "big_int":
        if not v.big_int:
            raise ValueError("big_int with no bytes")
        return int.from_bytes(v.big_int, "big", signed=True)
    if kind in ("list", "tuple", "set", "frozenset"):
        items = [from_value(i, depth - 1) for i in getattr(v, kind).items]
        return {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}[kind](items)
    if kind in ("int_list", "float_list"):
        items = list(getattr(v, kind).items)
        if items and depth == 1:
            raise ValueError("value nested too deep")
        return items
    if kind == "dict":
        if len(v.dict.keys) != len(v.dict.values):
            raise ValueError("dict with different numbers of keys and values")
        return {
            from_value(k, depth - 1): from_value(x, depth - 1)
            for k, x in zip(v.dict.keys, v.dict.values)
        }
    if kind == "flat":
        return from_flat(v.flat.nodes, depth)
    if kind == "bytearray":
        return bytearray(v.bytearray)
    if kind == "datetime":
        d = v.datetime
        return datetime.datetime(
            d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond, tzinfo=zone(d), fold=d.fold
        )
    if kind == "date":
        return datetime.date(v.date.year, v.date.month, v.date.day)
    if kind == "time":
        t = v.time
        return datetime.time(t.hour, t.minute, t.second, t.microsecond, tzinfo=zone(t), fold=t.fold)
    if kind == "timedelta":
        return datetime.timedelta(v.timedelta.days, v.timedelta.seconds, v.timedelta.microseconds)
    if kind == "decimal":
        return decimal.Decimal(v.decimal)
    if kind == "uuid":
        if len(v.uuid) != 16:
            raise ValueError("uuid of %d bytes" % len(v.uuid))
        return uuid.UUID(bytes=v.uuid)
    if kind == "complex":
        return complex(v.complex.real, v.complex.imag)
    if kind == "fraction":
        n, d = (int.from_bytes(b, "big", signed=True) for b in (v.fraction.numerator, v.fraction.denominator))
        return fractions.Fraction(n, d)
    if kind == "ndarray":
        a = v.ndarray
        return NdArray(a.dtype, a.shape, a.data, a.scalar)
    if kind == "record":
        r = v.record
        if len(r.field_names) != len(r.fields):
            raise ValueError("record with different numbers of field names and fields")
        return Record(r.type_name, r.kind, r.field_names, [from_value(f, depth - 1) for f in r.fields])
    raise ValueError(f"unsupported value kind {kind}")  # pickle: we never opt in


def shape(obj):
    """A text that differs whenever two objects differ in value or in type, at any depth.

    Sets compare regardless of order; dicts compare in insertion order.
    """
    if isinstance(obj, (list, tuple)):
        return f"{type(obj).__name__}[{', '.join(shape(i) for i in obj)}]"
    if isinstance(obj, (set, frozenset)):
        return f"{type(obj).__name__}{{{', '.join(sorted(shape(i) for i in obj))}}}"
    if isinstance(obj, dict):
        return "dict{" + ", ".join(f"{shape(k)}: {shape(v)}" for k, v in obj.items()) + "}"
    return f"{type(obj).__name__}:{obj!r}"
