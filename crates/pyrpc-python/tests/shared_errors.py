"""An exception class both the test server and the test client import, so the
client can rebuild it."""


class CustomError(Exception):
    """Raised by the test server; rebuilt on the client when this module is
    imported there."""
