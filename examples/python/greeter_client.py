"""Calls the Greeter service of examples/greeter.rs from Python.

Run:    cargo run -p pyrpc-examples --example greeter -- serve ADDRESS
Then:   python examples/python/greeter_client.py ADDRESS

ADDRESS is "host:port" or a Unix socket path. The calls are plain Python
calls, positional or by keyword; the Rust errors arrive as the builtin
exceptions they are declared as.
"""

import sys

from pyrpc import Client


def parse_address(text):
    """'host:port' -> (host, port); a path -> the path."""
    if "/" in text:
        return text
    host, _, port = text.rpartition(":")
    return (host, int(port))


c = Client(parse_address(sys.argv[1]))
assert c.greet("Py") == "Hello, Py!"
assert c.greet(name="Py", greeting="Hi") == "Hi, Py!"
assert c.divide(1, 4) == 0.25
assert c.summarize([1.0, 2.0, 6.0]) == {"count": 3, "mean": 3.0}
try:
    c.divide(1, 0)
    raise AssertionError("divide(1, 0) returned")
except ZeroDivisionError as e:
    assert "zero" in str(e)
try:
    c.summarize([])
    raise AssertionError("summarize([]) returned")
except ValueError as e:
    assert str(e) == "mean of no values"
try:
    c.greet(nme="Py")
    raise AssertionError("a misspelt keyword was accepted")
except TypeError as e:
    assert "nme" in str(e)
assert c.nb_divide(9, 3) == 3.0
c.shutdown()
print("all calls returned what they should")
