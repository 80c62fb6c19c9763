"""The server's traceback, chained to a remote exception as its cause.

A remote exception (rebuilt, or a ``RemoteError``) gets
``exc.__cause__ = RemoteTraceback(text)``, so an uncaught one prints the
server's traceback first, then "The above exception was the direct cause of
the following exception", then the client's, as ``multiprocessing`` does.
"""


class RemoteTraceback(Exception):
    """Holds the server's traceback text; its ``str`` is that text."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return "\n\n" + self.tb.rstrip("\n")
