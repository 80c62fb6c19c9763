"""An exception class only the test server imports (the tests never do), so
the client cannot rebuild it and raises RemoteError."""


class ServerOnlyError(Exception):
    """Raised by the test server; unknown to the client."""
