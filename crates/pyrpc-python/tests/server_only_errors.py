"""An exception class only the test server imports (the tests never do), so
the client cannot rebuild it and raises RemoteError."""


class ServerOnlyError(Exception):
    """Raised by the test server; unknown to the client."""


class ServerOnlyAppError(Exception):
    """Like shared_errors.AppError, but unknown to the client."""

    def __init__(self, message, code=0):
        super().__init__(message)
        self.code = code
        self.details = {"disk": "/dev/sda1", "when": (1, 2)}
        self.unsendable = object()
