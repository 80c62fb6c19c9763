"""An exception class both the test server and the test client import, so the
client can rebuild it."""


class CustomError(Exception):
    """Raised by the test server; rebuilt on the client when this module is
    imported there."""


class AppError(Exception):
    """Keeps a keyword argument as an attribute, not in args: rebuilt with
    AppError(*args), its ``code`` comes back only because attributes travel."""

    def __init__(self, message, code=0):
        super().__init__(message)
        self.code = code
