"""numpy arrays and scalars travel as themselves (issue 10, point 3), over
real sockets to a Python server that computes with them; arrays numpy cannot
describe as numbers are refused clearly; numpy stays optional.

numpy is in requirements-test.txt: these tests fail, not skip, when it is
missing, unless PYRPC_NUMPY_OPTIONAL=1 says that CPython has no numpy wheel.
"""

import os
import subprocess
import sys
import textwrap

import pytest

from pyrpc import _pyrpc

if os.environ.get("PYRPC_NUMPY_OPTIONAL") == "1":
    np = pytest.importorskip("numpy")
else:
    import numpy as np

DTYPES = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
]


def sample(dtype, shape):
    n = int(np.prod(shape))
    a = (np.arange(n) * 37 % 11 - 5).astype(dtype).reshape(shape)
    if a.dtype.kind in "fc":
        a = a / 4
    if a.dtype.kind == "c":
        a = a + 1j * a[::-1] if a.ndim else a
    return np.asarray(a, dtype=dtype).reshape(shape)  # a 0-d array, not a scalar


def same_array(got, want):
    assert type(got) is np.ndarray, type(got)
    assert got.dtype == want.dtype.newbyteorder("="), (got.dtype, want.dtype)
    assert got.shape == want.shape
    assert np.array_equal(got, want, equal_nan=want.dtype.kind in "fc")
    assert got.flags.c_contiguous and got.flags.writeable


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (7,), (2, 3), (2, 0, 3), (3, 1, 4, 2)], ids=str)
def test_every_dtype_and_shape_round_trips(client, dtype, shape):
    a = sample(dtype, shape)
    (got,), _ = client.echo(a)
    same_array(got, a)


def test_special_values_and_extremes_keep_their_bits(client):
    for a in [
        np.array([np.nan, np.inf, -np.inf, -0.0, 5e-324, 1.7976931348623157e308]),
        np.array([np.nan, -0.0, 65504, 6e-8], dtype="float16"),
        np.array([complex(np.nan, -np.inf)], dtype="complex64"),
        np.array([np.iinfo("int64").min, np.iinfo("int64").max]),
        np.array([0, np.iinfo("uint64").max], dtype="uint64"),
    ]:
        (got,), _ = client.echo(a)
        assert got.tobytes() == a.tobytes()
        assert got.dtype == a.dtype


def test_fortran_strided_and_big_endian_arrays_arrive_equal(client):
    base = np.arange(60, dtype="float64").reshape(3, 4, 5)
    for a in [
        np.asfortranarray(base),
        base[:, ::2, 1::3],
        base.T,
        base.astype(">f8"),
        np.arange(10, dtype=">i4")[::-3],
    ]:
        (got,), _ = client.echo(a)
        same_array(got, a)


def test_scalars_arrive_as_the_same_numpy_scalars(client):
    for s in [
        np.float64(1.5), np.float32(-0.25), np.float16(2.0), np.int32(3), np.int8(-128),
        np.uint64(2**64 - 1), np.int64(-(2**63)), np.bool_(True), np.bool_(False),
        np.complex64(1 - 2j), np.complex128(complex(0, np.inf)),
    ]:
        (got,), _ = client.echo(s)
        assert type(got) is type(s), (got, s)
        assert got == s
    # A 0-d array stays an array.
    (got,), _ = client.echo(np.array(2.5))
    assert type(got) is np.ndarray and got.shape == () and got == 2.5


def test_the_server_computes_with_the_arrays(client):
    a = np.arange(12, dtype="int32").reshape(3, 4)
    total = client.add(a, np.ones((3, 4), dtype="int32"))
    same_array(total, a + 1)
    names, kwargs = client.types_of(a, np.float64(1), x=np.bool_(True))
    assert names == ["ndarray", "float64"] and kwargs == {"x": "bool"}
    same_array(client.arange(6, "complex64", [2, 3]), np.arange(6).astype("complex64").reshape(2, 3))


def test_arrays_nest_in_containers(client):
    a, b = np.arange(3), np.eye(2, dtype="float32")
    (got,), _ = client.echo({"a": a, "rest": [b, (np.int16(4), "x")]})
    same_array(got["a"], a)
    same_array(got["rest"][0], b)
    assert got["rest"][1] == (np.int16(4), "x") and type(got["rest"][1][0]) is np.int16


@pytest.mark.parametrize(
    "make, named",
    [
        (lambda: np.array([object(), 1], dtype=object), "object"),
        (lambda: np.array(["a", "bc"]), "<U2"),
        (lambda: np.array([b"a"]), "|S1"),
        (lambda: np.zeros(2, dtype=[("x", "i4"), ("y", "f8")]), "[('x', '<i4'), ('y', '<f8')]"),
        (lambda: np.array(["2024-01-01"], dtype="datetime64[D]"), "datetime64[D]"),
        (lambda: np.zeros(2, dtype="longdouble"), "float128"),
        (lambda: np.str_("text"), "<U4"),
    ],
)
def test_other_dtypes_are_refused_clearly_and_the_server_keeps_serving(client, make, named):
    with pytest.raises(TypeError) as e:
        client.echo([1, make()])
    msg = str(e.value)
    assert "numpy arrays of dtype" in msg and named in msg and "[1]" in msg, msg
    assert client.add(1, 2) == 3


def test_malformed_arrays_are_refused_on_decode():
    good = _pyrpc._dumps(np.arange(4, dtype="int16"))
    assert np.array_equal(_pyrpc._loads(good), np.arange(4, dtype="int16"))
    # The last byte of the data gone, with the lengths patched: 7 bytes for 4 int16.
    # Value.ndarray = c2 01 <len>; NdArray: 08 03 (int16) 12 01 04 (shape [4]) 1a 08 <8 bytes>.
    assert good[:3] == b"\xc2\x01\x0f" and good[3:10] == b"\x08\x03\x12\x01\x04\x1a\x08"
    short = b"\xc2\x01\x0e" + good[3:8] + b"\x1a\x07" + good[10:-1]
    with pytest.raises(ValueError, match="needs 8 bytes of data, not 7"):
        _pyrpc._loads(short)
    unknown = b"\xc2\x01\x02\x08\x63"  # dtype 99
    with pytest.raises(ValueError, match="unknown element type 99"):
        _pyrpc._loads(unknown)


def test_a_large_array_is_one_value_and_comes_back_whole(client):
    a = np.random.default_rng(1).random((1024, 1024))  # 8 MiB
    (got,), _ = client.echo(a)
    same_array(got, a)


def test_numpy_stays_optional(server, tmp_path):
    """A process without numpy imports pyrpc, calls, and receives arrays as
    nested lists of numbers (a scalar as its number)."""
    script = tmp_path / "no_numpy.py"
    script.write_text(textwrap.dedent(
        f"""
        import sys
        sys.modules["numpy"] = None  # import numpy raises ImportError
        import pyrpc
        c = pyrpc.Client(address={server.address!r})
        assert c.add(1, 2) == 3
        assert "numpy" not in sys.modules or sys.modules["numpy"] is None
        got = c.arange(6, "float32", [2, 3])
        assert got == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], got
        assert c.arange(3, "bool") == [False, True, True]
        assert c.arange(2, "complex128") == [0j, 1 + 0j]
        assert c.arange(1, "uint64", []) == 0
        print("ok")
        """
    ))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stdout + out.stderr


def test_importing_pyrpc_does_not_import_numpy():
    code = "import sys, pyrpc; pyrpc.Client(address=('127.0.0.1', 1)); print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stdout + out.stderr
