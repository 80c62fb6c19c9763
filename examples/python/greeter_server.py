"""The Greeter service of examples/greeter.rs, served from Python.

Run:    python examples/python/greeter_server.py ADDRESS
Then:   cargo run -p pyrpc-examples --example greeter -- call ADDRESS

ADDRESS is "host:port" or a Unix socket path. The Rust client's calls
return what the Rust server would return, and the Python exceptions come
back to it as the trait's error type (ZeroDivisionError, ValueError).
"""

import sys

from pyrpc import Server


class Greeter:
    def greet(self, name, greeting=None):
        """Greets `name`, with `greeting` or "Hello"."""
        return "%s, %s!" % (greeting or "Hello", name)

    def divide(self, a, b):
        """Returns `a / b`."""
        return a / b

    def summarize(self, values):
        """Counts `values` and averages them."""
        if not values:
            raise ValueError("mean of no values")
        return {"count": len(values), "mean": sum(values) / len(values)}


def parse_address(text):
    """'host:port' -> (host, port); a path -> the path."""
    if "/" in text:
        return text
    host, _, port = text.rpartition(":")
    return (host, int(port))


if __name__ == "__main__":
    Server(address=parse_address(sys.argv[1]), callee=Greeter(), nonblocking=True).start()
