"""The golden vectors of ``proto/testdata``: built here from the protocol, compared byte for byte.

Part of the independent peer (``tests/interop/independent_peer.py``): it shares
no code with pyrpc.
"""

import hashlib
import hmac
import os
import struct

from .checks import ARRAY_ARGS, KINDS_ARGS
from .client import IndependentClient
from .messages import pb
from .values import Record, from_value, shape


GOLDEN_CALL = (
    (1, -2, 2**64, -(2**63) - 1, -(2**71), 1.5, "h\u00e9llo", b"\x00\xff", True, False, 0,
     None, (1, ()), ["a", []], {1, 2}, frozenset({"x"}), {"a": 1, (1, 2): None}),
    {"foo": "foo", "n": None},
)


# call_kinds.bin: KINDS_ARGS, then two records (a dataclass, an Enum member).
GOLDEN_KINDS_CALL = (
    KINDS_ARGS
    + (
        Record("shop.models:Order", 1, ("id", "items"), (7, ["a"])),
        Record("shop:Color", 3, ("RED",), ("red",)),
    ),
    {},
)

# name -> (request id, call timeout in s, the call's (args, kwargs))
def golden_deep():
    value = {"k": (1,)}
    for _ in range(38):
        value = [value]
    return value


GOLDEN_CALLS = {
    "call": (7, 1.5, GOLDEN_CALL),
    "call_kinds": (13, None, GOLDEN_KINDS_CALL),
    "call_deep": (14, None, ((golden_deep(),), {})),
    "call_ndarray": (15, None, (ARRAY_ARGS, {})),
    # Packed lists (PROTOCOL.md §5): two packed, then four that are not.
    "call_packed": (15, None, (([1, -2, 300], [0.5, -1.5], [], [1, 2**64], [True, 1], [1, 1.5]), {})),
}


# The secret and nonces of the auth_* vectors (see proto/testdata/README.md).
GOLDEN_SECRET = b"golden secret"
GOLDEN_CLIENT_NONCE = bytes(range(0, 32))
GOLDEN_CHALLENGE = bytes(range(32, 64))


def auth_mac(secret, label, challenge, client_nonce):
    """HMAC-SHA256(secret, label || Ns || Nc), as docs/PROTOCOL.md describes."""
    return hmac.new(secret, label + challenge + client_nonce, hashlib.sha256).digest()


def check_golden(directory):
    from google.protobuf import text_format

    names = sorted(f[: -len(".bin")] for f in os.listdir(directory) if f.endswith(".bin"))
    if not names:
        print(f"FAIL no golden vectors in {directory}")
        return False
    ok = True
    for name in names:
        with open(os.path.join(directory, name + ".bin"), "rb") as f:
            frame = f.read()
        with open(os.path.join(directory, name + ".txtpb"), encoding="utf-8") as f:
            text = f.read()
        type_name = next(
            line.split(":", 1)[1].strip()
            for line in text.splitlines()
            if line.startswith("# proto-message:")
        )
        message_type = {"pyrpc.v1.ClientFrame": pb.ClientFrame, "pyrpc.v1.ServerFrame": pb.ServerFrame}[type_name]
        described = text_format.Parse(text, message_type())
        body = described.SerializeToString(deterministic=True)
        problems = []
        if frame[4:] != body:
            problems.append(f"encoding differs:\n    file {frame[4:].hex(' ')}\n    ours {body.hex(' ')}")
        if struct.unpack(">I", frame[:4])[0] != len(frame) - 4:
            problems.append("the header does not give the body's length")
        decoded = message_type()
        decoded.ParseFromString(frame[4:])
        if decoded != described:
            problems.append(f"decoded {decoded} is not the described message")
        if name in GOLDEN_CALLS:
            request_id, timeout, (args, kwargs) = GOLDEN_CALLS[name]
            call = decoded.request.call
            got = (tuple(from_value(a) for a in call.args), {k.name: from_value(k.value) for k in call.kwargs})
            if shape(got) != shape((args, kwargs)):
                problems.append(f"values {shape(got)} are not {shape((args, kwargs))}")
            reencoded = IndependentClient.make_call("echo", args, kwargs, timeout=timeout)
            reencoded_frame = pb.ClientFrame(request=pb.Request(id=request_id, call=reencoded))
            if reencoded_frame.SerializeToString() != frame[4:]:
                problems.append(f"our value encoder does not produce {name}.bin")
        macs = {
            "auth_response": (lambda m: m.auth.mac, b"pyrpc-v1 client"),
            "auth_server_proof": (lambda m: m.hello.auth_proof, b"pyrpc-v1 server"),
        }
        if name in macs:
            field, label = macs[name]
            want = auth_mac(GOLDEN_SECRET, label, GOLDEN_CHALLENGE, GOLDEN_CLIENT_NONCE)
            if field(decoded) != want:
                problems.append(f"the MAC is not HMAC-SHA256 of {label!r} || Ns || Nc")
        ok = ok and not problems
        print(f"{'PASS' if not problems else 'FAIL'} golden {name}.bin ({len(frame)} bytes)", flush=True)
        for p in problems:
            print(f"  {p}")
    return check_noncanonical(directory) and ok


def check_noncanonical(directory):
    """noncanonical/GOLDEN--VARIANT.bin: another valid encoding of GOLDEN.bin's message."""
    ok = True
    sub = os.path.join(directory, "noncanonical")
    for file in sorted(f for f in os.listdir(sub) if f.endswith(".bin")):
        golden = file[: -len(".bin")].split("--", 1)[0]
        with open(os.path.join(directory, golden + ".txtpb"), encoding="utf-8") as f:
            text = f.read()
        client = "# proto-message: pyrpc.v1.ClientFrame" in text
        message_type = pb.ClientFrame if client else pb.ServerFrame
        with open(os.path.join(sub, file), "rb") as f:
            frame = f.read()
        problems = []
        if struct.unpack(">I", frame[:4])[0] != len(frame) - 4:
            problems.append("the header does not give the body's length")
        with open(os.path.join(directory, golden + ".bin"), "rb") as f:
            want = message_type.FromString(f.read()[4:])
        try:
            got = message_type.FromString(frame[4:])
        except Exception as exc:  # DecodeError, by runtime
            problems.append(f"does not decode: {exc}")
        else:
            got.DiscardUnknownFields()  # kept by this runtime, compared by ==; a receiver skips them
            if got != want:
                problems.append(f"decodes to {got}, not the message of {golden}.bin")
        ok = ok and not problems
        print(f"{'PASS' if not problems else 'FAIL'} noncanonical {file} decodes as {golden}.bin", flush=True)
        for p in problems:
            print(f"  {p}")
    return ok
